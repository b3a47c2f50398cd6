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


def test_desktop_line_says_what_it_found_instead_of_unknown() -> None:
    """Issue 11 item 10: doctor printed "desktop: unknown (?)" although it had asked the server."""
    from peft_notify.cli.doctor import desktop_line

    bare = desktop_line({}, "dunst")
    assert "unknown (?)" not in bare
    assert bare == ("desktop: XDG_CURRENT_DESKTOP not set, XDG_SESSION_TYPE not set; notifications are shown by dunst")
    env = {"XDG_CURRENT_DESKTOP": "ubuntu:GNOME", "XDG_SESSION_TYPE": "wayland"}
    assert desktop_line(env, "gnome-shell") == (
        "desktop: XDG_CURRENT_DESKTOP=ubuntu:GNOME, XDG_SESSION_TYPE=wayland; notifications are shown by gnome-shell"
    )
    assert desktop_line(env, None).endswith("; no notification server answered")


@pytest.mark.parametrize(
    ("content", "phrase"),
    [(b"muted = [oops", "not valid TOML"), (b"\xff\xfe not text", "not valid TOML"), (None, "cannot be read")],
)
def test_an_unreadable_settings_file_is_mentioned_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, phrase: str
) -> None:
    from peft_notify.cli.doctor import settings_line
    from peft_notify.desktop.settings import default_settings_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = default_settings_path()
    path.parent.mkdir(parents=True)
    if content is None:
        path.mkdir()  # a directory where the file should be: unreadable even for root
    else:
        path.write_bytes(content)
    before = sorted(p.name for p in path.parent.iterdir())
    line = settings_line()
    assert line.startswith(f"settings: {path} — UNREADABLE")
    assert phrase in line
    assert "the app uses the defaults" in line
    assert sorted(p.name for p in path.parent.iterdir()) == before  # doctor wrote no .bak: it only reads


def test_a_readable_or_missing_settings_file_is_one_plain_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peft_notify.cli.doctor import settings_line
    from peft_notify.desktop.settings import default_settings_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = default_settings_path()
    assert settings_line() == f"settings: {path} (not created yet: defaults)"
    path.parent.mkdir(parents=True)
    path.write_text("muted = true\n")
    assert settings_line() == f"settings: {path}"


@pytest.mark.desktop
def test_on_the_desktop_session_the_desktop_line_names_the_notification_server() -> None:
    if not (os.environ.get("DISPLAY") and os.environ.get("DBUS_SESSION_BUS_ADDRESS")):
        pytest.skip("needs the desktop session: see ../shared/desktop-session")
    result = subprocess.run(
        [sys.executable, "-m", "peft_notify", "doctor"], capture_output=True, text=True, timeout=60, check=False
    )
    [line] = [x for x in result.stdout.splitlines() if x.startswith("desktop: ")]
    assert "unknown (?)" not in line
    assert "XDG_CURRENT_DESKTOP" in line
    assert line.endswith("notifications are shown by dunst")
