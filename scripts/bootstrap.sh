#!/usr/bin/env bash
# Create/refresh .venv with the given extras. Sourced by scripts/demo and scripts/test.
# Usage: source scripts/bootstrap.sh desktop,dev,ml
# Re-installs only when pyproject.toml or the extras changed (stamp file).
set -euo pipefail
_extras="${1:-desktop}"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="$_root/.venv"
_py="${PYTHON:-python3}"

# pip's own output (and setuptools' warning boxes from the editable build) goes to .venv/install.log;
# the terminal gets one line that updates in place, and the log's end only if pip fails.
_pip_quiet() {
  local log="$_venv/install.log" n=0 pid last
  "$_venv/bin/python" -m pip install --progress-bar off "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -t 2 ]; then
      last="$(grep -E '^(Collecting|Downloading|Building|Installing|Successfully)' "$log" 2>/dev/null | tail -n 1 | cut -c1-60)"
      printf '\r\033[K    %3ds %s' "$n" "$last" >&2
    fi
    sleep 1
    n=$((n + 1))
  done
  if ! wait "$pid"; then
    [ -t 2 ] && printf '\r\033[K' >&2
    echo "pip install failed; the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  if [ -t 2 ]; then printf '\r\033[K    done in %ds (pip log: .venv/install.log)\n' "$n" >&2; fi
}

_need_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi; }

if ! "$_py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "peft-notify needs Python >= 3.11 (found: $("$_py" --version 2>&1))" >&2; exit 1
fi
if [ ! -x "$_venv/bin/python" ]; then
  echo "==> creating virtual environment in .venv" >&2
  if ! "$_py" -m venv "$_venv" 2>/dev/null; then
    # Debian ships venv/ensurepip separately.
    rm -rf "$_venv"
    echo "==> python3-venv missing; installing it with apt-get" >&2
    _need_root apt-get update -qq && _need_root apt-get install -y -qq python3-venv >/dev/null \
      || { echo "cannot create a venv: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
    "$_py" -m venv "$_venv"
  fi
  _pip_quiet --upgrade pip
fi
_stamp="$_venv/.peft-notify-$(echo "$_extras" | tr ',' '-')"
_hash="$(sha256sum "$_root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$_stamp" ] || [ "$(cat "$_stamp")" != "$_hash" ]; then
  echo "==> installing peft-notify[$_extras] into .venv (first run takes a few minutes)" >&2
  _pins=()
  case ",$_extras," in *,ml,*) _pins+=("torch==2.13.0") ;; esac
  _pip_quiet ${_pins[@]+"${_pins[@]}"} -e "$_root[$_extras]"
  echo "$_hash" > "$_stamp"
fi
export PATH="$_venv/bin:$PATH"
