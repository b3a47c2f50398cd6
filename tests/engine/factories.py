"""Envelope factories and action filters for the engine tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from peft_notify.engine.actions import Action, MergeRepeat, Notify, Record
from peft_notify.wire import (
    Envelope,
    Hello,
    JobState,
    NotificationEvent,
    NotificationType,
    Progress,
    Status,
    Unknown,
)

T0 = 1_700_000_000.0
JOB = "j1"
RUN = "run-1"

_A = TypeVar("_A")


def hello(
    *,
    job_id: str = JOB,
    run_id: str = RUN,
    name: str = "llama-lora",
    total: int | None = 1000,
    step: int | None = None,
    state: JobState = JobState.RUNNING,
    caps: Sequence[str] = (),
    seq: int = 0,
) -> Envelope:
    snapshot = None if step is None else Progress(current_step=step, total_steps=total)
    body = Hello(
        name=name,
        run_id=run_id,
        host="gpu1",
        pid=4242,
        started_at=T0,
        total_steps=total,
        capabilities=tuple(caps),
        progress=snapshot,
        state=state,
    )
    return Envelope(type="hello", data=body, seq=seq, job_id=job_id, ts=T0)


def progress(
    step: int, total: int | None = 1000, *, job_id: str = JOB, seq: int | None = None, loss: float | None = None
) -> Envelope:
    body = Progress(current_step=step, total_steps=total, loss=loss)
    return Envelope(type="progress", data=body, seq=seq, job_id=job_id, ts=None)


def note(
    kind: NotificationType,
    title: str = "Title",
    message: str = "Message",
    *,
    milestone: int | None = None,
    error_type: str | None = None,
    urgency: str = "normal",
    job_id: str | None = JOB,
    legacy: bool = False,
) -> Envelope:
    body = NotificationEvent(
        type=kind,
        title=title,
        message=message,
        milestone=milestone,
        urgency=urgency,
        respect_dnd=kind is not NotificationType.ERROR,
        error_type=error_type,
    )
    if legacy:
        return Envelope(type="notification", data=body, v=None, job_id=job_id)
    return Envelope(type="notification", data=body, seq=1, job_id=job_id, ts=T0)


def status(state: JobState, reason: str | None = None, *, job_id: str = JOB) -> Envelope:
    return Envelope(type="status", data=Status(state=state, reason=reason), seq=1, job_id=job_id, ts=T0)


def unknown(kind: str = "telemetry", *, job_id: str = JOB) -> Envelope:
    return Envelope(type=kind, data=Unknown(kind), seq=1, job_id=job_id, ts=T0)


def only(actions: Iterable[Action], kind: type[_A]) -> list[_A]:
    """The actions of type ``kind``, in order."""
    return [a for a in actions if isinstance(a, kind)]


def notifies(actions: Iterable[Action]) -> list[Notify]:
    return only(actions, Notify)


def records(actions: Iterable[Action]) -> list[Record]:
    return only(actions, Record)


def decided(actions: Iterable[Action]) -> list[Notify | Record | MergeRepeat]:
    """The notification decisions (Notify, Record, MergeRepeat), in order."""
    return [a for a in actions if isinstance(a, (Notify, Record, MergeRepeat))]


def milestones_notified(actions: Iterable[Action]) -> list[int | None]:
    return [a.event.milestone for a in notifies(actions)]
