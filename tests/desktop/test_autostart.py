"""Autostart on each OS: XDG entry, HKCU Run key (faked registry), LaunchAgent plist."""

from __future__ import annotations

import configparser
import plistlib
import shlex
import sys
from pathlib import Path

import pytest

from peft_notify.appinfo import APP_ID
from peft_notify.desktop.autostart import (
    LAUNCH_AGENT_LABEL,
    autostart_enabled,
    default_command,
    desktop_entry,
    set_autostart,
)


class DictRunKey:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


@pytest.mark.linux
def test_xdg_autostart_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert not autostart_enabled(platform="linux", home=tmp_path)
    where = set_autostart(
        True, command=["/opt/my env/python", "-m", "peft_notify", "app"], platform="linux", home=tmp_path
    )
    assert where == str(tmp_path / "cfg" / "autostart" / f"{APP_ID}.desktop")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(where)
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert shlex.split(entry["Exec"]) == ["/opt/my env/python", "-m", "peft_notify", "app"]
    assert autostart_enabled(platform="linux", home=tmp_path)
    set_autostart(False, platform="linux", home=tmp_path)
    assert not autostart_enabled(platform="linux", home=tmp_path)
    set_autostart(False, platform="linux", home=tmp_path)  # idempotent


def test_desktop_entry_escapes_reserved_characters() -> None:
    text = desktop_entry(["/bin/x", "50%", 'say "$hi"'])
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line == 'Exec=/bin/x 50%% "say \\"\\$hi\\""'


def test_default_command_runs_this_interpreter_minimized() -> None:
    command = default_command()
    assert command[1:] == ["-m", "peft_notify", "app", "--minimized"]


def test_frozen_build_starts_its_own_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    # PyInstaller sets sys.frozen and points sys.executable at the bundle's binary.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/usr/lib/peft-notify/peft-notify")
    assert default_command() == ["/usr/lib/peft-notify/peft-notify", "app", "--minimized"]


@pytest.mark.linux
def test_entry_from_before_the_app_id_counts_and_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    legacy = tmp_path / "cfg" / "autostart" / "peft-notify.desktop"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(desktop_entry(["/usr/bin/python3", "-m", "peft_notify", "app"]))
    assert autostart_enabled(platform="linux", home=tmp_path)
    set_autostart(True, command=["/usr/bin/peft-notify", "app"], platform="linux", home=tmp_path)
    assert not legacy.exists()
    assert autostart_enabled(platform="linux", home=tmp_path)
    set_autostart(False, platform="linux", home=tmp_path)
    assert not autostart_enabled(platform="linux", home=tmp_path)
    assert list((tmp_path / "cfg" / "autostart").iterdir()) == []


@pytest.mark.windows
def test_windows_run_key() -> None:
    key = DictRunKey()
    assert not autostart_enabled(platform="win32", run_key=key)
    where = set_autostart(
        True, command=[r"C:\Program Files\py\python.exe", "-m", "peft_notify"], platform="win32", run_key=key
    )
    assert where.endswith(r"CurrentVersion\Run\peft-notify")
    assert key.values == {"peft-notify": r'"C:\Program Files\py\python.exe" -m peft_notify'}
    assert autostart_enabled(platform="win32", run_key=key)
    set_autostart(False, platform="win32", run_key=key)
    assert key.values == {}


@pytest.mark.macos
def test_macos_launch_agent(tmp_path: Path) -> None:
    where = Path(
        set_autostart(True, command=["/usr/bin/python3", "-m", "peft_notify"], platform="darwin", home=tmp_path)
    )
    assert where == tmp_path / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"
    plist = plistlib.loads(where.read_bytes())
    assert plist["Label"] == LAUNCH_AGENT_LABEL == APP_ID
    assert plist["ProgramArguments"] == ["/usr/bin/python3", "-m", "peft_notify"]
    assert plist["RunAtLoad"] is True
    assert autostart_enabled(platform="darwin", home=tmp_path)
    set_autostart(False, platform="darwin", home=tmp_path)
    assert not where.exists()
