"""Per-job state: identity, progress, the current run's fired notifications, ETA and stall data.

:class:`Job` is the engine's private, mutable record; :class:`JobView` is the
frozen snapshot it hands out (``Engine.job`` / ``Engine.jobs``).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from peft_notify.engine.limits import TokenBucket
from peft_notify.engine.taskbar import Contribution, taskbar_fraction
from peft_notify.ports import TaskbarState
from peft_notify.wire import JobState

__all__ = ["Job", "JobView", "StepRate"]

EWMA_ALPHA: Final = 0.3  # weight of the newest rate sample
MAX_INTERVALS: Final = 64  # step intervals kept for the stall median


@dataclass(frozen=True, slots=True)
class JobView:
    """A read-only snapshot of one job, for the UI and ``peft-notify watch``."""

    job_id: str
    name: str
    run_id: str
    host: str
    pid: int | None
    state: JobState
    current_step: int
    total_steps: int | None
    fraction: float | None
    eta_s: float | None
    loss: float | None
    capabilities: tuple[str, ...]
    last_seq: int | None
    stalled: bool
    started_at: float | None
    last_progress_at: float | None
    errors: int


class StepRate:
    """Smoothed (EWMA) step rate and the recent intervals between progress messages.

    Call :meth:`observe` with each progress step and its timestamp. Timestamps
    that go backwards or repeat (a replayed burst) add no sample. The intervals are also
    kept sorted, so the median (asked for on every timer pass) is a lookup, not a sort.
    """

    def __init__(self) -> None:
        self.rate: float | None = None  # steps per second, smoothed
        self.intervals: deque[float] = deque(maxlen=MAX_INTERVALS)
        self._sorted: list[float] = []  # the same intervals, ascending
        self._last: tuple[int, float] | None = None

    def observe(self, step: int, ts: float) -> None:
        if self._last is None or step < self._last[0]:
            self._last = (step, ts)
            return
        last_step, last_ts = self._last
        steps, elapsed = step - last_step, ts - last_ts
        if steps <= 0 or not elapsed > 0:  # (not > 0: a NaN would break the sorted intervals)
            return
        sample = steps / elapsed
        self.rate = sample if self.rate is None else EWMA_ALPHA * sample + (1 - EWMA_ALPHA) * self.rate
        if len(self.intervals) == MAX_INTERVALS:
            del self._sorted[bisect.bisect_left(self._sorted, self.intervals[0])]
        self.intervals.append(elapsed)
        bisect.insort(self._sorted, elapsed)
        self._last = (step, ts)

    def median_interval(self) -> float | None:
        """Median seconds between two advancing progress messages, or ``None`` before two."""
        values, n = self._sorted, len(self._sorted)
        if n == 0:
            return None
        half = n // 2
        return values[half] if n % 2 else (values[half - 1] + values[half]) / 2

    def eta(self, step: int, total: int | None) -> float | None:
        """Seconds left at the smoothed rate, or ``None`` when unknown."""
        if total is None or self.rate is None or self.rate <= 0:
            return None
        eta = max(0.0, (total - step) / self.rate)
        return eta if math.isfinite(eta) else None


@dataclass
class Job:
    """The engine's mutable record of one job (one connection's ``job_id``)."""

    job_id: str
    bucket: TokenBucket
    name: str = ""
    run_id: str = ""
    host: str = ""
    pid: int | None = None
    state: JobState = JobState.RUNNING
    current_step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    capabilities: tuple[str, ...] = ()
    last_seq: int | None = None
    started_at: float | None = None
    last_progress_at: float | None = None
    errors: int = 0
    stalled: bool = False
    # Per run (reset by new_run):
    baselined: bool = False  # the first step of this run has been seen
    milestones_done: set[int] = field(default_factory=set)
    completion_done: bool = False
    error_sent: bool = False  # an error was notified in this run (status failed adds none then)
    error_flag: bool = False  # taskbar shows ERROR until progress resumes
    failure_seen: bool = False  # acknowledged: a failed job leaves the taskbar
    rate: StepRate = field(default_factory=StepRate)

    @property
    def display_name(self) -> str:
        return self.name or self.job_id

    @property
    def fraction(self) -> float | None:
        if self.total_steps is None:
            return None
        return taskbar_fraction(self.current_step, self.total_steps)

    @property
    def milestone_ref(self) -> str:
        """The run part of milestone/completion keys (the job id for legacy jobs without a run)."""
        return self.run_id or self.job_id

    def new_run(self, run_id: str) -> None:
        """Forget everything fired for the previous run (issue rule 1: a new run_id resets)."""
        self.run_id = run_id
        self.current_step = 0
        self.loss = None
        self.last_progress_at = None
        self.stalled = False
        self.baselined = False
        self.milestones_done = set()
        self.completion_done = False
        self.error_sent = False
        self.error_flag = False
        self.failure_seen = False
        self.rate = StepRate()

    def stall_after(self, minimum_s: float, factor: float) -> float:
        """Seconds without progress after which the job counts as stalled."""
        median = self.rate.median_interval()
        return minimum_s if median is None else max(minimum_s, factor * median)

    def contribution(self) -> Contribution | None:
        """This job's part of the taskbar indicator, or ``None`` when it shows nothing."""
        if self.state is JobState.FAILED:
            return None if self.failure_seen else Contribution(self.fraction, TaskbarState.ERROR)
        if self.state.finished:
            return None
        if self.error_flag:
            return Contribution(self.fraction, TaskbarState.ERROR)
        if self.state is JobState.PAUSED:
            return Contribution(self.fraction, TaskbarState.PAUSED)
        return Contribution(self.fraction, TaskbarState.NORMAL)

    def view(self) -> JobView:
        return JobView(
            job_id=self.job_id,
            name=self.display_name,
            run_id=self.run_id,
            host=self.host,
            pid=self.pid,
            state=self.state,
            current_step=self.current_step,
            total_steps=self.total_steps,
            fraction=self.fraction,
            eta_s=self.rate.eta(self.current_step, self.total_steps),
            loss=self.loss,
            capabilities=self.capabilities,
            last_seq=self.last_seq,
            stalled=self.stalled,
            started_at=self.started_at,
            last_progress_at=self.last_progress_at,
            errors=self.errors,
        )
