"""Tests for peft_notify.platform.macos that run on every OS.

The dock adapter's logic runs against a recording DockApi; the bar geometry the real NSView
draws is a pure function tested here; the Focus parser runs on public captures of the real
file (fixtures/README.md says where each comes from). The real AppKit / file calls run in
tests/platform/test_os_macos.py on macOS.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from peft_notify.platform.dnd import ProbeError
from peft_notify.platform.macos import (
    BAR_COLORS,
    FULL_DISK_ACCESS_HINT,
    MacDockTile,
    RubiconDockApi,
    dock_bar_layout,
    macos_dnd_probe,
    parse_assertions_json,
    parse_defaults_dnd,
    parse_ncprefs_dnd,
)
from peft_notify.platform.runner import CommandResult
from peft_notify.ports import DndState, TaskbarProgress, TaskbarState
from tests.platform.platform_support import FIXTURES, fixture_text


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


def test_assertions_json_public_captures() -> None:
    # Real files (see fixtures/README.md): Work Focus on; every Focus off. Both keep ended
    # assertions naming Do Not Disturb and Sleep in storeInvalidationRecords.
    work = fixture_text("macos-assertions-work-focus-capture.json")
    idle = fixture_text("macos-assertions-no-focus-capture.json")
    assert "com.apple.sleep.sleep-mode" in work and "com.apple.sleep.sleep-mode" in idle
    assert parse_assertions_json(work) is True
    assert "storeAssertionRecords" not in idle  # macOS leaves the list out when nothing is on
    assert parse_assertions_json(idle) is False


def test_assertions_json_rejects_other_shapes() -> None:
    assert parse_assertions_json('{"data":[{"storeAssertionRecords":[]}]}') is False
    for text in ("{}", "not json", '{"data": {}}'):
        with pytest.raises(ProbeError):
            parse_assertions_json(text)


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
    (store / "Assertions.json").write_text(fixture_text("macos-assertions-work-focus-capture.json"))
    assert asyncio.run(macos_dnd_probe((14, 5), home=tmp_path).state()) is DndState.ON
    (store / "Assertions.json").write_text(fixture_text("macos-assertions-no-focus-capture.json"))
    assert asyncio.run(macos_dnd_probe((14, 5), home=tmp_path).state()) is DndState.OFF


def test_focus_probe_without_the_file_is_off(tmp_path: Path) -> None:
    # No Focus was ever used under this account: macOS has not created the file yet.
    assert asyncio.run(macos_dnd_probe((13, 0), home=tmp_path).state()) is DndState.OFF


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads mode-000 files anyway")
def test_focus_probe_that_may_not_read_the_file_is_unknown_and_names_full_disk_access(tmp_path: Path) -> None:
    store = tmp_path / "Library/DoNotDisturb/DB"
    store.mkdir(parents=True)
    (store / "Assertions.json").write_text(fixture_text("macos-assertions-work-focus-capture.json"))
    (store / "Assertions.json").chmod(0)
    probe = macos_dnd_probe((14, 5), home=tmp_path)
    assert asyncio.run(probe.state()) is DndState.UNKNOWN
    assert FULL_DISK_ACCESS_HINT in (probe.probes[0].last_error or "")


def test_full_disk_access_hint_names_who_needs_it() -> None:
    assert "terminal" in FULL_DISK_ACCESS_HINT and "Python binary" in FULL_DISK_ACCESS_HINT
    assert "app bundle" in FULL_DISK_ACCESS_HINT


def test_dock_bar_geometry_and_colours() -> None:
    track, fill, color = dock_bar_layout(128, 128, 0.45, TaskbarState.NORMAL)
    assert track[1] < 128 * 0.25  # along the bottom of the icon
    assert fill[2] == pytest.approx((track[2] - 2 * (track[3] * 0.15)) * 0.45)
    assert color == BAR_COLORS[TaskbarState.NORMAL]
    assert dock_bar_layout(128, 128, 0.45, TaskbarState.ERROR)[2][0] == 1.0  # red
    assert dock_bar_layout(128, 128, 0.45, TaskbarState.PAUSED)[2][:2] == (1.0, 0.8)  # yellow
    # Indeterminate: a full static bar (a one-off display() cannot animate).
    _, full, _ = dock_bar_layout(128, 128, 0.0, TaskbarState.INDETERMINATE)
    assert full[2] == pytest.approx(track[2] - 2 * (track[3] * 0.15))
    assert dock_bar_layout(128, 128, 7.0, TaskbarState.NORMAL)[1][2] == full[2]  # clamped


def test_the_dock_tile_owns_the_badge() -> None:
    assert MacDockTile.owns_badge is True


def test_legacy_probe_runs_defaults() -> None:
    seen: list[tuple[str, ...]] = []

    async def runner(argv: Sequence[str], timeout: float) -> CommandResult:
        seen.append(tuple(argv))
        return CommandResult(0, fixture_text("macos-defaults-dnd-on.txt"))

    assert asyncio.run(macos_dnd_probe((10, 15), runner=runner).state()) is DndState.ON
    assert seen == [("defaults", "-currentHost", "read", "com.apple.notificationcenterui", "doNotDisturb")]
