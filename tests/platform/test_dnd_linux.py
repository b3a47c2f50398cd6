"""Tests for peft_notify.platform.dnd_linux: parsers on captured outputs, probes on the real session."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from peft_notify.platform.dnd import ProbeError
from peft_notify.platform.dnd_linux import (
    DunstDndProbe,
    KdeDndProbe,
    gnome_probe,
    linux_dnd_probes,
    mako_probe,
    parse_gsettings_bool,
    parse_makoctl_mode,
    parse_plasmanotifyrc,
    swaync_probe,
    xfce_probe,
)
from peft_notify.platform.runner import CommandError, CommandResult
from peft_notify.platform.session_bus import ServerInfo, SessionBus
from peft_notify.ports import DndState
from tests.platform.platform_support import PrivateDunst, fixture_text, require_desktop

NOW = datetime(2025, 5, 21, 12, 0, 0)


class Replay:
    """A CommandRunner answering from captured output (for programs not installed here)."""

    def __init__(self, stdout: str = "", returncode: int = 0, stderr: str = "", error: str | None = None) -> None:
        self.result = CommandResult(returncode, stdout, stderr)
        self.error = error
        self.argv: list[tuple[str, ...]] = []

    async def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.argv.append(tuple(argv))
        if self.error:
            raise CommandError(self.error)
        return self.result


# ----------------------------------------------------------------------------- parsers


def test_gsettings_output_captured_from_real_gsettings() -> None:
    assert parse_gsettings_bool(fixture_text("gsettings-show-banners-true.txt")) is True
    assert parse_gsettings_bool(fixture_text("gsettings-show-banners-false.txt")) is False
    with pytest.raises(ProbeError):
        parse_gsettings_bool(fixture_text("gsettings-no-such-schema.stderr.txt"))


def test_dunstctl_output_captured_from_real_dunstctl() -> None:
    assert parse_gsettings_bool(fixture_text("dunstctl-is-paused-true.txt")) is True
    assert parse_gsettings_bool(fixture_text("dunstctl-is-paused-false.txt")) is False


def test_makoctl_mode_lists_do_not_disturb() -> None:
    assert parse_makoctl_mode(fixture_text("makoctl-mode-dnd.txt")) is True
    assert parse_makoctl_mode(fixture_text("makoctl-mode-default.txt")) is False


def test_plasmanotifyrc_until_in_future_means_dnd() -> None:
    assert parse_plasmanotifyrc(fixture_text("plasmanotifyrc-dnd-until.txt"), NOW) is True
    assert parse_plasmanotifyrc(fixture_text("plasmanotifyrc-dnd-until.txt"), datetime(2031, 1, 1)) is False
    assert parse_plasmanotifyrc("[Notifications]\nPopupPosition=2\n", NOW) is False


def test_plasmanotifyrc_malformed_until_is_an_error() -> None:
    with pytest.raises(ProbeError, match="Until"):
        parse_plasmanotifyrc("[DoNotDisturb]\nUntil=tomorrow\n", NOW)


# ----------------------------------------------------------------------------- command probes


@pytest.mark.parametrize(
    ("factory", "stdout", "expected"),
    [
        (xfce_probe, "true\n", DndState.ON),
        (xfce_probe, "false\n", DndState.OFF),
        (swaync_probe, "true\n", DndState.ON),
        (mako_probe, "default\ndo-not-disturb\n", DndState.ON),
        (mako_probe, "default\n", DndState.OFF),
        (gnome_probe, "false\n", DndState.ON),
    ],
)
def test_command_probes_map_output(factory, stdout: str, expected: DndState) -> None:  # type: ignore[no-untyped-def]
    runner = Replay(stdout)
    assert asyncio.run(factory(runner).state()) is expected


def test_command_probe_fails_open_on_error_exit_and_missing_program() -> None:
    failing = Replay(returncode=1, stderr=fixture_text("gsettings-no-such-schema.stderr.txt"))
    probe = gnome_probe(failing)
    assert asyncio.run(probe.state()) is DndState.UNKNOWN
    assert probe.last_error is not None
    assert "No such schema" in probe.last_error
    missing = xfce_probe(Replay(error="cannot run xfconf-query: No such file or directory"))
    assert asyncio.run(missing.state()) is DndState.UNKNOWN


def test_real_missing_program_is_unknown() -> None:
    probe = mako_probe()  # the real runner; makoctl is not installed in this environment
    if shutil.which("makoctl"):
        pytest.skip("makoctl is installed here")
    assert asyncio.run(probe.state()) is DndState.UNKNOWN
    assert probe.last_error is not None
    assert "makoctl" in probe.last_error


def test_real_hanging_command_is_unknown_within_timeout() -> None:
    from peft_notify.platform.dnd_linux import CommandDndProbe

    probe = CommandDndProbe("sleepy", ("sleep", "30"), timeout=0.2)
    assert asyncio.run(probe.state()) is DndState.UNKNOWN
    assert probe.last_error is not None
    assert "did not answer within 0.2 s" in probe.last_error


# ----------------------------------------------------------------------------- ordering


def test_probe_order_server_first_then_desktop() -> None:
    bus = SessionBus()
    dunst = ServerInfo("dunst", "knopwob", "1.9.0 (2022-06-27)", "1.2")
    assert [p.name for p in linux_dnd_probes(dunst, ["GNOME"], bus)] == ["dunst", "gnome"]
    plasma = ServerInfo("Plasma", "KDE", "6.1", "1.2")
    assert [p.name for p in linux_dnd_probes(plasma, ["KDE"], bus)] == ["kde"]
    assert [p.name for p in linux_dnd_probes(None, ["ubuntu", "GNOME"], bus)] == ["gnome"]
    assert [p.name for p in linux_dnd_probes(None, ["X-Cinnamon"], bus)] == ["cinnamon"]
    assert [p.name for p in linux_dnd_probes(None, ["sway"], bus)] == ["mako", "swaync"]
    assert [p.name for p in linux_dnd_probes(ServerInfo("Xfce Notify Daemon", "Xfce", "0.8", "1.2"), [], bus)] == [
        "xfce"
    ]
    assert linux_dnd_probes(None, [], bus) == []


# ----------------------------------------------------------------------------- real desktop session


@pytest.mark.desktop
def test_gnome_show_banners_false_is_dnd_with_real_gsettings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_desktop()
    if not shutil.which("gsettings"):
        pytest.skip("gsettings is not installed")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("GSETTINGS_BACKEND", "keyfile")
    probe = gnome_probe()
    assert asyncio.run(probe.state()) is DndState.OFF
    subprocess.run(
        ["gsettings", "set", "org.gnome.desktop.notifications", "show-banners", "false"],
        check=True,
        timeout=10,
        env=os.environ.copy(),
    )
    assert asyncio.run(probe.state()) is DndState.ON


@pytest.mark.desktop
def test_dunst_paused_is_dnd_on_the_real_daemon(private_dunst: PrivateDunst) -> None:
    async def read() -> DndState:
        bus = SessionBus()
        try:
            return await DunstDndProbe(bus).state()
        finally:
            await bus.close()

    assert asyncio.run(read()) is DndState.OFF
    private_dunst.ctl("set-paused", "true")
    assert asyncio.run(read()) is DndState.ON
    private_dunst.ctl("set-paused", "false")
    assert asyncio.run(read()) is DndState.OFF


@pytest.mark.desktop
def test_kde_probe_without_plasma_falls_back_to_config(private_dunst: PrivateDunst, tmp_path: Path) -> None:
    # dunst has no Inhibited property: the probe reads plasmanotifyrc instead.
    (tmp_path / "plasmanotifyrc").write_text(fixture_text("plasmanotifyrc-dnd-until.txt"))

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Frozen:  # type: ignore[override]
            return cls(2025, 5, 21, 12, 0, 0)

    async def read() -> DndState:
        bus = SessionBus()
        try:
            return await KdeDndProbe(bus, config_home=tmp_path, now=Frozen).state()
        finally:
            await bus.close()

    assert asyncio.run(read()) is DndState.ON
