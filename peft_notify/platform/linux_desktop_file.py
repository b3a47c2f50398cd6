"""Install the app's desktop entry (``<APP_ID>.desktop``) and icon for the user (XDG), idempotently.

Unity LauncherEntry progress, notification icons and grouping (``desktop-entry`` hint) and the
window's taskbar icon all match the app through this file (``application://<APP_ID>.desktop``,
``StartupWMClass``). Call :func:`install_desktop_file` at app start on Linux; it rewrites nothing
that is already up to date, leaves the system copy a package installed (``.deb``) alone, and
raises ``OSError`` only when the home directory is not writable.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from peft_notify.appinfo import APP_ID, APP_NAME, APP_SUMMARY, CLI_NAME, icon_file, is_frozen

__all__ = [
    "DESKTOP_ENTRY",
    "DESKTOP_ID",
    "desktop_entry",
    "desktop_file_path",
    "icon_path",
    "install_desktop_file",
    "system_desktop_file",
]

DESKTOP_ID = APP_ID
# The same text as resources/<APP_ID>.desktop (a test keeps them equal); Exec is filled in.
DESKTOP_ENTRY = f"""[Desktop Entry]
Type=Application
Version=1.4
Name={APP_NAME}
GenericName=Training Monitor
Comment={APP_SUMMARY}
Exec={{exec}} app
Icon={APP_ID}
Terminal=false
Categories=Development;
Keywords=training;notifications;progress;peft;
StartupNotify=true
StartupWMClass={CLI_NAME}
X-GNOME-UsesNotifications=true
"""
# Written by versions before the reverse-DNS id; removed when the new one is installed.
_LEGACY_ID = "peft-notify"


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def desktop_file_path() -> Path:
    """Where the user's copy of the desktop entry lives."""
    return _data_home() / "applications" / f"{DESKTOP_ID}.desktop"


def icon_path() -> Path:
    """Where the user's copy of the scalable icon lives (hicolor theme)."""
    return _data_home() / "icons" / "hicolor" / "scalable" / "apps" / f"{DESKTOP_ID}.svg"


def system_desktop_file() -> Path | None:
    """The entry a system package installed (``$XDG_DATA_DIRS/applications/<id>.desktop``), if any."""
    dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    for base in dirs.split(os.pathsep):
        candidate = Path(base) / "applications" / f"{DESKTOP_ID}.desktop"
        if base and candidate.is_file():
            return candidate
    return None


def _default_exec() -> str:
    if is_frozen():
        return sys.executable  # the bundle's own binary (PyInstaller sets sys.executable to it)
    return shutil.which(CLI_NAME) or f"{sys.executable} -m peft_notify"


def desktop_entry(exec_path: str | None = None) -> str:
    """The desktop entry text, launching ``exec_path`` (default: this bundle, else ``peft-notify`` on PATH)."""
    return DESKTOP_ENTRY.format(exec=exec_path or _default_exec())


def _bundled_icon() -> Path | None:
    candidate = icon_file(".svg")
    return candidate if candidate.is_file() else None


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def _remove_legacy() -> bool:
    # Only files that are recognisably ours (the old entry named us and had our marker key).
    entry = _data_home() / "applications" / f"{_LEGACY_ID}.desktop"
    try:
        text = entry.read_text(encoding="utf-8")
    except OSError:
        return False
    if f"Name={APP_NAME}" not in text or "X-GNOME-UsesNotifications=true" not in text:
        return False
    entry.unlink()
    (_data_home() / "icons" / "hicolor" / "scalable" / "apps" / f"{_LEGACY_ID}.svg").unlink(missing_ok=True)
    return True


def install_desktop_file(exec_path: str | None = None) -> bool:
    """Install or update the desktop entry and icon; returns whether anything changed. Raises ``OSError``.

    Does nothing when a system package already installed the entry (the ``.deb``): a user
    copy would shadow it and outlive an uninstall.
    """
    changed = _remove_legacy()
    if exec_path is None and system_desktop_file() is not None:
        return changed
    changed |= _write_if_changed(desktop_file_path(), desktop_entry(exec_path).encode("utf-8"))
    icon = _bundled_icon()
    if icon is not None:
        changed |= _write_if_changed(icon_path(), icon.read_bytes())
    return changed
