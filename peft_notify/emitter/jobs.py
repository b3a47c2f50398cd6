"""Server-side state of one served job: its handle, mailbox, core (log + merger), subscribers, timers.

Touched only on the server's event-loop thread (the mailbox has its own lock).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from peft_notify import wire
from peft_notify.emitter.buffer import EventLog
from peft_notify.emitter.core import JobCore
from peft_notify.emitter.handle import JobHandle
from peft_notify.emitter.mailbox import ActionRegistry, Mailbox, RunState

__all__ = ["ServedJob", "Subscriber", "describe", "hello_frame", "is_loopback", "start_snapshot"]


@dataclass(eq=False)
class Subscriber:
    """One connected client: the last seq it was sent and the run it was told about."""

    cursor: int
    run_id: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class ServedJob:
    """A job as the server sees it."""

    handle: JobHandle
    run: RunState
    mailbox: Mailbox
    actions: ActionRegistry
    core: JobCore
    subscribers: set[Subscriber] = field(default_factory=set)
    progress_scheduled: bool = False
    wake_percent: int = -1  # the whole percent of the latest progress a wake-up saw (training thread)
    timer: asyncio.TimerHandle | None = None
    merge_timer: asyncio.TimerHandle | None = None
    job_file: Path | None = None

    @property
    def job_id(self) -> str:
        return self.handle.job_id

    @property
    def log(self) -> EventLog:
        return self.core.log

    @property
    def listened(self) -> bool:
        """Whether anyone reads this job's frames now: a connected client or a tap (channels, NATS).
        Read on training threads too (a racy read is fine: see :meth:`EventPump.catch_up`)."""
        return bool(self.subscribers) or bool(self.core.log.taps)

    def wake_subscribers(self) -> None:
        """Tell every connected client's sender that the log grew (loop thread)."""
        for sub in self.subscribers:
            sub.wake.set()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def hello_frame(job: ServedJob, gap: bool) -> str:
    """The encoded ``hello`` for ``job`` now (snapshot of progress and state)."""
    h, run = job.handle, job.run
    hello = wire.Hello(
        name=h.name,
        run_id=run.run_id,
        host=socket.gethostname()[: wire.MAX_NAME],
        pid=os.getpid(),
        started_at=run.started_at,
        total_steps=run.total_steps,
        last_seq=job.log.last_seq,
        capabilities=h.capabilities,
        progress=job.log.snapshot,
        state=job.log.state,
        replay_gap=gap,
        group=h.group,
        resources=run.resources,
        resource_notes=run.resource_notes,
    )
    env = wire.Envelope(type="hello", data=hello, seq=job.log.last_seq, job_id=h.job_id, ts=time.time())
    return wire.encode(env)


def describe(job: ServedJob, url: str) -> dict[str, object]:
    """The ``/api/jobs`` entry of ``job``."""
    h = job.handle
    snap = job.log.snapshot
    return {
        "job_id": h.job_id,
        "name": h.name,
        "run_id": job.run.run_id,
        "url": url,
        "state": job.log.state.value,
        "current_step": None if snap is None else snap.current_step,
        "total_steps": job.run.total_steps,
        "last_seq": job.log.last_seq,
        "pid": os.getpid(),
    }


def start_snapshot(start_step: int | None, total: int | None) -> wire.Progress | None:
    """The progress snapshot a job starts with (a resumed run starts past 0)."""
    if start_step is None or start_step < 0:
        return None
    if total is not None and start_step > total:
        start_step = total
    return wire.Progress(current_step=start_step, total_steps=total)
