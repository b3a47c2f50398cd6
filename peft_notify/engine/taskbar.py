"""Taskbar progress: one aggregate over the running jobs, coalesced (issue rule 5).

:func:`aggregate` turns the jobs' contributions into the one indicator the
taskbar/dock can show; :class:`Coalescer` limits value updates to
``taskbar_max_hz`` and always delivers the latest value (trailing edge): the
engine's ``tick`` calls :meth:`Coalescer.tick` at :meth:`Coalescer.due_at`.
State changes (error, paused, removal, job count) are never delayed.

Aggregating is O(jobs), so the engine does not do it per message: :class:`Tally` keeps
the indicator's state and job count up to date in O(1), and :meth:`Coalescer.offer_lazy`
aggregates only when that state changed or an update may be shown (at most once per
interval otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from peft_notify.engine.actions import Action, ClearTaskbar, SetTaskbar
from peft_notify.ports import TaskbarState

__all__ = ["ACTIVE_MAX", "Coalescer", "Contribution", "Head", "Indicator", "Tally", "aggregate", "taskbar_fraction"]

ACTIVE_MAX: Final = 0.99  # 0.0-0.99 is "active"; 1.0 means complete (seed semantics)

Indicator: TypeAlias = SetTaskbar | ClearTaskbar
Head: TypeAlias = tuple[TaskbarState, int] | None  # an indicator's (state, jobs); None: ClearTaskbar


def taskbar_fraction(current_step: int, total_steps: int | None) -> float:
    """The seed's ``calculate_taskbar_progress``: ``current/total`` clamped to [0, 1]; 0 when total <= 0."""
    if total_steps is None or total_steps <= 0:
        return 0.0
    return max(0.0, min(1.0, current_step / total_steps))


@dataclass(frozen=True, slots=True)
class Contribution:
    """One job's part of the indicator: its fraction (None: unknown total) and state."""

    fraction: float | None
    state: TaskbarState


def aggregate(parts: Sequence[Contribution]) -> Indicator:
    """The indicator for ``parts``: mean fraction of the jobs with a known total, plus a count.

    No parts → ``ClearTaskbar`` (the seed's -1). Any job in error → ERROR; all
    paused → PAUSED; no job with a known total → INDETERMINATE; else NORMAL.
    Active values stay within [0, 0.99].
    """
    if not parts:
        return ClearTaskbar()
    known = [p.fraction for p in parts if p.fraction is not None]
    value = sum(known) / len(known) if known else 0.0
    value = max(0.0, min(ACTIVE_MAX, value))
    if any(p.state is TaskbarState.ERROR for p in parts):
        state = TaskbarState.ERROR
    elif all(p.state is TaskbarState.PAUSED for p in parts):
        state = TaskbarState.PAUSED
    elif not known:
        state = TaskbarState.INDETERMINATE
    else:
        state = TaskbarState.NORMAL
    return SetTaskbar(value=round(value, 4), state=state, jobs=len(parts))


class Tally:
    """The jobs' contributions by job id, with the indicator's :data:`Head` kept in O(1).

    Call :meth:`put` whenever a job's contribution may have changed (``None``: the job shows
    nothing, or is gone); :meth:`indicator` aggregates them all (O(jobs)).
    """

    def __init__(self) -> None:
        self._parts: dict[str, Contribution] = {}
        self._errors = 0
        self._paused = 0
        self._known = 0

    def put(self, job_id: str, part: Contribution | None) -> bool:
        """Record ``job_id``'s contribution; True when it changed."""
        old = self._parts.get(job_id)
        if old == part:
            return False
        if old is not None:
            self._count(old, -1)
            del self._parts[job_id]
        if part is not None:
            self._parts[job_id] = part
            self._count(part, 1)
        return True

    @property
    def head(self) -> Head:
        """What :func:`aggregate` would say about state and job count, without aggregating."""
        jobs = len(self._parts)
        if not jobs:
            return None
        if self._errors:
            return TaskbarState.ERROR, jobs
        if self._paused == jobs:
            return TaskbarState.PAUSED, jobs
        return (TaskbarState.NORMAL if self._known else TaskbarState.INDETERMINATE), jobs

    def indicator(self, order: Iterable[str]) -> Indicator:
        """:func:`aggregate` over the contributions, taken in ``order`` (job ids)."""
        parts = self._parts
        return aggregate([part for job_id in order if (part := parts.get(job_id)) is not None])

    def _count(self, part: Contribution, sign: int) -> None:
        self._errors += sign * (part.state is TaskbarState.ERROR)
        self._paused += sign * (part.state is TaskbarState.PAUSED)
        self._known += sign * (part.fraction is not None)


class Coalescer:
    """Rate-limits indicator updates to one per ``interval_s``, trailing edge included.

    Call :meth:`offer` with each new indicator; call :meth:`tick` at
    :meth:`due_at` to deliver a held-back value.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._shown: Indicator = ClearTaskbar()
        self._shown_at = -math.inf  # nothing shown yet: the first value goes out at once
        self._pending: Indicator | None = None
        self._stale = False  # offer_lazy: the target changed since the last build
        self._built_at = -math.inf  # offer_lazy: when the target was last built

    @property
    def shown(self) -> Indicator:
        """What the taskbar shows after the actions emitted so far."""
        return self._shown

    def offer(self, target: Indicator, now: float) -> list[Action]:
        """Show ``target`` now if allowed, else hold it for :meth:`tick`."""
        if target == self._shown:
            self._pending = None
            return []
        if self._urgent(target) or self._elapsed(now):
            return self._emit(target, now)
        self._pending = target
        return []

    def offer_lazy(self, head: Head, changed: bool, build: Callable[[], Indicator], now: float) -> list[Action]:
        """Like ``offer(build())``, calling ``build`` only when its result may be shown now.

        ``head`` is the target's (state, jobs) and ``changed`` whether the target may
        differ from the last one offered. ``build`` runs at once when ``head`` differs
        from what is shown (never delayed), else at most once per interval; a change
        held back is built by :meth:`tick` (pass it the same ``build``).
        """
        self._stale = self._stale or changed
        if self._urgent_head(head) or (self._stale and self._may_build(now)):
            return self._build(build, now)
        return []

    def due_at(self) -> float | None:
        """When a held-back value may be shown, or ``None`` when nothing is held."""
        if self._stale:
            return self._built_at + self.interval_s
        if self._pending is None:
            return None
        return self._shown_at + self.interval_s

    def tick(self, now: float, build: Callable[[], Indicator] | None = None) -> list[Action]:
        """Deliver the held-back value if its time has come (``build``: as given to :meth:`offer_lazy`)."""
        if self._stale and build is not None and self._may_build(now):
            return self._build(build, now)
        if self._pending is None or not self._elapsed(now):
            return []
        return self._emit(self._pending, now)

    def _urgent(self, target: Indicator) -> bool:
        shown = self._shown
        if isinstance(target, ClearTaskbar) or isinstance(shown, ClearTaskbar):
            return True
        return target.state is not shown.state or target.jobs != shown.jobs

    def _urgent_head(self, head: Head) -> bool:
        shown = self._shown
        if head is None or isinstance(shown, ClearTaskbar):
            return (head is None) is not isinstance(shown, ClearTaskbar)
        return head != (shown.state, shown.jobs)

    def _may_build(self, now: float) -> bool:
        # Same expression as due_at(), so a tick at exactly due_at() always builds.
        return now < self._built_at or now >= self._built_at + self.interval_s

    def _build(self, build: Callable[[], Indicator], now: float) -> list[Action]:
        self._stale = False
        self._built_at = now
        return self.offer(build(), now)

    def _elapsed(self, now: float) -> bool:
        # Same expression as due_at(), so a tick at exactly due_at() always delivers.
        return now < self._shown_at or now >= self._shown_at + self.interval_s

    def _emit(self, target: Indicator, now: float) -> list[Action]:
        self._shown = target
        self._shown_at = now
        self._pending = None
        return [target]
