"""The real macOS OS layer (issue 18 item 7): AppKit through rubicon-objc, the Focus files,
desktop-notifier's Notification Center backend.

Marked ``os_macos``: skipped on other systems (tests/platform/conftest.py), run on the
``macos-latest`` runner by .github/workflows/os-runners.yml. Nothing here is faked. The
dock tile is read back from AppKit, and the progress view is rendered off-screen so its
``drawRect:`` runs and its pixels are checked.
"""

from __future__ import annotations

import asyncio
import platform
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QWidget

from peft_notify.app.qtplatform import QtWindowTaskbar, combine_taskbars
from peft_notify.platform.macos import (
    FULL_DISK_ACCESS_HINT,
    MacDockTile,
    RubiconDockApi,
    dock_bar_layout,
    macos_dnd_probe,
    parse_assertions_json,
)
from peft_notify.ports import DndState, TaskbarState

pytestmark = pytest.mark.os_macos


def _objc(name: str) -> Any:
    from rubicon.objc import ObjCClass

    return ObjCClass(name)


def _tile() -> Any:
    return _objc("NSApplication").sharedApplication.dockTile


def _rgb_at(view: Any, x: float, y_from_bottom: float) -> tuple[float, float, float]:
    """Render ``view`` off-screen (runs its drawRect:) and read one pixel back in sRGB."""
    bounds = view.bounds
    rep = view.bitmapImageRepForCachingDisplayInRect(bounds)
    view.cacheDisplayInRect(bounds, toBitmapImageRep=rep)
    scale = float(rep.pixelsWide) / float(bounds.size.width)
    row = int((float(bounds.size.height) - y_from_bottom) * scale)  # bitmap rows run top-down
    color = rep.colorAtX(int(x * scale), y=row).colorUsingColorSpace(_objc("NSColorSpace").sRGBColorSpace)
    return float(color.redComponent), float(color.greenComponent), float(color.blueComponent)


def test_dock_badge_and_progress_view(qapp: QApplication) -> None:
    api = RubiconDockApi()
    tile = MacDockTile(api)
    tile.set(0.45, TaskbarState.NORMAL)
    assert tile.last_error is None
    dock = _tile()
    assert str(dock.badgeLabel) == "45%"
    view = dock.contentView
    assert view is not None and str(view.className) == "PeftNotifyDockProgressView"
    width, height = float(view.bounds.size.width), float(view.bounds.size.height)
    track, fill, _ = dock_bar_layout(width, height, 0.45, TaskbarState.NORMAL)
    y = track[1] + track[3] / 2
    red, green, blue = _rgb_at(view, fill[0] + fill[2] / 2, y)
    assert blue > 0.6 and red < 0.4, (red, green, blue)  # system blue inside the filled part
    tile.set(0.45, TaskbarState.ERROR)
    red, green, blue = _rgb_at(view, fill[0] + fill[2] / 2, y)
    assert red > 0.6 and blue < 0.4, (red, green, blue)
    tile.badge(2)  # unread errors win over the percentage
    assert str(dock.badgeLabel) == "2"
    tile.badge(0)
    tile.clear()
    assert dock.contentView is None
    assert dock.badgeLabel is None or str(dock.badgeLabel) == ""
    tile.attention(False)  # requestUserAttention: NSInformationalRequest
    assert tile.last_error is None


def test_qt_badge_no_longer_wipes_the_dock_label(qapp: QApplication) -> None:
    window = QWidget()
    dock_tile = MacDockTile(RubiconDockApi())
    qt = QtWindowTaskbar(window, qt_badge=True)
    combined = combine_taskbars([dock_tile, qt], window, qapp)
    combined.set(0.3, TaskbarState.NORMAL)
    combined.badge(0)  # Qt's setBadgeNumber(0) used to clear NSDockTile.badgeLabel here
    assert str(_tile().badgeLabel) == "30%"
    combined.clear()


def test_focus_probe_reads_this_machine(tmp_path: Path) -> None:
    release = platform.mac_ver()[0]
    version = tuple(int(p) for p in release.split(".") if p.isdigit())
    probe = macos_dnd_probe(version)
    state = asyncio.run(probe.state())
    path = Path.home() / "Library/DoNotDisturb/DB/Assertions.json"
    if version < (12,):
        assert state in (DndState.ON, DndState.OFF)
        return
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        assert state is DndState.OFF  # never used a Focus: no file
        return
    except PermissionError:
        assert state is DndState.UNKNOWN  # no Full Disk Access for this process
        assert FULL_DISK_ACCESS_HINT in (probe.probes[0].last_error or "")  # type: ignore[attr-defined]
        return
    assert state is (DndState.ON if parse_assertions_json(text) else DndState.OFF)


def test_desktop_notifier_backend_and_authorisation() -> None:
    import desktop_notifier.main

    from peft_notify.platform.notifier import DesktopNotifierAdapter, NotifierUnavailable

    bundle_id = _objc("NSBundle").mainBundle.bundleIdentifier
    backend = desktop_notifier.main.get_backend_class()
    if bundle_id is None:
        # desktop-notifier 6.2: no bundle identifier -> dummy backend; our reason must say exactly that.
        assert backend.__name__ == "DummyNotificationCenter"
        with pytest.raises(NotifierUnavailable, match="bundle identifier"):
            asyncio.run(DesktopNotifierAdapter.create(lambda *_: None, platform="darwin"))
        return
    assert backend.__name__ == "CocoaNotificationCenter"  # a bundle, signed or not

    async def scenario() -> bool | None:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None, platform="darwin")
        try:
            return await adapter.check_authorisation()
        finally:
            await adapter.close()

    assert asyncio.run(scenario()) in (True, False)
