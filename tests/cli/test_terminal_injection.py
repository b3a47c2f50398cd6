"""Terminal injection (issue 10 item 4): a malicious job server's texts never drive the terminal.

The attack: OSC 52 (clipboard write), OSC 0 (window title) and a screen clear in job names,
titles, messages, status reasons and HTTP error bodies went through ``watch`` raw. Here a real
hostile WebSocket server (tests/cli/hostile_server.py) sends them to a real ``peft-notify
watch`` process on a real pty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.hostile_server import EVIL
from tests.cli.test_run import run_in_pty
from tests.platform.platform_support import private_session_bus

HERE = Path(__file__).parent
ATTACKS = (b"\x1b]52", b"\x1b]0;", b"\x1b[2J", b"\x9b", "\u202e".encode(), b"\x07", b"\x08", b"FAKE\x1b")


@pytest.fixture
def hostile() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "hostile_server.py"), "120"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent.parent)},
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def assert_inert(output: bytes) -> None:
    for attack in ATTACKS:
        assert attack not in output, (attack, output)
    # The only escape sequences left are watch's own (clearing its live progress line).
    assert b"\x1b" not in output.replace(b"\x1b[K", b""), output


def test_watch_on_a_terminal_neutralises_server_text(tmp_path: Path, hostile: int) -> None:
    url = f"ws://127.0.0.1:{hostile}/ws/notifications/evil"
    code, output = run_in_pty(tmp_path, [sys.executable, "-m", "peft_notify", "watch", url, "--no-osc"], {})
    assert code == 1, output  # the job failed
    assert_inert(output)
    assert b"CRITICAL" in output
    assert b"FAKE" in output and b"\\r" in output  # shown, visibly escaped


def test_watch_json_escapes_everything_and_stays_lossless(tmp_path: Path, hostile: int) -> None:
    url = f"ws://127.0.0.1:{hostile}/ws/notifications/evil"
    done = subprocess.run(
        [sys.executable, "-m", "peft_notify", "watch", url, "--json"],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")},
    )
    assert done.returncode == 1, done.stderr
    assert_inert(done.stdout + done.stderr)
    records = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    titles = [r["event"]["title"] for r in records if r.get("action") == "Notify"]
    assert f"e{EVIL}" in titles  # JSON keeps the exact text, \u-escaped


def test_http_error_body_is_neutralised(tmp_path: Path, hostile: int) -> None:
    url = f"ws://127.0.0.1:{hostile}/ws/notifications/denied"
    code, output = run_in_pty(tmp_path, [sys.executable, "-m", "peft_notify", "watch", url, "--no-osc"], {})
    assert code == 2, output
    assert b"HTTP 403" in output
    assert_inert(output)


@pytest.fixture
def hostile_bus(tmp_path: Path) -> Iterator[str]:
    """A private session bus whose notification server answers with escape sequences."""
    with private_session_bus(tmp_path) as address:
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": address, "PYTHONPATH": str(HERE.parent.parent)}
        server = subprocess.Popen(
            [sys.executable, str(HERE / "hostile_dbus.py"), "120"], stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
            yield address
        finally:
            server.terminate()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()


def test_doctor_neutralises_a_hostile_notification_server(tmp_path: Path, hostile_bus: str) -> None:
    env = {
        **os.environ,
        "DBUS_SESSION_BUS_ADDRESS": hostile_bus,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    env.pop("DISPLAY", None)
    done = subprocess.run(
        [sys.executable, "-m", "peft_notify", "doctor"], capture_output=True, timeout=60, check=False, env=env
    )
    assert b"notification server: evil" in done.stdout, done.stdout
    assert_inert(done.stdout + done.stderr)
