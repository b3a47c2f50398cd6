"""macOS: dock tile progress/badge/attention (rubicon-objc behind :class:`DockApi`) and Focus/DND probes.

The dock adapter never raises; the real :class:`RubiconDockApi` can only be built on macOS
inside a running NSApplication (raises ``OSError`` elsewhere). DND parsers are pure
functions, tested here against public captures of the real files (tests/platform/fixtures)
and on a macOS runner against the machine's own (.github/workflows/os-runners.yml).
"""

from __future__ import annotations

import asyncio
import json
import logging
import plistlib
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from peft_notify.platform.dnd import BaseDndProbe, CompositeDndProbe, ProbeError, parse_bool_word
from peft_notify.platform.runner import CommandRunner, run_command
from peft_notify.ports import DndState, TaskbarState

__all__ = [
    "BAR_COLORS",
    "FOCUS_LAG_NOTE",
    "FULL_DISK_ACCESS_HINT",
    "DockApi",
    "MacDockTile",
    "RubiconDockApi",
    "dock_bar_layout",
    "macos_dnd_probe",
    "parse_assertions_json",
    "parse_defaults_dnd",
    "parse_ncprefs_dnd",
]

log = logging.getLogger(__name__)
_PLATFORM: str = sys.platform
NS_CRITICAL_REQUEST, NS_INFORMATIONAL_REQUEST = 0, 10  # NSRequestUserAttentionType


class DockApi(Protocol):
    """The dock-tile calls :class:`MacDockTile` makes."""

    def set_badge_label(self, text: str | None) -> None: ...

    def show_progress(self, fraction: float | None, state: TaskbarState) -> None:
        """Draw (or, with ``None``, remove) a progress bar in the dock tile's content view."""
        ...

    def request_attention(self, kind: int) -> None: ...


Rect = tuple[float, float, float, float]  # x, y, width, height (AppKit: origin bottom-left)
RGBA = tuple[float, float, float, float]

# Fill colours per state (sRGB): macOS system blue / yellow / red, and grey for "busy, no
# fraction known" — the tile is redrawn only by an explicit display(), so an indeterminate
# barber-pole animation could never move; a static grey bar is drawn instead.
BAR_COLORS: dict[TaskbarState, RGBA] = {
    TaskbarState.NORMAL: (0.0, 0.478, 1.0, 1.0),
    TaskbarState.PAUSED: (1.0, 0.8, 0.0, 1.0),
    TaskbarState.ERROR: (1.0, 0.231, 0.188, 1.0),
    TaskbarState.INDETERMINATE: (0.6, 0.6, 0.6, 1.0),
}


def dock_bar_layout(width: float, height: float, fraction: float, state: TaskbarState) -> tuple[Rect, Rect, RGBA]:
    """Where :class:`RubiconDockApi`'s view draws the bar on a ``width`` × ``height`` tile.

    Returns (track rect, filled rect, fill colour). The bar sits along the bottom of the icon
    as in Firefox's ``MOZProgressDockOverlayView`` and Electron's ``ElectronProgressBar``;
    an indeterminate bar is drawn full. Pure, so it is tested without a Mac.
    """
    shown = 1.0 if state is TaskbarState.INDETERMINATE else min(1.0, max(0.0, fraction))
    track = (width * 0.08, height * 0.06, width * 0.84, height * 0.12)
    inset = track[3] * 0.15
    fill = (track[0] + inset, track[1] + inset, (track[2] - 2 * inset) * shown, track[3] - 2 * inset)
    return track, fill, BAR_COLORS.get(state, BAR_COLORS[TaskbarState.NORMAL])


_VIEW_CLASS: Any = None


def _progress_view_class() -> Any:
    """Declare (once per process: the ObjC runtime keeps classes) the NSView subclass that draws the tile.

    The dock tile shows whatever its content view draws when ``NSDockTile.display`` is sent,
    and nothing else — the view must draw the application icon too (Apple, NSDockTile
    ``contentView``). Every working implementation found draws the bar itself in
    ``drawRect:`` instead of embedding a stock NSProgressIndicator: Firefox
    (widget/cocoa/nsMacDockSupport.mm, ``MOZProgressDockOverlayView``), Electron
    (shell/browser/mac, ``ElectronProgressBar`` overriding ``drawRect:``), tao
    (src/platform_impl/macos/progress_bar.rs, ``TaoProgressIndicator``).
    """
    global _VIEW_CLASS
    if _VIEW_CLASS is not None:
        return _VIEW_CLASS
    from rubicon.objc import ObjCClass, objc_method, objc_property
    from rubicon.objc.types import NSRect

    ns_view: Any = ObjCClass("NSView")
    ns_application: Any = ObjCClass("NSApplication")
    ns_color: Any = ObjCClass("NSColor")
    ns_bezier_path: Any = ObjCClass("NSBezierPath")

    def rounded(rect: Rect, rgba: RGBA) -> None:
        from rubicon.objc.types import NSMakeRect

        x, y, w, h = rect
        if w <= 0 or h <= 0:
            return
        ns_color.colorWithSRGBRed(rgba[0], green=rgba[1], blue=rgba[2], alpha=rgba[3]).set()
        path = ns_bezier_path.bezierPathWithRoundedRect(NSMakeRect(x, y, w, h), xRadius=h / 2, yRadius=h / 2)
        path.fill()

    def draw_rect(self: Any, rect: Any) -> None:
        bounds = self.bounds
        width, height = float(bounds.size.width), float(bounds.size.height)
        icon = ns_application.sharedApplication.applicationIconImage
        if icon is not None:
            icon.drawInRect(bounds)
        states = list(BAR_COLORS)
        state = states[int(self.state)] if 0 <= int(self.state) < len(states) else TaskbarState.NORMAL
        track, fill, color = dock_bar_layout(width, height, float(self.fraction), state)
        rounded(track, (0.0, 0.0, 0.0, 0.55))
        rounded(fill, color)

    # rubicon reads the ObjC signature from the annotations with typing.get_type_hints, which
    # cannot resolve this module's string annotations (``from __future__ import annotations``)
    # for a name imported here: give it the objects.
    draw_rect.__annotations__ = {"rect": NSRect, "return": None}

    class PeftNotifyDockProgressView(ns_view):  # type: ignore[misc]
        fraction = objc_property(float)
        state = objc_property(int)
        drawRect_ = objc_method(draw_rect)

    _VIEW_CLASS = PeftNotifyDockProgressView
    return _VIEW_CLASS


class RubiconDockApi:
    """``NSApp.dockTile`` through rubicon-objc (already a desktop-notifier dependency on macOS)."""

    def __init__(self) -> None:
        if _PLATFORM != "darwin":
            raise OSError("the dock exists only on macOS")
        from rubicon.objc import ObjCClass

        self._app: Any = ObjCClass("NSApplication").sharedApplication
        self._view: Any = None

    def set_badge_label(self, text: str | None) -> None:
        self._app.dockTile.setBadgeLabel(text)

    def show_progress(self, fraction: float | None, state: TaskbarState) -> None:
        from rubicon.objc.types import NSMakeRect

        tile = self._app.dockTile
        if fraction is None:
            tile.setContentView(None)  # back to the plain application icon
            self._view = None
            tile.display()
            return
        if self._view is None:
            size = tile.size
            self._view = _progress_view_class().alloc().initWithFrame(NSMakeRect(0, 0, size.width, size.height))
            tile.setContentView(self._view)
        self._view.fraction = float(fraction)
        self._view.state = list(BAR_COLORS).index(state) if state in BAR_COLORS else 0
        tile.display()  # the tile never redraws by itself

    def request_attention(self, kind: int) -> None:
        self._app.requestUserAttention(kind)


class MacDockTile:
    """TaskbarProgress on the dock icon: progress bar, ``45%`` (or unread-error count) badge, bounce.

    The only owner of the dock badge: Qt's ``setBadgeNumber`` writes the same
    ``NSDockTile.badgeLabel`` and its ``badge(0)`` would wipe our "45%", so the app turns
    Qt's badge off whenever this adapter runs (:data:`owns_badge`).
    """

    name = "macos-dock-tile"
    owns_badge = True

    def __init__(self, api: DockApi | None = None) -> None:
        """Raises ``OSError`` off macOS when no ``api`` is given."""
        self._api: DockApi = api if api is not None else RubiconDockApi()
        self._count = 0
        self._percent: str | None = None
        self.last_error: str | None = None

    def set(self, value: float, state: TaskbarState) -> None:
        if state is TaskbarState.NONE:
            self.clear()
            return
        shown = min(1.0, max(0.0, value))
        self._percent = None if state is TaskbarState.INDETERMINATE else f"{round(shown * 100)}%"
        self._call(self._api.show_progress, shown, state)
        self._label()

    def clear(self) -> None:
        self._percent = None
        self._call(self._api.show_progress, None, TaskbarState.NONE)
        self._label()

    def attention(self, critical: bool) -> None:
        # Critical bounces until the app is activated; informational bounces once.
        self._call(self._api.request_attention, NS_CRITICAL_REQUEST if critical else NS_INFORMATIONAL_REQUEST)

    def badge(self, count: int) -> None:
        self._count = max(0, count)
        self._label()

    def _label(self) -> None:
        # Unread errors matter more than the percentage.
        self._call(self._api.set_badge_label, str(self._count) if self._count else self._percent)

    def _call(self, method: Any, *args: Any) -> None:
        try:
            method(*args)
        except Exception as exc:  # ObjC exceptions surface as various Python types
            if self.last_error is None:
                log.warning("dock tile update failed: %s", exc)
            self.last_error = str(exc)


# ----------------------------------------------------------------------------- DND


def parse_assertions_json(text: str) -> bool:
    """macOS 12+: ``~/Library/DoNotDisturb/DB/Assertions.json``; a Focus is on when
    ``data[0].storeAssertionRecords`` is non-empty. Raises :class:`ProbeError`.

    Only that list counts: the file also keeps *ended* assertions (``storeInvalidationRecords``)
    that name the same modes, and with every Focus off macOS leaves ``storeAssertionRecords``
    out altogether (public capture, tests/platform/fixtures/README.md).
    """
    try:
        data = json.loads(text)["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProbeError(f"unexpected Assertions.json: {exc}") from exc
    if not isinstance(data, list):
        raise ProbeError("Assertions.json: data is not a list")
    return any(isinstance(entry, dict) and entry.get("storeAssertionRecords") for entry in data)


def parse_ncprefs_dnd(raw: bytes, now: datetime) -> bool:
    """macOS 11: ``com.apple.ncprefs.plist`` key ``dnd_prefs`` (a nested binary plist).

    On when ``userPref.enabled``, or when ``scheduledTime`` is enabled and ``now`` falls between
    its ``start`` and ``end`` (minutes after midnight, may wrap). Raises :class:`ProbeError`.
    """
    try:
        outer = plistlib.loads(raw)
        inner = plistlib.loads(outer["dnd_prefs"]) if "dnd_prefs" in outer else {}
    except (plistlib.InvalidFileException, ValueError, KeyError, TypeError) as exc:
        raise ProbeError(f"unexpected com.apple.ncprefs: {exc}") from exc
    if inner.get("userPref", {}).get("enabled"):
        return True
    schedule = inner.get("scheduledTime", {})
    if schedule.get("enabled"):
        minute = now.hour * 60 + now.minute
        start, end = float(schedule.get("start", 0)), float(schedule.get("end", 0))
        return start <= minute < end if start <= end else minute >= start or minute < end
    return False


def parse_defaults_dnd(text: str) -> bool:
    """macOS ≤ 10.15: ``defaults -currentHost read com.apple.notificationcenterui doNotDisturb`` (1/0)."""
    return parse_bool_word(text, "defaults output")


class _FileProbe(BaseDndProbe):
    def __init__(self, path: Path, now: type[datetime] = datetime) -> None:
        super().__init__()
        self.path = path
        self._now = now

    async def _raw(self) -> bytes:
        try:
            return await asyncio.to_thread(self.path.read_bytes)
        except PermissionError as exc:
            raise ProbeError(f"cannot read {self.path}: {FULL_DISK_ACCESS_HINT}") from exc


# Who TCC asks about: the responsible process. From a shell that is the terminal app (Terminal,
# iTerm2, VS Code…) — or the Python binary when it is launched some other way; for the app
# bundle it is the bundle.
FULL_DISK_ACCESS_HINT = (
    "grant Full Disk Access (System Settings › Privacy & Security) to the app that runs peft-notify — "
    "your terminal (or the Python binary) when started from a shell, the peft-notify app bundle otherwise"
)
FOCUS_LAG_NOTE = "macOS writes the Focus state file itself and can lag a minute or two behind a Focus change"


class MacFocusProbe(_FileProbe):
    """Focus (macOS 12+) from the DoNotDisturb assertion store.

    A missing file means no Focus was ever switched on under this account: off, as the other
    readers of this file treat it (they test for the file first). Unreadable (no Full Disk
    Access) or unparsable is ``UNKNOWN``.
    """

    name = "macos-focus"

    async def _read(self) -> DndState:
        try:
            raw = await self._raw()
        except FileNotFoundError:
            return DndState.OFF
        on = parse_assertions_json(raw.decode("utf-8"))
        return DndState.ON if on else DndState.OFF


class MacNcprefsProbe(_FileProbe):
    """Do Not Disturb (macOS 11) from ``com.apple.ncprefs.plist``."""

    name = "macos-ncprefs"

    async def _read(self) -> DndState:
        return DndState.ON if parse_ncprefs_dnd(await self._raw(), self._now.now()) else DndState.OFF


class MacDefaultsProbe(BaseDndProbe):
    """Do Not Disturb (macOS ≤ 10.15) through ``defaults -currentHost read``."""

    name = "macos-defaults"

    def __init__(self, runner: CommandRunner = run_command) -> None:
        super().__init__(timeout=1.5)
        self._runner = runner

    async def _read(self) -> DndState:
        argv = ("defaults", "-currentHost", "read", "com.apple.notificationcenterui", "doNotDisturb")
        result = await self._runner(argv, 1.0)
        if not result.ok:  # the key is absent until DND was used once
            return DndState.OFF if "does not exist" in result.stderr else DndState.UNKNOWN
        return DndState.ON if parse_defaults_dnd(result.stdout) else DndState.OFF


def macos_dnd_probe(
    version: tuple[int, ...], home: Path | None = None, runner: CommandRunner = run_command
) -> CompositeDndProbe:
    """The probe for this macOS ``version`` (e.g. ``(14, 5)``)."""
    home = home or Path.home()
    if version >= (12,):
        probes: list[BaseDndProbe] = [MacFocusProbe(home / "Library/DoNotDisturb/DB/Assertions.json")]
    elif version >= (11,):
        probes = [MacNcprefsProbe(home / "Library/Preferences/com.apple.ncprefs.plist")]
    else:
        probes = [MacDefaultsProbe(runner)]
    return CompositeDndProbe(probes, mode="any")
