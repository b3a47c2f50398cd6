"""The seed-compatible API (PEFT Studio's ``notification_service``), over the engine's logic.

Same names, signatures and semantics as the seed, so code written against it
keeps working: ``NotificationManager``, ``ProgressUpdate``,
``check_progress_milestone``, ``create_error_notification``,
``create_warning_notification``, ``check_do_not_disturb``,
``calculate_taskbar_progress``. The rules themselves (milestone arithmetic,
error urgency, taskbar fraction) are the engine's, imported from
:mod:`peft_notify.engine`; only the seed's stateful conveniences live here.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

from peft_notify.engine.milestones import crossed, passed_phrase
from peft_notify.engine.notices import error_event, warning_event
from peft_notify.engine.taskbar import taskbar_fraction
from peft_notify.ports import DndState
from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel

__all__ = [
    "NotificationEvent",
    "NotificationManager",
    "NotificationType",
    "ProgressUpdate",
    "UrgencyLevel",
    "calculate_taskbar_progress",
    "check_do_not_disturb",
    "check_progress_milestone",
    "create_error_notification",
    "create_warning_notification",
]

log = logging.getLogger(__name__)

SEED_MILESTONES: Final = (25, 50, 75, 100)
DND_TIMEOUT_S: Final = 3.0


@dataclass
class ProgressUpdate:
    """One training progress report, as the seed passes it around."""

    current_step: int
    total_steps: int
    previous_step: int = 0
    loss: float | None = None
    epoch: float | None = None


def _milestone_event(milestone: int, update: ProgressUpdate, passed: Sequence[int] = ()) -> NotificationEvent:
    """The seed's event for ``milestone``; ``passed`` are lower milestones crossed in the same update."""
    steps = f"{update.current_step}/{update.total_steps} steps"
    if milestone >= 100:
        return NotificationEvent(
            type=NotificationType.COMPLETION,
            title="Training Complete! 🎉",
            message=f"Training finished after {update.total_steps} steps{passed_phrase(passed)}.",
            milestone=milestone,
            urgency=UrgencyLevel.NORMAL,
            sound=True,
        )
    titles = {25: "Training 25% Complete", 50: "Training Halfway There!", 75: "Training 75% Complete"}
    message = f"{milestone}% done: {steps} completed."
    if passed:
        message = f"{milestone} %{passed_phrase(passed)}. {message}"
    return NotificationEvent(
        type=NotificationType.PROGRESS,
        title=titles.get(milestone, f"Training {milestone}% Complete"),
        message=message,
        milestone=milestone,
        urgency=UrgencyLevel.NORMAL,
        sound=False,
    )


def _as_update(current_step: int | ProgressUpdate, total_steps: int | None, previous_step: int) -> ProgressUpdate:
    if isinstance(current_step, ProgressUpdate):
        return current_step
    return ProgressUpdate(current_step, total_steps or 0, previous_step)


def _crossed(update: ProgressUpdate) -> list[int]:
    return crossed(update.previous_step, update.current_step, update.total_steps, SEED_MILESTONES)


def check_progress_milestone(
    current_step: int | ProgressUpdate, total_steps: int | None = None, previous_step: int = 0
) -> NotificationEvent | None:
    """The event for the highest milestone (25/50/75/100) with ``previous < m <= current``, else ``None``.

    Accepts a :class:`ProgressUpdate` (the seed's form) or the three numbers.
    Milestone 100 always wins and is a COMPLETION ("Training Complete! 🎉", with
    sound); lower milestones crossed in the same update are named in the message
    ("50 % — passed 25 % too"), as the engine's rule 1 does.
    """
    update = _as_update(current_step, total_steps, previous_step)
    hits = _crossed(update)
    return _milestone_event(hits[-1], update, hits[:-1]) if hits else None


def create_error_notification(
    error_message: str, error_type: str = "training_error", urgency: str | None = None
) -> NotificationEvent:
    """An error event: "Training Error", sound, ["View Details", "Retry"], bypasses DND.

    Urgency: ``oom_error``/``cuda_error``/``system_crash`` → critical;
    ``loss_divergence``/``gradient_explosion``/``data_error`` → high; else
    ``urgency`` or normal.
    """
    return error_event(error_message, error_type, urgency=urgency)


def create_warning_notification(message: str) -> NotificationEvent:
    """A warning event: "Training Warning", normal urgency, silent, respects DND."""
    return warning_event(message)


def calculate_taskbar_progress(current_step: int, total_steps: int) -> float:
    """``current/total`` clamped to [0, 1]; 0.0 when ``total_steps <= 0``."""
    return taskbar_fraction(current_step, total_steps)


async def _read_dnd() -> DndState:
    """Ask the platform layer's default probe on a session bus we own (and close)."""
    select = importlib.import_module("peft_notify.platform.choose")
    bus: Any = importlib.import_module("peft_notify.platform.session_bus").SessionBus()
    try:
        probe: Any = select.default_dnd_probe(bus=bus)
        if inspect.isawaitable(probe):
            probe = await probe
        state = await probe.state()
    finally:
        await bus.close()
    return state if isinstance(state, DndState) else DndState.UNKNOWN


def _run_sync(factory: Callable[[], Coroutine[Any, Any, DndState]]) -> DndState:
    """Run a coroutine to completion from sync code, in a fresh thread if a loop is running."""

    async def bounded() -> DndState:
        return await asyncio.wait_for(factory(), DND_TIMEOUT_S)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    result: list[DndState] = []

    def target() -> None:
        try:
            result.append(asyncio.run(bounded()))
        except Exception:
            log.debug("could not read the Do-Not-Disturb state", exc_info=True)

    thread = threading.Thread(target=target, name="peft-notify-dnd", daemon=True)
    thread.start()
    thread.join(DND_TIMEOUT_S + 1.0)
    return result[0] if result else DndState.UNKNOWN


def check_do_not_disturb() -> bool:
    """Whether the OS Do-Not-Disturb is on, via the platform's default DND probe.

    Never raises: a missing platform layer or a failed probe (``UNKNOWN``) means False,
    as the seed documents. Blocks for at most a few seconds; works inside a running
    event loop too (the probe then runs on a fresh loop in a helper thread).
    """
    try:
        state = _run_sync(_read_dnd)
    except Exception:
        log.debug("could not read the Do-Not-Disturb state", exc_info=True)
        return False
    return state is DndState.ON


class NotificationManager:
    """The seed's stateful milestone helper: each milestone once, DND-aware.

    ``dnd_check`` replaces :func:`check_do_not_disturb` (e.g. in tests).
    """

    def __init__(self, dnd_check: Callable[[], bool] | None = None) -> None:
        self._dnd_check = dnd_check
        self.sent_milestones: set[int] = set()
        self.last_notification_step = -1
        self.dnd_enabled = False
        self.update_dnd_status()

    def should_send_notification(self, progress_update: ProgressUpdate) -> bool:
        """Whether ``progress_update`` crosses a milestone not sent yet."""
        return bool(self._unsent(progress_update))

    def _unsent(self, progress_update: ProgressUpdate) -> list[int]:
        return [m for m in _crossed(progress_update) if m not in self.sent_milestones]

    def mark_milestone_sent(self, milestone: int) -> None:
        """Remember that ``milestone`` was notified."""
        self.sent_milestones.add(milestone)

    def update_dnd_status(self) -> None:
        """Re-read the OS Do-Not-Disturb state into :attr:`dnd_enabled`."""
        check = self._dnd_check or check_do_not_disturb
        self.dnd_enabled = bool(check())

    def should_respect_dnd(self, notification: NotificationEvent) -> bool:
        """True when ``notification`` must be suppressed now (it respects DND and DND is on)."""
        if not notification.respect_dnd:
            return False
        self.update_dnd_status()
        return self.dnd_enabled

    def reset(self) -> None:
        """Forget sent milestones: call for a new training run."""
        self.sent_milestones.clear()
        self.last_notification_step = -1
        self.update_dnd_status()

    def get_next_notification(self, progress_update: ProgressUpdate) -> NotificationEvent | None:
        """The milestone event to send for ``progress_update``, or ``None``.

        The highest milestone crossed and not sent yet wins (100 % as the completion,
        with sound); the others crossed with it are named in its message and marked
        sent too, so each milestone goes out at most once per run (until
        :meth:`reset`). Sets ``taskbar_progress``. Under DND the event is suppressed
        (``None``) but still marked sent, so it never comes back later.
        """
        hits = self._unsent(progress_update)
        if not hits:
            return None
        event = _milestone_event(hits[-1], progress_update, hits[:-1])
        event.taskbar_progress = calculate_taskbar_progress(progress_update.current_step, progress_update.total_steps)
        for milestone in hits:
            self.mark_milestone_sent(milestone)
        self.last_notification_step = progress_update.current_step
        if self.should_respect_dnd(event):
            log.info("suppressing notification during Do Not Disturb: %s", event.title)
            return None
        return event
