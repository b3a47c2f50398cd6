"""The macOS Info.plist keys of the .app bundle (used by packaging/peft-notify.spec and the tests).

macOS delivers notifications only from a bundle with a ``CFBundleIdentifier`` (desktop-notifier
falls back to a silent no-op otherwise), so it is the app id from ``peft_notify.appinfo``.
"""

from __future__ import annotations

from typing import Any

from peft_notify.appinfo import APP_ID, APP_NAME, CLI_NAME, VERSION


def info_plist() -> dict[str, Any]:
    """The keys PyInstaller's ``BUNDLE`` merges into the generated Info.plist."""
    return {
        "CFBundleIdentifier": APP_ID,
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleExecutable": CLI_NAME,
        "CFBundleShortVersionString": VERSION,
        "CFBundleVersion": VERSION,
        "CFBundlePackageType": "APPL",
        "LSMinimumSystemVersion": "11.0",
        "LSUIElement": False,  # a Dock icon and a menu bar: it is a window app with a tray icon
        "NSHighResolutionCapable": True,
        "NSUserNotificationAlertStyle": "alert",  # banners that stay until dismissed, with buttons
        "NSHumanReadableCopyright": "MIT License",
    }
