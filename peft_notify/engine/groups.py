"""Groups of jobs (sweeps): counts, the best trial so far, the group's ETA, and its one summary.

:class:`Groups` is the engine's record of every group a job announced in its ``hello``
(``hello.group``, docs/sweeps.md). The engine calls :meth:`Groups.join` on a hello,
:meth:`Groups.observe` on progress, :meth:`Groups.settle` after every message of a
grouped job, and :meth:`Groups.due` from its tick. A group *ends* when

* ``expected_jobs`` of its jobs have ended, or
* its ``sweep`` member (the driver: the Ray Tune / Optuna integrations serve one) has ended
  and no trial runs, or
* it has no running ``sweep`` member, every job it knows has ended and none has started for
  ``grace_s`` seconds (the *grace period*: a sweep launcher starts the next trial a moment
  after the last one ended), or
* the caller says no more jobs can come (:meth:`Groups.close_all`, e.g. ``watch`` exiting).

Then exactly one summary is due ("sweep X: all 40 finished — 37 ok, 3 failed; best
eval_loss 0.41 (lr=2e-4, r=16)"). A job that joins a group after it ended opens a new
round of it (new counts). A group whose jobs had all ended when first seen, all within
``LIVE_GAP_S`` of each other (the desktop started after the sweep), gets its summary
recorded, not shown (rule 1: never fire retroactively). Pure: time comes in as ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from peft_notify.wire import (
    Group,
    GroupMode,
    GroupRole,
    JobState,
    NotificationEvent,
    NotificationType,
    Progress,
    UrgencyLevel,
)

__all__ = [
    "ALL_JOBS_KEY",
    "DEFAULT_GRACE_S",
    "AllJobsWatch",
    "GroupSummary",
    "GroupView",
    "Groups",
    "Outcome",
    "format_number",
]

DEFAULT_GRACE_S: Final = 120.0
MAX_PARAMS_SHOWN: Final = 4
PRUNED_PREFIX: Final = "pruned"  # a ``cancelled`` status whose reason starts so counts as pruned
ALL_JOBS_KEY: Final = "group:*"  # the "all running jobs" watch's notification ('*' is in no group id)
MAX_ENDED_GROUPS: Final = 256  # ended groups kept for their cards; older ones are dropped
LIVE_GAP_S: Final = 1.0  # a trial first seen this long after its group: the sweep moved on while we watched


class Outcome(Enum):
    """Where one trial of a group is."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    PRUNED = "pruned"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class _Trial:
    job_id: str
    name: str
    params: Mapping[str, object]
    outcome: Outcome = Outcome.RUNNING
    started_at: float = 0.0
    ended_at: float | None = None
    value: float | None = None  # the group's metric, last reported
    metric: str | None = None  # the metric's name as found ("eval_loss" or "loss" by default)


@dataclass(slots=True)
class _Group:
    group_id: str
    name: str
    expected: int | None
    metric: str | None
    mode: GroupMode
    trials: dict[str, _Trial] = field(default_factory=dict)
    seen_eval: bool = False  # without a named metric: eval_loss once any trial reported it, else loss
    round: int = 1
    live: bool = False  # some job was seen running, or joined while we watched: the end is news
    first_seen_at: float = 0.0
    ended: bool = False
    quiet_since: float | None = None  # when the last running job ended
    sweep_job: str | None = None  # the member with role "sweep" (the sweep's driver), if any
    sweep_running: bool = False
    sweep_count: int = 0  # trials ended, as the driver's progress says (its current_step)


@dataclass(frozen=True, slots=True)
class GroupView:
    """A read-only snapshot of one group for the UI and ``watch``."""

    group_id: str
    name: str
    round: int
    total: int  # max(expected_jobs, jobs seen)
    expected: int | None
    running: int
    done: int
    failed: int
    pruned: int
    cancelled: int
    best_value: float | None
    best_metric: str | None
    best_params: Mapping[str, object]
    best_job_id: str | None
    eta_s: float | None
    ended: bool
    job_ids: tuple[str, ...]
    sweep_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """The one notification of a group's end. ``live``: show it (else only record it)."""

    group_id: str
    round: int
    event: NotificationEvent
    live: bool

    @property
    def key(self) -> str:
        return f"group:{self.group_id}:{self.round}"


def format_number(value: object) -> str:
    """Short, stable text for a metric or a parameter: ``2e-4``, ``0.41``, ``16``, ``adamw``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        mantissa, exponent = f"{value:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.4g}"


class Groups:
    """Every group's state; see the module docstring."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = max(0.0, grace_s) if math.isfinite(grace_s) else DEFAULT_GRACE_S
        self._groups: dict[str, _Group] = {}
        self._member: dict[str, str] = {}  # job id -> group id

    # ------------------------------------------------------------------ inputs

    def join(self, job_id: str, group: Group, *, name: str, state: JobState, new_run: bool, now: float) -> None:
        """A hello of ``job_id`` naming ``group``; ``new_run``: a new run of the job (a retry re-opens it)."""
        previous = self._member.get(job_id)
        if previous is not None and previous != group.id:
            self._leave(job_id)  # a job that changes group leaves the old one entirely
        g = self._groups.get(group.id)
        if g is None:
            g = self._groups[group.id] = _Group(group.id, group.name, group.expected_jobs, group.metric, group.mode)
            g.first_seen_at = now
        g.name = group.name or g.name
        g.expected = group.expected_jobs or g.expected
        g.metric, g.mode = group.metric or g.metric, group.mode
        self._member[job_id] = group.id
        if group.role is GroupRole.SWEEP:
            self._join_sweep(g, job_id, state, now)
            return
        trial = g.trials.get(job_id)
        if trial is not None and not new_run:
            trial.name, trial.params = name, dict(group.params)
            return
        if g.ended:  # a job after the summary: a new round of the same group
            g.trials.clear()
            g.sweep_job = g.sweep_job if g.sweep_running else None
            g.round += 1
            g.ended, g.live, g.quiet_since, g.first_seen_at = False, False, None, now
        trial = g.trials[job_id] = _Trial(job_id, name, dict(group.params), started_at=now)
        trial.outcome = _outcome(state, None)
        # Trials reported only when they end (Optuna) are news when they come one after another;
        # a desktop started after the sweep finds them all at once (rule 1: no retroactive popup).
        g.live = g.live or now - g.first_seen_at >= LIVE_GAP_S
        if trial.outcome is Outcome.RUNNING:
            g.live, g.quiet_since = True, None
        else:
            trial.ended_at = now
            self._maybe_quiet(g, now)

    def observe(self, job_id: str, progress: Progress) -> None:
        """A progress report of ``job_id``: keep the group's metric (the last value reported)."""
        trial, g = self._trial(job_id)
        if g is not None and job_id == g.sweep_job:
            g.sweep_count = max(g.sweep_count, progress.current_step)
            return
        if trial is None or g is None:
            return
        g.seen_eval = g.seen_eval or "eval_loss" in progress.metrics
        found = _metric(progress, _effective_metric(g))
        if found is not None:
            trial.metric, trial.value = found

    def settle(self, job_id: str, state: JobState, *, reason: str | None, now: float) -> GroupSummary | None:
        """The job's state after a message; a trial that just ended may end its group (summary due)."""
        trial, g = self._trial(job_id)
        if g is not None and not g.ended and job_id == g.sweep_job:
            g.sweep_running = not state.finished
            if self._sweep_done(g):
                return self._end(g)
            if not g.sweep_running:
                self._maybe_quiet(g, now)  # trials it counted but we never saw: the grace period ends it
            return None
        if trial is None or g is None or g.ended:
            return None
        outcome = _outcome(state, reason)
        if outcome is Outcome.RUNNING:
            if trial.outcome is not Outcome.RUNNING:  # e.g. a reconnect said running again
                trial.outcome, trial.ended_at = outcome, None
                g.live, g.quiet_since = True, None
            return None
        if outcome is not trial.outcome:
            if trial.outcome is Outcome.RUNNING:
                trial.ended_at = now
            trial.outcome = outcome
            self._maybe_quiet(g, now)
        # Also for a trial first seen ended (its hello): it may be the last one expected.
        if (g.expected is not None and self._ended_count(g) >= g.expected) or self._sweep_done(g):
            return self._end(g)
        return None

    def due(self, now: float) -> list[GroupSummary]:
        """Summaries of groups whose grace period has passed (call from the engine's tick)."""
        return [
            self._end(g)
            for g in list(self._groups.values())
            if not g.ended and g.quiet_since is not None and now >= g.quiet_since + self.grace_s
        ]

    def next_due_at(self) -> float | None:
        times = [g.quiet_since + self.grace_s for g in self._groups.values() if not g.ended and g.quiet_since]
        return min(times) if times else None

    def close_all(self) -> list[GroupSummary]:
        """No more jobs will come (the watcher is ending): end every group with no running job."""
        return [self._end(g) for g in list(self._groups.values()) if not g.ended and g.quiet_since is not None]

    def _leave(self, job_id: str) -> None:
        gid = self._member.pop(job_id, None)
        g = self._groups.get(gid) if gid is not None else None
        if g is None:
            return
        g.trials.pop(job_id, None)
        if g.sweep_job == job_id:
            g.sweep_job, g.sweep_running = None, False
        if not g.trials and g.sweep_job is None:
            del self._groups[g.group_id]

    def forget(self, job_id: str) -> None:
        """``job_id`` is no longer followed: a running trial of it leaves its group; an ended one stays counted."""
        gid = self._member.pop(job_id, None)
        g = self._groups.get(gid) if gid is not None else None
        if g is None:
            return
        if job_id == g.sweep_job:
            g.sweep_job, g.sweep_running = None, False
            self._maybe_quiet(g, g.first_seen_at)
        trial = g.trials.get(job_id)
        if trial is not None and trial.outcome is Outcome.RUNNING:
            del g.trials[job_id]
        if not g.trials and g.sweep_job is None:
            del self._groups[g.group_id]

    # ------------------------------------------------------------------ queries

    def group_of(self, job_id: str) -> str | None:
        return self._member.get(job_id)

    def views(self, eta_of: Callable[[str], float | None] = lambda _job_id: None) -> list[GroupView]:
        """Snapshots of every group (``eta_of``: a running trial's own ETA, from the engine)."""
        return [self._view(g, eta_of) for g in self._groups.values()]

    def view(self, group_id: str, eta_of: Callable[[str], float | None] = lambda _job_id: None) -> GroupView | None:
        g = self._groups.get(group_id)
        return None if g is None else self._view(g, eta_of)

    # ------------------------------------------------------------------ internals

    def _trial(self, job_id: str) -> tuple[_Trial | None, _Group | None]:
        gid = self._member.get(job_id)
        g = self._groups.get(gid) if gid is not None else None
        return (g.trials.get(job_id) if g is not None else None), g

    @staticmethod
    def _ended_count(g: _Group) -> int:
        return sum(t.outcome is not Outcome.RUNNING for t in g.trials.values())

    @staticmethod
    def _maybe_quiet(g: _Group, now: float) -> None:
        # A running sweep driver will start more trials: its group is not quiet.
        if not g.sweep_running and all(t.outcome is not Outcome.RUNNING for t in g.trials.values()):
            g.quiet_since = now if g.quiet_since is None else g.quiet_since

    def _join_sweep(self, g: _Group, job_id: str, state: JobState, now: float) -> None:
        if g.ended and g.sweep_job != job_id:  # a new driver after the summary: a new round
            g.trials.clear()
            g.round += 1
            g.ended, g.live, g.first_seen_at = False, False, now
        g.sweep_job, g.sweep_running = job_id, not state.finished
        if g.sweep_running:
            g.live, g.quiet_since = True, None
        else:
            self._maybe_quiet(g, now)

    @classmethod
    def _sweep_done(cls, g: _Group) -> bool:
        """The sweep's driver has ended, no trial runs, and we saw every trial it says ended."""
        running = any(t.outcome is Outcome.RUNNING for t in g.trials.values())
        seen_all = cls._ended_count(g) >= g.sweep_count
        return g.sweep_job is not None and not g.sweep_running and not running and seen_all

    def _end(self, g: _Group) -> GroupSummary:
        g.ended = True
        g.quiet_since = None
        ended = [x for x in self._groups.values() if x.ended and x is not g]
        for old in ended[: max(0, len(ended) + 1 - MAX_ENDED_GROUPS)]:  # bounded, oldest first
            del self._groups[old.group_id]
            for job_id in [*old.trials, *([old.sweep_job] if old.sweep_job else [])]:
                if self._member.get(job_id) == old.group_id:
                    del self._member[job_id]
        return GroupSummary(g.group_id, g.round, summary_event(self._view(g, lambda _j: None)), live=g.live)

    def _view(self, g: _Group, eta_of: Callable[[str], float | None]) -> GroupView:
        counts = dict.fromkeys(Outcome, 0)
        for t in g.trials.values():
            counts[t.outcome] += 1
        best = _best(g)
        return GroupView(
            group_id=g.group_id,
            name=g.name,
            round=g.round,
            total=max(g.expected or 0, len(g.trials)),
            expected=g.expected,
            running=counts[Outcome.RUNNING],
            done=counts[Outcome.OK],
            failed=counts[Outcome.FAILED],
            pruned=counts[Outcome.PRUNED],
            cancelled=counts[Outcome.CANCELLED],
            best_value=None if best is None else best.value,
            best_metric=None if best is None else best.metric,
            best_params={} if best is None else dict(best.params),
            best_job_id=None if best is None else best.job_id,
            eta_s=None if g.ended else _eta(g, eta_of),
            ended=g.ended,
            job_ids=tuple(g.trials),
            sweep_job_id=g.sweep_job,
        )


def _outcome(state: JobState, reason: str | None) -> Outcome:
    if state is JobState.COMPLETED:
        return Outcome.OK
    if state is JobState.FAILED:
        return Outcome.FAILED
    if state is JobState.CANCELLED:
        pruned = reason is not None and reason.strip().lower().startswith(PRUNED_PREFIX)
        return Outcome.PRUNED if pruned else Outcome.CANCELLED
    return Outcome.RUNNING


def _effective_metric(g: _Group) -> str:
    """The metric that ranks ``g``'s trials: the named one, else ``eval_loss`` once seen, else ``loss``."""
    return g.metric or ("eval_loss" if g.seen_eval else "loss")


def _metric(progress: Progress, metric: str) -> tuple[str, float] | None:
    """``metric`` in ``progress`` (``loss`` is the progress's own loss unless a metric has that name)."""
    value = progress.metrics.get(metric)
    if value is None and metric == "loss":
        value = progress.loss
    return None if value is None else (metric, value)


def _trials_with_value(g: _Group) -> Iterator[_Trial]:
    # Failed trials may have reported a value before dying; the best is among those that finished.
    metric = _effective_metric(g)
    for t in g.trials.values():
        if t.value is not None and t.metric == metric and t.outcome in (Outcome.OK, Outcome.RUNNING):
            yield t


def _best(g: _Group) -> _Trial | None:
    candidates = list(_trials_with_value(g))
    if not candidates:
        return None
    sign = 1.0 if g.mode is GroupMode.MIN else -1.0
    return min(candidates, key=lambda t: sign * (t.value or 0.0))


def _eta(g: _Group, eta_of: Callable[[str], float | None]) -> float | None:
    """Seconds until the group ends: the longest running trial, plus rounds of the trials not started yet.

    A round lasts the mean duration of the trials that ended ok; as many trials run at once as
    run now (at least one). ``None`` when unknown.
    """
    running = [t for t in g.trials.values() if t.outcome is Outcome.RUNNING]
    etas = [eta_of(t.job_id) for t in running]
    if any(e is None for e in etas):
        return None
    longest = max((e for e in etas if e is not None), default=0.0)
    waiting = 0 if g.expected is None else max(0, g.expected - len(g.trials))
    if waiting == 0:
        return longest if running else None
    durations = [t.ended_at - t.started_at for t in g.trials.values() if t.outcome is Outcome.OK and t.ended_at]
    if not durations:
        return None
    rounds = math.ceil(waiting / max(1, len(running)))
    return longest + rounds * (sum(durations) / len(durations))


def summary_event(view: GroupView) -> NotificationEvent:
    """The group's one notification: "sweep X: all 40 finished" — "37 ok, 3 failed; best eval_loss 0.41 (lr=2e-4)"."""
    ended = view.done + view.failed + view.pruned + view.cancelled
    if view.expected is not None and ended < view.expected:
        title = f"{view.name}: {ended} of {view.expected} finished"
    else:
        title = f"{view.name}: all {ended} finished"
    parts = [f"{view.done} ok"]
    others = ((view.failed, "failed"), (view.pruned, "pruned"), (view.cancelled, "cancelled"))
    parts += [f"{n} {word}" for n, word in others if n]
    message = ", ".join(parts)
    if view.best_value is not None:
        message += f"; best {view.best_metric} {format_number(view.best_value)}"
        shown = list(view.best_params.items())[:MAX_PARAMS_SHOWN]
        if shown:
            message += " (" + ", ".join(f"{k}={format_number(v)}" for k, v in shown) + ")"
    return NotificationEvent(
        type=NotificationType.COMPLETION,
        title=title,
        message=message,
        urgency=UrgencyLevel.NORMAL,
        sound=True,
        respect_dnd=True,
    )


class AllJobsWatch:
    """The tray's "tell me when all running jobs have finished": an ad-hoc group of the jobs running now.

    :meth:`arm` with the ids of the running jobs; :meth:`check` after every change returns the
    one notification when each of them has ended (or is no longer followed), then disarms.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] | None = None  # None: not armed

    @property
    def armed(self) -> bool:
        return self.jobs is not None

    def arm(self, running: list[str]) -> None:
        self.jobs = dict.fromkeys(running, JobState.RUNNING)

    def disarm(self) -> None:
        self.jobs = None

    def check(self, state_of: Callable[[str], JobState | None]) -> NotificationEvent | None:
        """``state_of``: a job's state now (``None``: forgotten). The event when all have ended."""
        if self.jobs is None:
            return None
        for job_id in self.jobs:
            state = state_of(job_id)
            self.jobs[job_id] = JobState.CANCELLED if state is None else state
        if not all(state.finished for state in self.jobs.values()):
            return None
        states = list(self.jobs.values())
        self.jobs = None
        counts = [(states.count(s), word) for s, word in ((JobState.COMPLETED, "ok"), (JobState.FAILED, "failed"))]
        stopped = len(states) - counts[0][0] - counts[1][0]
        parts = [f"{n} {word}" for n, word in counts if n or word == "ok"]
        if stopped:
            parts.append(f"{stopped} cancelled")
        noun = "job" if len(states) == 1 else "jobs"
        return NotificationEvent(
            type=NotificationType.COMPLETION,
            title=f"All {len(states)} running {noun} finished" if len(states) > 1 else "The running job finished",
            message=", ".join(parts),
            urgency=UrgencyLevel.NORMAL,
            sound=True,
            respect_dnd=True,
        )
