"""OSC 9;4 progress: exact bytes, terminal detection, never on a non-TTY."""

from __future__ import annotations

import io
import os
import pty

import pytest

from peft_notify.ports import TaskbarState
from peft_notify.termprogress import OscProgress, OscState, osc_sequence, supports_osc_progress


def test_sequence_bytes() -> None:
    assert osc_sequence(OscState.VALUE, 45) == "\x1b]9;4;1;45\x1b\\"
    assert osc_sequence(OscState.ERROR, 150) == "\x1b]9;4;2;100\x1b\\"
    assert osc_sequence(OscState.CLEAR) == "\x1b]9;4;0;0\x1b\\"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WT_SESSION": "abc"}, True),
        ({"ConEmuANSI": "ON"}, True),
        ({"TERM_PROGRAM": "iTerm.app", "TERM_PROGRAM_VERSION": "3.6.6"}, True),
        ({"TERM_PROGRAM": "iTerm.app", "TERM_PROGRAM_VERSION": "3.5.0"}, False),
        ({"TERM_PROGRAM": "ghostty", "TERM_PROGRAM_VERSION": "1.2.0"}, True),
        ({"VTE_VERSION": "7900"}, True),
        ({"VTE_VERSION": "7600"}, False),
        ({"KONSOLE_VERSION": "240202"}, True),
        ({"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1"}, False),
        ({"WT_SESSION": "x", "TMUX": "/tmp/tmux"}, False),
        ({"TERM": "xterm-256color"}, False),
        ({"PEFT_NOTIFY_OSC": "1"}, True),
        ({"WT_SESSION": "x", "PEFT_NOTIFY_OSC": "0"}, False),
    ],
)
def test_terminal_detection(env: dict[str, str], expected: bool) -> None:
    assert supports_osc_progress(env, isatty=True) is expected


def test_never_when_not_a_tty() -> None:
    assert supports_osc_progress({"WT_SESSION": "x", "PEFT_NOTIFY_OSC": "1"}, isatty=False) is False
    out = io.StringIO()
    progress = OscProgress(out)  # auto-detect: StringIO is not a TTY
    progress.set(OscState.VALUE, 0.5)
    assert out.getvalue() == ""


def test_writes_changes_only_and_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    progress = OscProgress(out, enabled=True)
    progress.set_taskbar(TaskbarState.NORMAL, 0.25)
    progress.set_taskbar(TaskbarState.NORMAL, 0.25)
    progress.set_taskbar(TaskbarState.ERROR, 0.5)
    progress.clear()
    progress.clear()
    assert out.getvalue() == "\x1b]9;4;1;25\x1b\\\x1b]9;4;2;50\x1b\\\x1b]9;4;0;0\x1b\\"


def test_auto_detects_a_real_pty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_OSC", "1")
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as stream:
            assert OscProgress(stream).enabled
            stream.write("")
            OscProgress(stream).set(OscState.INDETERMINATE)
        assert os.read(master, 100) == b"\x1b]9;4;3;0\x1b\\"
    finally:
        os.close(master)
