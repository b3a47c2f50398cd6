"""The job list with many jobs (issue 17): an item per job, a card widget only for the rows in view.

Real widgets and a real controller (with the package's fakes for its ports), offscreen unless a
display is there. What a screen reader and the keyboard get must not depend on which rows have a
card: every item carries its card's accessible name, and arrow keys / End / Enter reach any job.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from peft_notify.app.accessibility import card_name
from peft_notify.app.job_card import JobCard
from peft_notify.app.jobs_model import JobRow, Link
from peft_notify.app.window import MainWindow
from tests.app.test_window import add_row, make_window

JOBS = 1000


def url(i: int) -> str:
    return f"ws://127.0.0.1:{9000 + i % 50}/ws/notifications/job-{i}"


def many_jobs(qtbot: QtBot, count: int = JOBS) -> MainWindow:
    win = make_window()
    qtbot.addWidget(win)
    assert win.controller is not None
    for i in range(count):
        add_row(
            win.controller,
            url(i),
            job_id=f"job-{i}",
            name=f"run-{i}",
            state="running",
            fraction=(i % 100) / 100,
            eta_s=35.0,
            link=Link.CONNECTED,
        )
    win.resize(900, 600)
    win.show()
    qtbot.waitExposed(win)
    win.job_list.sync_cards()
    return win


def test_a_thousand_jobs_have_an_item_each_and_a_card_only_in_view(qtbot: QtBot) -> None:
    win = many_jobs(qtbot)
    assert len(win.items) == JOBS
    assert 1 <= len(win.cards) <= 30  # a screenful and a margin, not 1,000 widgets
    assert len(win.job_list.viewport().findChildren(JobCard)) == len(win.cards)
    # Every job is named for screen readers, with or without a card.
    assert win.items[url(999)].text() == "run-999: running, 99 %, ETA 35 s"
    iface = QAccessible.queryAccessibleInterface(win.job_list)
    assert iface is not None
    names = {iface.child(i).text(QAccessible.Text.Name) for i in range(iface.childCount())}
    assert {f"run-{i}: running, {i % 100} %, ETA 35 s" for i in (0, 500, 999)} <= names
    # The cards that exist say the same as their items.
    for key, card in win.cards.items():
        assert card.accessibleName() == win.items[key].text()
        assert card.bar.accessibleName() == f"{card.name.text()} progress"


def test_an_item_without_a_card_is_sized_like_its_card(qtbot: QtBot) -> None:
    win = many_jobs(qtbot, 50)
    key = url(49)
    assert key not in win.cards
    estimated = win.items[key].sizeHint()
    win.job_list.scrollToBottom()
    assert key in win.cards  # scrolled into view: built at once
    assert win.items[key].sizeHint().height() == estimated.height()


def test_scrolling_builds_the_cards_in_view_and_drops_far_ones(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    win = many_jobs(qtbot)
    assert win.controller is not None
    told: list[set[str]] = []  # what the controller refreshes at every flush (the rest once a second)
    monkeypatch.setattr(win.controller, "set_shown", lambda keys: told.append(set(keys)))
    first, last = url(0), url(JOBS - 1)
    assert first in win.cards and last not in win.cards
    win.job_list.scrollToBottom()
    assert last in told[-1] and url(500) not in told[-1]
    assert first in told[-1]  # still the current job: the detail pane shows it
    assert last in win.cards
    assert first not in win.cards  # dropped: far out of view
    assert len(win.cards) <= 30
    assert win.cards[last].accessibleName() == "run-999: running, 99 %, ETA 35 s"
    qtbot.waitUntil(win.cards[last].isVisible)
    assert win.job_list.viewport().rect().intersects(win.cards[last].geometry())


def test_keyboard_reaches_every_job_and_enter_opens_its_detail(qtbot: QtBot) -> None:
    win = many_jobs(qtbot)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)
    win.job_list.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is win.job_list)
    assert win.current_key() == url(0)
    assert win.cards[url(0)]._selected
    qtbot.keyClick(win.job_list, Qt.Key.Key_End)
    last = url(JOBS - 1)
    assert win.current_key() == last
    assert last in win.cards and win.cards[last]._selected  # the current card is outlined
    qtbot.keyClick(win.job_list, Qt.Key.Key_Up)
    assert win.current_key() == url(JOBS - 2)
    assert url(JOBS - 2) in win.cards
    qtbot.keyClick(win.job_list, Qt.Key.Key_Return)
    assert win.detail.key == url(JOBS - 2)
    assert QApplication.focusWidget() is win.detail.timeline


def test_updates_reach_items_and_cards_and_removal_forgets_both(qtbot: QtBot) -> None:
    win = many_jobs(qtbot, 40)
    assert win.controller is not None
    far, near = url(39), url(0)
    row: JobRow = win.controller.rows[far]
    row.state = "failed"
    win.controller.job_updated.emit(far)
    assert win.items[far].text() == card_name(row) == "run-39: failed, 39 %"
    win.controller.rows[near].fraction = 0.5
    win.controller.job_updated.emit(near)
    assert win.cards[near].percent.text() == "50%"
    win.controller.rows.pop(near)
    win.controller.job_removed.emit(near)
    assert near not in win.items and near not in win.cards
    assert win.job_list.count() == 39


def test_a_theme_change_refreshes_every_job(qtbot: QtBot) -> None:
    win = many_jobs(qtbot, 30)
    assert win.controller is not None
    win.controller.rows[url(29)].state = "failed"  # changed without a signal: apply_theme shows it
    win.controller.rows[url(0)].state = "failed"
    win.apply_theme()
    assert win.items[url(29)].text() == "run-29: failed, 29 %"
    assert win.cards[url(0)].state.text() == "Failed"
