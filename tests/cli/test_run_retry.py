"""``peft-notify run``'s retry window (issue 11 item 1), with real processes and a real WebSocket client.

Before: ``run`` exited right after a failure (``--retry-wait 0``), so the desktop's Retry only got
"The job did not accept 'retry' (connection lost?)".
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from peft_notify import wire
from peft_notify.desktop.client import JobClient

# Exits 3 once the test says so (a file appears): the client is connected by then.
FAILS_WITH_3 = """
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
print("failing now", flush=True)
sys.exit(3)
"""


class RetryRun:
    """A ``peft-notify run`` of :data:`FAILS_WITH_3`; its output collected from a pipe or a pty."""

    def __init__(self, tmp_path: Path, *extra: str, pty: bool = False) -> None:
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(FAILS_WITH_3))
        self.go_file = tmp_path / "go"
        env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
        argv = [sys.executable, "-m", "peft_notify", "run", "--linger", "0.2", *extra, "--"]
        argv += [sys.executable, str(script), str(self.go_file)]
        self.output = b""
        self.messages: list[wire.Envelope] = []
        self._client: JobClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if pty:
            master, slave = os.openpty()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
            os.close(slave)
            source = master
        else:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert self.proc.stderr is not None
            source = self.proc.stderr.fileno()
        self._source = source
        threading.Thread(target=self._read, daemon=True).start()
        found = self.wait_for(rb"(ws://\S+)")
        self.url = found.group(1).decode()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._source, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for(self, pattern: bytes, timeout: float = 30.0) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} never came; output: {self.output!r}")

    def connect(self) -> wire.Hello:
        """Subscribe a real client (on its own loop thread); returns its first hello."""
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._client = JobClient(self.url, on_message=self.messages.append, since=0)
            task = asyncio.create_task(self._client.run())
            while self._client.hello is None:
                await asyncio.sleep(0.01)
            ready.set()
            await task

        threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
        assert ready.wait(30)
        assert self._client is not None and self._client.hello is not None
        return self._client.hello

    def send(self, action: str) -> bool:
        assert self._client is not None and self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._client.send_action(wire.ActionRequest(action)), self._loop)
        return bool(future.result(10))

    def fail(self) -> None:
        """Let the child fail; returns once the client has seen the failed status."""
        self.go_file.touch()
        deadline = time.monotonic() + 30
        while not any(isinstance(m.data, wire.Status) and m.data.state is wire.JobState.FAILED for m in self.messages):
            assert time.monotonic() < deadline, self.output
            time.sleep(0.02)

    def exit_code(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        time.sleep(0.1)  # the reader drains what is left
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _still_running_after(run: RetryRun, seconds: float) -> bool:
    try:
        run.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_a_failure_seen_by_the_desktop_keeps_serving_until_it_is_dismissed(tmp_path: Path) -> None:
    run = RetryRun(tmp_path)
    try:
        hello = run.connect()
        assert "retry" in hello.capabilities
        run.fail()
        run.wait_for("waiting for Retry from the desktop — 10:00 left, Ctrl-C to exit".encode())
        assert _still_running_after(run, 1.5)  # before: exited with the child
        started = time.monotonic()
        assert run.send("dismiss")
        assert run.exit_code() == 3  # the child's
        assert time.monotonic() - started < 10
        assert b"dismissed on the desktop" in run.output
        assert b"Traceback" not in run.output
    finally:
        run.close()


def test_retry_in_the_window_relaunches_then_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    run = RetryRun(tmp_path)
    try:
        run.connect()
        run.fail()
        run.wait_for(b"waiting for Retry")
        assert run.send("retry")
        run.wait_for(b"relaunching")
        # The relaunched child fails at once too (the go file is still there): a second window opens.
        run.wait_for(b"(?s)relaunching.*waiting for Retry")
        hellos = {m.data.run_id for m in run.messages if isinstance(m.data, wire.Hello)}
        assert len(hellos) == 2
        started = time.monotonic()
        run.proc.send_signal(signal.SIGINT)
        assert run.exit_code() == 3
        assert time.monotonic() - started < 10
        assert b"interrupted" in run.output
    finally:
        run.close()


def test_without_a_subscribed_client_run_exits_at_once(tmp_path: Path) -> None:
    run = RetryRun(tmp_path)
    try:
        run.go_file.touch()
        assert run.exit_code(timeout=20) == 3
        assert b"waiting for Retry" not in run.output
    finally:
        run.close()


def test_the_window_ends_on_time_with_the_childs_code(tmp_path: Path) -> None:
    run = RetryRun(tmp_path, "--retry-wait", "1")
    try:
        run.connect()
        run.fail()
        assert run.exit_code(timeout=20) == 3
        assert b"waiting for Retry from the desktop \xe2\x80\x94 0:01 left" in run.output
        assert b"no Retry came" in run.output
    finally:
        run.close()


def test_retry_wait_0_offers_no_retry(tmp_path: Path) -> None:
    run = RetryRun(tmp_path, "--retry-wait", "0")
    try:
        hello = run.connect()
        assert "retry" not in hello.capabilities  # the desktop shows no Retry it could not honour
        assert "cancel" in hello.capabilities
        run.go_file.touch()
        assert run.exit_code() == 3
    finally:
        run.close()


def test_the_countdown_is_live_on_a_terminal(tmp_path: Path) -> None:
    run = RetryRun(tmp_path, "--retry-wait", "3", pty=True)
    try:
        run.connect()
        run.fail()
        assert run.exit_code(timeout=20) == 3
        out: Any = run.output
        for left in (b"0:03", b"0:02", b"0:01"):
            assert b"\rpeft-notify run: waiting for Retry from the desktop \xe2\x80\x94 " + left + b" left" in out
        assert b"\r\x1b[Kpeft-notify run: no Retry came" in out  # the countdown line is cleared
    finally:
        run.close()
        os.close(run._source)
