"""Install the ``peft-notify.desktop`` entry and icon for the user (XDG), idempotently.

Unity LauncherEntry progress, notification grouping and the window's taskbar icon all
match the app through this file (``application://peft-notify.desktop``, ``StartupWMClass``).
Call :func:`install_desktop_file` at app start on Linux; it rewrites nothing that is
already up to date and raises ``OSError`` only when the home directory is not writable.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["DESKTOP_ENTRY", "desktop_entry", "desktop_file_path", "icon_path", "install_desktop_file"]

DESKTOP_ID = "peft-notify"
# The same text as resources/peft-notify.desktop (a test keeps them equal); Exec is filled in.
DESKTOP_ENTRY = """[Desktop Entry]
Type=Application
Version=1.5
Name=PEFT Notify
GenericName=Training Monitor
Comment=Desktop notifications and taskbar progress for training jobs
Exec={exec} app
Icon=peft-notify
Terminal=false
Categories=Development;Utility;
Keywords=training;notifications;progress;peft;
StartupNotify=true
StartupWMClass=peft-notify
X-GNOME-UsesNotifications=true
"""


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def desktop_file_path() -> Path:
    """Where the user's copy of the desktop entry lives."""
    return _data_home() / "applications" / f"{DESKTOP_ID}.desktop"


def icon_path() -> Path:
    """Where the user's copy of the scalable icon lives (hicolor theme)."""
    return _data_home() / "icons" / "hicolor" / "scalable" / "apps" / f"{DESKTOP_ID}.svg"


def desktop_entry(exec_path: str | None = None) -> str:
    """The desktop entry text, launching ``exec_path`` (default: the ``peft-notify`` on PATH)."""
    command = exec_path or shutil.which("peft-notify") or f"{sys.executable} -m peft_notify"
    return DESKTOP_ENTRY.format(exec=command)


def _bundled_icon() -> Path | None:
    for root in (Path(__file__).resolve().parents[1] / "resources", Path(__file__).resolve().parents[2] / "resources"):
        candidate = root / "icons" / f"{DESKTOP_ID}.svg"
        if candidate.is_file():
            return candidate
    return None


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def install_desktop_file(exec_path: str | None = None) -> bool:
    """Install or update the desktop entry and icon; returns whether anything changed. Raises ``OSError``."""
    changed = _write_if_changed(desktop_file_path(), desktop_entry(exec_path).encode("utf-8"))
    icon = _bundled_icon()
    if icon is not None:
        changed |= _write_if_changed(icon_path(), icon.read_bytes())
    return changed
