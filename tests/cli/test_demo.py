"""``peft-notify demo`` and ``app``: job plan, and a clear message where no display exists."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from peft_notify import wire
from peft_notify.cli import main
from peft_notify.cli.app import display_available
from peft_notify.cli.demo import DemoServer, demo_jobs


def test_demo_jobs_show_every_outcome() -> None:
    jobs = demo_jobs(3, steps=400, step_ms=100, fail_at=0.6, error="cuda_error")
    assert [j.job_id for j in jobs] == ["demo-1", "demo-2", "demo-3"]
    assert jobs[0].fail_at is None  # completes
    assert (jobs[1].fail_at, jobs[1].error_type) == (0.6, "cuda_error")  # fails
    assert jobs[2].loss_spike_at is not None  # warns
    assert jobs[2].step_time > jobs[0].step_time
    assert len({j.name for j in demo_jobs(7, 10, 1, 0.5, "oom_error")}) == 7


def test_app_without_display_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    if display_available():
        pytest.skip("this OS always has a display")
    assert main(["app", "ws://127.0.0.1:9/ws/notifications/x"]) == 2
    # Issue 11 item 7: a user-facing error is one line on stderr (it was printed on stdout).
    err = capsys.readouterr().err
    assert "no display found" in err
    assert err.count("\n") == 1


def test_demo_without_display_falls_back_to_watch(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    if display_available():
        pytest.skip("this OS always has a display")
    assert main(["demo", "--jobs", "2", "--steps", "8", "--step-ms", "5"]) == 0
    out = capfd.readouterr().out
    assert "No display here" in out
    assert "finished at step 8" in out


class Follower:
    """Real WebSocket clients on every demo job; records each job's messages."""

    def __init__(self, urls: list[str]) -> None:
        from peft_notify.desktop.client import JobClient

        self.messages: dict[str, list[wire.Envelope]] = {}
        self.clients = {url: JobClient(url, on_message=self._take, since=0) for url in urls}

    def _take(self, env: wire.Envelope) -> None:
        self.messages.setdefault(env.job_id or "", []).append(env)

    def bodies(self, job_id: str, kind: type) -> list[Any]:
        return [m.data for m in self.messages.get(job_id, []) if isinstance(m.data, kind)]

    def finals(self, job_id: str) -> list[wire.JobState]:
        return [s.state for s in self.bodies(job_id, wire.Status) if s.state.finished]

    def client(self, job_id: str) -> Any:
        return next(c for url, c in self.clients.items() if f"/{job_id}?" in url or url.endswith(f"/{job_id}"))

    async def until(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)


def test_cancel_on_one_demo_job_cancels_only_that_one() -> None:
    """Issue 11 item 2: Cancel on one job cancelled all three (they shared one stop event)."""
    jobs = demo_jobs(3, steps=80, step_ms=15, fail_at=0.95, error="oom_error")
    demo = DemoServer(jobs).start()
    follower = Follower(demo.urls)

    async def main() -> None:
        tasks = [asyncio.create_task(c.run()) for c in follower.clients.values()]
        await follower.until(lambda: any(p.current_step >= 5 for p in follower.bodies("demo-3", wire.Progress)))
        assert await follower.client("demo-3").send_action(wire.ActionRequest("cancel"))
        await follower.until(lambda: all(follower.finals(j.job_id) for j in jobs))
        for client in follower.clients.values():
            client.stop()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
    finally:
        demo.close()
    assert follower.finals("demo-3") == [wire.JobState.CANCELLED]
    assert follower.finals("demo-1") == [wire.JobState.COMPLETED]
    assert follower.bodies("demo-1", wire.Progress)[-1].current_step == 80
    assert follower.finals("demo-2") == [wire.JobState.FAILED]  # went on to its own failure


def test_retry_relaunches_the_failed_demo_job_as_a_new_run() -> None:
    """Issue 11 item 1: Retry was enabled on the failed demo job and silently did nothing."""
    jobs = demo_jobs(2, steps=40, step_ms=10, fail_at=0.5, error="oom_error")
    demo = DemoServer(jobs).start()
    follower = Follower(demo.urls)

    async def main() -> None:
        tasks = [asyncio.create_task(c.run()) for c in follower.clients.values()]
        await follower.until(lambda: bool(follower.finals("demo-2")))
        assert await follower.client("demo-2").send_action(wire.ActionRequest("retry"))
        await follower.until(lambda: len(follower.finals("demo-2")) == 2 and bool(follower.finals("demo-1")))
        for client in follower.clients.values():
            client.stop()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
    finally:
        demo.close()
    assert follower.finals("demo-2") == [wire.JobState.FAILED, wire.JobState.COMPLETED]
    hellos = follower.bodies("demo-2", wire.Hello)
    assert len({h.run_id for h in hellos}) == 2  # a new run of the same job (the same card)
    assert follower.bodies("demo-2", wire.Progress)[-1].current_step == 40
    assert follower.finals("demo-1") == [wire.JobState.COMPLETED]  # the other job was not relaunched
