"""Tests for the Windows adapters (taskbar_windows, dnd_windows) through a recording Win32Api."""

from __future__ import annotations

import asyncio
import sys

import pytest

from peft_notify.platform.dnd import ProbeError
from peft_notify.platform.dnd_windows import (
    NOTIFICATION_SETTINGS_KEY,
    WNF_SHEL_QUIETHOURS_ACTIVE_PROFILE_CHANGED,
    FocusAssistProbe,
    ToastsDisabledProbe,
    UserNotificationStateProbe,
    parse_focus_assist,
    windows_dnd_probe,
)
from peft_notify.platform.taskbar_windows import CLSID_TASKBAR_LIST, IID_ITASKBAR_LIST3, WinTaskbar
from peft_notify.platform.win32 import CtypesWin32Api
from peft_notify.ports import DndState, TaskbarProgress, TaskbarState
from tests.platform.platform_support import fixture_text

pytestmark = pytest.mark.windows

HWND = 0x1A2B
PTR = 0xC0FFEE


class RecordingWin32:
    """Records every OS call; answers from the attributes a test sets."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.fail_vtable: int | None = None
        self.wnf = bytes.fromhex("00000000")
        self.toasts: int | None = None
        self.quns = 5
        self.error: OSError | None = None

    def co_create_instance(self, clsid: str, iid: str) -> int:
        self.calls.append(("CoCreateInstance", clsid, iid))
        return PTR

    def call_vtable(self, ptr: int, index: int, *args: int) -> int:
        self.calls.append(("vtable", ptr, index, *args))
        if index == self.fail_vtable:
            self.fail_vtable = None
            raise OSError("HRESULT 0x800706BA (RPC server unavailable)")
        return 0

    def release(self, ptr: int) -> None:
        self.calls.append(("Release", ptr))

    def flash_window(self, hwnd: int, flags: int, count: int) -> None:
        self.calls.append(("FlashWindowEx", hwnd, flags, count))

    def register_window_message(self, name: str) -> int:
        self.calls.append(("RegisterWindowMessageW", name))
        return 0xC123

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
        return self.toasts


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
    assert api.calls == [("RegisterWindowMessageW", "TaskbarButtonCreated")]


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


@pytest.mark.parametrize(("value", "state"), [(None, DndState.OFF), (1, DndState.OFF), (0, DndState.ON)])
def test_toasts_disabled_probe(value: int | None, state: DndState) -> None:
    api = RecordingWin32()
    api.toasts = value
    assert asyncio.run(ToastsDisabledProbe(api).state()) is state
    assert api.calls == [("RegQueryValueEx", NOTIFICATION_SETTINGS_KEY, "NOC_GLOBAL_SETTING_TOASTS_ENABLED")]


@pytest.mark.parametrize(
    ("quns", "state"),
    [
        (1, DndState.OFF),
        (2, DndState.ON),
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


def test_combined_probe_is_on_when_any_is_on_and_fails_open() -> None:
    api = RecordingWin32()
    api.quns = 4
    assert asyncio.run(windows_dnd_probe(api).state()) is DndState.ON
    api.quns = 5
    assert asyncio.run(windows_dnd_probe(api).state()) is DndState.OFF
    api.error = OSError("ntdll missing")
    api.toasts = None
    # WNF and SHQUNS fail (unknown); the registry still answers off
    assert asyncio.run(windows_dnd_probe(api).state()) is DndState.OFF
