"""The engine's rules per message: milestones, completion, errors, status (issue rules 1-3).

:class:`Rules` updates one :class:`~peft_notify.engine.job.Job` for each
message body and hands every notification it decides on to the
:class:`~peft_notify.engine.gate.Gate`. ``Engine`` is its only caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from peft_notify.engine.actions import Action, Record
from peft_notify.engine.config import (
    DEFAULT_COMPLETION_MESSAGE,
    DEFAULT_COMPLETION_TITLE,
    DEFAULT_MILESTONE_MESSAGE,
    DEFAULT_MILESTONE_TITLE,
    EngineConfig,
    Templates,
    TemplateValues,
)
from peft_notify.engine.gate import Gate
from peft_notify.engine.job import Job
from peft_notify.engine.milestones import passed_phrase, reached
from peft_notify.engine.notices import error_event, error_key, resumed_event, text_key
from peft_notify.ports import DeliveryStatus
from peft_notify.wire import Hello, JobState, NotificationEvent, NotificationType, Progress, Status, UrgencyLevel

__all__ = ["Rules"]


class Rules:
    """Applies one message body to a job; returns the actions decided."""

    def __init__(self, config: EngineConfig, templates: Templates, gate: Gate) -> None:
        self.config = config
        self.templates = templates
        self.gate = gate

    def check_templates(self) -> None:
        """Render every configured template once so a broken one is reported at start-up."""
        values = TemplateValues(job="job", percent=50, step=500, total=1000, eta_s=60.0, loss=0.5)
        cfg = self.config
        self.templates.render(cfg.milestone_title, DEFAULT_MILESTONE_TITLE, values)
        self.templates.render(cfg.milestone_message, DEFAULT_MILESTONE_MESSAGE, values)
        self.templates.render(cfg.completion_title, DEFAULT_COMPLETION_TITLE, values)
        self.templates.render(cfg.completion_message, DEFAULT_COMPLETION_MESSAGE, values)

    # ------------------------------------------------------------------ messages

    def on_hello(self, job: Job, hello: Hello, now: float, ts: float, seq: int | None) -> list[Action]:
        """A (re)connection. A new run resets the job and takes the snapshot as its baseline."""
        new_run = hello.run_id != job.run_id or not job.baselined
        if new_run:
            job.new_run(hello.run_id)
        job.name = hello.name
        job.host = hello.host
        job.pid = hello.pid
        job.started_at = hello.started_at
        job.capabilities = hello.capabilities
        if new_run or hello.total_steps is not None:
            job.total_steps = hello.total_steps  # a new run may not know its total yet
        if not new_run:
            # Same run after a reconnect: the snapshot is ordinary news.
            actions = self.on_progress(job, hello.progress, now, ts, seq) if hello.progress else []
            if hello.state is not job.state:
                actions += self.on_status(job, Status(hello.state), now, seq)
            return actions
        job.state = hello.state
        if hello.progress is not None:
            self.on_progress(job, hello.progress, now, ts, seq)
        job.baselined = True
        # Rule 1: never fire retroactively what the run had done before we saw it.
        job.completion_done = job.completion_done or hello.state is JobState.COMPLETED
        job.error_sent = hello.state is JobState.FAILED
        return []

    def on_progress(self, job: Job, progress: Progress, now: float, ts: float, seq: int | None) -> list[Action]:
        """A progress report: ETA, stall recovery, milestones and completion."""
        total_was_known = job.total_steps is not None
        if progress.total_steps is not None:
            job.total_steps = progress.total_steps
        previous = job.current_step
        job.current_step = progress.current_step
        if progress.loss is not None:
            job.loss = progress.loss
        job.rate.observe(progress.current_step, ts)
        if not job.baselined:
            self._baseline(job, completion=True)
            job.last_progress_at = now
            return []
        if not total_was_known and job.total_steps is not None:
            self._baseline(job, completion=False)  # the total just became known: no retroactive milestones
        actions: list[Action] = []
        if progress.current_step != previous:
            job.last_progress_at = now
        if progress.current_step > previous:
            job.error_flag = False
            if job.state is JobState.PAUSED:
                job.state = JobState.RUNNING
            if job.stalled:
                job.stalled = False
                event = resumed_event(job.display_name, job.current_step)
                actions += self.gate.deliver(job.job_id, job.display_name, event, "stall-resumed", now, seq=seq)
        return actions + self._milestones(job, now, seq)

    def on_notification(self, job: Job, event: NotificationEvent, now: float, seq: int | None) -> list[Action]:
        """A server-sent notification (the seed format), merged with the engine's own decisions."""
        kind = NotificationType(event.type)
        if kind is NotificationType.ERROR:
            return self.error(
                job,
                now,
                seq,
                message=event.message,
                error_type=event.error_type,
                urgency=event.urgency,
                title=event.title,
            )
        normal = replace(event, sound=event.sound and self.config.sounds, respect_dnd=True)
        if kind is NotificationType.COMPLETION or (event.milestone or 0) >= 100:
            if job.completion_done:
                return [self._duplicate(job, normal, f"completion:{job.milestone_ref}", seq)]
            return self.complete(job, now, seq, server=normal)
        if kind is NotificationType.PROGRESS and event.milestone:
            return self._server_milestone(job, normal, event.milestone, now, seq)
        parts = [event.message] if kind is NotificationType.WARNING else [event.title, event.message]
        key = text_key(kind.value, parts)
        return self.gate.deliver(job.job_id, job.display_name, normal, key, now, seq=seq, bucket=job.bucket)

    def on_status(self, job: Job, status: Status, now: float, seq: int | None) -> list[Action]:
        """A lifecycle change: completion and failure notify (once)."""
        state = status.state
        if state is JobState.COMPLETED and not job.completion_done:
            return self.complete(job, now, seq)
        if state is JobState.RUNNING and job.state is JobState.PAUSED and job.last_progress_at is not None:
            job.last_progress_at = now  # time spent paused is not a stall
        job.state = state
        if state is not JobState.FAILED or job.error_sent:
            return []
        message = status.reason or f"{job.display_name} failed."
        return self.error(job, now, seq, message=message, error_type=None, urgency="high", title="Training Failed")

    # ------------------------------------------------------------------ decisions

    def error(
        self,
        job: Job,
        now: float,
        seq: int | None,
        *,
        message: str,
        error_type: str | None,
        urgency: str | None = None,
        title: str = "",
    ) -> list[Action]:
        """An error (rule 3): mapped urgency, actions, sound; bypasses DND, never dropped."""
        event = error_event(
            message,
            error_type,
            urgency=urgency,
            title=title or "Training Error",
            retry="retry" in job.capabilities,
            sound=self.config.sounds,
            taskbar_progress=job.fraction,
        )
        job.errors += 1
        job.error_sent = True
        job.error_flag = True
        return self.gate.deliver(job.job_id, job.display_name, event, error_key(error_type), now, seq=seq)

    def complete(
        self,
        job: Job,
        now: float,
        seq: int | None,
        *,
        server: NotificationEvent | None = None,
        passed: Sequence[int] = (),
    ) -> list[Action]:
        """The one completion of this run (rule 2): sound, attention; the taskbar drops the job."""
        job.completion_done = True
        job.milestones_done.update(self.config.progress_milestones)
        job.state = JobState.COMPLETED
        job.stalled = False
        job.error_flag = False
        if server is not None:
            title, message = server.title, server.message
        else:
            values = self._values(job, 100)
            title = self.templates.render(self.config.completion_title, DEFAULT_COMPLETION_TITLE, values)
            message = self.templates.render(self.config.completion_message, DEFAULT_COMPLETION_MESSAGE, values)
        event = NotificationEvent(
            type=NotificationType.COMPLETION,
            title=title,
            message=message + passed_phrase(passed),
            milestone=100,
            urgency=UrgencyLevel.NORMAL,
            sound=self.config.sounds,
            taskbar_progress=1.0,
            respect_dnd=True,
        )
        key = f"completion:{job.milestone_ref}"
        return self.gate.deliver(job.job_id, job.display_name, event, key, now, seq=seq, dedup=False)

    # ------------------------------------------------------------------ helpers

    def _baseline(self, job: Job, *, completion: bool) -> None:
        job.baselined = True
        job.milestones_done.update(reached(job.current_step, job.total_steps, self.config.progress_milestones))
        if completion and job.total_steps is not None and job.current_step >= job.total_steps:
            job.completion_done = True

    def _milestones(self, job: Job, now: float, seq: int | None) -> list[Action]:
        total = job.total_steps
        hits = [
            m for m in reached(job.current_step, total, self.config.progress_milestones) if m not in job.milestones_done
        ]
        if total is not None and job.current_step >= total and not job.completion_done:
            return self.complete(job, now, seq, passed=hits)
        if not hits:
            return []
        job.milestones_done.update(hits)
        top, passed = hits[-1], hits[:-1]
        values = self._values(job, top)
        title = self.templates.render(self.config.milestone_title, DEFAULT_MILESTONE_TITLE, values)
        message = self.templates.render(self.config.milestone_message, DEFAULT_MILESTONE_MESSAGE, values)
        if passed:
            message = f"{top} % reached{passed_phrase(passed)}. {message}"
        event = NotificationEvent(
            type=NotificationType.PROGRESS,
            title=title,
            message=message,
            milestone=top,
            urgency=UrgencyLevel.NORMAL,
            sound=False,
            taskbar_progress=job.fraction,
            respect_dnd=True,
        )
        key = f"milestone:{job.milestone_ref}:{top}"
        return self.gate.deliver(job.job_id, job.display_name, event, key, now, seq=seq, dedup=False)

    def _server_milestone(
        self, job: Job, event: NotificationEvent, milestone: int, now: float, seq: int | None
    ) -> list[Action]:
        key = f"milestone:{job.milestone_ref}:{milestone}"
        if milestone in job.milestones_done:
            return [self._duplicate(job, event, key, seq)]
        passed = [m for m in self.config.progress_milestones if m < milestone and m not in job.milestones_done]
        job.milestones_done.update([*passed, milestone])
        if event.taskbar_progress is None:
            event = replace(event, taskbar_progress=job.fraction)
        event = replace(event, message=event.message + passed_phrase(passed))
        return self.gate.deliver(job.job_id, job.display_name, event, key, now, seq=seq, dedup=False)

    def _duplicate(self, job: Job, event: NotificationEvent, key: str, seq: int | None) -> Action:
        # The same milestone from the server and from our own crossing: one popup, this one recorded.
        return Record(job_id=job.job_id, event=event, key=key, reason=DeliveryStatus.DUPLICATE, seq=seq)

    def _values(self, job: Job, percent: int) -> TemplateValues:
        return TemplateValues(
            job=job.display_name,
            percent=percent,
            step=job.current_step,
            total=job.total_steps,
            eta_s=job.rate.eta(job.current_step, job.total_steps),
            loss=job.loss,
        )
