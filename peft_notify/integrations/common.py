"""Shared by the framework callbacks: getting a handle, grad-norm spikes, reporting crashes."""

from __future__ import annotations

import statistics
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from peft_notify import wire
from peft_notify.emitter.classify import classify_exception, is_divergent, summarize_exception
from peft_notify.emitter.handle import TrainingHandle
from peft_notify.emitter.resources import ResourceSampler, start_sampler
from peft_notify.emitter.server import JobServer
from peft_notify.emitter.startup import start_job

__all__ = ["Reporter", "as_number", "param_bytes"]


@dataclass
class Reporter:
    """Owns the job handle for a callback: creates a server lazily, watches loss and grad norm."""

    name: str
    job_id: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    allowed_origins: Sequence[str] = ()
    linger: float = 3.0
    handle: TrainingHandle | None = None
    server: JobServer | None = None
    grad_spike_factor: float = 10.0
    notify: Sequence[str] | None = None  # notification channels (issue 13; docs/channels.md)
    notify_level: str | None = None
    _relay: Any = None
    _grad_norms: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    _diverged: bool = False
    _owns_server: bool = False
    _previous_hook: Any = None
    sampler: ResourceSampler | None = None  # docs/resources.md

    def start(
        self,
        total_steps: int | None,
        *,
        start_step: int | None = None,
        rank: int | None = None,
        output_dir: str | None = None,
        param_bytes: int | None = None,
    ) -> TrainingHandle:
        """Get (once) the handle: the one given, else what :func:`~peft_notify.emitter.startup.start_job` gives.

        ``start_step``: a resumed run's first step (in the first ``hello``). ``rank``: the
        framework's global rank when it knows it; ranks other than 0 get a
        :class:`~peft_notify.emitter.ranks.RankForwarder` (errors only, sent to rank 0).
        """
        if self.handle is None:
            started = start_job(
                self.name,
                total_steps,
                job_id=self.job_id,
                host=self.host,
                port=self.port,
                token=self.token,
                allowed_origins=self.allowed_origins,
                server=self.server,
                start_step=start_step,
                rank=rank,
                notify=self.notify,
                notify_level=self.notify_level,
            )
            self.handle, self.server, self._owns_server = started.handle, started.server, started.owns_server
            self._relay = started.relay
        if self.sampler is None:  # host, this process's GPUs and the output dir's disk
            self.sampler = start_sampler(self.handle, output_dir=output_dir, param_bytes=param_bytes)
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        return self.handle

    def checkpoint_saved(self) -> None:
        """A checkpoint was written: the next checkpoint's estimate becomes its size on disk."""
        if self.sampler is not None:
            self.sampler.checkpoint_saved()

    @property
    def active_handle(self) -> TrainingHandle:
        """The handle (after :meth:`start`). Raises ``RuntimeError`` before."""
        if self.handle is None:
            raise RuntimeError("Reporter.start() was not called")
        return self.handle

    def log(self, step: int, total: int | None, logs: dict[str, Any]) -> None:
        """Report a log dict: progress with loss/lr/grad norm; NaN loss and grad spikes flagged."""
        handle = self.active_handle
        loss = as_number(logs.get("loss"))
        grad = as_number(logs.get("grad_norm"))
        if is_divergent(loss) and not self._diverged:
            self._diverged = True
            handle.error(f"loss is {loss} at step {step}", "loss_divergence")
        if grad is not None and not is_divergent(grad):
            # The median is only worth sorting for when the norm is above factor × the smallest
            # recent one (the median is at least that): most logs skip the sort.
            norms = self._grad_norms
            if len(norms) >= 10 and grad > self.grad_spike_factor * min(norms):
                median = statistics.median(norms)
                if median > 0 and grad > self.grad_spike_factor * median:
                    handle.warning(
                        f"gradient norm {grad:.3g} at step {step} is {grad / median:.0f}× its running median",
                        error_type="gradient_explosion",
                        title=f"{self.name}: gradient explosion",
                    )
            self._grad_norms.append(grad)
        metrics = {k: float(v) for k, v in logs.items() if k.startswith("eval_") and as_number(v) is not None}
        handle.progress(
            step,
            total,
            loss=loss,
            learning_rate=as_number(logs.get("learning_rate")),
            grad_norm=grad,
            epoch=as_number(logs.get("epoch")),
            metrics=metrics or None,
        )

    def crashed(self, exc: BaseException) -> None:
        """Report an exception escaping training: classified error + failed (cancelled for Ctrl+C)."""
        if self.handle is None or self.handle.finished:
            return
        if isinstance(exc, KeyboardInterrupt):
            self.handle.status(wire.JobState.CANCELLED, "interrupted (Ctrl+C)")
        else:
            self.handle.error(summarize_exception(exc), classify_exception(exc))
            self.handle.status(wire.JobState.FAILED, summarize_exception(exc, 200))
        self.finish(completed=False)

    def finish(self, completed: bool = True) -> None:
        """Report completion (unless already finished) and stop an owned server after lingering."""
        if self.handle is not None and completed and not self.handle.finished:
            self.handle.status(wire.JobState.COMPLETED)
        sampler, self.sampler = self.sampler, None
        if sampler is not None:
            sampler.stop(wait=False)  # it winds down while the server does
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_hook or sys.__excepthook__
        if self._owns_server and self.server is not None:
            self.server.stop(linger=self.linger)
            self._owns_server = False
        if sampler is not None:
            sampler.stop()
        if self.handle is not None:
            self.handle.close()
        if self._relay is not None:  # pending channel sends (the completion or the error) get ~15 s
            relay, self._relay = self._relay, None
            relay.close()

    def _excepthook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        try:
            self.crashed(exc)
        finally:
            (self._previous_hook or sys.__excepthook__)(kind, exc, tb)


def param_bytes(model: Any) -> int | None:
    """Bytes of ``model``'s trainable parameters (what a PEFT checkpoint saves; all of them in a
    full fine-tune): the next checkpoint's estimate until one is on disk. ``None`` when unknown."""
    try:
        params = list(model.parameters())
        trainable = [p for p in params if getattr(p, "requires_grad", True)] or params
        total = sum(int(p.numel()) * int(p.element_size()) for p in trainable)
    except Exception:  # not a torch module, or an exotic one: no estimate
        return None
    return total or None


def as_number(value: Any) -> float | None:
    """``value`` as a float (numpy / torch scalars too); ``None`` for None, booleans and non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
