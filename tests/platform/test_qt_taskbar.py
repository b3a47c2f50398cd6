"""The app side of the native taskbar adapters (peft_notify.app.qtplatform), on every OS.

- ``TaskbarButtonFilter``: a real ``QAbstractNativeEventFilter`` fed a real winuser.h-layout
  ``MSG`` (what Qt's Windows plugin hands it); Qt on Linux never delivers Windows messages, so
  the filter is called the way Qt calls it. On Windows, test_os_windows.py sends the message
  to a real window through user32.
- ``combine_taskbars``: one owner for the flash and the badge.
- ``NotifierPermissionWatch``: "notifications are off for this app" reaches its listeners.
"""

from __future__ import annotations

import asyncio
import ctypes

import pytest
from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QApplication, QWidget

from peft_notify.app.qtplatform import (
    NotifierPermissionWatch,
    QtWindowTaskbar,
    combine_taskbars,
    install_taskbar_button_filter,
)
from peft_notify.platform.macos import MacDockTile
from peft_notify.platform.taskbar import NullTaskbar, TeeTaskbar
from peft_notify.platform.taskbar_windows import WinTaskbar
from peft_notify.platform.win32 import MSG
from peft_notify.ports import TaskbarState
from tests.platform.test_macos import RecordingDock
from tests.platform.test_windows import PTR, RecordingWin32

CREATED = 0xC123  # what RecordingWin32.register_window_message answers


def _send(event_filter: object, hwnd: int, message: int, kind: bytes = b"windows_generic_MSG") -> tuple[bool, int]:
    msg = MSG(hwnd=hwnd, message=message)
    return event_filter.nativeEventFilter(QByteArray(kind), ctypes.addressof(msg))  # type: ignore[attr-defined,no-any-return]


def test_taskbar_button_created_reapplies_the_last_state(qapp: QApplication) -> None:
    window = QWidget()
    hwnd = int(window.winId())
    api = RecordingWin32()
    native = WinTaskbar(lambda: hwnd, api)
    native.set(0.8, TaskbarState.ERROR)  # the run died while the window was hidden in the tray
    event_filter = install_taskbar_button_filter(native, window, qapp)
    assert event_filter is not None
    assert event_filter.message == CREATED
    api.calls.clear()
    assert _send(event_filter, hwnd, CREATED) == (False, 0)  # Qt still sees the message
    assert native.resets == 1
    assert api.calls[:2] == [("Release", PTR), ("CoCreateInstance", *api.calls[1][1:])]
    assert ("vtable", PTR, 10, hwnd, 0x4) in api.calls  # red again
    assert ("vtable", PTR, 9, hwnd, 800, 1000) in api.calls
    qapp.removeNativeEventFilter(event_filter)


def test_the_filter_ignores_other_windows_messages_and_event_types(qapp: QApplication) -> None:
    window = QWidget()
    hwnd = int(window.winId())
    native = WinTaskbar(lambda: hwnd, RecordingWin32())
    event_filter = install_taskbar_button_filter(native, window, qapp)
    assert event_filter is not None
    _send(event_filter, hwnd + 1, CREATED)  # another top-level window's button
    _send(event_filter, hwnd, 0x0010)  # WM_CLOSE
    _send(event_filter, hwnd, CREATED, kind=b"xcb_generic_event_t")
    assert native.resets == 0
    assert event_filter.nativeEventFilter(QByteArray(b"windows_generic_MSG"), 0) == (False, 0)  # NULL: logged
    qapp.removeNativeEventFilter(event_filter)


def test_combine_lets_the_native_adapter_flash_and_skips_qt_alert(qapp: QApplication) -> None:
    window = QWidget()
    qt = QtWindowTaskbar(window, qt_badge=True)
    native = WinTaskbar(lambda: int(window.winId()), RecordingWin32())
    combined = combine_taskbars([native, qt, NullTaskbar()], window, qapp)
    assert isinstance(combined, TeeTaskbar)
    assert qt.alert is False  # FlashWindowEx until foreground instead of Qt's 5-second flash
    assert qt.qt_badge is True  # Windows: Qt's overlay badge is the only one
    alone = QtWindowTaskbar(window)
    assert combine_taskbars([alone, NullTaskbar()], window, qapp) is alone
    assert alone.alert is True


def test_combine_gives_the_macos_badge_to_the_dock_tile_alone(qapp: QApplication) -> None:
    window = QWidget()
    qt = QtWindowTaskbar(window, qt_badge=True)
    dock = RecordingDock()
    combine_taskbars([MacDockTile(dock), qt], window, qapp)
    assert qt.qt_badge is False  # Qt's badge(0) would wipe the dock tile's "45%"
    assert qt.alert is True  # the dock tile's bounce and Qt's alert are the same call on macOS


def test_qt_alert_is_not_called_when_switched_off(qapp: QApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    # QApplication.alert's effect (FlashWindowEx / urgency hint) cannot be observed here: record the call.
    calls: list[int] = []
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda widget, msec=0: calls.append(msec)))
    window = QWidget()
    QtWindowTaskbar(window, alert=False).attention(True)
    QtWindowTaskbar(window).attention(True)
    assert calls == [0]


def test_permission_watch_reports_notifications_off_and_back_on(qapp: QApplication) -> None:
    from peft_notify.platform.notifier import NOTIFICATIONS_OFF, DesktopNotifierAdapter

    class Center:
        allowed = False

        async def has_authorisation(self) -> bool:
            return self.allowed

    center = Center()
    adapter = DesktopNotifierAdapter(center, lambda *_: None, platform="darwin")
    watch = NotifierPermissionWatch([adapter])
    seen: list[object] = []
    watch.changed.connect(seen.append)
    assert asyncio.run(watch.refresh()) is not None
    center.allowed = True
    asyncio.run(watch.refresh())
    asyncio.run(watch.refresh())  # no change: no signal
    assert len(seen) == 2
    assert isinstance(seen[0], str) and seen[0].startswith(NOTIFICATIONS_OFF)
    assert seen[1] is None


def test_permission_watch_puts_a_line_at_the_top_of_the_tray_menu_and_the_banner(qapp: QApplication) -> None:
    from PySide6.QtWidgets import QMenu, QSystemTrayIcon

    from peft_notify.platform.notifier import DesktopNotifierAdapter

    class Center:
        allowed = False

        async def has_authorisation(self) -> bool:
            return self.allowed

    center = Center()
    tray = QSystemTrayIcon()
    menu = QMenu()
    menu.addAction("Show window")
    tray.setContextMenu(menu)
    watch = NotifierPermissionWatch([DesktopNotifierAdapter(center, lambda *_: None, platform="win32")], tray=tray)
    banner: list[tuple[str, str]] = []
    watch.problem.connect(lambda key, message: banner.append((key, message)))
    asyncio.run(watch.refresh())
    first = menu.actions()[0]
    assert first.text().startswith("⚠ Notifications are off for this app")
    assert not first.isEnabled() and first.isVisible()
    assert banner and banner[0][0] == "" and "notifications are off for this app" in banner[0][1]
    center.allowed = True
    asyncio.run(watch.refresh())
    assert not menu.actions()[0].isVisible()
    assert menu.actions()[1].text() == "Show window"
