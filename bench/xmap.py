"""Watch the X display for the first top-level window a child maps (no hooks inside the child).

Used by the startup benchmark to time programs we cannot instrument (the frozen app) the same
way as those we can: ``MapNotify`` on the root window (SubstructureNotifyMask) for a window of
at least 200×100 px that is not override-redirect (menus, tooltips) — the tray icon is smaller.
Xlib through ctypes; raises :class:`XmapError` without an X display.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import select
import time

__all__ = ["MapWatcher", "XmapError"]

_SUBSTRUCTURE_NOTIFY_MASK = 1 << 19
_MAP_NOTIFY = 19


class XmapError(RuntimeError):
    pass


class MapWatcher:
    """``with MapWatcher() as w: t0 = ...; spawn; t_ns = w.wait_map(timeout)``."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("X11")
        if not name:
            raise XmapError("libX11 not found")
        x = ctypes.CDLL(name)
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XSelectInput.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_long]
        x.XConnectionNumber.argtypes = [ctypes.c_void_p]
        x.XPending.argtypes = [ctypes.c_void_p]
        x.XNextEvent.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        x.XFlush.argtypes = [ctypes.c_void_p]
        x.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self._x = x
        self._display = x.XOpenDisplay(None)
        if not self._display:
            raise XmapError("cannot open the X display (DISPLAY unset?)")

    def __enter__(self) -> MapWatcher:
        self._x.XSelectInput(self._display, self._x.XDefaultRootWindow(self._display), _SUBSTRUCTURE_NOTIFY_MASK)
        self._x.XFlush(self._display)
        self.drain()
        return self

    def __exit__(self, *exc: object) -> None:
        self._x.XCloseDisplay(self._display)

    def drain(self) -> None:
        """Forget events seen so far (windows of earlier children)."""
        event = ctypes.create_string_buffer(192)
        while self._x.XPending(self._display):
            self._x.XNextEvent(self._display, event)

    def _size(self, window: int) -> tuple[int, int]:
        attrs = ctypes.create_string_buffer(256)  # XWindowAttributes: int x, y, width, height, ...
        if not self._x.XGetWindowAttributes(self._display, window, attrs):
            return 0, 0
        _x, _y, width, height = (int.from_bytes(attrs.raw[i : i + 4], "little", signed=True) for i in (0, 4, 8, 12))
        return width, height

    def wait_map(self, timeout: float) -> int:
        """perf_counter_ns when a big enough top-level window was mapped; raises TimeoutError."""
        event = ctypes.create_string_buffer(192)
        fd = self._x.XConnectionNumber(self._display)
        deadline = time.monotonic() + timeout
        while True:
            while self._x.XPending(self._display):
                self._x.XNextEvent(self._display, event)
                stamp = time.perf_counter_ns()
                raw = event.raw
                # XMapEvent (LP64): int type @0, serial @8, send_event @16, display @24, event @32,
                # window @40, override_redirect @48
                if int.from_bytes(raw[0:4], "little") != _MAP_NOTIFY:
                    continue
                if int.from_bytes(raw[48:52], "little"):
                    continue
                width, height = self._size(int.from_bytes(raw[40:48], "little"))
                if width * height >= 200 * 100:
                    return stamp
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no window was mapped")
            select.select([fd], [], [], left)
