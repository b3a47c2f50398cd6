"""Windows taskbar-button progress through ``ITaskbarList3`` (Qt 6 dropped QWinTaskbarProgress).

Talks to COM through :class:`~peft_notify.platform.win32.Win32Api` (tests pass a recorder).
The window handle comes from the app (``QWidget.winId()`` of the top-level window) via a
callable. The app's native event filter (:mod:`peft_notify.app.qtplatform`) calls
:meth:`WinTaskbar.reset` when the window receives the registered ``TaskbarButtonCreated``
message — when the button first appears (also when the window is first shown from the tray)
and again after Explorer restarts: the interface is recreated and the last state,
including a final red/yellow one, re-applied. This is what Qt's own port did
(qt/qtwinextras ``src/winextras/qwineventfilter.cpp`` + ``qwintaskbarbutton.cpp``).
Methods never raise.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

from peft_notify.platform.win32 import ComMethod, CtypesWin32Api, Win32Api
from peft_notify.ports import TaskbarState

__all__ = [
    "CLSID_TASKBAR_LIST",
    "HR_INIT",
    "IID_ITASKBAR_LIST3",
    "SET_PROGRESS_STATE",
    "SET_PROGRESS_VALUE",
    "TBPF",
    "WinTaskbar",
]

log = logging.getLogger(__name__)

# shobjidl_core.h
CLSID_TASKBAR_LIST = "{56FDF344-FD6D-11D0-958A-006097C9A090}"
IID_ITASKBAR_LIST3 = "{EA1AFB91-9E28-4B86-90E9-9E9F8A5EEFAF}"
# ITaskbarList3 vtable: IUnknown 0-2, ITaskbarList 3-7 (HrInit = 3), ITaskbarList2 8, ITaskbarList3 9+.
# Argument types as shobjidl_core.h declares them: SetProgressValue(HWND, ULONGLONG, ULONGLONG),
# SetProgressState(HWND, TBPFLAG).
HR_INIT = ComMethod("ITaskbarList::HrInit", 3)
SET_PROGRESS_VALUE = ComMethod("ITaskbarList3::SetProgressValue", 9, ("HWND", "ULONGLONG", "ULONGLONG"))
SET_PROGRESS_STATE = ComMethod("ITaskbarList3::SetProgressState", 10, ("HWND", "TBPFLAG"))
TBPF = {
    TaskbarState.NONE: 0x0,  # TBPF_NOPROGRESS
    TaskbarState.INDETERMINATE: 0x1,
    TaskbarState.NORMAL: 0x2,
    TaskbarState.ERROR: 0x4,  # red
    TaskbarState.PAUSED: 0x8,  # yellow
}
PROGRESS_TOTAL = 1000
# winuser.h FLASHWINFO flags
FLASHW_TRAY, FLASHW_TIMERNOFG = 0x2, 0xC


class WinTaskbar:
    """TaskbarProgress on the app window's taskbar button."""

    name = "win-taskbar-list3"
    flashes_window = True  # attention() flashes natively: the app skips QApplication.alert

    def __init__(self, hwnd: Callable[[], int | None], api: Win32Api | None = None) -> None:
        """``hwnd`` returns the top-level window handle, or ``None`` before the window exists.

        Raises ``OSError`` off Windows when no ``api`` is given.
        """
        self._hwnd = hwnd
        self._api: Win32Api = api if api is not None else CtypesWin32Api()
        self._ptr: int | None = None
        self._last: tuple[float, TaskbarState] | None = None
        self.last_error: str | None = None
        self.resets = 0  # TaskbarButtonCreated messages handled (shown by tests and doctor)

    def taskbar_button_created_message(self) -> int:
        """The registered message id the app's native event filter watches for. Raises ``OSError``.

        Also lets it through UIPI to our window: when the app runs elevated, Windows drops the
        message Explorer (not elevated) sends unless the window allows it — the ITaskbarList3
        documentation's advice, and what tray/taskbar code generally does with
        ``ChangeWindowMessageFilterEx(hwnd, msg, MSGFLT_ALLOW, NULL)``. Harmless otherwise.
        """
        message = self._api.register_window_message("TaskbarButtonCreated")
        hwnd = self._hwnd()
        if hwnd:
            try:
                self._api.allow_window_message(hwnd, message)
            except (OSError, ctypes.ArgumentError, ValueError) as exc:
                log.debug("ChangeWindowMessageFilterEx failed: %s", exc)
        return message

    def reset(self) -> None:
        """``TaskbarButtonCreated`` arrived: drop the COM object and re-apply the last state."""
        self.resets += 1
        self._drop()
        if self._last is not None:
            self.set(*self._last)

    def set(self, value: float, state: TaskbarState) -> None:
        self._last = (value, state) if state is not TaskbarState.NONE else None
        self._guard(self._apply, value, state)

    def clear(self) -> None:
        self._last = None
        self._guard(self._apply, 0.0, TaskbarState.NONE)

    def attention(self, critical: bool) -> None:
        def flash(hwnd: int) -> None:
            # Critical: flash until the window comes to the foreground; otherwise three times.
            self._api.flash_window(
                hwnd, FLASHW_TRAY | FLASHW_TIMERNOFG if critical else FLASHW_TRAY, 0 if critical else 3
            )

        self._guard(lambda: flash(self._window()))

    def badge(self, count: int) -> None:
        # SetOverlayIcon needs an HICON; the app's QtBadge (setBadgeNumber) draws the overlay instead.
        return None

    def _window(self) -> int:
        hwnd = self._hwnd()
        if not hwnd:
            raise OSError("the main window has no handle yet")
        return hwnd

    def _interface(self) -> int:
        if self._ptr is None:
            ptr = self._api.co_create_instance(CLSID_TASKBAR_LIST, IID_ITASKBAR_LIST3)
            try:
                self._api.com_call(ptr, HR_INIT)
            except BaseException:
                self._release(ptr)  # a half-initialised object would leak once per retry
                raise
            self._ptr = ptr
        return self._ptr

    def _apply(self, value: float, state: TaskbarState) -> None:
        hwnd = self._window()
        ptr = self._interface()
        self._api.com_call(ptr, SET_PROGRESS_STATE, hwnd, TBPF[state])
        if state in (TaskbarState.NORMAL, TaskbarState.PAUSED, TaskbarState.ERROR):
            done = round(min(1.0, max(0.0, value)) * PROGRESS_TOTAL)
            self._api.com_call(ptr, SET_PROGRESS_VALUE, hwnd, done, PROGRESS_TOTAL)

    def _drop(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._release(ptr)

    def _release(self, ptr: int) -> None:
        try:
            self._api.release(ptr)
        except (OSError, ctypes.ArgumentError, ValueError):
            log.debug("Release failed", exc_info=True)

    def _guard(self, call: Callable[..., None], *args: object) -> None:
        try:
            call(*args)
        except (OSError, ctypes.ArgumentError, ValueError) as exc:  # ArgumentError: a value its C type cannot hold
            if self.last_error is None:
                log.warning("taskbar progress failed: %s", exc)
            self.last_error = str(exc)
            self._drop()  # a stale interface (Explorer restarted) is recreated on the next call
        else:
            self.last_error = None
