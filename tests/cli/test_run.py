"""``peft-notify run`` with real child processes and a real WebSocket client."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from peft_notify import wire
from peft_notify.client import JobClient

TQDM_THEN_OOM = """
import sys, time
from tqdm import tqdm
sys.stdin.readline()
print("loading model", flush=True)
for i in tqdm(range(40), mininterval=0):
    time.sleep(0.005)
print({'loss': 0.75, 'grad_norm': 1.5, 'learning_rate': 0.0002, 'epoch': 1.0}, flush=True)
raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity)")
"""

OK_WITH_JOB = """
import sys
import peft_notify
sys.stdin.readline()
with peft_notify.job("inner", total_steps=10) as job:
    for _ in job.track(range(10)):
        pass
print("done", flush=True)
"""

SLEEPER = """
import sys, time
sys.stdin.readline()
print("sleeping", flush=True)
time.sleep(60)
"""


class Run:
    """A ``peft-notify run`` process with a client attached before the child starts working."""

    def __init__(self, tmp_path: Path, script: str, *extra: str) -> None:
        path = tmp_path / "train.py"
        path.write_text(textwrap.dedent(script))
        env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "peft_notify", "run", "--linger", "5", *extra, "--", sys.executable, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline().decode()
        found = re.search(r"(ws://\S+)", first)
        assert found, first
        self.url = found.group(1)
        self.messages: list[wire.Envelope] = []

    def go(self) -> tuple[int, bytes, bytes]:
        """Connect, let the child start, collect everything until the job finishes."""
        connected = threading.Event()

        async def main() -> None:
            client = JobClient(self.url, on_message=self.messages.append, since=0)
            task = asyncio.create_task(client.run())
            async with asyncio.timeout(60):
                while client.hello is None:
                    await asyncio.sleep(0.01)
                connected.set()
                await task

        thread = threading.Thread(target=asyncio.run, args=(main(),))
        thread.start()
        assert connected.wait(30)
        out, err = self.proc.communicate(b"go\n", timeout=60)
        thread.join(60)
        return self.proc.returncode, out, err

    def bodies(self, kind: type) -> list:  # type: ignore[type-arg]
        return [m.data for m in self.messages if isinstance(m.data, kind)]


def test_tqdm_progress_then_cuda_oom(tmp_path: Path) -> None:
    run = Run(tmp_path, TQDM_THEN_OOM)
    code, out, err = run.go()
    assert code == 1
    assert b"loading model" in out  # passed through unchanged
    assert b"40/40" in err  # tqdm's bar too
    steps = [p.current_step for p in run.bodies(wire.Progress)]
    assert steps
    assert steps == sorted(steps)
    assert steps[-1] == 40
    assert any(p.loss == 0.75 for p in run.bodies(wire.Progress))
    [error] = [n for n in run.bodies(wire.NotificationEvent) if n.type == "error"]
    assert error.error_type == "oom_error"
    assert error.urgency == "critical"
    assert "exit code 1" in error.message
    assert "CUDA out of memory" in error.message
    assert run.bodies(wire.Status)[-1].state is wire.JobState.FAILED


def test_child_using_job_reports_through_the_wrapper_once(tmp_path: Path) -> None:
    run = Run(tmp_path, OK_WITH_JOB)
    code, out, err = run.go()
    assert code == 0, err
    assert b"done" in out
    assert b"peft-notify: job" not in err  # the child started no server of its own
    assert run.bodies(wire.Progress)[-1].current_step == 10
    finals = [s.state for s in run.bodies(wire.Status) if s.state.finished]
    assert finals == [wire.JobState.COMPLETED]


def test_sigterm_is_forwarded_and_reported_cancelled(tmp_path: Path) -> None:
    run = Run(tmp_path, SLEEPER)

    def terminate_when_sleeping() -> None:
        for _ in range(3000):
            if any(isinstance(m.data, wire.Status) for m in run.messages) and run.proc.poll() is None:
                break
            threading.Event().wait(0.01)
        threading.Event().wait(0.5)
        run.proc.send_signal(signal.SIGTERM)

    threading.Thread(target=terminate_when_sleeping, daemon=True).start()
    code, _, _ = run.go()
    assert code == 128 + signal.SIGTERM
    assert run.bodies(wire.Status)[-1].state is wire.JobState.CANCELLED


@pytest.mark.parametrize("exit_code", [0, 3])
def test_exit_code_is_the_childs(tmp_path: Path, exit_code: int) -> None:
    run = Run(tmp_path, f"import sys\nsys.stdin.readline()\nsys.exit({exit_code})\n")
    code, _, _ = run.go()
    assert code == exit_code
    expected = wire.JobState.COMPLETED if exit_code == 0 else wire.JobState.FAILED
    assert run.bodies(wire.Status)[-1].state is expected


def test_no_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peft_notify", "run"], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 2
    assert "no command given" in result.stderr
