"""A real Lightning Trainer on a tiny model (CPU) with the NotifyCallback, watched over a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peft_notify import wire
from peft_notify.emitter import JobServer
from tests.integrations.test_transformers import Listener, _wait_for

pytestmark = [
    pytest.mark.ml,
    pytest.mark.slow,
    # Lightning's own advice (few dataloader workers, ...) and deprecations are not ours.
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

torch = pytest.importorskip("torch")
lightning = pytest.importorskip("lightning", reason="lightning is not installed")


class Tiny(lightning.LightningModule):  # type: ignore[misc,name-defined]
    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.fail_at = fail_at

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.fail_at is not None and self.global_step >= self.fail_at:
            raise RuntimeError("CUDA error: device-side assert triggered")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(callback: Any, steps: int, fail_at: int | None = None, **trainer_options: Any) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(steps * 2, 4, generator=gen)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    trainer = lightning.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        **trainer_options,
    )
    trainer.fit(Tiny(fail_at), loader)


@pytest.fixture
def served() -> Iterator[tuple[JobServer, Any]]:
    server = JobServer(progress_hz=0, discovery_files=False).start()
    handle = server.add_job("pl", name="tiny-pl")
    yield server, handle
    server.stop()


def test_lightning_fit_reports_progress_and_completion(served: tuple[JobServer, Any]) -> None:
    from peft_notify.integrations.lightning import NotifyCallback

    _server, handle = served
    listener = Listener(handle.url)
    _fit(NotifyCallback("tiny-pl", handle=handle), steps=12)
    _wait_for(listener, lambda m: isinstance(m.data, wire.Status) and m.data.state.finished)
    listener.close()
    progress = [m.data for m in listener.messages if isinstance(m.data, wire.Progress)]
    steps = [p.current_step for p in progress]
    assert steps == sorted(steps)
    assert steps[-1] == 12
    assert all(p.total_steps == 12 for p in progress)
    assert any(p.loss is not None for p in progress)
    statuses = [m.data.state for m in listener.messages if isinstance(m.data, wire.Status)]
    assert statuses == [wire.JobState.COMPLETED]


def test_lightning_exception_is_classified(served: tuple[JobServer, Any]) -> None:
    from peft_notify.integrations.lightning import NotifyCallback

    _server, handle = served
    listener = Listener(handle.url)
    with pytest.raises(RuntimeError, match="device-side assert"):
        _fit(NotifyCallback("tiny-pl", handle=handle), steps=12, fail_at=5)
    _wait_for(listener, lambda m: isinstance(m.data, wire.Status))
    listener.close()
    errors = [m.data for m in listener.messages if isinstance(m.data, wire.NotificationEvent)]
    assert [(e.error_type, e.urgency) for e in errors] == [("cuda_error", "critical")]
    assert [m.data.state for m in listener.messages if isinstance(m.data, wire.Status)] == [wire.JobState.FAILED]


def test_the_default_root_dir_and_the_parameter_bytes_are_watched(
    served: tuple[JobServer, Any], tmp_path: Path
) -> None:
    """Resource sampling (docs/resources.md): the trainer's default_root_dir and the module's weights."""
    from peft_notify.integrations.lightning import NotifyCallback

    _server, handle = served
    listener = Listener(handle.url)
    _fit(NotifyCallback("tiny-pl", handle=handle), steps=12, default_root_dir=str(tmp_path))
    _wait_for(listener, lambda m: isinstance(m.data, wire.Status) and m.data.state.finished)
    listener.close()
    samples = [m.data for m in listener.messages if isinstance(m.data, wire.Resource)]
    assert samples, "no resource sample during training"
    disk = samples[-1].disk
    assert disk is not None
    assert disk.path == str(tmp_path)
    assert disk.next_checkpoint == 5 * 4  # Linear(4, 1): 5 float32 parameters


def test_metrics_are_read_a_few_times_a_second_not_every_batch(
    served: tuple[JobServer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the loss is float() of a tensor, on a GPU a sync every batch: the callback reads the
    metrics on the first batch, at most every METRICS_EVERY_S, and at the last step; every batch's
    step still goes out, and the last loss arrives."""
    from peft_notify.integrations import lightning as pl_callback

    reads: list[int] = []
    real = pl_callback.as_number

    def counting(value: Any) -> float | None:  # instrumentation around the real conversion
        reads.append(1)
        return real(value)

    monkeypatch.setattr(pl_callback, "as_number", counting)
    monkeypatch.setattr(pl_callback, "METRICS_EVERY_S", 3600.0)
    _server, handle = served
    listener = Listener(handle.url)
    _fit(pl_callback.NotifyCallback("tiny-pl", handle=handle), steps=40)
    _wait_for(listener, lambda m: isinstance(m.data, wire.Status) and m.data.state.finished)
    listener.close()
    progress = [m.data for m in listener.messages if isinstance(m.data, wire.Progress)]
    assert progress[-1].current_step == 40 and progress[-1].loss is not None  # the last step reads
    # Two reads (first batch, last step) of train_loss and the step's loss: 4 conversions, not 80.
    assert len(reads) == 4, len(reads)


def test_a_nan_loss_is_still_caught_between_reads(
    served: tuple[JobServer, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft_notify.integrations import lightning as pl_callback

    monkeypatch.setattr(pl_callback, "METRICS_EVERY_S", 0.0)  # every batch: what a slow step gives

    class Diverging(Tiny):  # type: ignore[misc,valid-type]
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            loss = super().training_step(batch, batch_idx)
            return loss * float("nan") if self.global_step >= 5 else loss

    _server, handle = served
    listener = Listener(handle.url)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=gen)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=2)
    trainer = lightning.Trainer(
        max_steps=10,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[pl_callback.NotifyCallback("tiny-pl", handle=handle)],
    )
    trainer.fit(Diverging(), loader)
    _wait_for(listener, lambda m: isinstance(m.data, wire.Status) and m.data.state.finished)
    listener.close()
    errors = [m.data for m in listener.messages if isinstance(m.data, wire.NotificationEvent)]
    assert [e.error_type for e in errors] == ["loss_divergence"]
