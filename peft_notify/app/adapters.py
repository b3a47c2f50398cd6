"""Pick the port adapters for the app: notifiers, taskbar, DND probe, plus a readable summary.

:func:`build_adapters` asks :mod:`peft_notify.platform.choose` (with the Qt-based candidates
from :mod:`peft_notify.app.qtplatform`) and falls back to the always-working
adapters (LogNotifier, NullTaskbar, NullDndProbe) if selection itself fails, so the app
always starts. ``summary`` feeds the About box: (port, chosen, [skipped: why, ...]).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtWidgets import QSystemTrayIcon

from peft_notify.app.qtplatform import (
    NotifierPermissionWatch,
    combine_taskbars,
    notifier_candidates,
    taskbar_candidates,
)
from peft_notify.platform.choose import Selection, select_dnd_probe, select_notifiers, select_taskbar
from peft_notify.platform.dnd import CachedDndProbe, NullDndProbe
from peft_notify.platform.notifier import LogNotifier
from peft_notify.platform.taskbar import NullTaskbar
from peft_notify.ports import ActionHandler, DndProbe, Notifier, TaskbarProgress

__all__ = ["Adapters", "build_adapters", "describe_selection", "install_launcher_entry"]

log = logging.getLogger(__name__)

Summary = list[tuple[str, str, Sequence[str]]]


@dataclass
class Adapters:
    notifiers: list[Notifier]
    taskbar: TaskbarProgress
    dnd_probe: DndProbe
    summary: Summary = field(default_factory=list)
    permission_watch: NotifierPermissionWatch | None = None  # "notifications are off for this app"


def describe_selection(port: str, selection: Selection[Any]) -> tuple[str, str, Sequence[str]]:
    """One About-box entry: the chosen chain, and each skipped candidate with why (plus notes)."""
    lines = [f"{s.name}: {s.reason}" for s in selection.skipped]
    lines += [f"note: {n}" for n in selection.notes]
    return port, " → ".join(selection.names), lines


def install_launcher_entry() -> bool:
    """Install/refresh our ``.desktop`` file and icon (docks match LauncherEntry progress by it).

    Idempotent; returns whether anything was written. A read-only home is logged, not raised:
    the app then simply has no launcher progress.
    """
    from peft_notify.platform.linux_desktop_file import desktop_file_path, install_desktop_file

    try:
        changed = install_desktop_file()
    except OSError as exc:
        log.warning("cannot install %s (no launcher progress): %s", desktop_file_path(), exc)
        return False
    if changed:
        log.info("installed %s", desktop_file_path())
    return changed


async def build_adapters(
    on_action: ActionHandler, *, tray: Any = None, window: Any = None, windows_busy_is_dnd: bool = False
) -> Adapters:
    """Select adapters on the running loop. Never raises: the fallbacks always work."""
    summary: Summary = []
    notifiers: list[Notifier] = [LogNotifier()]
    taskbar: TaskbarProgress = NullTaskbar()
    probe: DndProbe = NullDndProbe()
    try:
        chosen_notifiers = await select_notifiers(on_action, extra=notifier_candidates(tray=tray, on_action=on_action))
        notifiers = list(chosen_notifiers.chosen)
        summary.append(describe_selection("Notifications", chosen_notifiers))
    except Exception as exc:
        log.error("notifier selection failed; notifications go to the log", exc_info=True)
        summary.append(("Notifications", "log", [f"selection failed: {exc}"]))
    if sys.platform.startswith("linux"):
        install_launcher_entry()
    try:
        hwnd = (lambda: int(window.winId())) if window is not None else None
        chosen_taskbar = await select_taskbar(hwnd=hwnd, extra=taskbar_candidates(window=window))
        # One owner each for flash and badge; Windows: TaskbarButtonCreated re-applies the state.
        taskbar = combine_taskbars(chosen_taskbar.chosen, window)
        summary.append(describe_selection("Taskbar progress", chosen_taskbar))
    except Exception as exc:
        log.error("taskbar selection failed", exc_info=True)
        summary.append(("Taskbar progress", "none", [f"selection failed: {exc}"]))
    try:
        chosen_probe = await select_dnd_probe(windows_busy_is_dnd=windows_busy_is_dnd)
        probe = chosen_probe.primary
        summary.append(describe_selection("Do Not Disturb", chosen_probe))
    except Exception as exc:
        log.error("DND probe selection failed", exc_info=True)
        summary.append(("Do Not Disturb", "none (treated as off)", [f"selection failed: {exc}"]))
    if not isinstance(probe, CachedDndProbe):
        probe = CachedDndProbe(probe)
    watch = NotifierPermissionWatch(notifiers, tray=tray if isinstance(tray, QSystemTrayIcon) else None)
    if window is not None and callable(getattr(window, "on_problem", None)):
        watch.problem.connect(window.on_problem)  # the banner strip
    watch.start()
    return Adapters(notifiers=notifiers, taskbar=taskbar, dnd_probe=probe, summary=summary, permission_watch=watch)
