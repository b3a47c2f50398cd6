"""macOS: dock tile progress/badge/attention (rubicon-objc behind :class:`DockApi`) and Focus/DND probes.

The dock adapter never raises; the real :class:`RubiconDockApi` can only be built on macOS
inside a running NSApplication (raises ``OSError`` elsewhere). DND parsers are pure
functions tested against documented formats (no Mac was available to capture from).
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
    "DockApi",
    "MacDockTile",
    "RubiconDockApi",
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


class RubiconDockApi:
    """``NSApp.dockTile`` through rubicon-objc (already a desktop-notifier dependency on macOS)."""

    def __init__(self) -> None:
        if _PLATFORM != "darwin":
            raise OSError("the dock exists only on macOS")
        from rubicon.objc import ObjCClass

        self._classes: Any = {n: ObjCClass(n) for n in ("NSApplication", "NSImageView", "NSProgressIndicator")}
        self._app: Any = self._classes["NSApplication"].sharedApplication
        self._bar: Any = None

    def set_badge_label(self, text: str | None) -> None:
        self._app.dockTile.setBadgeLabel(text)

    def show_progress(self, fraction: float | None, state: TaskbarState) -> None:
        from rubicon.objc.types import NSMakeRect

        tile = self._app.dockTile
        if fraction is None:
            tile.setContentView(None)  # back to the plain application icon
            self._bar = None
            tile.display()
            return
        if self._bar is None:
            size = tile.size
            view = self._classes["NSImageView"].alloc().initWithFrame(NSMakeRect(0, 0, size.width, size.height))
            view.setImage(self._app.applicationIconImage)
            bar = (
                self._classes["NSProgressIndicator"]
                .alloc()
                .initWithFrame(NSMakeRect(size.width * 0.08, size.height * 0.04, size.width * 0.84, size.height * 0.16))
            )
            bar.setStyle(0)  # NSProgressIndicatorStyleBar
            bar.setMinValue(0.0)
            bar.setMaxValue(1.0)
            view.addSubview(bar)
            tile.setContentView(view)
            self._bar = bar
        self._bar.setIndeterminate(state is TaskbarState.INDETERMINATE)
        self._bar.setDoubleValue(float(fraction))
        tile.display()

    def request_attention(self, kind: int) -> None:
        self._app.requestUserAttention(kind)


class MacDockTile:
    """TaskbarProgress on the dock icon: progress bar, ``45%`` (or unread-error count) badge, bounce."""

    name = "macos-dock-tile"

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
    ``data[0].storeAssertionRecords`` is non-empty. Raises :class:`ProbeError`."""
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
            raise ProbeError(f"cannot read {self.path}: grant Full Disk Access to peft-notify") from exc


class MacFocusProbe(_FileProbe):
    """Focus (macOS 12+) from the DoNotDisturb assertion store."""

    name = "macos-focus"

    async def _read(self) -> DndState:
        on = parse_assertions_json((await self._raw()).decode("utf-8"))
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
