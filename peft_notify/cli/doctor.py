"""``peft-notify doctor``: what works on this machine for notifications, progress and DND, and why.

The first thing the README's troubleshooting section asks users to run. Exit status 0
when a native notifier works, 1 when only the log fallback is left.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["desktop_line", "register", "run_doctor", "settings_line"]

# Checks the XEmbed tray selection without Qt (the CLI must not import it).
_TRAY_CHECK = """
import ctypes, ctypes.util, sys
name = ctypes.util.find_library("X11")
if not name: sys.exit(2)
x = ctypes.CDLL(name)
x.XOpenDisplay.restype = ctypes.c_void_p; x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XInternAtom.restype = ctypes.c_ulong; x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x.XGetSelectionOwner.restype = ctypes.c_ulong; x.XGetSelectionOwner.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
d = x.XOpenDisplay(None)
if not d: sys.exit(2)
sys.exit(0 if x.XGetSelectionOwner(d, x.XInternAtom(d, b"_NET_SYSTEM_TRAY_S0", 0)) else 1)
"""


def register(subparsers: Any) -> None:
    """Add the ``doctor`` sub-command."""
    parser = subparsers.add_parser("doctor", help="check notifications, taskbar progress and Do-Not-Disturb here")
    parser.add_argument("--send-test", action="store_true", help="also send a real test notification")
    parser.add_argument(
        "--channels",
        action="store_true",
        help="send a test through each notification channel (the app's, --notify and $PEFT_NOTIFY_CHANNELS)",
    )
    parser.add_argument("--notify", action="append", metavar="URL", help="a channel URL to test (repeatable)")
    parser.set_defaults(handler=run_doctor)


def _channels_report(send: bool, extra: list[str]) -> list[str]:
    """The keyring line, then (``send``) one line per channel with the service's answer."""
    from peft_notify.channels import specs_from
    from peft_notify.channels.probe import send_test
    from peft_notify.channels.secrets import SecretStore

    store = SecretStore()
    out = [store.status().line()]
    if not send:
        return out
    urls: list[str] = [s.url for s in specs_from(extra)]
    try:
        from peft_notify.desktop.channels import resolve
        from peft_notify.desktop.settings import load_settings

        specs, problems = resolve(load_settings().channels, store)
        urls += [s.url for s in specs]
        out += [f"channel left out: {line}" for line in problems]
    except Exception as exc:  # settings unreadable: still test the URLs given here
        out.append(f"app channels: not read ({type(exc).__name__})")
    if not urls:
        out.append("channels: none configured (Settings → Channels, --notify URL or $PEFT_NOTIFY_CHANNELS)")
    for url in dict.fromkeys(urls):
        display, result = send_test(url)
        out.append(f"channel {display}: {'sent' if result.ok else 'FAILED'} · {result.summary()}")
    return out


def _tray_status() -> str:
    if sys.platform in ("win32", "darwin"):
        return "available (always on this OS)"
    if not os.environ.get("DISPLAY"):
        return "unknown (no X display; Wayland trays use StatusNotifierItem)"
    try:
        code = subprocess.run([sys.executable, "-c", _TRAY_CHECK], timeout=5, check=False).returncode
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (check failed)"
    return {0: "available (XEmbed tray found)", 1: "no XEmbed tray on this display"}.get(code, "unknown")


def desktop_line(env: Mapping[str, str], server_name: str | None) -> str:
    """What was found about the desktop: its environment variables and who shows notifications."""
    found = ", ".join(
        f"{name}={env[name]}" if env.get(name) else f"{name} not set"
        for name in ("XDG_CURRENT_DESKTOP", "XDG_SESSION_TYPE")
    )
    shown = f"notifications are shown by {server_name}" if server_name else "no notification server answered"
    return f"desktop: {found}; {shown}"


def settings_line() -> str:
    """Where the settings are and whether the app can read them; only reads (no ``.bak`` is written).

    An unreadable file (not TOML, not text, not a file, no permission) is said loudly: the
    app then runs with the defaults, which is otherwise a silent surprise.
    """
    import tomllib

    try:
        from peft_notify.desktop.settings import default_settings_path

        path = default_settings_path()
    except Exception as exc:  # the desktop side is not installed in this build
        return f"settings: unknown ({exc})"
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except FileNotFoundError:
        return f"settings: {path} (not created yet: defaults)"
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        why = f"not valid TOML: {exc}"
    except OSError as exc:
        why = f"cannot be read: {exc.strerror or exc}"
    else:
        return f"settings: {path}"
    return f"settings: {path} — UNREADABLE ({why}); the app uses the defaults until it is fixed"


def _paths() -> list[str]:
    lines = [settings_line()]
    for label, module, func in (("history", "peft_notify.desktop.history", "default_history_path"),):
        try:
            mod = __import__(module, fromlist=[func])
            lines.append(f"{label}: {getattr(mod, func)()}")
        except Exception as exc:  # module not installed in this build
            lines.append(f"{label}: unknown ({exc})")
    return lines


async def _report(send_test: bool) -> tuple[list[str], bool]:
    out = [f"system: {platform.system()} {platform.release()} ({sys.platform}), Python {platform.python_version()}"]
    try:
        import desktop_notifier  # noqa: F401 - the [desktop] extra (it brings dbus-fast on Linux)

        from peft_notify.platform.choose import select_dnd_probe, select_notifiers, select_taskbar
        from peft_notify.platform.notifier import DesktopNotifierAdapter
        from peft_notify.platform.session_bus import BusError, SessionBus, notification_server
    except ModuleNotFoundError as exc:  # the core (training-side) install has no D-Bus / desktop libraries
        why = f"desktop side: not installed here (no module {exc.name!r}): pip install 'peft-notify[desktop]'"
        return [*out, why, *_paths()], False
    from peft_notify.ports import NotifyRequest
    from peft_notify.wire import NotificationEvent, NotificationType

    bus = SessionBus()
    linux = sys.platform.startswith("linux") or "bsd" in sys.platform
    if linux:
        lines: list[str] = []
        server_name = None
        try:
            server = await notification_server(bus)  # GetServerInformation
            if server is None:
                lines.append(
                    "notification server: NONE owns org.freedesktop.Notifications (start one: dunst, mako, ...)"
                )
            else:
                server_name = server.name
                lines.append(f"notification server: {server.describe()}")
                lines.append(f"  server capabilities: {', '.join(server.capabilities) or '-'}")
        except BusError as exc:
            lines.append(f"session D-Bus: unavailable ({exc})")
        out += [desktop_line(os.environ, server_name), *lines]
    notifiers = await select_notifiers(lambda *_: None, bus=bus)
    out += notifiers.describe()
    primary = notifiers.primary
    if isinstance(primary, DesktopNotifierAdapter):
        out.append(f"  capabilities: {', '.join(sorted(primary.capabilities())) or '-'}")
        if primary.off_reason:  # macOS/Windows: the OS would drop every notification
            out.append(
                f"  {primary.off_reason.upper()[:1]}{primary.off_reason[1:]} — the app falls back to tray messages"
            )
    out += (await select_taskbar(bus=bus)).describe()
    dnd = await select_dnd_probe(bus=bus)
    out += dnd.describe()
    out.append(f"Do-Not-Disturb now: {(await dnd.primary.state()).value}")
    if sys.platform == "darwin":
        from peft_notify.platform.macos import FOCUS_LAG_NOTE, FULL_DISK_ACCESS_HINT

        out.append(f"  Focus is read from ~/Library/DoNotDisturb/DB/Assertions.json: {FULL_DISK_ACCESS_HINT}")
        out.append(f"  {FOCUS_LAG_NOTE}")
    out.append(f"tray: {_tray_status()}")
    if linux:
        from peft_notify.platform.linux_desktop_file import desktop_file_path, system_desktop_file

        path = system_desktop_file() or desktop_file_path()
        out.append(f"desktop file: {path} ({'installed' if path.exists() else 'missing — the app installs it'})")
    elif sys.platform == "win32":
        from peft_notify.appinfo import APP_ID

        out.append(f"AppUserModelID: {APP_ID} (toasts need it; set by the app at start)")
    out += _paths()
    from peft_notify.emitter.resources import describe_gpu

    out.append(describe_gpu())  # once: no NVML is a note, never an error (docs/resources.md)
    if send_test:
        event = NotificationEvent(
            type=NotificationType.COMPLETION,
            title="peft-notify test",
            message="If you can read this, notifications work.",
            actions=["View Details"],
        )
        delivery = await primary.notify(NotifyRequest(record_id=0, job_id="", event=event))
        verdict = "sent" if delivery.ok else "FAILED"
        out.append(f"test notification: {verdict} via {delivery.backend} {delivery.detail}".rstrip())
    for notifier in notifiers.chosen:
        await notifier.close()
    await bus.close()
    return out, not notifiers.only_fallback


def run_doctor(args: argparse.Namespace) -> int:
    """Print the report; 0 when a real notifier works, 1 when only the log fallback is left."""
    lines, ok = asyncio.run(_report(bool(getattr(args, "send_test", False))))
    lines += _channels_report(bool(getattr(args, "channels", False)), list(getattr(args, "notify", None) or []))
    from peft_notify.termsafe import printable

    # Server names, channel services' answers and paths are not ours: no escape sequence reaches the terminal.
    print(printable("\n".join(lines), multiline=True))
    if not ok:
        print("\nNo native notifier works here: notifications only go to the log.", file=sys.stderr)
    return 0 if ok else 1
