"""peft_notify.job(): completion, classified failures re-raised, Ctrl+C cancelled, track()."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import peft_notify
from peft_notify import wire
from peft_notify.desktop.client import JobClient
from peft_notify.emitter import JobServer
from peft_notify.emitter.classify import classify_exception
from peft_notify.integrations.loop import track


class Collector:
    def __init__(self, url: str) -> None:
        self.messages: list[wire.Envelope] = []
        self.client = JobClient(url, on_message=self.messages.append, since=0)
        self.thread = threading.Thread(target=asyncio.run, args=(self.client.run(),))
        self.thread.start()
        for _ in range(1000):
            if self.client.hello is not None:
                return
            threading.Event().wait(0.01)
        raise AssertionError("no hello")

    def finish(self) -> list[wire.Body]:
        self.thread.join(20)
        return [m.data for m in self.messages]


@pytest.fixture
def server() -> Any:
    srv = JobServer(discovery_files=False).start()
    yield srv
    srv.stop()


def test_track_reports_steps_and_completion(server: JobServer) -> None:
    ctx = peft_notify.job("loop", server=server, job_id="a", print_url=False)
    collector = Collector(ctx.url)
    with ctx:
        assert list(ctx.track(range(5))) == [0, 1, 2, 3, 4]
    server.stop(linger=5)
    bodies = collector.finish()
    progress = [b for b in bodies if isinstance(b, wire.Progress)]
    assert progress[-1].current_step == 5
    assert progress[-1].total_steps == 5
    assert isinstance(bodies[-1], wire.Status)
    assert bodies[-1].state is wire.JobState.COMPLETED


def test_exception_is_reported_classified_and_reraised(server: JobServer) -> None:
    ctx = peft_notify.job("oom", server=server, job_id="b", print_url=False)
    collector = Collector(ctx.url)

    def train() -> None:
        with ctx:
            ctx.progress(3, 10)
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")

    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        train()
    server.stop(linger=5)
    bodies = collector.finish()
    [error] = [b for b in bodies if isinstance(b, wire.NotificationEvent)]
    assert (error.error_type, error.urgency) == ("oom_error", "critical")
    assert "at step 3" in error.message
    assert isinstance(bodies[-1], wire.Status)
    assert bodies[-1].state is wire.JobState.FAILED


def test_keyboard_interrupt_is_cancelled(server: JobServer) -> None:
    ctx = peft_notify.job("ctrl-c", server=server, job_id="c", print_url=False)
    collector = Collector(ctx.url)
    with pytest.raises(KeyboardInterrupt), ctx:
        raise KeyboardInterrupt
    server.stop(linger=5)
    bodies = collector.finish()
    assert isinstance(bodies[-1], wire.Status)
    assert bodies[-1].state is wire.JobState.CANCELLED


def test_job_owns_its_server_and_stops_it(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("PEFT_NOTIFY_FD", raising=False)
    with peft_notify.job("own", linger=0, print_url=False) as ctx:
        assert ctx.server is not None
        assert list(tmp_path.glob("*.job.json"))
    assert not list(tmp_path.glob("*.job.json"))


def test_plain_loop_track(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path))
    assert sum(track(range(4), "plain", linger=0, print_url=False)) == 6


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RuntimeError("CUDA error: device-side assert triggered"), "cuda_error"),
        (RuntimeError("CUDA out of memory"), "oom_error"),
        (type("OutOfMemoryError", (RuntimeError,), {})("boom"), "oom_error"),
        (ValueError("loss is nan"), "loss_divergence"),
        (ValueError("bad"), "system_crash"),
    ],
)
def test_classify_exception(exc: BaseException, expected: str) -> None:
    assert classify_exception(exc) == expected
