"""JobHandle: what training code calls. Every call is O(1), thread-safe and never blocks.

A call validates its arguments once (:mod:`peft_notify.emitter.reports`), leaves the
result in the job's :class:`~peft_notify.emitter.mailbox.Mailbox` and tells the
:class:`~peft_notify.emitter.mailbox.Waker`; the server's loop numbers and sends it.
Plain progress, the one call made every step, only stores its arguments: the loop builds
and checks the latest one when it takes it (a coalesced report is never validated at all).
Progress is coalesced (latest wins, at most ``progress_hz`` frames a second); nothing
else is ever dropped. Bad values are logged and dropped: reporting must never break
training. :class:`TrainingHandle` is the interface every kind of handle offers
(this one, the ``peft-notify run`` pipe, the other ranks' forwarder).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from peft_notify import wire
from peft_notify.emitter import reports
from peft_notify.emitter.mailbox import ActionCallback, ActionRegistry, Mailbox, Report, RunState, Waker
from peft_notify.redact import redact

__all__ = ["ActionCallback", "JobHandle", "TrainingHandle"]

log = logging.getLogger(__name__)


class TrainingHandle(Protocol):
    """What ``peft_notify.job()`` and the framework callbacks report through."""

    job_id: str
    name: str

    @property
    def url(self) -> str: ...

    @property
    def total_steps(self) -> int | None: ...

    @property
    def finished(self) -> bool: ...

    def progress(
        self,
        step: int,
        total: int | None = None,
        *,
        loss: float | None = None,
        epoch: float | None = None,
        learning_rate: float | None = None,
        grad_norm: float | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None: ...

    def notify(
        self,
        title: str,
        message: str = "",
        *,
        kind: wire.NotificationType | str = wire.NotificationType.PROGRESS,
        urgency: wire.UrgencyLevel | str | None = None,
        milestone: int | None = None,
        sound: bool | None = None,
        actions: Sequence[str] | None = None,
        error_type: str | None = None,
        respect_dnd: bool | None = None,
    ) -> None: ...

    def error(
        self, message: str, error_type: str = "system_crash", *, title: str | None = None, rank: int | None = None
    ) -> None: ...

    def warning(self, message: str, *, title: str | None = None, error_type: str | None = None) -> None: ...

    def status(self, state: wire.JobState | str, reason: str | None = None) -> None: ...

    def on_action(self, callback: ActionCallback) -> ActionCallback: ...

    def close(self) -> None: ...


class JobHandle:
    """One job served by a :class:`~peft_notify.emitter.server.JobServer`; create with ``JobServer.add_job``."""

    def __init__(
        self,
        job_id: str,
        *,
        name: str,
        url: str,
        capabilities: Sequence[str],
        run: RunState,
        mailbox: Mailbox,
        actions: ActionRegistry,
        waker: Waker,
    ) -> None:
        self.job_id = job_id
        self.name = name
        self.url = url
        self.capabilities = tuple(capabilities)
        self.rank: int | None = None  # set on rank 0 of a distributed job: its errors are merged
        self.group: wire.Group | None = None  # hello.group: the sweep this job is a trial of (docs/sweeps.md)
        self._run = run
        self._mailbox = mailbox
        self._actions = actions
        self._waker = waker

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def started_at(self) -> float:
        return self._run.started_at

    @property
    def total_steps(self) -> int | None:
        return self._run.total_steps

    @property
    def finished(self) -> bool:
        """Whether a terminal status (completed / failed / cancelled) was reported."""
        return self._run.finished

    def progress(
        self,
        step: int,
        total: int | None = None,
        *,
        loss: float | None = None,
        epoch: float | None = None,
        learning_rate: float | None = None,
        grad_norm: float | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Report the current step (coalesced: only the latest is guaranteed to be sent).

        A report with ``metrics`` (an evaluation) is never coalesced away: it goes out as its
        own frame, so ``eval_loss`` at step 500 reaches the app as step 500's.
        """
        if total is not None:
            self._run.total_steps = total if total > 0 else None
        if not metrics:
            # The hot path: store the arguments (validated when taken; a superseded one never is).
            self._mailbox.set_latest((step, self._run.total_steps, epoch, loss, learning_rate, grad_norm))
            self._waker.wake_progress(self.job_id)
            return
        try:
            body = reports.progress(
                step,
                self._run.total_steps,
                loss=loss,
                epoch=epoch,
                learning_rate=learning_rate,
                grad_norm=grad_norm,
                metrics=metrics,
            )
        except ValueError as exc:
            log.warning("job %s: dropping an invalid report (%s)", self.job_id, redact(str(exc)))
            return
        self._mailbox.put_superseding(body)
        self._waker.wake_now(self.job_id)

    def resource(self, sample: wire.Resource) -> None:
        """Report a resource sample (coalesced like progress: only the latest is sure to be sent).

        Called by :class:`~peft_notify.emitter.resources.ResourceSampler` on its thread; a
        sample after the run's terminal status is dropped (nothing follows "completed").
        """
        if self._run.finished:
            return
        self._mailbox.set_resource(sample)
        self._waker.wake_progress(self.job_id)

    def set_resources(self, watched: Sequence[str], notes: Sequence[str]) -> None:
        """Say in the ``hello`` what the resource sampler watches, and what not (and why)."""
        self._run.resources = tuple(w[: wire.MAX_SHORT] for w in watched)[: wire.MAX_RESOURCES]
        self._run.resource_notes = tuple(n[: wire.MAX_REASON] for n in notes)[: wire.MAX_RESOURCES]

    def notify(
        self,
        title: str,
        message: str = "",
        *,
        kind: wire.NotificationType | str = wire.NotificationType.PROGRESS,
        urgency: wire.UrgencyLevel | str | None = None,
        milestone: int | None = None,
        sound: bool | None = None,
        actions: Sequence[str] | None = None,
        error_type: str | None = None,
        respect_dnd: bool | None = None,
    ) -> None:
        """Send a notification (never dropped). Invalid fields are logged and the event skipped."""
        try:
            event = reports.notification(
                title,
                message,
                kind=kind,
                urgency=urgency,
                milestone=milestone,
                sound=sound,
                actions=actions,
                error_type=error_type,
                respect_dnd=respect_dnd,
            )
        except ValueError as exc:
            log.warning("job %s: dropping an invalid report (%s)", self.job_id, redact(str(exc)))
            return
        self._put(event)

    def error(
        self, message: str, error_type: str = "system_crash", *, title: str | None = None, rank: int | None = None
    ) -> None:
        """Report an error (urgency from ``error_type``: oom/cuda/system_crash are critical).

        ``rank`` (default: this handle's :attr:`rank`) marks an error of one rank of a
        distributed job; the same error from several ranks becomes one notification.
        """
        try:
            event = reports.error(self.name, message, error_type, title)
        except ValueError as exc:
            log.warning("job %s: dropping an invalid report (%s)", self.job_id, redact(str(exc)))
            return
        rank = self.rank if rank is None else rank
        self._put(event if rank is None else reports.Ranked(rank, event))

    def warning(self, message: str, *, title: str | None = None, error_type: str | None = None) -> None:
        """Report a warning (respects Do Not Disturb on the desktop)."""
        try:
            event = reports.warning(self.name, message, title=title, error_type=error_type)
        except ValueError as exc:
            log.warning("job %s: dropping an invalid report (%s)", self.job_id, redact(str(exc)))
            return
        self._put(event)

    def status(self, state: wire.JobState | str, reason: str | None = None) -> None:
        """Report a lifecycle change; a terminal state marks the job finished. Raises ``ValueError`` for a bad state."""
        body = reports.status(state, reason)
        if body.state.finished:
            self._run.finished = True
        self._put(body)

    def on_action(self, callback: ActionCallback) -> ActionCallback:
        """Register ``callback(action)`` for client actions (``retry``, ``cancel``, ...).

        Called on a worker thread; exceptions are logged. Usable as a decorator. Only the
        actions named in the job's ``capabilities`` reach it (``retry`` only once the run ended).
        """
        self._actions.add(callback)
        return callback

    def close(self) -> None:
        """Nothing to release (the server owns the connection); here for :class:`TrainingHandle`."""

    def _put(self, report: Report) -> None:
        self._mailbox.put(report)
        self._waker.wake_now(self.job_id)
