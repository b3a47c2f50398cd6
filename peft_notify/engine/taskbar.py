"""Taskbar progress: one aggregate over the running jobs, coalesced (issue rule 5).

:func:`aggregate` turns the jobs' contributions into the one indicator the
taskbar/dock can show; :class:`Coalescer` limits value updates to
``taskbar_max_hz`` and always delivers the latest value (trailing edge): the
engine's ``tick`` calls :meth:`Coalescer.tick` at :meth:`Coalescer.due_at`.
State changes (error, paused, removal, job count) are never delayed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from peft_notify.engine.actions import Action, ClearTaskbar, SetTaskbar
from peft_notify.ports import TaskbarState

__all__ = ["ACTIVE_MAX", "Coalescer", "Contribution", "Indicator", "aggregate", "taskbar_fraction"]

ACTIVE_MAX: Final = 0.99  # 0.0-0.99 is "active"; 1.0 means complete (seed semantics)

Indicator: TypeAlias = SetTaskbar | ClearTaskbar


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

    def due_at(self) -> float | None:
        """When a held-back value may be shown, or ``None`` when nothing is held."""
        if self._pending is None:
            return None
        return self._shown_at + self.interval_s

    def tick(self, now: float) -> list[Action]:
        """Deliver the held-back value if its time has come."""
        if self._pending is None or not self._elapsed(now):
            return []
        return self._emit(self._pending, now)

    def _urgent(self, target: Indicator) -> bool:
        shown = self._shown
        if isinstance(target, ClearTaskbar) or isinstance(shown, ClearTaskbar):
            return True
        return target.state is not shown.state or target.jobs != shown.jobs

    def _elapsed(self, now: float) -> bool:
        # Same expression as due_at(), so a tick at exactly due_at() always delivers.
        return now < self._shown_at or now >= self._shown_at + self.interval_s

    def _emit(self, target: Indicator, now: float) -> list[Action]:
        self._shown = target
        self._shown_at = now
        self._pending = None
        return [target]
