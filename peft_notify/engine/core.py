"""The Sans-I/O notification engine: messages and time in, actions out.

One :class:`Engine` watches many jobs. The I/O layers feed it every decoded
envelope (:meth:`Engine.feed`), call :meth:`Engine.tick` at
:meth:`Engine.next_tick_at`, and perform the returned actions in order. The
engine never reads a clock, never does I/O and never raises on a decoded
envelope; time always comes in as ``now``.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Iterable
from typing import Final

from peft_notify.engine.actions import Action, Record
from peft_notify.engine.config import EngineConfig, Templates
from peft_notify.engine.dnd import SUMMARY_KEY, QuietPeriods
from peft_notify.engine.gate import Gate
from peft_notify.engine.groups import ALL_JOBS_KEY, AllJobsWatch, Groups, GroupSummary, GroupView
from peft_notify.engine.job import Job, JobView
from peft_notify.engine.limits import TokenBucket
from peft_notify.engine.milestones import reached
from peft_notify.engine.notices import stall_event
from peft_notify.engine.resources import JobFacts, Level, ResourceRules, ResourceView
from peft_notify.engine.rules import Rules
from peft_notify.engine.taskbar import Coalescer, Indicator, Tally
from peft_notify.ports import DeliveryStatus, DndState
from peft_notify.wire import Envelope, Hello, JobState, NotificationEvent, Progress, Resource, Status

__all__ = ["LEGACY_JOB_ID", "Engine"]

log = logging.getLogger(__name__)

LEGACY_JOB_ID: Final = "legacy"  # job id for a legacy frame that came without one


class Engine:
    """Decides what to tell the user about every watched job. Pure; see the module docstring."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.templates = Templates()
        self.unknown_count = 0
        self._jobs: dict[str, Job] = {}
        # Stall timers (see _arm): a heap of (deadline, job id) and each armed job's entry in it.
        self._stalls: list[tuple[float, str]] = []
        self._armed: dict[str, float] = {}
        self._order: dict[str, int] = {}  # job id -> creation number (stalls due together fire in job order)
        self._created = 0
        self._quiet = QuietPeriods(self.config.respect_dnd)
        self._gate = Gate(self.config, self._quiet)
        self._taskbar = Coalescer(self.config.taskbar_interval_s)
        self._tally = Tally()
        self._rules = Rules(self.config, self.templates, self._gate)
        self._resources = ResourceRules(self.config.resources)
        self._groups = Groups(self.config.group_grace_s)
        self._all_jobs = AllJobsWatch()
        self._now = 0.0
        self._rules.check_templates()

    # ------------------------------------------------------------------ inputs

    def feed(
        self, envelope: Envelope, *, now: float, dnd: DndState | None = DndState.OFF, job_id: str | None = None
    ) -> list[Action]:
        """Take one decoded envelope; return what to do.

        ``job_id`` is the connection's job key: a job's identity is its connection (issue 10
        item 3), so it wins over the envelope's ``job_id``, which is used only without it
        (and :data:`LEGACY_JOB_ID` when neither is given). Bodies of unknown type are counted in
        :attr:`unknown_count` and ignored. ``dnd`` ``None`` keeps the last state.
        """
        actions = self._observe(now, dnd)
        body = envelope.data
        if not isinstance(body, (Hello, Progress, NotificationEvent, Status, Resource)):
            self.unknown_count += 1
            return actions
        job = self._job(job_id or envelope.job_id or LEGACY_JOB_ID)
        try:
            return self._feed_job(job, envelope, body, now, actions)
        finally:
            self._arm(job)

    def _feed_job(
        self,
        job: Job,
        envelope: Envelope,
        body: Hello | Progress | NotificationEvent | Status | Resource,
        now: float,
        actions: list[Action],
    ) -> list[Action]:
        if envelope.seq is not None:
            job.last_seq = envelope.seq
        ts = envelope.ts if envelope.ts is not None else now
        seq = envelope.seq
        if isinstance(body, Resource):
            return actions + self._on_resource(job, body, now, seq)
        if isinstance(body, Hello):
            new_run = body.run_id != job.run_id or not job.baselined
            self._resources.on_hello(job.job_id, new_run=new_run, watched=body.resources, notes=body.resource_notes)
            self._join_group(job, body, new_run, now)
            actions += self._rules.on_hello(job, body, now, ts, seq)
        elif isinstance(body, Progress):
            actions += self._rules.on_progress(job, body, now, ts, seq)
        elif isinstance(body, NotificationEvent):
            actions += self._rules.on_notification(job, body, now, seq)
        else:
            actions += self._rules.on_status(job, body, now, seq)
        actions += self._settle_group(job, body, now) + self._check_all_jobs(now)
        return actions + self._refresh_taskbar(now, [job])

    def tick(self, *, now: float, dnd: DndState | None = None) -> list[Action]:
        """Run the timers: DND/pause-ended summary, stall detection, error-flood summaries, taskbar trailing edge.

        ``dnd`` ``None`` keeps the last state the engine was given.
        """
        actions = self._observe(now, dnd)
        due: list[Job] = []
        while self._settle_stalls() and self._stalls[0][0] <= now:
            _, job_id = heapq.heappop(self._stalls)
            del self._armed[job_id]
            due.append(self._jobs[job_id])
        for job in sorted(due, key=lambda j: self._order[j.job_id]):
            actions += self._check_stall(job, now)
            self._arm(job)
        actions += self._gate.flush_floods(now)
        actions += self._group_summaries(self._groups.due(now), now)
        actions += self._taskbar.tick(now, self._indicator)
        self._gate.dedup.prune(now)
        return actions

    def next_tick_at(self) -> float | None:
        """The earliest time :meth:`tick` has something to do, or ``None`` when nothing is due."""
        due = [
            self._taskbar.due_at(),
            self._quiet.paused_until,
            self._gate.floods.next_due_at(),
            self._groups.next_due_at(),
        ]
        if self._settle_stalls():
            due.append(self._stalls[0][0])
        times = [t for t in due if t is not None]
        return min(times) if times else None

    def process_exited(self, job_id: str, *, now: float, detail: str = "") -> list[Action]:
        """The job's local process vanished: a critical ``system_crash`` error unless it had finished."""
        self._now = max(self._now, now)
        job = self._job(job_id)
        if job.state.finished:
            return []
        job.state = JobState.FAILED
        message = f"{job.display_name}: the training process exited unexpectedly"
        if detail:
            message += f" ({detail})"
        actions = self._rules.error(job, now, None, message=message, error_type="system_crash")
        actions += self._settle_group(job, None, now) + self._check_all_jobs(now)
        return actions + self._refresh_taskbar(now, [job])

    def set_config(self, config: EngineConfig) -> None:
        """Decide by ``config`` from now on (the user changed a setting; no restart needed).

        Milestones, templates, pop-up kinds, Do Not Disturb, sounds and resource thresholds apply to
        the next decision; jobs, what DND withheld and the timers stay. Milestones a job has already
        passed under the new list count as done: adding 10 % at 50 % pops nothing.
        """
        self.config = config
        self._quiet.respect_dnd = config.respect_dnd
        self._gate.config = self._rules.config = config
        self._resources.t = config.resources
        self._taskbar.interval_s = config.taskbar_interval_s
        for job in self._jobs.values():
            if job.baselined:
                job.milestones_done.update(reached(job.current_step, job.total_steps, config.progress_milestones))
        self._stalls, self._armed = [], {}  # the stall minimum and factor may have changed
        for job in self._jobs.values():
            self._arm(job)
        self._rules.check_templates()

    def set_user_pause(self, until: float | None, *, now: float) -> list[Action]:
        """Pause notifications until ``until`` (``None``: resume now).

        Errors still show. Resuming emits the "while paused you missed ..." summary.
        """
        self._now = max(self._now, now)
        return self._summary(self._quiet.set_pause(until, now), now)

    def acknowledge(self, *, now: float) -> list[Action]:
        """The user opened the window: badge 0, failed jobs leave the taskbar."""
        self._now = max(self._now, now)
        for job in self._jobs.values():
            job.failure_seen = job.state is JobState.FAILED
        return self._gate.acknowledge() + self._refresh_taskbar(now, self._jobs.values())

    def forget(self, job_id: str) -> list[Action]:
        """Drop ``job_id`` (unsubscribed) and re-aggregate the taskbar."""
        if self._jobs.pop(job_id, None) is None:
            return []
        self._armed.pop(job_id, None)  # its heap entry is dropped when it comes up
        self._order.pop(job_id, None)
        self._gate.dedup.forget(job_id)
        self._gate.floods.forget(job_id)
        self._resources.forget(job_id)
        self._groups.forget(job_id)
        self._gate.muted.discard(job_id)
        self._tally.put(job_id, None)
        return self._check_all_jobs(self._now) + self._refresh_taskbar(self._now, (), changed=True)

    # ------------------------------------------------------------------ queries

    def job(self, job_id: str) -> JobView | None:
        """A snapshot of ``job_id``, or ``None`` when unknown."""
        job = self._jobs.get(job_id)
        return job.view() if job is not None else None

    def job_flags(self, job_id: str) -> tuple[JobState, bool] | None:
        """``(state, stalled)`` of ``job_id`` (``None``: unknown): what a timer pass changes, without a snapshot."""
        job = self._jobs.get(job_id)
        return None if job is None else (job.state, job.stalled)

    def jobs(self) -> list[JobView]:
        """Snapshots of every known job, in the order they were first seen."""
        return [job.view() for job in self._jobs.values()]

    def groups(self) -> list[GroupView]:
        """Snapshots of every group (sweep) a job announced, in the order first seen."""
        return self._groups.views(self._eta_of)

    def group(self, group_id: str) -> GroupView | None:
        return self._groups.view(group_id, self._eta_of)

    def group_of(self, job_id: str) -> str | None:
        """The id of the group ``job_id`` belongs to, or ``None``."""
        return self._groups.group_of(job_id)

    def watch_all_jobs(self, on: bool, *, now: float) -> list[Action]:
        """Tray "tell me when all running jobs have finished": arm (one notification when every job
        running now has ended, then disarmed) or disarm. With no job running there is nothing to wait for."""
        self._now = max(self._now, now)
        if not on:
            self._all_jobs.disarm()
            return []
        running = [j.job_id for j in self._jobs.values() if not j.state.finished]
        if running:
            self._all_jobs.arm(running)
        return []

    @property
    def all_jobs_watched(self) -> bool:
        """Whether the "all running jobs finished" notification is armed."""
        return self._all_jobs.armed

    def end_groups(self, *, now: float) -> list[Action]:
        """No more jobs will come (``watch`` ends): every group with nothing running gets its summary now."""
        self._now = max(self._now, now)
        return self._group_summaries(self._groups.close_all(), now)

    def resources(self, job_id: str) -> ResourceView | None:
        """The latest resource sample of ``job_id`` and its active conditions (``None``: none seen)."""
        return self._resources.view(job_id)

    @property
    def template_errors(self) -> list[str]:
        """Templates that failed to render (the defaults were used instead)."""
        return list(self.templates.errors)

    @property
    def badge(self) -> int:
        """Errors, completions and warnings shown or withheld since the last acknowledge."""
        return self._gate.badge

    # ------------------------------------------------------------------ internals

    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            bucket = TokenBucket(self.config.rate_capacity, self.config.rate_refill_s, self._now)
            job = self._jobs[job_id] = Job(job_id=job_id, bucket=bucket)
            self._order[job_id] = self._created = self._created + 1
        return job

    def _observe(self, now: float, dnd: DndState | None) -> list[Action]:
        self._now = max(self._now, now)
        return self._summary(self._quiet.update(dnd, now), now)

    def _summary(self, event: NotificationEvent | None, now: float) -> list[Action]:
        if event is None:
            return []
        return self._gate.deliver("", "", event, SUMMARY_KEY, now, dedup=False, filtered=False)

    def _join_group(self, job: Job, hello: Hello, new_run: bool, now: float) -> None:
        if hello.group is None:
            return
        self._groups.join(job.job_id, hello.group, name=hello.name, state=hello.state, new_run=new_run, now=now)
        if not self.config.group_trial_popups:
            self._gate.muted.add(job.job_id)

    def _settle_group(self, job: Job, body: object, now: float) -> list[Action]:
        """Group bookkeeping after a message of a grouped job; the group's summary when it just ended."""
        if self._groups.group_of(job.job_id) is None:
            return []
        if isinstance(body, Hello) and body.progress is not None:
            self._groups.observe(job.job_id, body.progress)
        elif isinstance(body, Progress):
            self._groups.observe(job.job_id, body)
        reason = body.reason if isinstance(body, Status) else None
        summary = self._groups.settle(job.job_id, job.state, reason=reason, now=now)
        return [] if summary is None else self._group_summaries([summary], now)

    def _group_summaries(self, summaries: list[GroupSummary], now: float) -> list[Action]:
        actions: list[Action] = []
        for s in summaries:
            job_id = f"group:{s.group_id}"
            if s.live:
                actions += self._gate.deliver(job_id, "", s.event, s.key, now, dedup=False)
            else:  # the sweep had ended before we saw it: history only (rule 1)
                actions.append(Record(job_id=job_id, event=s.event, key=s.key, reason=DeliveryStatus.FILTERED))
        return actions

    def _check_all_jobs(self, now: float) -> list[Action]:
        def state_of(job_id: str) -> JobState | None:
            job = self._jobs.get(job_id)
            return None if job is None else job.state

        event = self._all_jobs.check(state_of)
        return [] if event is None else self._gate.deliver(ALL_JOBS_KEY, "", event, ALL_JOBS_KEY, now, dedup=False)

    def _eta_of(self, job_id: str) -> float | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.view().eta_s

    def _on_resource(self, job: Job, sample: Resource, now: float, seq: int | None) -> list[Action]:
        """Resource rules (docs/resources.md): warnings are rate limited, critical ones never."""
        facts = JobFacts(
            name=job.display_name,
            running=job.state is JobState.RUNNING,
            last_progress_at=job.last_progress_at,
            stall_after_s=job.stall_after(
                self.config.resources.hang_min_s or self.config.stall_min_s, self.config.stall_factor
            ),
            sounds=self.config.sounds,
        )
        actions: list[Action] = []
        for decision in self._resources.on_sample(job.job_id, sample, now, facts):
            bucket = None if decision.level is Level.CRITICAL else job.bucket
            key = f"resource:{job.milestone_ref}:{decision.key}"
            actions += self._gate.deliver(
                job.job_id, job.display_name, decision.event, key, now, seq=seq, bucket=bucket
            )
        return actions

    # Stall timers. A job's stall deadline changes only through feed(), process_exited() and
    # set_config(); feed() arms the job afterwards and set_config() re-arms every job. Entries are
    # lazy: a deadline that moved later (new progress: nearly every frame) leaves the old entry,
    # which is corrected when it reaches the top; one that moved earlier or appeared is pushed. So
    # the heap holds about one entry per armed job, and a timer pass touches only the jobs due.

    def _stall_deadline(self, job: Job) -> float | None:
        """When ``job`` counts as stalled, or ``None`` when it cannot stall now (same rule as _check_stall)."""
        if job.state is not JobState.RUNNING or job.stalled or job.last_progress_at is None:
            return None
        deadline = job.last_progress_at + job.stall_after(self.config.stall_min_s, self.config.stall_factor)
        return None if math.isnan(deadline) else deadline

    def _arm(self, job: Job) -> None:
        """Make sure the heap holds an entry for ``job`` no later than its stall deadline."""
        deadline = self._stall_deadline(job)
        if deadline is None:
            return  # an entry it may have is dropped when it comes up
        armed = self._armed.get(job.job_id)
        if armed is None or deadline < armed:
            self._armed[job.job_id] = deadline
            heapq.heappush(self._stalls, (deadline, job.job_id))

    def _settle_stalls(self) -> bool:
        """Drop or correct heap entries until the top is an armed job's exact deadline; False when empty."""
        stalls = self._stalls
        while stalls:
            at, job_id = stalls[0]
            if self._armed.get(job_id) != at:
                heapq.heappop(stalls)  # superseded by an earlier entry, or the job was forgotten
                continue
            job = self._jobs.get(job_id)
            deadline = None if job is None else self._stall_deadline(job)
            if deadline == at:
                return True
            if deadline is None:
                heapq.heappop(stalls)
                del self._armed[job_id]
            else:
                self._armed[job_id] = deadline
                heapq.heapreplace(stalls, (deadline, job_id))
        return False

    def _check_stall(self, job: Job, now: float) -> list[Action]:
        if job.state is not JobState.RUNNING or job.stalled or job.last_progress_at is None:
            return []
        # Same expression as next_tick_at(), so a tick at exactly that time always fires.
        if now < job.last_progress_at + job.stall_after(self.config.stall_min_s, self.config.stall_factor):
            return []
        idle = now - job.last_progress_at
        job.stalled = True
        return self._gate.deliver(job.job_id, job.display_name, stall_event(job.display_name, idle), "stall", now)

    def _refresh_taskbar(self, now: float, touched: Iterable[Job], *, changed: bool = False) -> list[Action]:
        """Offer the taskbar indicator after ``touched`` jobs may have changed (aggregated lazily)."""
        for job in touched:
            changed = self._tally.put(job.job_id, job.contribution()) or changed
        return self._taskbar.offer_lazy(self._tally.head, changed, self._indicator, now)

    def _indicator(self) -> Indicator:
        return self._tally.indicator(self._jobs)
