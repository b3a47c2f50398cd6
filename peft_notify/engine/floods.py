"""Error floods: errors are never dropped, but a flood becomes one updating summary popup.

One job server produced ~4,600 error popups a second, each with sound and attention
(issue 10 item 7). The gate asks :meth:`ErrorFloods.admit` before it pops up an error:
the first ``limit`` errors of a job within any ``window_s`` (60 s) pop up as usual.
Further ones are recorded in history as ``MERGED`` and counted; the count is shown as a
summary error ("12 more errors from llama") at once for the first merged error, then at most
once per window while the flood lasts (:meth:`ErrorFloods.due` from the engine's tick).
So per job and window at most ``limit + 1`` error popups appear, and every error is recorded.
The summary is an error: it bypasses DND like any other.

Across all jobs at most ``total`` error popups (errors and summaries; default ``max(4 * limit,
12)``) appear in any window: a server rotating job ids, or a NATS source with thousands of jobs,
otherwise gets ``limit + 1`` popups per id. Beyond that errors are merged too, and what is
pending is shown as one summary over several jobs ("450 more errors from 150 jobs", job id
``""``) at most once a window.

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
    last_error_at: float = 0.0
    job_name: str = ""


class ErrorFloods:
    """Per-job error popup allowance and merged-error counts (see the module docstring).

    ``limit`` <= 0 disables merging (every error pops up).
    """

    def __init__(self, limit: int, window_s: float = 60.0, total: int | None = None) -> None:
        self.limit = limit
        self.window_s = window_s if math.isfinite(window_s) and window_s > 0 else 60.0
        # Across all jobs: a server rotating job ids (or a NATS source with thousands of jobs)
        # dodged the per-job allowance — 3 errors under each of 150 ids were 450 popups.
        self.total = total if total is not None else max(4 * limit, 12)
        self._jobs: dict[str, _Flood] = {}
        self._all: deque[float] = deque()  # times of every error popup (errors and summaries), all jobs
        self._combined_at: float | None = None  # the last summary over several jobs
        self._blocked_until: float | None = None  # due() waits for the next combined summary until then

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
        self._prune_all(now)
        if len(flood.shown) >= self.limit or len(self._all) >= self.total:
            return False
        flood.shown.append(now)
        self._all.append(now)
        return True

    def _prune_all(self, now: float) -> None:
        while self._all and not self._within(self._all[0], now):
            self._all.popleft()
        if self._all and not self._within(self._all[-1], now):  # the clock went backwards
            self._all.clear()

    def merge(self, job_id: str, job_name: str, event: NotificationEvent, now: float) -> NotificationEvent | None:
        """Count a merged error; returns the summary to pop up now, or ``None`` (it is due later)."""
        flood = self._jobs.setdefault(job_id, _Flood())
        flood.pending += 1
        flood.latest = event
        flood.last_error_at = now
        flood.job_name = job_name
        level = _urgency(event.urgency)
        if _RANK[level] > _RANK[flood.urgency]:
            flood.urgency = level
        if flood.last_summary_at is not None and self._within(flood.last_summary_at, now):
            return None
        self._prune_all(now)
        if len(self._all) >= self.total:
            return None  # every job's popups used the minute's allowance: due() sums them up
        self._all.append(now)
        return self._summarise(flood, now)

    def due(self, now: float) -> list[tuple[str, str, NotificationEvent]]:
        """Summaries whose window has passed: ``(job_id, job_name, event)`` each."""
        out: list[tuple[str, str, NotificationEvent]] = []
        idle: list[str] = []
        ready: list[tuple[str, _Flood]] = []
        for job_id, flood in self._jobs.items():
            quiet = flood.last_summary_at is None or not self._within(flood.last_summary_at, now)
            if flood.pending and quiet:
                ready.append((job_id, flood))
            elif not flood.pending and quiet and not (flood.shown and self._within(flood.shown[-1], now)):
                idle.append(job_id)  # nothing left to remember: keeps memory bounded
        for job_id in idle:
            del self._jobs[job_id]
        self._prune_all(now)
        self._blocked_until = None
        if len(ready) <= self.total - len(self._all):
            for job_id, flood in ready:
                self._all.append(now)
                out.append((job_id, flood.job_name, self._summarise(flood, now)))
        elif self._combined_at is None or not self._within(self._combined_at, now):
            out.append(("", "", self._combine(ready, now)))
        else:  # one summary over all jobs a minute at most: the rest waits for the next
            self._blocked_until = self._combined_at + self.window_s
        return out

    def _combine(self, ready: list[tuple[str, _Flood]], now: float) -> NotificationEvent:
        """One summary over several jobs' merged errors ("450 more errors from 150 jobs")."""
        count = sum(flood.pending for _, flood in ready)
        latest = max(ready, key=lambda item: item[1].last_error_at)[1].latest
        urgency = max((flood.urgency for _, flood in ready), key=lambda level: _RANK[level])
        assert latest is not None
        for _, flood in ready:
            flood.pending = 0
            flood.urgency = UrgencyLevel.LOW
            flood.last_summary_at = now
        self._combined_at = now
        self._all.append(now)
        return summary_event(f"{len(ready)} jobs", count, latest, urgency)

    def next_due_at(self) -> float | None:
        """When :meth:`due` next has a summary, or ``None``."""
        times = [(f.last_summary_at or 0.0) + self.window_s for f in self._jobs.values() if f.pending]
        if not times:
            return None
        return max(min(times), self._blocked_until) if self._blocked_until is not None else min(times)

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
