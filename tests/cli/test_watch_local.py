"""``peft-notify watch --local`` / ``--all`` started before the jobs (issue 11 item 5), as real processes.

Before: ``watch --local`` started before the job exited at once ("no local jobs found", exit 2).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PY = [sys.executable, "-m", "peft_notify"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}


class Watch:
    """A ``watch`` process whose stderr is read as it comes (to know when it waits)."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*PY, "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path),
        )
        self.err = ""
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err += line

    def wait_err(self, pattern: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.err):
            assert time.monotonic() < deadline, f"{pattern!r} never came: {self.err!r}"
            time.sleep(0.02)

    def finish(self, timeout: float = 60.0) -> tuple[int, list[dict[str, Any]]]:
        out, _ = self.proc.communicate(timeout=timeout)
        time.sleep(0.1)
        return self.proc.returncode, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _simulate(tmp_path: Path, job_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PY, "simulate", "--job-id", job_id, "--name", job_id, "--linger", "1", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(tmp_path),
    )


def _shown(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a["event"] for a in actions if a.get("action") == "Notify"]


def test_watch_local_with_no_job_says_it_waits_and_gives_up_after_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*PY, "watch", "--local", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(tmp_path),
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "peft-notify watch: no local job yet; waiting for one to start (up to 1 s)",
        "peft-notify watch: no local job started within 1 s",
    ]
    assert time.monotonic() - started < 20


def test_watch_local_started_before_the_job_follows_it_from_its_first_message(tmp_path: Path) -> None:
    watch = Watch(tmp_path, "--local", "--json")
    try:
        watch.wait_err("waiting for one to start")
        sim = _simulate(tmp_path, "short", "--steps", "40", "--step-ms", "25")  # one second
        assert sim.returncode == 0, sim.stderr
        code, actions = watch.finish()
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
    assert code == 0, watch.err
    events = _shown(actions)
    completion = [e for e in events if e["type"] == "completion"]
    assert len(completion) == 1
    announced = {e["milestone"] for e in events if e["milestone"]}
    announced |= {m for m in (25, 50, 75) for e in events if f"{m} %" in e["message"] and "passed" in e["message"]}
    assert announced >= {25, 50, 75, 100}  # replayed from seq 0: nothing it passed goes unannounced
    assert "Traceback" not in watch.err


def test_watch_all_follows_every_local_job_as_it_starts(tmp_path: Path) -> None:
    watch = Watch(tmp_path, "--all", "--json")
    try:
        watch.wait_err("waiting for one to start")
        for job_id in ("first", "second"):
            sim = _simulate(tmp_path, job_id, "--steps", "10", "--step-ms", "20")
            assert sim.returncode == 0, sim.stderr
        time.sleep(2.0)  # each job lingered a second after its end: the watcher has seen both
        assert watch.proc.poll() is None  # --all keeps watching after both ended
        watch.proc.send_signal(signal.SIGINT)
        code, actions = watch.finish()
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
    completions = [e["title"] for e in _shown(actions) if e["type"] == "completion"]
    assert sorted(completions) == ["first: training complete", "second: training complete"]
    assert code == 0  # Ctrl-C is how --all ends: the jobs' outcome is the status
