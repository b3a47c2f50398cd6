"""Who the app is to the operating system: one app id, its names, version and icon files.

Every place the OS matches the app by an identifier uses :data:`APP_ID`: Qt's desktop file
name (Wayland ``app_id``), the ``.desktop`` file and AppStream metainfo id, the LauncherEntry
``application://`` URI, the notifications' ``desktop-entry`` hint, the Windows
AppUserModelID (the Start-menu shortcut and toasts), the macOS ``CFBundleIdentifier`` and the
LaunchAgent label. ``packaging/`` reads the same constants, and tests check that the Inno Setup
script and the Info.plist agree with them. Stdlib only: importable everywhere, including the
training side.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

__all__ = ["APP_ID", "APP_NAME", "APP_SUMMARY", "CLI_NAME", "VERSION", "icon_file", "is_frozen", "resources_dir"]

# Reverse-DNS (freedesktop Desktop Entry spec, "Desktop File ID"; AppStream component id).
# The project has no public home yet: "io.github.peftnotify" names the GitHub organisation it
# is meant to live under. Change it here (and only here) before the first public release.
APP_ID: Final = "io.github.peftnotify.PeftNotify"
APP_NAME: Final = "PEFT Notify"
CLI_NAME: Final = "peft-notify"
APP_SUMMARY: Final = "Desktop notifications and taskbar progress for training jobs"
# The one version source: peft_notify.__version__, pyproject.toml (attr) and packaging/ read it.
VERSION: Final = "0.1.0"


def is_frozen() -> bool:
    """Whether we run from a PyInstaller bundle (``sys.frozen``), not from a Python install."""
    return bool(getattr(sys, "frozen", False))


def resources_dir() -> Path:
    """The package's bundled resources (also inside a frozen app: the spec copies them there)."""
    return Path(__file__).resolve().parent / "resources"


def icon_file(suffix: str = ".png") -> Path:
    """The product icon (``.png`` 256 px or ``.svg``) shipped in the package; the file may be missing."""
    return resources_dir() / "icons" / f"{APP_ID}{suffix}"
