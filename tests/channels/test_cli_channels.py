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


def _simulate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peft_notify", "simulate", "--steps", "40", "--step-ms", "20", "--linger", "0", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
        env=_env(tmp_path),
    )


def test_simulate_failure_at_error_level_is_exactly_one_post_carrying_the_error(
    tmp_path: Path, receiver: Receiver
) -> None:
    result = _simulate(tmp_path, "--fail-at", "0.5", "--notify", receiver.url("json"), "--notify-level", "error")
    assert result.returncode == 1, result.stderr
    [hit] = receiver.hits
    payload = hit.json()
    assert payload["type"] == "failure"
    assert "out of memory" in (payload["title"] + payload["message"]).lower()
    assert "step 20/40" in payload["message"]


def test_simulate_failure_at_progress_level_sends_the_milestones_too(tmp_path: Path, receiver: Receiver) -> None:
    result = _simulate(tmp_path, "--fail-at", "0.5", "--notify", receiver.url("json"), "--notify-level", "progress")
    assert result.returncode == 1, result.stderr
    payloads = [h.json() for h in receiver.hits]
    assert [p["title"].split(": ", 1)[1] for p in payloads if p["type"] == "info"] == MILESTONES[:2]
    assert [p["type"] for p in payloads].count("failure") == 1


def test_simulate_with_channels_advertises_them_and_watch_channels_skip_it(tmp_path: Path, receiver: Receiver) -> None:
    proc, url = start_simulate(
        tmp_path,
        "--steps",
        "30",
        "--wait-client",
        "30",
        "--notify",
        receiver.url("json", "job"),
        "--notify-level",
        "progress",
    )
    try:
        result = subprocess.run(
            [
                *WATCH,
                url,
                "--since",
                "0",
                "--no-osc",
                "--notify",
                receiver.url("json", "watch"),
                "--notify-level",
                "progress",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=_env(tmp_path),
        )
    finally:
        _close(proc)
    assert result.returncode == 0, result.stderr
    paths = {h.path for h in receiver.hits}
    assert paths == {"/job"}  # the job delivered itself; watch's channel skipped it: nothing twice
    assert len(receiver.hits) == 4  # 25 / 50 / 75 % and the completion


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peft_notify", "run", "--retry-wait", "0", "--linger", "0", "--no-pty", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
        env=_env(tmp_path),
    )


def test_run_notify_sends_the_wrapped_commands_failure(tmp_path: Path, receiver: Receiver) -> None:
    crash = "import sys; print('torch.OutOfMemoryError: CUDA out of memory', file=sys.stderr); sys.exit(3)"
    result = _run(
        tmp_path, "--name", "llama", "--notify", receiver.url("json"), "--notify-level", "error",
        "--", sys.executable, "-c", crash,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    [hit] = receiver.hits
    assert hit.json()["type"] == "failure"
    assert hit.json()["title"].startswith("llama")


def test_run_notify_default_level_sends_the_completion(tmp_path: Path, receiver: Receiver) -> None:
    result = _run(tmp_path, "--name", "llama", "--notify", receiver.url("json"), "--", sys.executable, "-c", "pass")
    assert result.returncode == 0, result.stderr
    [hit] = receiver.hits
    assert hit.json()["type"] == "success"
