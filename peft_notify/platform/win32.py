"""The thin Windows OS-call layer (ctypes, no comtypes) used by the taskbar and DND adapters.

:class:`Win32Api` is the protocol tests replace with a recorder; :class:`CtypesWin32Api`
is the real implementation and may only be constructed on Windows (it raises
``OSError`` elsewhere). Importing this module never touches ``ctypes.windll``.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Protocol

__all__ = ["CtypesWin32Api", "Win32Api"]

_PLATFORM: str = sys.platform  # a plain str, so type checkers on Linux still check the Windows code


class Win32Api(Protocol):
    """The Windows calls our adapters make; every method may raise ``OSError``."""

    def co_create_instance(self, clsid: str, iid: str) -> int:
        """``CoCreateInstance(clsid, NULL, CLSCTX_INPROC_SERVER, iid)`` → interface pointer (COM initialised)."""
        ...

    def call_vtable(self, ptr: int, index: int, *args: int) -> int:
        """Call the ``index``-th method of a COM interface with integer/handle args; returns the HRESULT."""
        ...

    def release(self, ptr: int) -> None: ...

    def flash_window(self, hwnd: int, flags: int, count: int) -> None:
        """``FlashWindowEx`` with a FLASHWINFO built from the arguments."""
        ...

    def register_window_message(self, name: str) -> int: ...

    def query_user_notification_state(self) -> int:
        """``SHQueryUserNotificationState`` → a QUERY_USER_NOTIFICATION_STATE value."""
        ...

    def query_wnf_state(self, state_name: int) -> bytes:
        """``NtQueryWnfStateData`` for a 64-bit WNF state name → its payload."""
        ...

    def read_registry_dword(self, key: str, value: str) -> int | None:
        """A REG_DWORD under HKEY_CURRENT_USER, or ``None`` when it does not exist."""
        ...


class CtypesWin32Api:
    """The real calls through ctypes. Raises ``OSError`` when constructed off Windows."""

    def __init__(self) -> None:
        if _PLATFORM != "win32":
            raise OSError("the Win32 API exists only on Windows")
        import ctypes
        from ctypes import wintypes

        self._ctypes: Any = ctypes
        self._wintypes: Any = wintypes
        self._ole32: Any = ctypes.OleDLL("ole32")  # type: ignore[attr-defined,unused-ignore]
        self._user32: Any = ctypes.WinDLL("user32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
        self._shell32: Any = ctypes.OleDLL("shell32")  # type: ignore[attr-defined,unused-ignore]
        self._ntdll: Any = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined,unused-ignore]
        # COINIT_APARTMENTTHREADED: the taskbar calls come from the GUI thread. S_FALSE/RPC_E_CHANGED_MODE are fine.
        with contextlib.suppress(OSError):
            self._ole32.CoInitializeEx(None, 0x2)

    def _guid(self, text: str) -> Any:
        ctypes: Any = self._ctypes

        class GUID(ctypes.Structure):  # type: ignore[misc]
            _fields_ = (
                ("d1", ctypes.c_uint32),
                ("d2", ctypes.c_uint16),
                ("d3", ctypes.c_uint16),
                ("d4", ctypes.c_ubyte * 8),
            )

        guid = GUID()
        self._ole32.CLSIDFromString(ctypes.c_wchar_p(text), ctypes.byref(guid))
        return guid

    def co_create_instance(self, clsid: str, iid: str) -> int:
        ctypes: Any = self._ctypes
        ptr = ctypes.c_void_p()
        clsctx_inproc_server = 0x1
        self._ole32.CoCreateInstance(
            ctypes.byref(self._guid(clsid)),
            None,
            clsctx_inproc_server,
            ctypes.byref(self._guid(iid)),
            ctypes.byref(ptr),
        )
        if not ptr.value:
            raise OSError("CoCreateInstance returned NULL")
        return int(ptr.value)

    def call_vtable(self, ptr: int, index: int, *args: int) -> int:
        ctypes: Any = self._ctypes
        vtable = ctypes.cast(ctypes.c_void_p(ptr), ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p))).contents
        # HWNDs and ULONGLONGs both fit in 64 bits; HrInit etc. take only `this`.
        types = [ctypes.c_void_p] + [ctypes.c_ulonglong if a > 0xFFFFFFFF else ctypes.c_size_t for a in args]
        prototype = ctypes.WINFUNCTYPE(ctypes.c_long, *types)  # type: ignore[attr-defined,unused-ignore]
        hresult = int(prototype(vtable[index])(ptr, *args))
        if hresult < 0:
            raise OSError(f"COM call #{index} failed with HRESULT 0x{hresult & 0xFFFFFFFF:08X}")
        return hresult

    def release(self, ptr: int) -> None:
        self.call_vtable(ptr, 2)  # IUnknown::Release

    def flash_window(self, hwnd: int, flags: int, count: int) -> None:
        ctypes: Any = self._ctypes
        wintypes: Any = self._wintypes

        class FLASHWINFO(ctypes.Structure):  # type: ignore[misc]
            _fields_ = (
                ("cbSize", wintypes.UINT),
                ("hwnd", wintypes.HWND),
                ("dwFlags", wintypes.DWORD),
                ("uCount", wintypes.UINT),
                ("dwTimeout", wintypes.DWORD),
            )

        info = FLASHWINFO(ctypes.sizeof(FLASHWINFO), hwnd, flags, count, 0)
        self._user32.FlashWindowEx(ctypes.byref(info))

    def register_window_message(self, name: str) -> int:
        return int(self._user32.RegisterWindowMessageW(self._ctypes.c_wchar_p(name)))

    def query_user_notification_state(self) -> int:
        state = self._ctypes.c_int()
        self._shell32.SHQueryUserNotificationState(self._ctypes.byref(state))
        return int(state.value)

    def query_wnf_state(self, state_name: int) -> bytes:
        ctypes: Any = self._ctypes
        name = ctypes.c_uint64(state_name)
        stamp = ctypes.c_ulong()
        buffer = ctypes.create_string_buffer(64)
        size = ctypes.c_ulong(len(buffer))
        status = self._ntdll.NtQueryWnfStateData(
            ctypes.byref(name), None, None, ctypes.byref(stamp), buffer, ctypes.byref(size)
        )
        if status != 0:
            raise OSError(f"NtQueryWnfStateData failed with NTSTATUS 0x{status & 0xFFFFFFFF:08X}")
        return bytes(buffer.raw[: size.value])

    def read_registry_dword(self, key: str, value: str) -> int | None:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:  # type: ignore[attr-defined,unused-ignore]
                data, kind = winreg.QueryValueEx(handle, value)  # type: ignore[attr-defined,unused-ignore]
        except FileNotFoundError:
            return None
        return int(data) if kind == winreg.REG_DWORD else None  # type: ignore[attr-defined,unused-ignore]
