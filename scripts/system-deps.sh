# Sourced by scripts/test: Debian packages some tests use, installed when missing (root or
# passwordless sudo; otherwise those tests skip with a reason). Quiet; one line when it installs.
#   gnome-keyring              a real Secret Service for the channel secrets tests (issue 13)
#   at-spi2-core python3-pyatspi   the screen-reader smoke test over AT-SPI (issue 16)
#   desktop-file-utils appstream   packaging/build validates the .desktop and metainfo files (issue 12)
#   gcc libc6-dev              packaging/icudata.py builds the trimmed ICU data library (issue 12)
_sys_pkgs=(gnome-keyring at-spi2-core python3-pyatspi desktop-file-utils appstream gcc libc6-dev)
if command -v dpkg-query >/dev/null 2>&1 && [ -z "${PEFT_NOTIFY_NO_APT:-}" ]; then
  _missing=()
  for _p in "${_sys_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$_p" 2>/dev/null | grep -q "install ok installed" || _missing+=("$_p")
  done
  if [ "${#_missing[@]}" -gt 0 ]; then
    _sudo=""; [ "$(id -u)" = 0 ] || { sudo -n true 2>/dev/null && _sudo="sudo -n"; }
    if [ "$(id -u)" = 0 ] || [ -n "$_sudo" ]; then
      echo "==> installing Debian packages the tests use: ${_missing[*]}" >&2
      { $_sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq --no-install-recommends "${_missing[@]}"; } >/dev/null 2>&1 \
        || echo "==> could not install ${_missing[*]}: the tests that need them will skip" >&2
    else
      echo "==> missing ${_missing[*]} (no root): the tests that need them will skip" >&2
    fi
  fi
fi
