"""A real transformers.Trainer + PEFT LoRA on a tiny random causal LM (CPU), watched over a real socket."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peft_notify import wire
from peft_notify.desktop.client import JobClient
from peft_notify.emitter import JobServer

pytestmark = [
    pytest.mark.ml,
    pytest.mark.slow,
    # Deprecations raised between transformers and peft releases are theirs, not ours.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.delenv("PEFT_NOTIFY_FD", raising=False)


class Listener:
    """A JobClient on its own thread that records every envelope."""

    def __init__(self, url: str) -> None:
        self.messages: list[wire.Envelope] = []
        self.client = JobClient(url, on_message=self.messages.append, since=0)
        self._thread = threading.Thread(target=asyncio.run, args=(self.client.run(),), daemon=True)
        self._thread.start()
        for _ in range(1000):
            if self.client.hello is not None:
                return
            time.sleep(0.01)
        raise AssertionError("client did not connect")

    def close(self) -> None:
        self.client.stop()
        self._thread.join(10)


def _wait_for(listener: Listener, pred: Any) -> None:
    """Wait (up to 10 s) until a message satisfying ``pred`` arrived."""
    for _ in range(1000):
        if any(pred(m) for m in listener.messages):
            return
        time.sleep(0.01)


def _dataset(n: int) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        ids = torch.randint(0, 64, (16,), generator=gen)
        rows.append({"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)})
    return rows


def _trainer(tmp_path: Path, callback: Any, steps: int, trainer_cls: Any = None, **options: Any) -> Any:
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    model = peft.get_peft_model(
        model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        per_device_train_batch_size=2,
        logging_steps=1,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        logging_nan_inf_filter=False,
        **options,
    )
    cls = trainer_cls or transformers.Trainer
    evals = _dataset(4) if options.get("eval_strategy") else None
    return cls(model=model, args=args, train_dataset=_dataset(steps * 2), eval_dataset=evals, callbacks=[callback])


@pytest.fixture
def served() -> Iterator[tuple[JobServer, Any]]:
    server = JobServer(progress_hz=0).start()  # no coalescing: every step reaches the client
    handle = server.add_job("lora", name="tiny-lora")
    yield server, handle
    server.stop()


def test_trainer_with_lora_reports_progress_milestones_completion(
    tmp_path: Path, served: tuple[JobServer, Any]
) -> None:
    from peft_notify.engine import Engine, EngineConfig, Notify
    from peft_notify.integrations.transformers import NotifyCallback
    from peft_notify.ports import DndState

    _server, handle = served
    listener = Listener(handle.url)
    callback = NotifyCallback("tiny-lora", handle=handle)
    _trainer(tmp_path, callback, steps=24).train()
    for _ in range(1000):
        if any(isinstance(m.data, wire.Status) and m.data.state.finished for m in listener.messages):
            break
        time.sleep(0.01)
    listener.close()

    messages = listener.messages
    assert messages[0].type == "hello"
    progress = [m.data for m in messages if isinstance(m.data, wire.Progress)]
    steps = [p.current_step for p in progress]
    assert steps == sorted(steps)
    assert steps[-1] == 24
    assert all(p.total_steps == 24 for p in progress)
    assert any(p.loss is not None and p.learning_rate is not None for p in progress)
    assert isinstance(messages[-1].data, wire.Status)
    assert messages[-1].data.state is wire.JobState.COMPLETED

    engine = Engine(EngineConfig())
    shown = []
    for i, env in enumerate(messages):
        shown += [a.event for a in engine.feed(env, now=1000.0 + i, dnd=DndState.OFF) if isinstance(a, Notify)]
    milestones = [e for e in shown if e.type == wire.NotificationType.PROGRESS and e.milestone]
    for percent in (25, 50, 75):  # fired, or named by a jump across it ("75 % — passed 50 % too")
        assert any(e.milestone == percent or f"{percent}" in e.message for e in milestones), percent
    assert any(e.type == wire.NotificationType.COMPLETION for e in shown)


def test_nan_loss_is_reported_as_divergence(tmp_path: Path, served: tuple[JobServer, Any]) -> None:
    from peft_notify.integrations.transformers import NotifyCallback

    class NanTrainer(transformers.Trainer):  # type: ignore[misc,name-defined]
        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            return loss * math.nan if self.state.global_step >= 3 else loss

    _server, handle = served
    listener = Listener(handle.url)
    callback = NotifyCallback("tiny-lora", handle=handle)
    _trainer(tmp_path, callback, steps=6, trainer_cls=NanTrainer).train()
    for _ in range(1000):
        if any(isinstance(m.data, wire.NotificationEvent) for m in listener.messages):
            break
        time.sleep(0.01)
    listener.close()
    errors = [m.data for m in listener.messages if isinstance(m.data, wire.NotificationEvent)]
    assert [e.error_type for e in errors] == ["loss_divergence"]
    assert errors[0].urgency == "high"


def test_exception_in_train_is_classified(tmp_path: Path, served: tuple[JobServer, Any]) -> None:
    from peft_notify.integrations.transformers import NotifyCallback

    class OomTrainer(transformers.Trainer):  # type: ignore[misc,name-defined]
        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            if self.state.global_step >= 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().compute_loss(model, inputs, *args, **kwargs)

    _server, handle = served
    listener = Listener(handle.url)
    callback = NotifyCallback("tiny-lora", handle=handle)
    trainer = _trainer(tmp_path, callback, steps=6, trainer_cls=OomTrainer)
    with pytest.raises(torch.cuda.OutOfMemoryError), callback.reporting():
        trainer.train()
    for _ in range(1000):
        if any(isinstance(m.data, wire.Status) for m in listener.messages):
            break
        time.sleep(0.01)
    listener.close()
    errors = [m.data for m in listener.messages if isinstance(m.data, wire.NotificationEvent)]
    assert [(e.error_type, e.urgency) for e in errors] == [("oom_error", "critical")]
    assert [m.data.state for m in listener.messages if isinstance(m.data, wire.Status)] == [wire.JobState.FAILED]


def test_grad_norm_spike_is_a_gradient_explosion_and_eval_metrics_are_reported(
    tmp_path: Path, served: tuple[JobServer, Any]
) -> None:
    from peft_notify.integrations.transformers import NotifyCallback

    class SpikeTrainer(transformers.Trainer):  # type: ignore[misc,name-defined]
        def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            return loss * 1e4 if self.state.global_step == 13 else loss  # step 14's gradients explode

    _server, handle = served
    listener = Listener(handle.url)
    callback = NotifyCallback("tiny-lora", handle=handle)
    _trainer(tmp_path, callback, steps=16, trainer_cls=SpikeTrainer, eval_strategy="steps", eval_steps=8).train()
    for _ in range(1000):
        if any(isinstance(m.data, wire.Status) and m.data.state.finished for m in listener.messages):
            break
        time.sleep(0.01)
    listener.close()
    events = [m.data for m in listener.messages if isinstance(m.data, wire.NotificationEvent)]
    assert [(e.type, e.error_type) for e in events] == [(wire.NotificationType.WARNING, "gradient_explosion")]
    assert "step 14" in events[0].message
    evals = [m.data for m in listener.messages if isinstance(m.data, wire.Progress) and "eval_loss" in m.data.metrics]
    assert evals, "on_evaluate metrics reach the progress messages"
    assert all(math.isfinite(p.metrics["eval_loss"]) for p in evals)


UNCAUGHT = """
import sys
import torch, transformers, peft
sys.path.insert(0, sys.argv[1])
from tests.integrations.test_transformers import _trainer
from peft_notify.integrations.transformers import NotifyCallback

class Crash(transformers.Trainer):
    def compute_loss(self, model, inputs, *args, **kwargs):
        if self.state.global_step == 2:
            sys.stdin.readline()  # the test's client is connected
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().compute_loss(model, inputs, *args, **kwargs)

callback = NotifyCallback("crashing", job_id="crash", linger=10)
_trainer(__import__("pathlib").Path(sys.argv[2]), callback, steps=6, trainer_cls=Crash).train()  # no reporting()
"""


def test_uncaught_exception_is_reported_through_the_excepthook(tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys

    script = tmp_path / "crash.py"
    script.write_text(UNCAUGHT)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt"), "PYTHONWARNINGS": "ignore"}
    env.pop("PEFT_NOTIFY_FD", None)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), str(tmp_path)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stderr is not None
    url = None
    while url is None:
        line = proc.stderr.readline().decode()
        assert line, "the training script exited before serving"
        found = re.search(r"job 'crashing' at (ws://\S+)", line)
        url = found.group(1) if found else None
    listener = Listener(url)
    _, err = proc.communicate(b"go\n", timeout=120)
    for _ in range(1000):
        if any(isinstance(m.data, wire.Status) for m in listener.messages):
            break
        time.sleep(0.01)
    listener.close()
    assert proc.returncode == 1
    assert b"OutOfMemoryError" in err  # the original hook still printed the traceback
    errors = [m.data for m in listener.messages if isinstance(m.data, wire.NotificationEvent)]
    assert [(e.error_type, e.urgency) for e in errors] == [("oom_error", "critical")]
    assert [m.data.state for m in listener.messages if isinstance(m.data, wire.Status)] == [wire.JobState.FAILED]


def test_the_output_dir_and_the_trainable_bytes_are_watched(tmp_path: Path, served: tuple[JobServer, Any]) -> None:
    """Resource sampling (docs/resources.md): args.output_dir's disk, the LoRA weights as the estimate."""
    from peft_notify.integrations.transformers import NotifyCallback

    _server, handle = served
    listener = Listener(handle.url)
    callback = NotifyCallback("tiny-lora", handle=handle)
    trainer = _trainer(tmp_path, callback, steps=24)
    trainable = sum(p.numel() * p.element_size() for p in trainer.model.parameters() if p.requires_grad)
    trainer.train()
    _wait_for(listener, lambda m: isinstance(m.data, wire.Status))
    listener.close()
    samples = [m.data for m in listener.messages if isinstance(m.data, wire.Resource)]
    assert samples, "no resource sample during training"
    disk = samples[-1].disk
    assert disk is not None
    assert disk.path == str(tmp_path / "out")
    assert disk.next_checkpoint == trainable
    assert callback.reporter.sampler is None  # stopped with the run
