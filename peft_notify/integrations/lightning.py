"""PyTorch Lightning: ``Trainer(callbacks=[NotifyCallback("my-run")])``.

Same behaviour as the Transformers callback: progress per batch, loss from
``trainer.callback_metrics`` (NaN → ``loss_divergence``) read at most every
:data:`METRICS_EVERY_S` and at the last step (each read is a GPU sync), ``on_exception`` → classified
error + failed, completion at ``on_train_end``; only global rank zero serves, the other
ranks forward their errors to it.
Importing this module imports ``lightning`` (or ``pytorch_lightning``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    from pytorch_lightning.callbacks import Callback  # type: ignore[assignment]

from peft_notify.emitter.handle import TrainingHandle
from peft_notify.emitter.server import JobServer
from peft_notify.integrations.common import Reporter, as_number, param_bytes

__all__ = ["METRICS_EVERY_S", "NotifyCallback"]

METRICS_EVERY_S = 0.25  # the loss and logged metrics are read at most this often, and at the last step


class NotifyCallback(Callback):
    """A Lightning Callback that serves (or joins) a peft_notify job for the fit."""

    def __init__(
        self,
        name: str = "training",
        *,
        job_id: str | None = None,
        port: int = 0,
        token: str | None = None,
        allowed_origins: Sequence[str] = (),
        handle: TrainingHandle | None = None,
        server: JobServer | None = None,
        linger: float = 3.0,
        notify: Sequence[str] | None = None,
        notify_level: str | None = None,
    ) -> None:
        """``notify`` / ``notify_level``: notification channels (apprise URLs) and their level, plus
        ``PEFT_NOTIFY_CHANNELS`` (docs/channels.md)."""
        super().__init__()
        self.reporter = Reporter(
            name=name,
            job_id=job_id,
            port=port,
            token=token,
            allowed_origins=allowed_origins,
            handle=handle,
            server=server,
            linger=linger,
            notify=notify,
            notify_level=notify_level,
        )
        self._active = False
        self._next_read = 0.0  # monotonic time of the next metrics read (the first batch reads)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._active, self._next_read = True, 0.0
        total = trainer.estimated_stepping_batches
        total = int(total) if isinstance(total, (int, float)) and 0 < total < float("inf") else None
        rank = 0 if trainer.is_global_zero else max(1, int(getattr(trainer, "global_rank", 1) or 1))
        handle = self.reporter.start(
            total,
            start_step=trainer.global_step,
            rank=rank,
            output_dir=getattr(trainer, "default_root_dir", None),  # its disk is watched (docs/resources.md)
            param_bytes=param_bytes(pl_module),
        )
        handle.progress(trainer.global_step, total)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._active:
            return
        handle = self.reporter.active_handle
        step, now = trainer.global_step, time.monotonic()
        if now < self._next_read and (handle.total_steps is None or step < handle.total_steps):
            # Reading a metric means float() of a tensor: on a GPU a sync that stops the CPU from
            # queueing the next step's kernels. Between reads only the step goes out.
            handle.progress(step)
            return
        self._next_read = now + METRICS_EVERY_S
        logs = {k: as_number(v) for k, v in trainer.callback_metrics.items()}
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            logs["loss"] = as_number(loss)
        logs["epoch"] = float(trainer.current_epoch)
        self.reporter.log(trainer.global_step, self.reporter.active_handle.total_steps, logs)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self._active:
            self.reporter.checkpoint_saved()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._active:
            self._active = False
            self.reporter.crashed(exception)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._active:
            self._active = False
            self.reporter.finish(completed=True)
