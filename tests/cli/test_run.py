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
from peft_notify.desktop.client import JobClient

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


PEFT_NOTIFY_RUN = [sys.executable, "-m", "peft_notify", "run"]


class Run:
    """A ``peft-notify run`` process with a client attached before the child starts working."""

    def __init__(self, tmp_path: Path, script: str, *extra: str, script_args: tuple[str, ...] = ()) -> None:
        path = tmp_path / "train.py"
        path.write_text(textwrap.dedent(script))
        env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
        self.proc = subprocess.Popen(
            # --retry-wait 0: a failure ends the run at once although a client is subscribed (issue 11 item 1
            # opened a retry window for that case; tests/cli/test_run_retry.py is about the window)
            [*PEFT_NOTIFY_RUN, "--linger", "5", "--retry-wait", "0", *extra, "--", sys.executable, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline().decode()
        self.first_line = first
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


SECRET_IN_STDERR = """
import sys
sys.stdin.readline()
print("cloning https://alice:s3cretpw@git.example.com/data.git", file=sys.stderr, flush=True)
raise SystemExit(3)
"""


def test_default_name_is_the_script_and_secrets_never_leave_the_process(tmp_path: Path) -> None:
    """Issue 10 item 1: argv (``--hf-token hf_...``) is not the job name; the stderr tail is redacted."""
    hf_token = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    run = Run(tmp_path, SECRET_IN_STDERR, "--retry-wait", "0", script_args=("--hf-token", hf_token))
    assert hf_token not in run.first_line
    code, _out, err = run.go()
    assert code == 3
    assert b"s3cretpw" in err  # the user's own terminal still shows the child's output unchanged
    [hello] = run.bodies(wire.Hello)
    assert hello.name == "train.py"
    [error] = [n for n in run.bodies(wire.NotificationEvent) if n.type == "error"]
    assert "exit code 3" in error.message
    assert "[redacted]" in error.message
    everything = repr([m.data for m in run.messages])
    assert "s3cretpw" not in everything
    assert hf_token not in everything


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


FAIL_THEN_SUCCEED = """
import pathlib, sys, time
from tqdm import tqdm
marker = pathlib.Path(__file__).with_name("ran-once")
if not marker.exists():
    sys.stdin.readline()  # the first run waits for the test's client
for i in tqdm(range(8), mininterval=0):
    time.sleep(0.08)  # slower than the 20 Hz progress coalescing: every milestone is seen
if not marker.exists():
    marker.write_text("1")
    raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")
print("second run ok", flush=True)
"""


def test_retry_action_relaunches_the_command_as_a_new_run(tmp_path: Path) -> None:
    from peft_notify.engine import Engine, EngineConfig, Notify
    from peft_notify.ports import DndState

    run = Run(tmp_path, FAIL_THEN_SUCCEED, "--retry-wait", "60")
    assert run.proc.stdin is not None
    retried: list[bool] = []

    async def main() -> None:
        client = JobClient(run.url, on_message=run.messages.append, since=0)
        task = asyncio.create_task(client.run())
        async with asyncio.timeout(60):
            while client.hello is None:
                await asyncio.sleep(0.01)
            assert "retry" in client.hello.capabilities
            run.proc.stdin.write(b"go\n")  # type: ignore[union-attr]
            run.proc.stdin.flush()  # type: ignore[union-attr]
            while not any(isinstance(m.data, wire.Status) and m.data.state.finished for m in run.messages):
                await asyncio.sleep(0.01)
            retried.append(await client.send_action(wire.ActionRequest("retry")))
            await task

    asyncio.run(main())
    out, err = run.proc.communicate(timeout=60)
    assert retried == [True]
    assert run.proc.returncode == 0, err
    assert b"second run ok" in out
    assert b"relaunching" in err
    hellos = [m.data for m in run.messages if isinstance(m.data, wire.Hello)]
    assert len(hellos) == 2
    assert hellos[0].run_id != hellos[1].run_id
    finals = [s.state for s in run.bodies(wire.Status) if s.state.finished]
    assert finals == [wire.JobState.FAILED, wire.JobState.COMPLETED]
    second = run.messages[run.messages.index(next(m for m in run.messages if m.data is hellos[1])) :]
    assert [m.data.current_step for m in second if isinstance(m.data, wire.Progress)][-1] == 8

    engine = Engine(EngineConfig())
    shown = []
    for i, env in enumerate(run.messages):  # spaced out: no dedup or rate limit in the way
        actions = engine.feed(env, now=1000.0 + 100 * i, dnd=DndState.OFF, job_id=env.job_id)
        shown += [a.event for a in actions if isinstance(a, Notify)]
    half = [e for e in shown if e.type == wire.NotificationType.PROGRESS and e.milestone == 50]
    assert len(half) == 2  # the new run's hello reset the milestones
    assert any(e.type == wire.NotificationType.COMPLETION for e in shown)


TTY_CHILD = """
import sys, time
from tqdm import tqdm
print("tty", sys.stdout.isatty(), sys.stderr.isatty(), flush=True)
for i in tqdm(range(20), mininterval=0):
    time.sleep(0.01)
"""


def run_in_pty(tmp_path: Path, argv: list[str], env_extra: dict[str, str]) -> tuple[int, bytes]:
    """Run ``argv`` with stdout and stderr on a real (raw) pty; returns its exit code and every byte."""
    import fcntl
    import struct
    import termios
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)  # the outer terminal adds nothing: we see exactly what was written
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    skip = ("TMUX", "KITTY_WINDOW_ID", "WT_SESSION", "PEFT_NOTIFY_OSC", "TERM_PROGRAM", "KONSOLE_VERSION")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update({"PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt"), "TERM": "xterm-256color", **env_extra})
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code = proc.wait(60)
    reader.join(10)
    os.close(master)
    return code, b"".join(chunks)


@pytest.mark.parametrize("flag", [None, "--no-osc"])
def test_run_on_a_terminal_uses_a_pty_and_drives_osc_progress(tmp_path: Path, flag: str | None) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TTY_CHILD))
    argv = [sys.executable, "-m", "peft_notify", "run", "--linger", "0"]
    argv += [flag] if flag else []
    code, output = run_in_pty(tmp_path, [*argv, "--", sys.executable, str(script)], {"VTE_VERSION": "8000"})
    assert code == 0, output
    assert b"tty True True\n" in output  # the child saw a terminal; its bytes passed through unchanged
    assert b"\r\ntty" not in output
    assert b"20/20" in output
    if flag is None:
        assert b"\x1b]9;4;1;50\x1b\\" in output  # VTE >= 0.79 shows OSC 9;4
        assert output.rstrip().endswith(b"\x1b]9;4;0;0\x1b\\")  # cleared at the end
    else:
        assert b"\x1b]9;4" not in output
