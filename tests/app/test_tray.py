"""Tray: menu actions, tooltip, and (under the desktop session) a real embedded QSystemTrayIcon."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from peft_notify.app.jobs_model import JobRow
from peft_notify.app.tray import Tray, tomorrow_morning
from peft_notify.testing import FakeClock


def _rows() -> list[JobRow]:
    return [
        JobRow(key="a", job_id="a", name="llama", state="running", fraction=0.4),
        JobRow(key="b", job_id="b", name="mistral", state="failed", fraction=0.6),
    ]


def test_menu_entries_emit_what_the_app_needs(qtbot: QtBot) -> None:
    clock = FakeClock(1_700_000_000.0)
    tray = Tray(clock.now)
    pause_actions = [a for a in tray.pause_menu.actions() if a.text()]
    assert [a.text() for a in pause_actions] == [
        "For 1 &hour",
        "Until &tomorrow",
        "Until r&esumed",
        "&Resume notifications",
    ]
    received: list[object] = []
    tray.pause_requested.connect(received.append)
    for action in pause_actions:
        action.trigger()
    assert received == [clock.now() + 3600.0, tomorrow_morning(clock.now()), float("inf"), None]
    tray.refresh(_rows(), 2)
    jobs = tray.jobs_menu.actions()
    assert [a.text() for a in jobs] == ["llama — 40%, running", "mistral — 60%, failed"]
    with qtbot.waitSignal(tray.job_requested) as chosen:
        jobs[1].trigger()
    assert chosen.args == ["b"]
    tip = tray.icon.toolTip()
    assert "llama: 40% — running" in tip
    assert "2 unread notifications" in tip
    tray.set_paused(float("inf"))
    assert "until resumed" in tray.pause_menu.title()
    assert tray.resume_action.isEnabled()
    tray.set_dnd("on")
    assert tray.dnd_action.text() == "Do Not Disturb: on"
    with qtbot.waitSignal(tray.mute_toggled) as muted:
        tray.mute_action.trigger()
    assert muted.args == [True]


@pytest.mark.desktop
def test_real_tray_icon_embeds(qapp: Any, qtbot: QtBot) -> None:
    if os.environ.get("QT_QPA_PLATFORM") != "xcb" or not os.environ.get("DISPLAY"):
        pytest.skip("needs the desktop session's X tray (QT_QPA_PLATFORM=xcb)")
    tray = Tray()
    if not tray.available:
        pytest.skip("no system tray host on this display")
    tray.show()
    qtbot.waitUntil(tray.icon.isVisible, timeout=5000)
    assert tray.icon.geometry().width() > 0  # embedded by the tray host, so it has a place on screen
    tray.hide()


def test_many_jobs_list_the_first_ones_and_count_the_rest(qtbot: QtBot) -> None:
    """Issue 17: the menu was rebuilt with an entry per job (1,000 actions) every 250 ms."""
    from peft_notify.app.tray import MAX_TRAY_JOBS

    tray = Tray()
    rows = [JobRow(key=f"k{i}", job_id=f"j{i}", name=f"run-{i}", state="running", fraction=0.5) for i in range(1000)]
    tray.refresh(rows, 0)
    entries = tray.jobs_menu.actions()
    assert [a.text() for a in entries[:2]] == ["run-0 — 50%, running", "run-1 — 50%, running"]
    assert len(entries) == MAX_TRAY_JOBS + 1
    assert entries[-1].text() == "Show &all 1,000 jobs in the window"
    with qtbot.waitSignal(tray.show_requested):
        entries[-1].trigger()
    tip = tray.icon.toolTip()
    assert "run-19: 50% — running" in tip and "run-20:" not in tip
    assert f"… and {1000 - MAX_TRAY_JOBS:,} more jobs" in tip
    tray.refresh(rows, 0)
    assert tray.jobs_menu.actions() == entries  # nothing changed: the same entries, not rebuilt
    rows[0].fraction = 0.6
    tray.refresh(rows, 0)
    assert tray.jobs_menu.actions()[0].text() == "run-0 — 60%, running"
