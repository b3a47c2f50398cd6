"""``--notify`` on the real CLI processes: simulate → (watch) → a real loopback receiver (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.channels.conftest import Receiver
from tests.cli.test_simulate import start_simulate

WATCH = [sys.executable, "-m", "peft_notify", "watch"]
MILESTONES = ["25% complete", "50% complete", "75% complete"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEFT_NOTIFY_")}
    return {**env, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}


def _close(proc: subprocess.Popen[str]) -> None:
    proc.wait(30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_watch_notify_sends_milestones_and_completion(tmp_path: Path, receiver: Receiver) -> None:
    proc, url = start_simulate(tmp_path, "--steps", "40", "--wait-client", "30")
    try:
        result = subprocess.run(
            [*WATCH, url, "--since", "0", "--no-osc", "--notify", receiver.url("json"), "--notify-level", "progress"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=_env(tmp_path),
        )
    finally:
        _close(proc)
    assert result.returncode == 0, result.stderr
    titles = [h.json()["title"] for h in receiver.hits]
    assert [t.split(": ", 1)[1] for t in titles] == [*MILESTONES, "training complete"]


def test_watch_rejects_an_unknown_level_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peft_notify", "watch", "--local", "--notify-level", "loud"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=_env(tmp_path),
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown level 'loud'" in result.stderr
