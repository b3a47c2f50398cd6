"""Tests for the Windows adapters (taskbar_windows, dnd_windows, win32) that run on every OS.

The adapters' logic runs against a recording Win32Api (these tests check which calls, keys and
slots the code uses — against the SDK values, not against the code's own constants where it
matters). The ctypes COM-call layer (``VtableCaller``) runs for real here, against a vtable of
ctypes callbacks. The real OS calls run in tests/platform/test_os_windows.py on Windows.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
from collections.abc import Callable
from typing import Any

import pytest

from peft_notify.platform.dnd import ProbeError
from peft_notify.platform.dnd_windows import (
    NOTIFICATION_SETTINGS_KEY,
    PUSH_NOTIFICATIONS_KEY,
    WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED,
    FocusAssistProbe,
    ToastsDisabledProbe,
    UserNotificationStateProbe,
    parse_focus_assist,
    parse_user_notification_state,
    windows_dnd_probe,
)
from peft_notify.platform.taskbar_windows import (
    CLSID_TASKBAR_LIST,
    HR_INIT,
    IID_ITASKBAR_LIST3,
    SET_PROGRESS_STATE,
    SET_PROGRESS_VALUE,
    WinTaskbar,
)
from peft_notify.platform.win32 import C_TYPES, MSG, ComMethod, CtypesWin32Api, VtableCaller, read_msg
from peft_notify.ports import DndState, TaskbarProgress, TaskbarState
from tests.platform.platform_support import fixture_text

HWND = 0x1A2B
PTR = 0xC0FFEE


class RecordingWin32:
    """Records every OS call; answers from the attributes a test sets."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.fail_vtable: int | None = None
        self.fail_with: Exception = OSError("HRESULT 0x800706BA (RPC server unavailable)")
        self.wnf = bytes.fromhex("00000000")
        self.toasts: int | None = None
        self.quns = 5
        self.error: OSError | None = None
        self.registry: dict[tuple[str, str], int] = {}

    def co_create_instance(self, clsid: str, iid: str) -> int:
        self.calls.append(("CoCreateInstance", clsid, iid))
        return PTR

    def com_call(self, ptr: int, method: ComMethod, *args: int) -> int:
        self.calls.append(("vtable", ptr, method.index, *args))
        if method.index == self.fail_vtable:
            self.fail_vtable = None
            raise self.fail_with
        return 0

    def release(self, ptr: int) -> None:
        self.calls.append(("Release", ptr))

    def flash_window(self, hwnd: int, flags: int, count: int) -> None:
        self.calls.append(("FlashWindowEx", hwnd, flags, count))

    def register_window_message(self, name: str) -> int:
        self.calls.append(("RegisterWindowMessageW", name))
        return 0xC123

    def allow_window_message(self, hwnd: int, message: int) -> None:
        self.calls.append(("ChangeWindowMessageFilterEx", hwnd, message, 1))

    def query_user_notification_state(self) -> int:
        if self.error:
            raise self.error
        return self.quns

    def query_wnf_state(self, state_name: int) -> bytes:
        self.calls.append(("NtQueryWnfStateData", state_name))
        if self.error:
            raise self.error
        return self.wnf

    def read_registry_dword(self, key: str, value: str) -> int | None:
        self.calls.append(("RegQueryValueEx", key, value))
        return self.registry.get((key, value))

    @property
    def toasts(self) -> int | None:
        return self.registry.get((PUSH_NOTIFICATIONS_KEY, "ToastEnabled"))

    @toasts.setter
    def toasts(self, value: int | None) -> None:
        self.registry = {} if value is None else {(PUSH_NOTIFICATIONS_KEY, "ToastEnabled"): value}


def test_progress_calls_hrinit_then_state_and_value() -> None:
    api = RecordingWin32()
    taskbar = WinTaskbar(lambda: HWND, api)
    assert isinstance(taskbar, TaskbarProgress)
    taskbar.set(0.45, TaskbarState.NORMAL)
    assert api.calls == [
        ("CoCreateInstance", CLSID_TASKBAR_LIST, IID_ITASKBAR_LIST3),
        ("vtable", PTR, 3),  # HrInit
        ("vtable", PTR, 10, HWND, 0x2),  # SetProgressState(TBPF_NORMAL)
        ("vtable", PTR, 9, HWND, 450, 1000),  # SetProgressValue(hwnd, 450, 1000)
    ]


@pytest.mark.parametrize(
    ("state", "flag", "has_value"),
    [
        (TaskbarState.ERROR, 0x4, True),
        (TaskbarState.PAUSED, 0x8, True),
        (TaskbarState.INDETERMINATE, 0x1, False),
        (TaskbarState.NONE, 0x0, False),
    ],
)
def test_states_map_to_tbpf_flags(state: TaskbarState, flag: int, has_value: bool) -> None:
    api = RecordingWin32()
    WinTaskbar(lambda: HWND, api).set(0.5, state)
    assert api.calls[2] == ("vtable", PTR, 10, HWND, flag)
    assert (("vtable", PTR, 9, HWND, 500, 1000) in api.calls) is has_value


def test_clear_sets_noprogress_and_reuses_the_interface() -> None:
    api = RecordingWin32()
    taskbar = WinTaskbar(lambda: HWND, api)
    taskbar.set(0.1, TaskbarState.NORMAL)
    taskbar.clear()
    assert api.calls[-1] == ("vtable", PTR, 10, HWND, 0x0)
    assert sum(1 for c in api.calls if c[0] == "CoCreateInstance") == 1


def test_no_window_yet_is_not_an_error_and_creates_nothing() -> None:
    api = RecordingWin32()
    taskbar = WinTaskbar(lambda: None, api)
    taskbar.set(0.3, TaskbarState.NORMAL)
    assert api.calls == []
    assert taskbar.last_error == "the main window has no handle yet"


def test_failed_call_drops_the_interface_and_reset_reapplies_the_last_state() -> None:
    api = RecordingWin32()
    taskbar = WinTaskbar(lambda: HWND, api)
    taskbar.set(0.2, TaskbarState.NORMAL)
    api.fail_vtable = 10
    taskbar.set(0.3, TaskbarState.NORMAL)  # Explorer went away: logged, interface released
    assert ("Release", PTR) in api.calls
    assert taskbar.last_error is not None
    api.calls.clear()
    taskbar.reset()  # TaskbarButtonCreated arrived
    assert api.calls == [
        ("CoCreateInstance", CLSID_TASKBAR_LIST, IID_ITASKBAR_LIST3),
        ("vtable", PTR, 3),
        ("vtable", PTR, 10, HWND, 0x2),
        ("vtable", PTR, 9, HWND, 300, 1000),
    ]
    assert taskbar.last_error is None


def test_attention_flashes_until_foreground_when_critical() -> None:
    api = RecordingWin32()
    taskbar = WinTaskbar(lambda: HWND, api)
    taskbar.attention(True)
    taskbar.attention(False)
    assert api.calls == [("FlashWindowEx", HWND, 0x2 | 0xC, 0), ("FlashWindowEx", HWND, 0x2, 3)]


def test_taskbar_button_created_message_is_registered() -> None:
    api = RecordingWin32()
    assert WinTaskbar(lambda: HWND, api).taskbar_button_created_message() == 0xC123
    # ...and let through UIPI to our window (an elevated app would not hear Explorer otherwise).
    assert api.calls == [
        ("RegisterWindowMessageW", "TaskbarButtonCreated"),
        ("ChangeWindowMessageFilterEx", HWND, 0xC123, 1),  # MSGFLT_ALLOW
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows refusal")
def test_real_api_refuses_off_windows() -> None:
    with pytest.raises(OSError, match="only on Windows"):
        CtypesWin32Api()
    with pytest.raises(OSError, match="only on Windows"):
        WinTaskbar(lambda: HWND)


@pytest.mark.parametrize(
    ("fixture", "on"),
    [
        ("windows-wnf-focus-assist-off.hex", False),
        ("windows-wnf-focus-assist-priority.hex", True),
        ("windows-wnf-focus-assist-alarms.hex", True),
    ],
)
def test_parse_focus_assist_payloads(fixture: str, on: bool) -> None:
    assert parse_focus_assist(bytes.fromhex(fixture_text(fixture).strip())) is on


def test_parse_focus_assist_rejects_bad_payloads() -> None:
    with pytest.raises(ProbeError):
        parse_focus_assist(b"\x01")
    with pytest.raises(ProbeError):
        parse_focus_assist(bytes.fromhex("07000000"))


def test_focus_assist_probe_reads_the_documented_state_name() -> None:
    api = RecordingWin32()
    api.wnf = bytes.fromhex("01000000")
    assert asyncio.run(FocusAssistProbe(api).state()) is DndState.ON
    assert api.calls == [("NtQueryWnfStateData", WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED)]


def test_registry_keys_are_the_documented_ones() -> None:
    # Written out here, not imported: a wrong key in the module must fail this test.
    assert PUSH_NOTIFICATIONS_KEY == r"Software\Microsoft\Windows\CurrentVersion\PushNotifications"
    assert NOTIFICATION_SETTINGS_KEY == r"Software\Microsoft\Windows\CurrentVersion\Notifications\Settings"


@pytest.mark.parametrize(("value", "state"), [(1, DndState.OFF), (0, DndState.ON)])
def test_toasts_disabled_probe_reads_toast_enabled_first(value: int, state: DndState) -> None:
    api = RecordingWin32()
    api.registry = {
        (PUSH_NOTIFICATIONS_KEY, "ToastEnabled"): value,
        (NOTIFICATION_SETTINGS_KEY, "NOC_GLOBAL_SETTING_TOASTS_ENABLED"): 1 - value,  # stale: must not decide
    }
    assert asyncio.run(ToastsDisabledProbe(api).state()) is state
    assert api.calls == [("RegQueryValueEx", PUSH_NOTIFICATIONS_KEY, "ToastEnabled")]


@pytest.mark.parametrize(("legacy", "state"), [(None, DndState.OFF), (1, DndState.OFF), (0, DndState.ON)])
def test_toasts_disabled_probe_falls_back_to_the_old_key_only_without_toast_enabled(
    legacy: int | None, state: DndState
) -> None:
    api = RecordingWin32()
    if legacy is not None:
        api.registry = {(NOTIFICATION_SETTINGS_KEY, "NOC_GLOBAL_SETTING_TOASTS_ENABLED"): legacy}
    assert asyncio.run(ToastsDisabledProbe(api).state()) is state
    assert api.calls == [
        ("RegQueryValueEx", PUSH_NOTIFICATIONS_KEY, "ToastEnabled"),
        ("RegQueryValueEx", NOTIFICATION_SETTINGS_KEY, "NOC_GLOBAL_SETTING_TOASTS_ENABLED"),
    ]


# shellapi.h: QUNS_NOT_PRESENT 1, QUNS_BUSY 2, QUNS_RUNNING_D3D_FULL_SCREEN 3, QUNS_PRESENTATION_MODE 4,
# QUNS_ACCEPTS_NOTIFICATIONS 5, QUNS_QUIET_TIME 6, QUNS_APP 7.
@pytest.mark.parametrize(
    ("quns", "state"),
    [
        (1, DndState.OFF),
        (2, DndState.OFF),  # BUSY = any full-screen window (an F11 video): not DND by default, as in Chromium
        (3, DndState.ON),
        (4, DndState.ON),
        (5, DndState.OFF),
        (99, DndState.UNKNOWN),
    ],
)
def test_user_notification_state_probe(quns: int, state: DndState) -> None:
    api = RecordingWin32()
    api.quns = quns
    assert asyncio.run(UserNotificationStateProbe(api).state()) is state


def test_busy_counts_as_dnd_only_when_the_setting_asks() -> None:
    assert parse_user_notification_state(2) is False
    assert parse_user_notification_state(2, busy_is_dnd=True) is True
    api = RecordingWin32()
    api.quns = 2
    assert asyncio.run(windows_dnd_probe(api).state()) is DndState.OFF
    assert asyncio.run(windows_dnd_probe(api, busy_is_dnd=True).state()) is DndState.ON


def test_the_setting_defaults_to_off_and_loads_from_the_file(tmp_path: Any) -> None:
    from peft_notify.desktop.settings import Settings, load_settings

    assert Settings().windows_busy_is_dnd is False
    path = tmp_path / "settings.toml"
    path.write_text("windows_busy_is_dnd = true\n")
    assert load_settings(path).windows_busy_is_dnd is True


def test_combined_probe_is_on_when_any_is_on_and_fails_open() -> None:
    api = RecordingWin32()
    api.quns = 4  # presentation mode
    assert asyncio.run(windows_dnd_probe(api).state()) is DndState.ON
    api.quns = 5
    assert asyncio.run(windows_dnd_probe(api).state()) is DndState.OFF
    api.error = OSError("ntdll missing")
    api.toasts = None
    # WNF and SHQUNS fail (unknown); the registry still answers off
    assert asyncio.run(windows_dnd_probe(api).state()) is DndState.OFF


# -- the COM call layer, for real (ctypes), against a vtable of callbacks ---------------------


def test_com_methods_declare_the_sdk_argument_types() -> None:
    # shobjidl_core.h: HrInit(void); SetProgressValue(HWND, ULONGLONG, ULONGLONG); SetProgressState(HWND, TBPFLAG)
    assert (HR_INIT.index, HR_INIT.argtypes) == (3, ())
    assert (SET_PROGRESS_VALUE.index, SET_PROGRESS_VALUE.argtypes) == (9, ("HWND", "ULONGLONG", "ULONGLONG"))
    assert (SET_PROGRESS_STATE.index, SET_PROGRESS_STATE.argtypes) == (10, ("HWND", "TBPFLAG"))
    assert C_TYPES["HWND"] is ctypes.c_void_p
    assert C_TYPES["ULONGLONG"] is ctypes.c_uint64
    assert C_TYPES["TBPFLAG"] is ctypes.c_int


class FakeComObject:
    """A COM-shaped object in memory: a pointer to a vtable whose slots are ctypes callbacks."""

    def __init__(self, slots: dict[int, tuple[Any, Callable[..., int]]]) -> None:
        self.table = (ctypes.c_void_p * 16)()
        self._keep = []
        for index, (prototype, function) in slots.items():
            callback = prototype(function)
            self._keep.append(callback)
            self.table[index] = ctypes.cast(callback, ctypes.c_void_p).value
        self._object = ctypes.c_void_p(ctypes.addressof(self.table))
        self.ptr = ctypes.addressof(self._object)


def test_vtable_caller_passes_64_bit_handles_and_ulonglongs_intact() -> None:
    seen: list[tuple[int, int, int, int]] = []
    value_type = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)
    com = FakeComObject({9: (value_type, lambda this, hwnd, done, total: seen.append((this, hwnd, done, total)) or 0)})
    hwnd, done, total = 0x7FFF_FFFF_FFF0, 2**40 + 5, 2**41  # none fits 32 bits
    assert VtableCaller(ctypes.CFUNCTYPE).call(com.ptr, SET_PROGRESS_VALUE, (hwnd, done, total)) == 0
    assert seen == [(com.ptr, hwnd, done, total)]


def test_vtable_caller_turns_a_failed_hresult_into_oserror_and_bad_values_into_argument_errors() -> None:
    state_type = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
    value_type = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)
    e_fail = -2147467259  # 0x80004005
    com = FakeComObject({10: (state_type, lambda *_: e_fail), 9: (value_type, lambda *_: 0)})
    caller = VtableCaller(ctypes.CFUNCTYPE)
    with pytest.raises(OSError, match="SetProgressState failed with HRESULT 0x80004005"):
        caller.call(com.ptr, SET_PROGRESS_STATE, (0x10, 2))
    with pytest.raises(ctypes.ArgumentError):
        caller.call(com.ptr, SET_PROGRESS_VALUE, (0x10, 0.5, 1000))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes 3 arguments"):
        caller.call(com.ptr, SET_PROGRESS_VALUE, (0x10, 1))


def test_guard_survives_argument_errors_and_drops_the_interface() -> None:
    api = RecordingWin32()
    taskbar = WinTaskbar(lambda: HWND, api)
    api.fail_vtable, api.fail_with = 10, ctypes.ArgumentError("argument 2: TypeError: wrong type")
    taskbar.set(0.5, TaskbarState.NORMAL)  # must not raise
    assert taskbar.last_error == "argument 2: TypeError: wrong type"
    assert ("Release", PTR) in api.calls
    api.fail_vtable, api.fail_with = 9, ValueError("SetProgressValue takes 3 arguments, got 2")
    taskbar.set(0.6, TaskbarState.NORMAL)
    assert taskbar.last_error is not None and "takes 3 arguments" in taskbar.last_error


def test_hrinit_failure_releases_the_new_interface() -> None:
    api = RecordingWin32()
    api.fail_vtable = 3  # HrInit
    taskbar = WinTaskbar(lambda: HWND, api)
    taskbar.set(0.5, TaskbarState.NORMAL)
    assert api.calls == [
        ("CoCreateInstance", CLSID_TASKBAR_LIST, IID_ITASKBAR_LIST3),
        ("vtable", PTR, 3),
        ("Release", PTR),
    ]
    assert taskbar.last_error is not None
    api.calls.clear()
    taskbar.set(0.5, TaskbarState.NORMAL)  # the next call starts over with a fresh object
    assert api.calls[0] == ("CoCreateInstance", CLSID_TASKBAR_LIST, IID_ITASKBAR_LIST3)
    assert ("Release", PTR) not in api.calls


def test_reset_reapplies_a_final_error_state_after_taskbar_button_created() -> None:
    api = RecordingWin32()
    taskbar = WinTaskbar(lambda: HWND, api)
    taskbar.set(0.7, TaskbarState.ERROR)  # the run died: red
    api.calls.clear()
    taskbar.reset()  # Explorer restarted: the button is new and blank
    assert ("vtable", PTR, 10, HWND, 0x4) in api.calls
    assert ("vtable", PTR, 9, HWND, 700, 1000) in api.calls
    assert taskbar.resets == 1
    taskbar.clear()
    api.calls.clear()
    taskbar.reset()  # cleared: nothing to re-apply
    assert api.calls == [("Release", PTR)]


def test_read_msg_reads_hwnd_and_message_of_a_windows_msg() -> None:
    msg = MSG(hwnd=0x1A2B, message=0xC123, wParam=1, lParam=-1)
    assert read_msg(ctypes.addressof(msg)) == (0x1A2B, 0xC123)
    assert ctypes.sizeof(MSG) == (48 if ctypes.sizeof(ctypes.c_void_p) == 8 else 28)  # winuser.h MSG on x64 / x86
