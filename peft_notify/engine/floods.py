"""Error floods: errors are never dropped, but a flood becomes one updating summary popup.

One job server produced ~4,600 error popups a second, each with sound and attention
(issue 10 item 7). The gate asks :meth:`ErrorFloods.admit` before it pops up an error:
the first ``limit`` errors of a job within any ``window_s`` (60 s) pop up as usual.
Further ones are recorded in history as ``MERGED`` and counted; the count is shown as a
summary error ("12 more errors from llama") at once for the first merged error, then at most
once per window while the flood lasts (:meth:`ErrorFloods.due` from the engine's tick).
So per job and window at most ``limit + 1`` error popups appear, and every error is recorded.
The summary is an error: it bypasses DND like any other.

Pure: time comes in as ``now``; no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel

__all__ = ["FLOOD_ERROR_TYPE", "FLOOD_KEY", "ErrorFloods", "summary_event"]

FLOOD_KEY: Final = "errors-merged"  # history key of the summary popups
FLOOD_ERROR_TYPE: Final = "error_flood"
_RANK: Final = {
    UrgencyLevel.LOW: 0,
    UrgencyLevel.NORMAL: 1,
    UrgencyLevel.HIGH: 2,
    UrgencyLevel.CRITICAL: 3,
}


def _urgency(value: str) -> UrgencyLevel:
    try:
        return UrgencyLevel(value)
    except ValueError:
        return UrgencyLevel.NORMAL


def summary_event(job_name: str, count: int, latest: NotificationEvent, urgency: UrgencyLevel) -> NotificationEvent:
    """The merged popup: "12 more errors from llama", naming the latest one."""
    plural = "s" if count != 1 else ""
    latest_text = latest.title if not latest.message else f"{latest.title}: {latest.message}"
    if len(latest_text) > 160:
        latest_text = latest_text[:159] + "…"
    return NotificationEvent(
        type=NotificationType.ERROR,
        title=f"{count} more error{plural} from {job_name or 'a job'}",
        message=f"Latest: {latest_text}. Every error is in the history.",
        urgency=urgency.value,
        sound=False,  # the flood already had its sounds: the first `limit` errors played one each
        actions=["View Details"],
        respect_dnd=False,
        error_type=FLOOD_ERROR_TYPE,
    )


@dataclass(slots=True)
class _Flood:
    shown: deque[float] = field(default_factory=deque)  # times of individual error popups
    pending: int = 0  # merged errors not yet in a summary
    latest: NotificationEvent | None = None
    urgency: UrgencyLevel = UrgencyLevel.LOW
    last_summary_at: float | None = None
    job_name: str = ""


class ErrorFloods:
    """Per-job error popup allowance and merged-error counts (see the module docstring).

    ``limit`` <= 0 disables merging (every error pops up).
    """

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s if math.isfinite(window_s) and window_s > 0 else 60.0
        self._jobs: dict[str, _Flood] = {}

    def _within(self, then: float, now: float) -> bool:
        return 0 <= now - then < self.window_s

    def admit(self, job_id: str, now: float) -> bool:
        """May this error of ``job_id`` pop up on its own? (Registers it when it may.)"""
        if self.limit <= 0:
            return True
        flood = self._jobs.setdefault(job_id, _Flood())
        while flood.shown and not self._within(flood.shown[0], now):
            flood.shown.popleft()
        # A clock that went backwards leaves newer times behind: start the window afresh.
        if flood.shown and not self._within(flood.shown[-1], now):
            flood.shown.clear()
        if len(flood.shown) >= self.limit:
            return False
        flood.shown.append(now)
        return True

    def merge(self, job_id: str, job_name: str, event: NotificationEvent, now: float) -> NotificationEvent | None:
        """Count a merged error; returns the summary to pop up now, or ``None`` (it is due later)."""
        flood = self._jobs.setdefault(job_id, _Flood())
        flood.pending += 1
        flood.latest = event
        flood.job_name = job_name
        level = _urgency(event.urgency)
        if _RANK[level] > _RANK[flood.urgency]:
            flood.urgency = level
        if flood.last_summary_at is not None and self._within(flood.last_summary_at, now):
            return None
        return self._summarise(flood, now)

    def due(self, now: float) -> list[tuple[str, str, NotificationEvent]]:
        """Summaries whose window has passed: ``(job_id, job_name, event)`` each."""
        out: list[tuple[str, str, NotificationEvent]] = []
        idle: list[str] = []
        for job_id, flood in self._jobs.items():
            quiet = flood.last_summary_at is None or not self._within(flood.last_summary_at, now)
            if flood.pending and quiet:
                out.append((job_id, flood.job_name, self._summarise(flood, now)))
            elif not flood.pending and quiet and not (flood.shown and self._within(flood.shown[-1], now)):
                idle.append(job_id)  # nothing left to remember: keeps memory bounded
        for job_id in idle:
            del self._jobs[job_id]
        return out

    def next_due_at(self) -> float | None:
        """When :meth:`due` next has a summary, or ``None``."""
        times = [(f.last_summary_at or 0.0) + self.window_s for f in self._jobs.values() if f.pending]
        return min(times) if times else None

    def pending(self, job_id: str) -> int:
        """Merged errors of ``job_id`` not yet counted in a summary popup."""
        flood = self._jobs.get(job_id)
        return flood.pending if flood is not None else 0

    def forget(self, job_id: str) -> None:
        """Drop ``job_id``'s state (its connection was removed)."""
        self._jobs.pop(job_id, None)

    def _summarise(self, flood: _Flood, now: float) -> NotificationEvent:
        assert flood.latest is not None
        event = summary_event(flood.job_name, flood.pending, flood.latest, flood.urgency)
        flood.pending = 0
        flood.urgency = UrgencyLevel.LOW
        flood.last_summary_at = now
        return event
