"""EventPump: moves what training threads report into the job logs, on the server's loop thread.

The training side only stores values in its :class:`~peft_notify.emitter.handle.JobHandle`
and calls :meth:`EventPump._wake_progress` / :meth:`EventPump._wake_now` (O(1), never
blocking). On the loop, progress is rate limited (latest wins, trailing edge), events are
numbered into the job's :class:`~peft_notify.emitter.buffer.EventLog`, rank-tagged errors
go through the job's :class:`~peft_notify.emitter.merge.ErrorMerger`, and subscribers are
woken; :meth:`EventPump.new_run` starts a relaunched run and :meth:`EventPump._drain` empties
everything before the server closes. :class:`~peft_notify.emitter.server.JobServer` is an
EventPump.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from peft_notify import wire
from peft_notify.emitter.handle import JobHandle, Ranked, to_body
from peft_notify.emitter.jobs import ServedJob, start_snapshot

__all__ = ["EventPump"]

log = logging.getLogger(__name__)


class EventPump:
    """Loop-thread half of JobServer (see the module docstring)."""

    _jobs: dict[str, ServedJob]
    _loop: asyncio.AbstractEventLoop | None
    _stopped: bool
    progress_interval: float

    async def _drain(self, linger: float) -> None:
        """Before closing: send what is queued and held, then wait up to ``linger`` s for clients."""
        deadline = time.monotonic() + linger
        for job in self._jobs.values():
            self._flush_all(job)
        loop = asyncio.get_running_loop()
        for job in self._jobs.values():  # give other ranks' copies of an error their merge window
            due = job.merger.next_due()
            if due is not None:
                await asyncio.sleep(max(0.0, min(due - loop.time(), deadline - time.monotonic())))
            self._flush_merged(job, force=True)
        while time.monotonic() < deadline and any(
            sub.cursor < job.log.last_seq for job in self._jobs.values() for sub in job.subscribers
        ):
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ called from training threads

    def _wake_progress(self, handle: JobHandle) -> None:
        job = self._jobs.get(handle.job_id)
        loop = self._loop
        if job is None or loop is None or job.progress_scheduled or self._stopped:
            return
        # The loop clears this flag *before* taking the latest value, so a wake-up is never lost.
        job.progress_scheduled = True
        with contextlib.suppress(RuntimeError):  # loop closed during interpreter shutdown
            loop.call_soon_threadsafe(self._flush_progress, job)

    def _wake_now(self, handle: JobHandle) -> None:
        job = self._jobs.get(handle.job_id)
        loop = self._loop
        if job is None or loop is None or self._stopped:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._emit, job, False)

    # ------------------------------------------------------------------ event-loop thread

    def _flush_progress(self, job: ServedJob) -> None:
        loop = asyncio.get_running_loop()
        job.timer = None
        wait = job.last_progress_at + self.progress_interval - loop.time()
        if wait > 0:  # rate limit: send the latest value on the trailing edge
            job.timer = loop.call_later(wait, self._flush_progress, job)
            return
        job.progress_scheduled = False
        self._emit(job, True)

    def _flush_all(self, job: ServedJob) -> None:
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        job.progress_scheduled = False
        self._emit(job, True)

    def _emit(self, job: ServedJob, include_latest: bool) -> None:
        items = job.handle._take(include_latest=include_latest)
        now = asyncio.get_running_loop().time()
        for item in items:
            if isinstance(item, Ranked):
                job.merger.add(item.rank, item.item, now)
            elif isinstance(item, wire.Status) and job.merger.pending:
                job.merger.defer(item)  # the held error goes out before "failed"
            else:
                self._append(job, item)
        self._schedule_merge(job)
        for sub in job.subscribers:
            sub.wake.set()

    def _append(self, job: ServedJob, item: wire.Body | dict[str, Any]) -> None:
        body = to_body(item, job.handle.job_id)
        if body is None:
            return
        try:
            job.log.append(body)
        except ValueError:
            log.warning("job %s: could not encode %r", job.handle.job_id, body, exc_info=True)
            return
        if isinstance(body, wire.Progress):
            job.last_progress_at = asyncio.get_running_loop().time()

    def _add_ranked(self, job: ServedJob, rank: int, item: dict[str, Any]) -> None:
        """An error another rank forwarded (event-loop thread)."""
        self._flush_all(job)  # keep this rank-0 process's own reports in order first
        job.merger.add(rank, item, asyncio.get_running_loop().time())
        if self._stopped:  # shutting down: no time left to wait for more copies
            self._flush_merged(job, force=True)
        self._schedule_merge(job)

    def _schedule_merge(self, job: ServedJob) -> None:
        due = job.merger.next_due()
        if due is None or job.merge_timer is not None:
            return
        loop = asyncio.get_running_loop()
        job.merge_timer = loop.call_at(due, self._on_merge_timer, job)

    def _on_merge_timer(self, job: ServedJob) -> None:
        job.merge_timer = None
        self._flush_merged(job)
        self._schedule_merge(job)

    def _flush_merged(self, job: ServedJob, *, force: bool = False) -> None:
        for item in job.merger.take_due(asyncio.get_running_loop().time(), force=force):
            self._append(job, item)
        for sub in job.subscribers:
            sub.wake.set()

    def new_run(self, job_id: str, *, total_steps: int | None = None, start_step: int | None = None) -> str:
        """Start a new run of ``job_id`` (a relaunch): new ``run_id``, and a fresh ``hello`` to clients.

        Events already reported are sent first; clients then reset the job (milestones start
        over). Returns the new run id. Raises ``KeyError`` for an unknown job.
        """
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

    def _switch_run(self, job: ServedJob, run_id: str, total_steps: int | None, start_step: int | None) -> None:
        if self._loop is not None and not self._stopped:
            self._flush_all(job)
            self._flush_merged(job, force=True)
        total = total_steps if total_steps and total_steps > 0 else None
        job.handle._new_run(run_id, time.time(), total)
        job.log.new_run(start_snapshot(start_step, total))
        for sub in job.subscribers:
            sub.wake.set()
