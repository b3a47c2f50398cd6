"""The real Windows OS layer (issue 18 item 7): ctypes/COM/WinRT against the running Windows.

Marked ``os_windows``: skipped on other systems (tests/platform/conftest.py), run on the
``windows-latest`` runner by .github/workflows/os-runners.yml. Nothing here is faked. A CI
machine has no Focus Assist on and its notification settings are whatever the image ships,
so the tests check that each real call answers in the documented shape, not particular values.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import time
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QWidget

from peft_notify.app.qtplatform import QtWindowTaskbar, combine_taskbars
from peft_notify.platform.dnd_windows import (
    NOTIFICATION_SETTINGS_KEY,
    PUSH_NOTIFICATIONS_KEY,
    WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED,
    ToastsDisabledProbe,
    UserNotificationStateProbe,
    parse_focus_assist,
    windows_dnd_probe,
)
from peft_notify.platform.taskbar_windows import WinTaskbar
from peft_notify.platform.win32 import CtypesWin32Api
from peft_notify.ports import DndState, TaskbarState

pytestmark = pytest.mark.os_windows


@pytest.fixture
def api() -> CtypesWin32Api:
    return CtypesWin32Api()


def _shown_window(qapp: QApplication) -> QWidget:
    window = QWidget()
    window.setWindowTitle("peft-notify OS test")
    window.resize(320, 200)
    window.show()
    deadline = time.monotonic() + 5
    while not window.isVisible() and time.monotonic() < deadline:
        qapp.processEvents()
    qapp.processEvents()
    return window


def test_taskbar_list3_sets_every_state_on_a_shown_qt_window(qapp: QApplication, api: CtypesWin32Api) -> None:
    window = _shown_window(qapp)
    taskbar = WinTaskbar(lambda: int(window.winId()), api)
    for value, state in (
        (0.45, TaskbarState.NORMAL),
        (0.90, TaskbarState.ERROR),
        (0.50, TaskbarState.PAUSED),
        (0.00, TaskbarState.INDETERMINATE),
    ):
        taskbar.set(value, state)
        assert taskbar.last_error is None, (state, taskbar.last_error)
    taskbar.attention(True)  # FlashWindowEx(FLASHW_TRAY | FLASHW_TIMERNOFG)
    taskbar.clear()
    assert taskbar.last_error is None
    window.close()


def test_taskbar_button_created_reaches_the_filter_and_reapplies(qapp: QApplication, api: CtypesWin32Api) -> None:
    window = QWidget()
    window.winId()  # create the HWND before the button exists, as the app's window does
    native = WinTaskbar(lambda: int(window.winId()), api)
    qt = QtWindowTaskbar(window)
    combine_taskbars([native, qt], window, qapp)  # installs the native event filter
    assert qt.alert is False
    native.set(0.7, TaskbarState.ERROR)
    window.show()
    deadline = time.monotonic() + 5
    while native.resets == 0 and time.monotonic() < deadline:  # Explorer's own message, if it has a taskbar
        qapp.processEvents()
        time.sleep(0.02)
    from_explorer = native.resets
    # Then the message itself, sent to the window's real window procedure (what Explorer does after a restart).
    user32: Any = ctypes.WinDLL("user32")  # type: ignore[attr-defined,unused-ignore]
    user32.SendMessageW.argtypes = (ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t, ctypes.c_ssize_t)
    user32.SendMessageW.restype = ctypes.c_ssize_t
    message = api.register_window_message("TaskbarButtonCreated")
    api.allow_window_message(int(window.winId()), message)  # ChangeWindowMessageFilterEx must succeed
    user32.SendMessageW(int(window.winId()), message, 0, 0)
    qapp.processEvents()
    assert native.resets >= from_explorer + 1  # (Explorer's own may still arrive meanwhile)
    assert native.last_error is None
    print(f"TaskbarButtonCreated from Explorer at show: {from_explorer}", file=sys.stderr)
    window.close()


def test_focus_assist_wnf_state_is_a_four_byte_level(api: CtypesWin32Api) -> None:
    payload = api.query_wnf_state(WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED)
    assert len(payload) == 4, payload.hex()
    parse_focus_assist(payload)  # 0, 1 or 2: raises for anything else


def test_registry_reads_the_notification_switches(api: CtypesWin32Api) -> None:
    for key, value in (
        (PUSH_NOTIFICATIONS_KEY, "ToastEnabled"),
        (NOTIFICATION_SETTINGS_KEY, "NOC_GLOBAL_SETTING_TOASTS_ENABLED"),
    ):
        read = api.read_registry_dword(key, value)
        assert read is None or read in (0, 1), (key, value, read)
    assert asyncio.run(ToastsDisabledProbe(api).state()) in (DndState.ON, DndState.OFF)


def test_registry_reader_reads_a_dword_it_wrote(api: CtypesWin32Api) -> None:
    import winreg

    key = r"Software\peft-notify-tests"
    with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, key) as handle:  # type: ignore[attr-defined,unused-ignore]
        winreg.SetValueEx(handle, "ToastEnabled", 0, winreg.REG_DWORD, 0)  # type: ignore[attr-defined,unused-ignore]
        winreg.SetValueEx(handle, "Text", 0, winreg.REG_SZ, "0")  # type: ignore[attr-defined,unused-ignore]
    try:
        assert api.read_registry_dword(key, "ToastEnabled") == 0
        assert api.read_registry_dword(key, "Text") is None  # not a REG_DWORD
        assert api.read_registry_dword(key, "Missing") is None
    finally:
        winreg.DeleteKey(winreg.HKEY_CURRENT_USER, key)  # type: ignore[attr-defined,unused-ignore]


def test_user_notification_state_is_a_documented_value(api: CtypesWin32Api) -> None:
    assert api.query_user_notification_state() in range(1, 8)
    assert asyncio.run(UserNotificationStateProbe(api).state()) in (DndState.ON, DndState.OFF)


def test_combined_probe_answers(api: CtypesWin32Api) -> None:
    assert asyncio.run(windows_dnd_probe(api).state()) in (DndState.ON, DndState.OFF)


def test_desktop_notifier_registers_the_app_icon_and_answers_authorisation() -> None:
    import winreg

    from peft_notify.appinfo import APP_ID
    from peft_notify.platform.notifier import DesktopNotifierAdapter

    async def scenario() -> bool | None:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None, platform="win32")
        try:
            return await adapter.check_authorisation()
        finally:
            await adapter.close()

    authorised = asyncio.run(scenario())
    assert authorised in (True, False)
    key = rf"Software\Classes\AppUserModelId\{APP_ID}"
    with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:  # type: ignore[attr-defined,unused-ignore]
        icon_uri, _ = winreg.QueryValueEx(handle, "IconUri")  # type: ignore[attr-defined,unused-ignore]
    assert str(icon_uri).startswith("file:///") and str(icon_uri).endswith(".png"), icon_uri
