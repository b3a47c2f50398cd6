"""``peft-notify watch`` as a real process against a real simulated job."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_simulate import start_simulate


def watch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
    return subprocess.run(
        [sys.executable, "-m", "peft_notify", "watch", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


def actions(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _close(proc: subprocess.Popen[str]) -> None:
    proc.wait(30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_watch_json_reports_milestones_and_completion(tmp_path: Path) -> None:
    proc, url = start_simulate(tmp_path, "--steps", "40", "--wait-client", "30")
    try:
        result = watch(tmp_path, url, "--json", "--since", "0")
    finally:
        _close(proc)
    assert result.returncode == 0, result.stderr
    records = actions(result.stdout)
    notified = [r["event"] for r in records if r.get("action") == "Notify"]
    assert [e["milestone"] for e in notified if e["milestone"]][:3] == [25, 50, 75]
    assert any(e["type"] == "completion" for e in notified)
    assert "\x1b]9;4" not in result.stdout  # never OSC when not a TTY


def test_watch_exit_code_reflects_failure(tmp_path: Path) -> None:
    proc, url = start_simulate(tmp_path, "--steps", "30", "--fail-at", "0.5", "--wait-client", "30")
    try:
        result = watch(tmp_path, url, "--since", "0", "--no-osc")
    finally:
        _close(proc)
    assert result.returncode == 1, result.stderr
    assert "CRITICAL" in result.stdout
    assert "CUDA out of memory" in result.stdout


def test_watch_local_finds_jobs_through_discovery(tmp_path: Path) -> None:
    proc, _ = start_simulate(tmp_path, "--steps", "30", "--token", "s3cret", "--wait-client", "30")
    try:
        result = watch(tmp_path, "--local", "--json")
    finally:
        _close(proc)
    assert result.returncode == 0, result.stderr
    assert any(r.get("action") == "Notify" for r in actions(result.stdout))


def test_watch_wrong_token_exits_2(tmp_path: Path) -> None:
    proc, url = start_simulate(tmp_path, "--steps", "300", "--token", "right")
    try:
        result = watch(tmp_path, url.split("?")[0], "--token", "wrong")
    finally:
        proc.terminate()
        _close(proc)
    assert result.returncode == 2
    assert "auth_refused" in result.stderr
    assert "wrong token" in result.stderr


def test_watch_local_without_jobs(tmp_path: Path) -> None:
    # Issue 11 item 5 on purpose: --local waits for the first job now; --timeout gives up (exit 2).
    result = watch(tmp_path, "--local", "--timeout", "0.5")
    assert result.returncode == 2
    assert "no local job started within 0.5 s" in result.stderr


@pytest.mark.parametrize("flag", [None, "--no-osc"])
def test_watch_on_a_terminal_drives_osc_progress(tmp_path: Path, flag: str | None) -> None:
    from tests.cli.test_run import run_in_pty

    proc, url = start_simulate(tmp_path, "--steps", "40", "--wait-client", "30")
    argv = [sys.executable, "-m", "peft_notify", "watch", url, "--since", "0"] + ([flag] if flag else [])
    try:
        code, output = run_in_pty(tmp_path, argv, {"TERM_PROGRAM": "ghostty", "TERM_PROGRAM_VERSION": "1.2.0"})
    finally:
        _close(proc)
    assert code == 0, output
    assert b"\r" in output  # the live progress line
    if flag is None:
        assert re.search(rb"\x1b\]9;4;1;\d+\x1b\\", output)  # Ghostty >= 1.2 shows OSC 9;4
        assert re.findall(rb"\x1b\]9;4;\d;\d+\x1b\\", output)[-1] == b"\x1b]9;4;0;0\x1b\\"  # cleared at the end
    else:
        assert b"\x1b]9;4" not in output


def test_watch_gives_up_on_a_server_that_never_answers(tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts TCP connections (backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        result = watch(tmp_path, f"ws://127.0.0.1:{port}/ws/notifications/job", "--give-up", "1.5")
    assert result.returncode == 2
    assert "gave up on ws://127.0.0.1:" in result.stderr
    assert "never answered within 1.5 s" in result.stderr
    assert "last error" not in result.stderr  # stopped inside the first (10 s) handshake, not after it


def test_watch_gives_up_on_a_refused_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    result = watch(tmp_path, f"ws://127.0.0.1:{port}/ws/notifications/job", "--give-up", "1", "--json")
    assert result.returncode == 2
    assert "never answered" in result.stderr
    assert "ConnectionRefusedError" in result.stderr or "Errno 111" in result.stderr
    states = [json.loads(line)["connection"] for line in result.stdout.splitlines() if '"connection"' in line]
    assert "reconnecting" in states
