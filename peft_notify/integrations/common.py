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
from peft_notify.emitter import ranks
from peft_notify.emitter.attach import from_environment
from peft_notify.emitter.classify import classify_exception, is_divergent, summarize_exception
from peft_notify.emitter.server import JobServer

__all__ = ["Reporter"]


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
    handle: Any = None
    server: JobServer | None = None
    grad_spike_factor: float = 10.0
    _grad_norms: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    _diverged: bool = False
    _owns_server: bool = False
    _previous_hook: Any = None

    def start(self, total_steps: int | None, *, start_step: int | None = None, rank: int | None = None) -> Any:
        """Get (once) the handle: the one given, the ``run`` wrapper's pipe, or a new server's job.

        ``start_step``: a resumed run's first step (in the first ``hello``). ``rank``: the
        framework's global rank when it knows it; ranks other than 0 get a
        :class:`~peft_notify.emitter.ranks.RankForwarder` (errors only, sent to rank 0).
        """
        if self.handle is None:
            self.handle = from_environment(self.name, total_steps)
        if self.handle is None:
            info = ranks.detect_rank()
            if rank is not None and rank != info.rank:
                info = ranks.RankInfo(rank, max(info.world_size, rank + 1), info.local_rank)
            key = self.job_id or self.name
            if info.rank != 0:
                self.handle = ranks.RankForwarder(info, key, name=self.name, total_steps=total_steps)
            else:
                if self.server is None:
                    self.server = JobServer(host=self.host, port=self.port, token=self.token).start()
                    self._owns_server = True
                self.handle = self.server.add_job(
                    self.job_id, name=self.name, total_steps=total_steps, start_step=start_step
                )
                if info.distributed:
                    ranks.publish(self.server, self.handle, key)
                print(f"peft-notify: job {self.name!r} at {self.handle.url}", file=sys.stderr, flush=True)
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        return self.handle

    def log(self, step: int, total: int | None, logs: dict[str, Any]) -> None:
        """Report a log dict: progress with loss/lr/grad norm; NaN loss and grad spikes flagged."""
        handle = self.handle
        loss = _num(logs.get("loss"))
        grad = _num(logs.get("grad_norm"))
        if is_divergent(loss) and not self._diverged:
            self._diverged = True
            handle.error(f"loss is {loss} at step {step}", "loss_divergence")
        if grad is not None and not is_divergent(grad):
            if len(self._grad_norms) >= 10:
                median = statistics.median(self._grad_norms)
                if median > 0 and grad > self.grad_spike_factor * median:
                    handle.warning(
                        f"gradient norm {grad:.3g} at step {step} is {grad / median:.0f}× its running median",
                        error_type="gradient_explosion",
                        title=f"{self.name}: gradient explosion",
                    )
            self._grad_norms.append(grad)
        metrics = {k: float(v) for k, v in logs.items() if k.startswith("eval_") and _num(v) is not None}
        handle.progress(
            step,
            total,
            loss=loss,
            learning_rate=_num(logs.get("learning_rate")),
            grad_norm=grad,
            epoch=_num(logs.get("epoch")),
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
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_hook or sys.__excepthook__
        if self._owns_server and self.server is not None:
            self.server.stop(linger=self.linger)
            self._owns_server = False
        closer = getattr(self.handle, "close", None)
        if callable(closer):
            closer()

    def _excepthook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        try:
            self.crashed(exc)
        finally:
            (self._previous_hook or sys.__excepthook__)(kind, exc, tb)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
