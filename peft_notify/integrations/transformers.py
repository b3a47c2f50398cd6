"""Transformers/PEFT: ``Trainer(..., callbacks=[NotifyCallback("llama-lora")])``.

Reports progress (``on_step_end``), loss / learning rate / grad norm (``on_log``; NaN or
inf loss → ``loss_divergence`` error, a grad-norm spike far above its running median →
``gradient_explosion`` warning), eval metrics (``on_evaluate``) and completion
(``on_train_end``). Only the world process zero serves the job; the other ranks forward
their errors to it (merged: one notification naming the ranks). An exception escaping
``trainer.train()`` is reported when you wrap it in ``with callback.reporting():`` (or,
uncaught, by an ``sys.excepthook`` the callback chains in). Set
``logging_nan_inf_filter=False`` in ``TrainingArguments`` to see NaN losses: the default
filter hides them from the logs. Importing this module imports transformers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback

from peft_notify.emitter.handle import TrainingHandle
from peft_notify.emitter.server import JobServer
from peft_notify.integrations.common import Reporter, param_bytes

__all__ = ["NotifyCallback", "PeftNotifyCallback"]


class NotifyCallback(TrainerCallback):
    """A TrainerCallback that serves (or joins) a peft_notify job for the run."""

    def __init__(
        self,
        name: str = "training",
        *,
        job_id: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        allowed_origins: Sequence[str] = (),
        handle: TrainingHandle | None = None,
        server: JobServer | None = None,
        linger: float = 3.0,
        grad_spike_factor: float = 10.0,
        notify: Sequence[str] | None = None,
        notify_level: str | None = None,
    ) -> None:
        """``notify`` / ``notify_level``: notification channels (apprise URLs) and their level, plus
        ``PEFT_NOTIFY_CHANNELS`` (docs/channels.md)."""
        self.reporter = Reporter(
            name=name,
            job_id=job_id,
            host=host,
            port=port,
            token=token,
            allowed_origins=allowed_origins,
            handle=handle,
            server=server,
            linger=linger,
            grad_spike_factor=grad_spike_factor,
            notify=notify,
            notify_level=notify_level,
        )
        self._active = False
        self._stepping: TrainingHandle | None = None  # the handle while a run is active

    @property
    def handle(self) -> TrainingHandle | None:
        return self.reporter.handle

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._active = True
        total = _total(state)
        rank = 0 if state.is_world_process_zero else max(1, int(getattr(args, "process_index", 1) or 1))
        handle = self.reporter.start(
            total,
            start_step=state.global_step,
            rank=rank,
            output_dir=getattr(args, "output_dir", None),  # its disk is watched (docs/resources.md)
            param_bytes=param_bytes(kwargs.get("model")),
        )
        handle.progress(state.global_step, total)  # resumed runs start past 0: no retroactive milestones
        self._stepping = handle

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        handle = self._stepping  # every step: the fewest calls that report it
        if handle is not None:
            steps = state.max_steps
            handle.progress(state.global_step, steps if steps and steps > 0 else None)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self._active and logs:
            self.reporter.log(state.global_step, _total(state), logs)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if self._active and metrics:
            self.reporter.log(state.global_step, _total(state), metrics)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._active:
            self.reporter.checkpoint_saved()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._active:
            self._active, self._stepping = False, None
            self.reporter.active_handle.progress(state.global_step, _total(state))
            self.reporter.finish(completed=True)

    @contextmanager
    def reporting(self) -> Iterator[NotifyCallback]:
        """Wrap ``trainer.train()``: an escaping exception is reported (then re-raised)."""
        try:
            yield self
        except BaseException as exc:
            if self._active:
                self._active, self._stepping = False, None
                self.reporter.crashed(exc)
            raise


PeftNotifyCallback = NotifyCallback


def _total(state: Any) -> int | None:
    return state.max_steps if state.max_steps and state.max_steps > 0 else None
