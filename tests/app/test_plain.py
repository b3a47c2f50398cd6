"""Job-provided text shows literally in every Qt widget, tooltip and menu (issue 10 item 4).

The attack: a job named ``<a href=…>`` / ``<b>…`` / ``<img src=…>`` was rendered as rich text
on the job card. Labels are ``Qt.PlainText``; tooltips render back to the same text.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from peft_notify.app.detail_pane import DetailPane
from peft_notify.app.history_view import HistoryModel
from peft_notify.app.job_card import JobCard
from peft_notify.app.jobs_model import JobRow
from peft_notify.app.plain import menu_text, plain_tooltip, tray_text
from peft_notify.app.tray import Tray
from peft_notify.ports import DeliveryStatus, HistoryEntry

EVIL = "<b>bold</b><a href='https://evil.example/'>click</a><img src='file:///etc/x'> & co"


def rendered(tooltip: str) -> str:
    """What a rich-text tooltip shows (QToolTip renders it with QTextDocument)."""
    doc = QTextDocument()
    doc.setHtml(tooltip)
    return doc.toPlainText()


def assert_literal(label: QLabel, text: str) -> None:
    assert label.textFormat() is Qt.TextFormat.PlainText
    assert label.text() == text
    if not label.wordWrap():  # rendered literally: as wide as the raw characters, not as "boldclick"
        assert label.sizeHint().width() >= label.fontMetrics().horizontalAdvance(text) - 2


def test_job_card_shows_a_hostile_name_literally(qtbot: QtBot) -> None:
    card = JobCard()
    qtbot.addWidget(card)
    card.show_row(JobRow(key="ws://h/ws/notifications/j", job_id="j", name=EVIL, host=EVIL, state="running"))
    assert_literal(card.name, EVIL)
    assert EVIL in card.host.text()
    assert card.host.textFormat() is Qt.TextFormat.PlainText
    assert rendered(card.toolTip()).splitlines()[0] == EVIL


def test_detail_pane_shows_hostile_texts_literally(qtbot: QtBot) -> None:
    pane = DetailPane()
    qtbot.addWidget(pane)
    entry = HistoryEntry(
        id=1,
        ts=0.0,
        job_id="j",
        job_name=EVIL,
        kind="error",
        urgency="high",
        title=EVIL,
        message=EVIL,
        status=DeliveryStatus.SHOWN,
    )
    pane.show_row(JobRow(key="k", job_id="j", name=EVIL, host=EVIL, state="running"), [entry])
    assert_literal(pane.title, EVIL)
    for label in pane.facts.values():
        assert label.textFormat() is Qt.TextFormat.PlainText
    assert rendered(pane.timeline.item(0).toolTip()) == EVIL


def test_history_tooltip_renders_literally() -> None:
    model = HistoryModel()
    entry = HistoryEntry(
        id=1,
        ts=0.0,
        job_id="j",
        job_name="n",
        kind="error",
        urgency="high",
        title=EVIL,
        message="m\n<i>x</i>",
        status=DeliveryStatus.SHOWN,
    )
    model.set_entries([entry])
    tip = model.data(model.index(0, 0), Qt.ItemDataRole.ToolTipRole)
    assert rendered(tip) == f"{EVIL}\nm\n<i>x</i>"


def test_tray_tooltip_and_menu_keep_job_text_inert(qtbot: QtBot) -> None:
    tray = Tray()
    tray.refresh([JobRow(key="k", job_id="j", name=EVIL, state="running", fraction=0.5)], 0)
    tip = tray.icon.toolTip()
    assert "<" not in tip and ">" not in tip
    assert "\u2039b\u203abold" in tip
    [action] = tray.jobs_menu.actions()
    assert action.text().startswith(menu_text(EVIL))


def test_helpers() -> None:
    assert rendered(plain_tooltip("a <b>b</b>\n&amp;")) == "a <b>b</b>\n&amp;"
    assert tray_text("<x>") == "\u2039x\u203a"
    assert menu_text("R&D") == "R&&D"
