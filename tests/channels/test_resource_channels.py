"""Resource warnings reach a headless job's own channels (issue 14 × issue 13).

A real job (``peft_notify.job(..., notify=[...], output_dir=...)``) on a real filled 8 MiB
tmpfs: its sampler's sample goes through the job's event log to the training-side relay, whose
engine applies the resource rules; the real receiver gets the critical "will not fit" error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.channels.conftest import Receiver
from tests.emitter.resource_support import fill, small_tmpfs


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("PEFT_NOTIFY_CHANNELS", raising=False)
    monkeypatch.delenv("PEFT_NOTIFY_LEVEL", raising=False)
    monkeypatch.delenv("PEFT_NOTIFY_RESOURCES", raising=False)


def test_a_full_disk_reaches_the_jobs_own_channel(receiver: Receiver, tmp_path: Path) -> None:
    import peft_notify

    with small_tmpfs(tmp_path / "fs") as fs:
        fill(fs / "dataset.arrow", 4 << 20)
        with peft_notify.job(
            "llama",
            total_steps=100,
            print_url=False,
            linger=0,
            notify=[receiver.url("json")],
            notify_level="warning",
            output_dir=fs,
            param_bytes=6 << 20,
        ) as job:
            job.progress(1)
            hits = receiver.wait_for(1, timeout=15)
            job.progress(2)
    assert hits, "the channel got nothing"
    body = hits[0].json()
    assert body["title"] == "llama: the next checkpoint will not fit"
    assert body["type"] == "failure"
    assert "the next checkpoint needs about 6.0 MiB" in body["message"]
