"""``peft-notify simulate`` as a real process, read by a real JobClient."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from peft_notify import wire
from peft_notify.desktop.client import ClientState, JobClient
from peft_notify.emitter.simulate import at_step


def start_simulate(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``peft-notify simulate``; returns the process and the URL it printed."""
    env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "peft_notify", "simulate", "--step-ms", "10", "--linger", "10", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("ws://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
    return proc, url


def collect(url: str) -> tuple[list[wire.Envelope], ClientState]:
    got: list[wire.Envelope] = []

    async def main() -> ClientState:
        client = JobClient(url, on_message=got.append, since=0)
        task = asyncio.create_task(client.run())
        async with asyncio.timeout(30):
            while not any(isinstance(e.data, wire.Status) and e.data.state.finished for e in got):
                await asyncio.sleep(0.02)
        client.stop()
        return await task

    return got, asyncio.run(main())


def test_at_step() -> None:
    assert at_step(0.5, 200) == 100
    assert at_step(150, 200) == 150
    assert at_step(None, 200) is None


def test_simulated_job_completes(tmp_path: Path) -> None:
    proc, url = start_simulate(tmp_path, "--steps", "30", "--job-id", "demo", "--name", "Demo", "--wait-client", "30")
    try:
        got, _ = collect(url)
        hello = got[0].data
        assert isinstance(hello, wire.Hello)
        assert hello.name == "Demo"
        steps = [e.data.current_step for e in got if isinstance(e.data, wire.Progress)]
        assert steps == sorted(steps)
        assert steps[-1] == 30
        assert isinstance(got[-1].data, wire.Status)
        assert got[-1].data.state is wire.JobState.COMPLETED
    finally:
        proc.terminate()
        assert proc.wait(20) in (0, -15)
        proc.stdout.close() if proc.stdout else None
        proc.stderr.close() if proc.stderr else None


def test_simulated_oom_failure_exit_code(tmp_path: Path) -> None:
    proc, url = start_simulate(
        tmp_path, "--steps", "30", "--fail-at", "0.5", "--error-type", "oom_error", "--wait-client", "30"
    )
    got, _ = collect(url)
    errors = [e.data for e in got if isinstance(e.data, wire.NotificationEvent) and e.data.type == "error"]
    assert [(e.error_type, e.urgency) for e in errors] == [("oom_error", "critical")]
    assert "CUDA out of memory" in errors[0].message
    assert proc.wait(20) == 1
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    proc.stderr.close()


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    proc, url = start_simulate(tmp_path, "--steps", "500")
    port = url.split(":")[2].split("/")[0]
    try:
        second = subprocess.run(
            [sys.executable, "-m", "peft_notify", "simulate", "--port", port],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert second.returncode == 2
        assert "already in use" in second.stderr
    finally:
        proc.terminate()
        proc.wait(20)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("flag", ["--nan-at"])
def test_nan_loss_is_a_divergence(tmp_path: Path, flag: str) -> None:
    proc, url = start_simulate(tmp_path, "--steps", "20", flag, "0.5", "--wait-client", "30")
    got, _ = collect(url)
    kinds = [e.data.error_type for e in got if isinstance(e.data, wire.NotificationEvent)]
    assert "loss_divergence" in kinds
    assert proc.wait(20) == 1
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_resume_stall_and_eval_options(tmp_path: Path) -> None:
    proc, url = start_simulate(
        tmp_path,
        "--steps", "40", "--resume-from", "10", "--stall-at", "0.75", "--eval-every", "5",
        "--seed", "1", "--error", "cuda_error", "--wait-client", "30",
    )  # fmt: skip
    got: list[wire.Envelope] = []

    async def main() -> None:
        client = JobClient(url, on_message=got.append, since=0)
        task = asyncio.create_task(client.run())
        async with asyncio.timeout(30):  # stalled at step 30: nothing after it
            while not any(isinstance(e.data, wire.Progress) and e.data.current_step == 30 for e in got):
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        client.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(20)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    progress = [e.data for e in got if isinstance(e.data, wire.Progress)]
    assert progress[0].current_step == 11  # resumed after step 10
    assert progress[-1].current_step == 30  # stalled at 75 %
    evals = [p for p in progress if "eval_loss" in p.metrics]
    assert [p.current_step for p in evals] == [15, 20, 25, 30]
    losses = [p.loss for p in progress if p.loss is not None]
    assert losses[-1] < losses[0]  # decaying
    assert len(set(losses)) == len(losses)  # noisy
    assert not any(isinstance(e.data, wire.Status) and e.data.state.finished for e in got)
