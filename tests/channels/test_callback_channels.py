"""NotifyCallback(notify=[...]) on a real transformers.Trainer + PEFT LoRA (tiny model, CPU)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.channels.conftest import Receiver

pytestmark = [
    pytest.mark.ml,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    for name in ("PEFT_NOTIFY_FD", "PEFT_NOTIFY_CHANNELS", "PEFT_NOTIFY_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def test_trainer_completion_reaches_the_channel_with_the_loss_curve(tmp_path: Path, receiver: Receiver) -> None:
    import time

    import transformers

    from peft_notify.integrations.transformers import NotifyCallback
    from tests.integrations.test_transformers import _trainer

    class Paced(transformers.TrainerCallback):  # type: ignore[misc]
        """Steps slower than the 20/s progress coalescing, so the curve has several points however
        fast the machine is (an 8-step CPU run can otherwise finish inside one coalescing window)."""

        def on_step_end(self, *args: object, **kwargs: object) -> None:
            time.sleep(0.08)

    callback = NotifyCallback("tiny-lora", linger=0, notify=[receiver.url("json")])
    trainer = _trainer(tmp_path, callback, steps=8)
    trainer.add_callback(Paced())
    trainer.train()
    [hit] = receiver.hits  # default level: the completion only (no milestones)
    payload = hit.json()
    assert payload["type"] == "success"
    assert payload["title"] == "tiny-lora: training complete"
    assert "step 8/8" in payload["message"]
    assert "loss " in payload["message"]
    [png] = payload["attachments"]
    assert base64.b64decode(png["base64"]).startswith(b"\x89PNG")
