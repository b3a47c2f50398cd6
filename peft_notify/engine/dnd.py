"""Quiet periods: OS Do-Not-Disturb and the user's tray pause (issue rule 4).

:class:`QuietPeriods` says whether a DND-respecting notification must be
withheld now, and why; it keeps a note of each one withheld and, when the last
quiet source ends, builds the one summary notification of what was missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from peft_notify.ports import DeliveryStatus, DndState
from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel

__all__ = ["SUMMARY_KEY", "QuietPeriods", "Withheld", "summary_event"]

SUMMARY_KEY: Final = "dnd-summary"


@dataclass(frozen=True, slots=True)
class Withheld:
    """One notification held back during a quiet period."""

    job_id: str
    job_name: str
    kind: NotificationType
    milestone: int | None
    reason: DeliveryStatus


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary_event(items: Sequence[Withheld]) -> NotificationEvent:
    """The one notice of what was missed, e.g. "job X reached 75 %, 1 warning" (``items`` non-empty)."""
    reasons = {w.reason for w in items}
    if reasons == {DeliveryStatus.WITHHELD_DND}:
        title = "While Do Not Disturb was on"
    elif reasons == {DeliveryStatus.PAUSED}:
        title = "While notifications were paused"
    else:
        title = "While notifications were held"
    parts: list[str] = []
    names: dict[str, str] = {}
    for w in items:
        names.setdefault(w.job_id, w.job_name or w.job_id)
    for job_id, name in names.items():
        mine = [w for w in items if w.job_id == job_id]
        milestones = [w.milestone for w in mine if w.kind is NotificationType.PROGRESS and w.milestone]
        updates = [w for w in mine if w.kind is NotificationType.PROGRESS and not w.milestone]
        if any(w.kind is NotificationType.COMPLETION for w in mine):
            parts.append(f"{name} finished")
        elif milestones:
            parts.append(f"{name} reached {max(milestones)} %")
        if updates:
            parts.append(f"{name}: {_plural(len(updates), 'update')}")
    warnings = sum(1 for w in items if w.kind is NotificationType.WARNING)
    if warnings:
        parts.append(_plural(warnings, "warning"))
    return NotificationEvent(
        type=NotificationType.PROGRESS,
        title=title,
        message=", ".join(parts) + f" ({_plural(len(items), 'notification')} in history)",
        urgency=UrgencyLevel.NORMAL,
        sound=False,
        respect_dnd=False,
    )


class QuietPeriods:
    """Tracks OS DND and the user's pause; collects what was withheld.

    Call :meth:`update` on every feed/tick with the probe's state (``None``:
    unchanged), :meth:`withhold` for each notification held back, and emit the
    event :meth:`update` / :meth:`set_pause` return when a quiet period ends.
    """

    def __init__(self, respect_dnd: bool = True) -> None:
        self.respect_dnd = respect_dnd
        self.dnd_on = False
        self.paused_until: float | None = None
        self._withheld: list[Withheld] = []

    def reason(self, now: float) -> DeliveryStatus | None:
        """Why a DND-respecting notification is withheld now, or ``None`` when it may show."""
        if self.paused_until is not None and now < self.paused_until:
            return DeliveryStatus.PAUSED
        if self.dnd_on:
            return DeliveryStatus.WITHHELD_DND
        return None

    def withhold(self, item: Withheld) -> None:
        """Remember ``item`` for the summary."""
        self._withheld.append(item)

    @property
    def withheld(self) -> tuple[Withheld, ...]:
        return tuple(self._withheld)

    def update(self, dnd: DndState | None, now: float) -> NotificationEvent | None:
        """Take the probe's state (``UNKNOWN`` counts as off); the summary if quiet just ended."""
        if dnd is not None:
            self.dnd_on = self.respect_dnd and dnd is DndState.ON
        if self.paused_until is not None and now >= self.paused_until:
            self.paused_until = None
        return self._summary(now)

    def set_pause(self, until: float | None, now: float) -> NotificationEvent | None:
        """Pause until ``until`` (``None``: resume now); the summary if quiet just ended."""
        self.paused_until = until if until is not None and until > now else None
        return self._summary(now)

    def _summary(self, now: float) -> NotificationEvent | None:
        if self.reason(now) is not None or not self._withheld:
            return None
        event = summary_event(self._withheld)
        self._withheld.clear()
        return event
