"""Tests for peft_notify.platform.macos: dock tile through a recording DockApi, DND parsers on documented formats."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from peft_notify.platform.dnd import ProbeError
from peft_notify.platform.macos import (
    MacDockTile,
    RubiconDockApi,
    macos_dnd_probe,
    parse_assertions_json,
    parse_defaults_dnd,
    parse_ncprefs_dnd,
)
from peft_notify.platform.runner import CommandResult
from peft_notify.ports import DndState, TaskbarProgress, TaskbarState
from tests.platform.platform_support import FIXTURES, fixture_text

pytestmark = pytest.mark.macos


class RecordingDock:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def set_badge_label(self, text: str | None) -> None:
        self.calls.append(("badgeLabel", text))

    def show_progress(self, fraction: float | None, state: TaskbarState) -> None:
        self.calls.append(("progress", fraction, state))

    def request_attention(self, kind: int) -> None:
        self.calls.append(("requestUserAttention", kind))


def test_progress_draws_the_bar_and_shows_a_percent_badge() -> None:
    dock = RecordingDock()
    tile = MacDockTile(dock)
    assert isinstance(tile, TaskbarProgress)
    tile.set(0.45, TaskbarState.NORMAL)
    assert dock.calls == [("progress", 0.45, TaskbarState.NORMAL), ("badgeLabel", "45%")]


def test_error_count_badge_wins_over_percent_and_clear_restores() -> None:
    dock = RecordingDock()
    tile = MacDockTile(dock)
    tile.set(0.5, TaskbarState.ERROR)
    tile.badge(2)
    tile.clear()
    tile.badge(0)
    assert dock.calls[-4:] == [
        ("badgeLabel", "2"),
        ("progress", None, TaskbarState.NONE),
        ("badgeLabel", "2"),
        ("badgeLabel", None),
    ]


def test_attention_critical_bounces_until_activated() -> None:
    dock = RecordingDock()
    tile = MacDockTile(dock)
    tile.attention(True)
    tile.attention(False)
    assert dock.calls == [("requestUserAttention", 0), ("requestUserAttention", 10)]


def test_dock_errors_are_swallowed() -> None:
    class Broken(RecordingDock):
        def show_progress(self, fraction: float | None, state: TaskbarState) -> None:
            raise RuntimeError("NSInternalInconsistencyException")

    tile = MacDockTile(Broken())
    tile.set(0.1, TaskbarState.NORMAL)
    assert tile.last_error == "NSInternalInconsistencyException"


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the non-macOS refusal")
def test_real_dock_refuses_off_macos() -> None:
    with pytest.raises(OSError, match="only on macOS"):
        RubiconDockApi()


def test_assertions_json() -> None:
    assert parse_assertions_json(fixture_text("macos-assertions-focus-on.json")) is True
    assert parse_assertions_json(fixture_text("macos-assertions-off.json")) is False
    with pytest.raises(ProbeError):
        parse_assertions_json("{}")


def test_ncprefs_user_pref_and_schedule() -> None:
    raw_on = (FIXTURES / "macos-ncprefs-dnd-on.plist").read_bytes()
    assert parse_ncprefs_dnd(raw_on, datetime(2021, 3, 1, 12, 0)) is True
    scheduled = (FIXTURES / "macos-ncprefs-scheduled.plist").read_bytes()  # 22:00 - 07:00
    assert parse_ncprefs_dnd(scheduled, datetime(2021, 3, 1, 23, 30)) is True
    assert parse_ncprefs_dnd(scheduled, datetime(2021, 3, 1, 6, 59)) is True
    assert parse_ncprefs_dnd(scheduled, datetime(2021, 3, 1, 12, 0)) is False
    with pytest.raises(ProbeError):
        parse_ncprefs_dnd(b"not a plist", datetime(2021, 3, 1))


def test_defaults_output() -> None:
    assert parse_defaults_dnd(fixture_text("macos-defaults-dnd-on.txt")) is True


def test_focus_probe_reads_the_assertion_store(tmp_path: Path) -> None:
    store = tmp_path / "Library/DoNotDisturb/DB"
    store.mkdir(parents=True)
    (store / "Assertions.json").write_text(fixture_text("macos-assertions-focus-on.json"))
    assert asyncio.run(macos_dnd_probe((14, 5), home=tmp_path).state()) is DndState.ON
    (store / "Assertions.json").write_text(fixture_text("macos-assertions-off.json"))
    assert asyncio.run(macos_dnd_probe((14, 5), home=tmp_path).state()) is DndState.OFF


def test_focus_probe_without_the_file_is_unknown(tmp_path: Path) -> None:
    assert asyncio.run(macos_dnd_probe((13, 0), home=tmp_path).state()) is DndState.UNKNOWN


def test_legacy_probe_runs_defaults() -> None:
    seen: list[tuple[str, ...]] = []

    async def runner(argv: Sequence[str], timeout: float) -> CommandResult:
        seen.append(tuple(argv))
        return CommandResult(0, fixture_text("macos-defaults-dnd-on.txt"))

    assert asyncio.run(macos_dnd_probe((10, 15), runner=runner).state()) is DndState.ON
    assert seen == [("defaults", "-currentHost", "read", "com.apple.notificationcenterui", "doNotDisturb")]
