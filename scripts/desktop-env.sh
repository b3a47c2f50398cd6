# Sourced by scripts/test and bench/run: make sure a real headless desktop (Xvfb + a private
# session D-Bus + dunst + a tray) is exported, so nothing ever talks to the user's own desktop.
# Reuses a session already exported in this shell; otherwise starts ../shared/desktop-session
# and stops it on exit. Without one (or with PEFT_NOTIFY_NO_DESKTOP set), tests that need the
# desktop skip with a reason.
_ds=""
if [ -x ../shared/desktop-session/start.sh ]; then _ds="$(cd ../shared/desktop-session && pwd)"; fi
if [ -n "${DESKTOP_SESSION_DIR:-}" ] && [ -d "${DESKTOP_SESSION_DIR:-/nonexistent}" ]; then
  echo "==> using the desktop session already exported ($DESKTOP_SESSION_DIR)" >&2
elif [ -n "$_ds" ] && [ "$(uname -s)" = Linux ] && [ -z "${PEFT_NOTIFY_NO_DESKTOP:-}" ]; then
  echo "==> starting the desktop session ($_ds)" >&2
  eval "$("$_ds/start.sh")"
  trap 'eval "$("$_ds/stop.sh")" >/dev/null 2>&1 || true' EXIT
else
  echo "==> no desktop session (../shared/desktop-session not found or disabled): desktop tests will skip" >&2
fi
