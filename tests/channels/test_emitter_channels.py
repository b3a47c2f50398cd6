"""A real JobServer job with channels: what training code reports reaches the receiver."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from peft_notify.emitter import JobServer
from peft_notify.emitter.channels import CAPABILITY, attach, channel_specs, with_capability
from tests.channels.conftest import Receiver


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("PEFT_NOTIFY_CHANNELS", raising=False)
    monkeypatch.delenv("PEFT_NOTIFY_LEVEL", raising=False)


def test_reports_reach_the_channel_through_the_event_log(receiver: Receiver) -> None:
    specs = channel_specs([receiver.url("json")], "progress")
    server = JobServer(discovery_files=False).start()
    try:
        handle = server.add_job("j1", name="llama", total_steps=100, capabilities=with_capability(["retry"], specs))
        assert handle.capabilities == ("retry", CAPABILITY)
        relay = attach(server, handle, specs)
        for step in (0, 30, 60, 80, 100):
            handle.progress(step, loss=3 - step / 50)
            time.sleep(0.3)  # progress is coalesced (latest wins): let each report go out
        handle.status("completed")
    finally:
        server.stop(linger=0.5)
    assert relay.close(10)
    titles = [h.json()["title"] for h in receiver.hits]
    assert titles == ["llama: 25% complete", "llama: 50% complete", "llama: 75% complete", "llama: training complete"]


def test_env_adds_channels_and_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_CHANNELS", "json://a/x  json://b/y json://a/x")
    monkeypatch.setenv("PEFT_NOTIFY_LEVEL", "warning")
    specs = channel_specs(["json://c/z"], None)
    assert [s.url for s in specs] == ["json://c/z", "json://a/x", "json://b/y"]
    assert {s.level.label for s in specs} == {"warning"}
    assert with_capability(["retry"], []) == ("retry",)
    with pytest.raises(ValueError, match="unknown level 'loud'"):
        channel_specs([], "loud")


def test_job_with_notify_delivers_and_advertises_it(receiver: Receiver) -> None:
    import peft_notify

    with peft_notify.job(
        "llama", total_steps=100, print_url=False, linger=0, notify=[receiver.url("json")], notify_level="error"
    ) as job:
        assert CAPABILITY in job.handle.capabilities
        job.progress(50, loss=1.0)
        job.error("CUDA out of memory", "oom_error")
    [hit] = receiver.hits  # the context waited for the send before returning
    assert hit.json()["type"] == "failure"
    assert "out of memory" in hit.json()["message"]


def test_job_without_channels_imports_no_channel_layer() -> None:
    import subprocess
    import sys

    code = (
        "import sys, peft_notify\n"
        "with peft_notify.job('x', total_steps=2, print_url=False, linger=0) as j: j.progress(1)\n"
        "assert 'peft_notify.channels' not in sys.modules and 'apprise' not in sys.modules, sorted(sys.modules)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PEFT_NOTIFY_CHANNELS"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)


def test_bad_level_is_a_value_error() -> None:
    import peft_notify

    with pytest.raises(ValueError, match="unknown level"):
        peft_notify.job("x", notify=["json://127.0.0.1:1/x"], notify_level="loud", print_url=False)
