"""Pick working adapters from ordered candidate lists; record why the others were skipped.

Call the ``select_*`` coroutines once at app start, on the app's loop. Each candidate list
ends with an adapter that always works (:class:`LogNotifier`, :class:`NullTaskbar`,
:class:`NullDndProbe`), so selection never fails. The app passes Qt-based adapters
(tray balloon, window alert) as ``extra`` candidates; they go before the last fallback.
A candidate the user asked for by name (``prefer``) that fails is logged as a warning;
automatic fallbacks are logged at debug level. ``doctor`` and the About box show
:meth:`Selection.describe`.
"""

from __future__ import annotations

import inspect
import logging
import os
import platform as _platform
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from peft_notify.platform.dnd import CachedDndProbe, CompositeDndProbe, NullDndProbe, ReprobingDndProbe
from peft_notify.platform.notifier import DesktopNotifierAdapter, LogNotifier
from peft_notify.platform.runner import CommandRunner, run_command
from peft_notify.platform.session_bus import BusError, ServerInfo, SessionBus, notification_server
from peft_notify.platform.taskbar import NullTaskbar
from peft_notify.ports import ActionHandler, DndProbe, DndState, Notifier, TaskbarProgress

__all__ = [
    "Candidate",
    "Selection",
    "Skipped",
    "default_dnd_probe",
    "desktop_names",
    "select_dnd_probe",
    "select_notifiers",
    "select_taskbar",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A candidate that could not be used, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """A named factory; it raises (any exception, message = reason) when unusable here."""

    name: str
    build: Callable[[], T | Awaitable[T]]


@dataclass(frozen=True)
class Selection(Generic[T]):
    """The outcome of one ``select_*``: working adapters in order, and the skipped ones."""

    kind: str
    chosen: tuple[T, ...]
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def primary(self) -> T:
        return self.chosen[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(str(getattr(a, "name", type(a).__name__)) for a in self.chosen)

    @property
    def only_fallback(self) -> bool:
        """True when nothing but the always-working last candidate is left."""
        return len(self.chosen) == 1 and self.names[0] in {"log", "none"}

    def describe(self) -> list[str]:
        """Human-readable lines: what was chosen, then each skipped candidate and why."""
        lines = [f"{self.kind}: {' → '.join(self.names)}"]
        lines += [f"  skipped {s.name}: {s.reason}" for s in self.skipped]
        lines += [f"  note: {n}" for n in self.notes]
        return lines


async def _build(candidates: Sequence[Candidate[T]], kind: str, prefer: str | None) -> Selection[T]:
    ordered = list(candidates)
    if prefer:
        ordered.sort(key=lambda c: c.name != prefer)
    chosen: list[T] = []
    skipped: list[Skipped] = []
    for candidate in ordered:
        try:
            built = candidate.build()
            adapter: T = await built if inspect.isawaitable(built) else built
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            skipped.append(Skipped(candidate.name, reason))
            level = logging.WARNING if candidate.name == prefer else logging.DEBUG
            log.log(level, "%s %s unavailable: %s", kind, candidate.name, reason)
            continue
        chosen.append(adapter)
    if prefer and not any(getattr(a, "name", None) == prefer for a in chosen):
        log.warning("the %s you chose (%s) is not available; using %s", kind, prefer, getattr(chosen[0], "name", "?"))
    return Selection(kind=kind, chosen=tuple(chosen), skipped=tuple(skipped))


def desktop_names(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``XDG_CURRENT_DESKTOP`` split on ``:`` (e.g. ``("ubuntu", "GNOME")``), else ``XDG_SESSION_DESKTOP``."""
    env = os.environ if env is None else env
    raw = env.get("XDG_CURRENT_DESKTOP") or env.get("XDG_SESSION_DESKTOP") or env.get("DESKTOP_SESSION") or ""
    return tuple(part for part in raw.split(":") if part)


def _is_linux(platform: str) -> bool:
    return platform.startswith("linux") or "bsd" in platform


async def select_notifiers(
    on_action: ActionHandler,
    *,
    extra: Sequence[Candidate[Notifier]] = (),
    prefer: str | None = None,
    bus: SessionBus | None = None,
    app_icon: Path | None = None,
    platform: str = sys.platform,
) -> Selection[Notifier]:
    """The notifier chain: desktop-notifier, then ``extra`` (tray balloon), then the log.

    The dispatcher tries ``selection.chosen`` in order; the first that delivers wins.
    """

    async def native() -> Notifier:
        return await DesktopNotifierAdapter.create(on_action, app_icon=app_icon, bus=bus, platform=platform)

    candidates: list[Candidate[Notifier]] = [Candidate("desktop-notifier", native), *extra]
    candidates.append(Candidate("log", LogNotifier))
    return await _build(candidates, "notifier", prefer)


async def select_taskbar(
    *,
    hwnd: Callable[[], int | None] | None = None,
    bus: SessionBus | None = None,
    extra: Sequence[Candidate[TaskbarProgress]] = (),
    prefer: str | None = None,
    platform: str = sys.platform,
) -> Selection[TaskbarProgress]:
    """Taskbar/dock progress: the OS's native API, then ``extra`` (Qt alert/badge), then nothing.

    ``hwnd`` returns the main window's handle (Windows). Use ``selection.primary``, or
    ``TeeTaskbar(selection.chosen)`` to drive every working one.
    """
    candidates: list[Candidate[TaskbarProgress]] = []
    if platform == "win32":

        def windows() -> TaskbarProgress:
            from peft_notify.platform.taskbar_windows import WinTaskbar

            if hwnd is None:
                raise OSError("the app gave no window handle")
            return WinTaskbar(hwnd)

        candidates.append(Candidate("win-taskbar-list3", windows))
    elif platform == "darwin":

        def mac() -> TaskbarProgress:
            from peft_notify.platform.macos import MacDockTile

            return MacDockTile()

        candidates.append(Candidate("macos-dock-tile", mac))
    elif _is_linux(platform):

        async def unity() -> TaskbarProgress:
            from peft_notify.platform.taskbar_linux import UnityLauncherEntry

            session = bus or SessionBus()
            await session.connection()  # BusError: no session bus
            return UnityLauncherEntry(session)

        candidates.append(Candidate("unity-launcher-entry", unity))
    candidates += [*extra, Candidate("none", NullTaskbar)]
    selection = await _build(candidates, "taskbar", prefer)
    if _is_linux(platform) and "unity-launcher-entry" in selection.names:
        from peft_notify.platform.linux_desktop_file import desktop_file_path, system_desktop_file

        path = system_desktop_file() or desktop_file_path()  # the .deb's, else the user's copy
        note = (
            f"launcher progress needs {path} (installed)"
            if path.exists()
            else f"launcher progress needs {path}: not installed yet (the app installs it)"
        )
        note += "; shown by KDE Plasma, Dash to Dock/Ubuntu Dock, Dash to Panel, Plank — not stock GNOME Shell"
        selection = Selection(selection.kind, selection.chosen, selection.skipped, (note,))
    return selection


def _platform_probes(
    platform: str,
    server: ServerInfo | None,
    env: Mapping[str, str],
    bus: SessionBus,
    runner: CommandRunner,
    *,
    windows_busy_is_dnd: bool = False,
) -> list[DndProbe]:
    if platform == "win32":
        from peft_notify.platform.dnd_windows import windows_dnd_probe
        from peft_notify.platform.win32 import CtypesWin32Api

        return [windows_dnd_probe(CtypesWin32Api(), busy_is_dnd=windows_busy_is_dnd)]
    if platform == "darwin":
        from peft_notify.platform.macos import macos_dnd_probe

        release = _platform.mac_ver()[0] or "0"
        version = tuple(int(p) for p in release.split(".") if p.isdigit())
        return [macos_dnd_probe(version, runner=runner)]
    if _is_linux(platform):
        from peft_notify.platform.dnd_linux import linux_dnd_probes

        return linux_dnd_probes(server, desktop_names(env), bus, runner)
    return []


async def select_dnd_probe(
    *,
    bus: SessionBus | None = None,
    extra: Sequence[DndProbe] = (),
    env: Mapping[str, str] | None = None,
    runner: CommandRunner = run_command,
    ttl: float = 3.0,
    platform: str = sys.platform,
    windows_busy_is_dnd: bool = False,
    reprobe_s: float = 60.0,
) -> Selection[DndProbe]:
    """The DND probe for this desktop, cached for ``ttl`` seconds.

    Linux: the running notification server's probe first, then the desktop's
    (``XDG_CURRENT_DESKTOP``). Each candidate is asked once; one that cannot answer
    (``UNKNOWN``) is listed as skipped with its error and kept, asked again every
    ``reprobe_s`` seconds (:class:`ReprobingDndProbe`). ``selection.primary`` is what the app polls.
    """
    bus = bus or SessionBus()
    env = os.environ if env is None else env
    server = None
    notes: list[str] = []
    if _is_linux(platform):
        try:
            server = await notification_server(bus)
        except BusError as exc:
            notes.append(f"no session D-Bus: {exc}")
        notes.append(
            f"desktop: {':'.join(desktop_names(env)) or 'unknown'}; server: {server.name if server else 'none'}"
        )
    skipped: list[Skipped] = []
    try:
        probes = [
            *_platform_probes(platform, server, env, bus, runner, windows_busy_is_dnd=windows_busy_is_dnd),
            *extra,
        ]
    except Exception as exc:  # e.g. the Win32 layer failed to load
        skipped.append(Skipped(platform, str(exc)))
        probes = list(extra)
    working: list[DndProbe] = []
    for probe in probes:
        if await probe.state() is DndState.UNKNOWN:
            reason = getattr(probe, "last_error", None) or "could not read a state"
            skipped.append(Skipped(probe.name, f"{reason} (asked again every {reprobe_s:g} s)"))
            working.append(ReprobingDndProbe(probe, reprobe_s))
        else:
            working.append(probe)
    if not working:
        return Selection("dnd probe", (NullDndProbe(),), tuple(skipped), tuple(notes))
    chosen = working[0] if len(working) == 1 else CompositeDndProbe(working, mode="first")
    return Selection("dnd probe", (CachedDndProbe(chosen, ttl=ttl),), tuple(skipped), tuple(notes))


async def default_dnd_probe(bus: SessionBus | None = None) -> DndProbe:
    """The probe :func:`select_dnd_probe` picks for this machine (convenience for scripts)."""
    return (await select_dnd_probe(bus=bus)).primary
