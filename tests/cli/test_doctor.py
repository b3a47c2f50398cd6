"""Tests for ``peft-notify doctor`` (peft_notify/cli/doctor.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peft_notify.cli import main


def test_without_a_session_bus_only_the_log_is_left_and_exit_is_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux report")
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    assert main(["doctor"]) == 1
    out, err = capsys.readouterr()
    assert "session D-Bus: unavailable" in out
    assert "notifier: log\n" in out
    assert "  skipped desktop-notifier: no session D-Bus" in out
    assert "taskbar: none" in out
    assert "Do-Not-Disturb now: unknown" in out
    assert out.count("resource warnings, gpu: ") == 1  # this machine has no NVIDIA GPU: said once, not an error
    assert "No native notifier works here" in err


@pytest.mark.desktop
def test_on_the_desktop_session_reports_dunst_and_sends_a_test() -> None:
    if not (os.environ.get("DISPLAY") and os.environ.get("DBUS_SESSION_BUS_ADDRESS")):
        pytest.skip("needs the desktop session: see ../shared/desktop-session")
    log = os.environ.get("DESKTOP_SESSION_DUNST_LOG")
    result = subprocess.run(
        [sys.executable, "-m", "peft_notify", "doctor", "--send-test"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "notification server: dunst" in out
    assert "notifier: desktop-notifier → log" in out
    assert "taskbar: unity-launcher-entry → none" in out
    assert "dnd probe: dunst" in out
    assert "tray: available (XEmbed tray found)" in out
    assert "test notification: sent via desktop-notifier dunst" in out
    if log:  # dunst prints asynchronously
        deadline = time.monotonic() + 10
        while "summary: 'peft-notify test'" not in Path(log).read_text(errors="replace"):
            assert time.monotonic() < deadline, "the test notification never reached dunst"
            time.sleep(0.05)
