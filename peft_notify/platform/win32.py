"""The thin Windows OS-call layer (ctypes, no comtypes) used by the taskbar and DND adapters.

:class:`Win32Api` is the protocol tests replace with a recorder; :class:`CtypesWin32Api`
is the real implementation and may only be constructed on Windows (it raises
``OSError`` elsewhere). Importing this module never touches ``ctypes.windll``.

COM methods are called through a prototype built from a :class:`ComMethod` that names each
argument's C type (``HWND``, ``ULONGLONG``, ``TBPFLAG``…) as the SDK header declares it; the
ctypes type is never guessed from a Python value (a ``ULONGLONG`` passed as ``c_size_t`` is
truncated on 32-bit Python). :class:`VtableCaller` does the call and works with any calling
convention, so its marshalling is tested on Linux against callbacks standing in for a vtable.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["C_TYPES", "MSG", "ComMethod", "CtypesWin32Api", "VtableCaller", "Win32Api", "read_msg"]

_PLATFORM: str = sys.platform  # a plain str, so type checkers on Linux still check the Windows code

# The C types our COM methods use, as declared in shobjidl_core.h / windef.h (64-bit Windows:
# HWND is a pointer, ULONGLONG 64 bits, the TBPFLAG enum an int, HRESULT a signed 32-bit LONG).
C_TYPES: dict[str, Any] = {
    "HWND": ctypes.c_void_p,
    "ULONGLONG": ctypes.c_uint64,
    "TBPFLAG": ctypes.c_int,
    "HRESULT": ctypes.c_int32,
    "ULONG": ctypes.c_uint32,
}


@dataclass(frozen=True, slots=True)
class ComMethod:
    """One COM interface method: vtable slot, argument C types after ``this``, result C type."""

    name: str
    index: int
    argtypes: tuple[str, ...] = ()
    restype: str = "HRESULT"


class MSG(ctypes.Structure):
    """winuser.h ``MSG``, laid out with portable types (readable on any OS for tests)."""

    _fields_ = (
        ("hwnd", ctypes.c_void_p),
        ("message", ctypes.c_uint32),
        ("wParam", ctypes.c_size_t),  # WPARAM = UINT_PTR
        ("lParam", ctypes.c_ssize_t),  # LPARAM = LONG_PTR
        ("time", ctypes.c_uint32),
        ("pt_x", ctypes.c_int32),
        ("pt_y", ctypes.c_int32),
    )


def read_msg(address: int) -> tuple[int, int]:
    """``(hwnd, message)`` of the ``MSG`` at ``address`` (what Qt hands a native event filter).

    Raises ``ValueError`` for a NULL address (reading it would crash the process).
    """
    if not address:
        raise ValueError("NULL MSG pointer")
    msg = MSG.from_address(address)
    return int(msg.hwnd or 0), int(msg.message)


class VtableCaller:
    """Calls COM methods through the object's vtable with explicit prototypes.

    ``functype`` is ``ctypes.WINFUNCTYPE`` on Windows (``CFUNCTYPE`` in tests; on x64 they
    are the same convention). Raises ``OSError`` for a failing HRESULT and lets
    ``ctypes.ArgumentError`` through for an argument its C type cannot hold.
    """

    def __init__(self, functype: Callable[..., Any]) -> None:
        self._functype = functype
        self._prototypes: dict[ComMethod, Any] = {}

    def prototype(self, method: ComMethod) -> Any:
        if method not in self._prototypes:
            types = [C_TYPES[name] for name in method.argtypes]
            self._prototypes[method] = self._functype(C_TYPES[method.restype], ctypes.c_void_p, *types)
        return self._prototypes[method]

    def call(self, ptr: int, method: ComMethod, args: Sequence[int]) -> int:
        if len(args) != len(method.argtypes):
            raise ValueError(f"{method.name} takes {len(method.argtypes)} arguments, got {len(args)}")
        vtable = ctypes.cast(ctypes.c_void_p(ptr), ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p))).contents
        function = self.prototype(method)(vtable[method.index])
        result = int(function(ctypes.c_void_p(ptr), *args))
        if method.restype == "HRESULT" and result < 0:
            raise OSError(f"{method.name} failed with HRESULT 0x{result & 0xFFFFFFFF:08X}")
        return result


IUNKNOWN_RELEASE = ComMethod("IUnknown::Release", 2, restype="ULONG")


class Win32Api(Protocol):
    """The Windows calls our adapters make; every method may raise ``OSError``."""

    def co_create_instance(self, clsid: str, iid: str) -> int:
        """``CoCreateInstance(clsid, NULL, CLSCTX_INPROC_SERVER, iid)`` → interface pointer (COM initialised)."""
        ...

    def com_call(self, ptr: int, method: ComMethod, *args: int) -> int:
        """Call ``method`` on the COM object at ``ptr`` with its declared argument types; returns the result."""
        ...

    def release(self, ptr: int) -> None: ...

    def flash_window(self, hwnd: int, flags: int, count: int) -> None:
        """``FlashWindowEx`` with a FLASHWINFO built from the arguments."""
        ...

    def register_window_message(self, name: str) -> int: ...

    def allow_window_message(self, hwnd: int, message: int) -> None:
        """``ChangeWindowMessageFilterEx(hwnd, message, MSGFLT_ALLOW)``: let a lower-integrity
        process (Explorer, when we run elevated) send ``message`` to our window."""
        ...

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
        from ctypes import wintypes

        self._wintypes: Any = wintypes
        self._ole32: Any = ctypes.OleDLL("ole32")  # type: ignore[attr-defined,unused-ignore]
        self._user32: Any = ctypes.WinDLL("user32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
        self._shell32: Any = ctypes.OleDLL("shell32")  # type: ignore[attr-defined,unused-ignore]
        self._ntdll: Any = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined,unused-ignore]
        self._vtable = VtableCaller(ctypes.WINFUNCTYPE)  # type: ignore[attr-defined,unused-ignore]
        self._user32.FlashWindowEx.argtypes = (ctypes.c_void_p,)
        self._user32.FlashWindowEx.restype = wintypes.BOOL
        self._user32.RegisterWindowMessageW.argtypes = (wintypes.LPCWSTR,)
        self._user32.RegisterWindowMessageW.restype = wintypes.UINT
        self._user32.ChangeWindowMessageFilterEx.argtypes = (
            ctypes.c_void_p,
            wintypes.UINT,
            wintypes.DWORD,
            ctypes.c_void_p,
        )
        self._user32.ChangeWindowMessageFilterEx.restype = wintypes.BOOL
        # NtQueryWnfStateData(PWNF_STATE_NAME, PWNF_TYPE_ID, const VOID*, PWNF_CHANGE_STAMP, PVOID, PULONG) → NTSTATUS
        self._ntdll.NtQueryWnfStateData.argtypes = (ctypes.c_void_p,) * 6
        self._ntdll.NtQueryWnfStateData.restype = ctypes.c_int32
        # COINIT_APARTMENTTHREADED: the taskbar calls come from the GUI thread. S_FALSE/RPC_E_CHANGED_MODE are fine.
        with contextlib.suppress(OSError):
            self._ole32.CoInitializeEx(None, 0x2)

    def _guid(self, text: str) -> Any:
        class GUID(ctypes.Structure):
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

    def com_call(self, ptr: int, method: ComMethod, *args: int) -> int:
        return self._vtable.call(ptr, method, args)

    def release(self, ptr: int) -> None:
        self._vtable.call(ptr, IUNKNOWN_RELEASE, ())  # returns the new reference count, not an HRESULT

    def flash_window(self, hwnd: int, flags: int, count: int) -> None:
        wintypes: Any = self._wintypes

        class FLASHWINFO(ctypes.Structure):
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
        message = int(self._user32.RegisterWindowMessageW(name))
        if message == 0:
            raise OSError(f"RegisterWindowMessageW({name!r}) failed")
        return message

    def allow_window_message(self, hwnd: int, message: int) -> None:
        msgflt_allow = 1
        if not self._user32.ChangeWindowMessageFilterEx(hwnd, message, msgflt_allow, None):
            raise ctypes.WinError(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]

    def query_user_notification_state(self) -> int:
        state = ctypes.c_int()
        self._shell32.SHQueryUserNotificationState(ctypes.byref(state))
        return int(state.value)

    def query_wnf_state(self, state_name: int) -> bytes:
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
