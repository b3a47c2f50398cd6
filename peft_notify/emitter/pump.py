"""EventPump: drives each job's :class:`~peft_notify.emitter.core.JobCore` on the server's loop thread.

Handles call :meth:`EventPump.wake_progress` / :meth:`EventPump.wake_now` (the
:class:`~peft_notify.emitter.mailbox.Waker` interface: O(1), never blocking, any thread);
the pump then takes the job's mailbox on the loop, rate limits progress (latest wins,
trailing edge), runs the merge timers and wakes the job's subscribers. While nobody listens
to a job (no client, no tap) its progress is not even taken: the loop stays asleep during
training, and :meth:`EventPump.catch_up` logs the latest when a client arrives.
:meth:`EventPump.new_run` starts a relaunched run; :meth:`EventPump.drain` empties
everything before the server closes. The :class:`~peft_notify.emitter.server.JobServer`
holds one pump and the jobs it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from peft_notify.emitter.jobs import ServedJob, start_snapshot
from peft_notify.emitter.reports import Ranked

__all__ = ["EventPump"]

log = logging.getLogger(__name__)


class EventPump:
    """Moves reports from mailboxes into job logs on one event loop (see the module docstring)."""

    def __init__(self) -> None:
        self._jobs: dict[str, ServedJob] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    # ------------------------------------------------------------------ jobs and lifecycle

    def add(self, job: ServedJob) -> None:
        self._jobs[job.job_id] = job

    def remove(self, job_id: str) -> ServedJob | None:
        return self._jobs.pop(job_id, None)

    def get(self, job_id: str) -> ServedJob | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[ServedJob]:
        return list(self._jobs.values())

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start pumping on ``loop`` (the server's, once it serves)."""
        self._loop = loop

    def stop(self) -> None:
        """No more wake-ups are scheduled (the server is shutting down)."""
        self._stopped = True

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def drain(self, linger: float) -> None:
        """Before closing: log what is queued and held, then wait up to ``linger`` s for clients."""
        deadline = time.monotonic() + linger
        for job in self._jobs.values():
            self.flush_all(job)
        loop = asyncio.get_running_loop()
        for job in self._jobs.values():  # give other ranks' copies of an error their merge window
            due = job.core.merge_due()
            if due is not None:
                await asyncio.sleep(max(0.0, min(due - loop.time(), deadline - time.monotonic())))
            self._flush_merged(job, force=True)
        while time.monotonic() < deadline and any(
            sub.cursor < job.log.last_seq for job in self._jobs.values() for sub in job.subscribers
        ):
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ Waker: called from training threads

    def wake_progress(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        loop = self._loop
        if job is None or loop is None or self._stopped:
            return
        if not job.listened:
            # Nobody reads the job's progress now (no client, no tap): the latest stays in the
            # mailbox, costing the loop nothing, until someone does (catch_up), a report that is
            # never coalesced takes it along, or the server drains at stop.
            return
        # A progress that enters a new whole percent may cross a desktop milestone (whole percents):
        # it goes out now, not on the rate limit's trailing edge (up to 1/progress_hz later).
        urgent = _entered_percent(job)
        if job.progress_scheduled and not urgent:
            return
        # The loop clears this flag *before* taking the latest value, so a wake-up is never lost.
        job.progress_scheduled = True
        with contextlib.suppress(RuntimeError):  # loop closed during interpreter shutdown
            loop.call_soon_threadsafe(self._flush_progress, job, urgent)

    def wake_now(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        loop = self._loop
        if job is None or loop is None or self._stopped:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._take, job, False)

    # ------------------------------------------------------------------ event-loop thread

    def catch_up(self, job: ServedJob) -> None:
        """Someone starts listening to ``job`` (event-loop thread; add the subscriber first): log
        the progress and resource sample its mailbox kept while nobody did."""
        if not self._stopped:
            self.flush_all(job)

    def flush_all(self, job: ServedJob) -> None:
        """Log everything the job's mailbox holds now, the latest progress included."""
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        job.progress_scheduled = False
        self._take(job, True)

    def add_ranked(self, job: ServedJob, ranked: Ranked) -> None:
        """An error another rank forwarded (event-loop thread)."""
        self.flush_all(job)  # keep this rank-0 process's own reports in order first
        job.core.add_ranked(ranked, asyncio.get_running_loop().time())
        if self._stopped:  # shutting down: no time left to wait for more copies
            self._flush_merged(job, force=True)
        self._schedule_merge(job)

    def new_run(self, job_id: str, *, total_steps: int | None = None, start_step: int | None = None) -> str:
        """Start a new run of ``job_id`` (any thread); returns the new run id. Raises ``KeyError``."""
        job = self._jobs[job_id]
        run_id = uuid.uuid4().hex
        loop = self._loop
        if loop is None or self._stopped:
            self._switch_run(job, run_id, total_steps, start_step)
            return run_id

        async def switch() -> None:
            self._switch_run(job, run_id, total_steps, start_step)

        asyncio.run_coroutine_threadsafe(switch(), loop).result(timeout=10)
        return run_id

    def _flush_progress(self, job: ServedJob, urgent: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if job.timer is not None:  # this call is the timer, or an urgent one that replaces it
            job.timer.cancel()
            job.timer = None
        wait = job.core.progress_wait(loop.time())
        if wait > 0 and not urgent:  # rate limit: send the latest value on the trailing edge
            job.timer = loop.call_later(wait, self._flush_progress, job)
            return
        job.progress_scheduled = False
        self._take(job, True)

    def _take(self, job: ServedJob, include_latest: bool) -> None:
        job.core.feed(job.mailbox.take(include_latest=include_latest), asyncio.get_running_loop().time())
        self._schedule_merge(job)
        job.wake_subscribers()

    def _schedule_merge(self, job: ServedJob) -> None:
        due = job.core.merge_due()
        if due is None or job.merge_timer is not None:
            return
        job.merge_timer = asyncio.get_running_loop().call_at(due, self._on_merge_timer, job)

    def _on_merge_timer(self, job: ServedJob) -> None:
        job.merge_timer = None
        self._flush_merged(job)
        self._schedule_merge(job)

    def _flush_merged(self, job: ServedJob, *, force: bool = False) -> None:
        job.core.flush_merged(asyncio.get_running_loop().time(), force=force)
        job.wake_subscribers()

    def _switch_run(self, job: ServedJob, run_id: str, total_steps: int | None, start_step: int | None) -> None:
        if self._loop is not None and not self._stopped:
            self.flush_all(job)
            self._flush_merged(job, force=True)
        total = total_steps if total_steps and total_steps > 0 else None
        job.run.restart(run_id, time.time(), total)
        job.mailbox.drop_latest()
        job.core.new_run(start_snapshot(start_step, total))
        job.wake_subscribers()


def _entered_percent(job: ServedJob) -> bool:
    """Whether the job's latest progress is in a higher whole percent than the last one seen (training
    thread, per progress call while someone listens: a few integer operations). A new run, starting
    lower, just resets it. Milestones are whole percents (EngineConfig), so at most ~100 a run."""
    latest = job.mailbox.peek_latest()
    if latest is None:
        return False
    step, total = latest[0], latest[1]
    if type(step) is not int or type(total) is not int or total <= 0:
        return False  # unchecked arguments (validated when taken): never fail here
    percent = step * 100 // total
    if percent == job.wake_percent:
        return False
    entered, job.wake_percent = percent > job.wake_percent, percent
    return entered
