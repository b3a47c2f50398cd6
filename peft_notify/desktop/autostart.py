"""Start the app at login: one switch, each OS's own mechanism.

- Linux/BSD: an XDG autostart entry ``$XDG_CONFIG_HOME/autostart/<APP_ID>.desktop``
  (freedesktop Desktop Application Autostart Specification).
- Windows: the ``peft-notify`` value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``,
  through a thin :class:`RunKey` layer (``winreg`` is imported only there; tests pass a dict).
- macOS: a LaunchAgent ``~/Library/LaunchAgents/<APP_ID>.plist`` with ``RunAtLoad``.

The command is this interpreter running the app, or, in a frozen (PyInstaller) build, the
installed binary itself. Entries written under the names used before the reverse-DNS app id
(``peft-notify.desktop``, ``io.github.peft-notify.plist``) count as enabled and are removed
when the switch is flipped.

Call :func:`set_autostart` when the user flips the setting and :func:`autostart_enabled` to show
its real state. Both raise ``OSError`` when the OS refuses (the settings dialog reports it).
"""

from __future__ import annotations

import importlib
import os
import plistlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from peft_notify.appinfo import APP_ID, APP_NAME, APP_SUMMARY, CLI_NAME, is_frozen

__all__ = [
    "LAUNCH_AGENT_LABEL",
    "RUN_KEY",
    "RUN_VALUE",
    "RunKey",
    "WinRegRunKey",
    "autostart_enabled",
    "default_command",
    "desktop_entry",
    "set_autostart",
]

LAUNCH_AGENT_LABEL: Final = APP_ID
RUN_VALUE: Final = CLI_NAME  # the HKCU Run value's name
_LEGACY_XDG_NAME: Final = "peft-notify"
_LEGACY_LAUNCH_AGENT_LABEL: Final = "io.github.peft-notify"
RUN_KEY: Final = r"Software\Microsoft\Windows\CurrentVersion\Run"


class RunKey(Protocol):
    """The few registry operations autostart needs on the HKCU Run key."""

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


def _winreg() -> Any:
    # Typed as Any: typeshed hides winreg outside win32, and this module must type-check on Linux.
    return importlib.import_module("winreg")


class WinRegRunKey:
    """:class:`RunKey` over ``winreg`` (Windows only; imported on first use)."""

    def get(self, name: str) -> str | None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                value, _kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, name: str, value: str) -> None:
        winreg = _winreg()
        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)

    def delete(self, name: str) -> None:
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            pass


def default_command() -> list[str]:
    """How login should start us, minimized to the tray: the frozen binary, else this interpreter."""
    if is_frozen():
        return [sys.executable, "app", "--minimized"]  # the bundle's binary (/usr/lib/peft-notify/peft-notify, ...)
    return [sys.executable, "-m", "peft_notify", "app", "--minimized"]


def _exec_quote(arg: str) -> str:
    # Desktop Entry spec, "The Exec key": quote args with reserved characters; inside quotes
    # escape " ` $ \ with a backslash; a literal % is written %%.
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    return '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'


def desktop_entry(command: Sequence[str]) -> str:
    """The text of the XDG autostart entry that runs ``command``."""
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            f"Name={APP_NAME}",
            f"Comment={APP_SUMMARY}",
            "Exec=" + " ".join(_exec_quote(a) for a in command),
            f"Icon={APP_ID}",
            "Terminal=false",
            "X-GNOME-Autostart-enabled=true",
            "",
        ]
    )


def _windows_command(command: Sequence[str]) -> str:
    return " ".join(f'"{a}"' if (" " in a or not a) else a for a in command)


def _xdg_autostart_file(home: Path, name: str = APP_ID) -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config) / "autostart" / f"{name}.desktop"


def _launch_agent_file(home: Path, label: str = LAUNCH_AGENT_LABEL) -> Path:
    return home / "Library" / "LaunchAgents" / f"{label}.plist"


def set_autostart(
    enabled: bool,
    *,
    command: Sequence[str] | None = None,
    platform: str | None = None,
    home: Path | None = None,
    run_key: RunKey | None = None,
) -> str:
    """Turn start-at-login on or off; returns where it was written (a path or registry value).

    ``platform`` defaults to ``sys.platform``, ``home`` to the user's home, ``run_key`` to the
    real registry: tests pass their own. Raises ``OSError`` when writing fails.
    """
    platform = platform or sys.platform
    home = home or Path.home()
    argv = list(command or default_command())
    if platform == "win32":
        key = run_key or WinRegRunKey()
        if enabled:
            key.set(RUN_VALUE, _windows_command(argv))
        else:
            key.delete(RUN_VALUE)
        return f"HKCU\\{RUN_KEY}\\{RUN_VALUE}"
    if platform == "darwin":
        path = _launch_agent_file(home)
        _launch_agent_file(home, _LEGACY_LAUNCH_AGENT_LABEL).unlink(missing_ok=True)
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            plist = {
                "Label": LAUNCH_AGENT_LABEL,
                "ProgramArguments": argv,
                "RunAtLoad": True,
                "ProcessType": "Interactive",
            }
            path.write_bytes(plistlib.dumps(plist))
        else:
            path.unlink(missing_ok=True)
        return str(path)
    path = _xdg_autostart_file(home)
    _xdg_autostart_file(home, _LEGACY_XDG_NAME).unlink(missing_ok=True)
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(desktop_entry(argv), encoding="utf-8")
    else:
        path.unlink(missing_ok=True)
    return str(path)


def autostart_enabled(*, platform: str | None = None, home: Path | None = None, run_key: RunKey | None = None) -> bool:
    """Whether start-at-login is currently set up (reads the OS, not our settings)."""
    platform = platform or sys.platform
    home = home or Path.home()
    if platform == "win32":
        return (run_key or WinRegRunKey()).get(RUN_VALUE) is not None
    if platform == "darwin":
        return any(_launch_agent_file(home, label).exists() for label in (APP_ID, _LEGACY_LAUNCH_AGENT_LABEL))
    return any(_xdg_enabled(_xdg_autostart_file(home, name)) for name in (APP_ID, _LEGACY_XDG_NAME))


def _xdg_enabled(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return "Hidden=true" not in text and "X-GNOME-Autostart-enabled=false" not in text
