"""Main window, detail pane, history view, tray icon and dialogs (offscreen unless a display is there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from pytestqt.qtbot import QtBot

from peft_notify.app.controller import Controller
from peft_notify.app.dialogs import AddJobDialog, SettingsDialog, about_text, parse_milestones
from peft_notify.app.jobs_model import JobRow, Link
from peft_notify.app.tray import draw_icon, overall_tone, tomorrow_morning
from peft_notify.app.window import MainWindow
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.desktop.settings import Settings
from peft_notify.engine import Engine
from peft_notify.ports import DeliveryStatus
from peft_notify.testing import MemoryHistoryStore, RecordingNotifier, RecordingTaskbar, ScriptedDndProbe
from peft_notify.wire import NotificationEvent, NotificationType
from tests.app.app_support import ClientFactory

URL = "ws://127.0.0.1:9/ws/notifications/job-1"


def make_controller(history: Any = None) -> Controller:
    return Controller(
        Settings(),
        engine=Engine(),
        history=history if history is not None else MemoryHistoryStore(),
        notifiers=[RecordingNotifier()],
        taskbar=RecordingTaskbar(),
        dnd_probe=ScriptedDndProbe(),
        client_factory=ClientFactory(),
    )


def add_row(controller: Controller, key: str = URL, **fields: Any) -> JobRow:
    row = JobRow(key=key, job_id=fields.pop("job_id", "job-1"), **fields)
    controller.rows[key] = row
    controller.job_updated.emit(key)
    return row


def make_window(history: Any = None) -> MainWindow:
    controller = make_controller(history)
    win = MainWindow(controller.history)
    win.attach(controller)
    return win


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    win = make_window()
    qtbot.addWidget(win)
    return win


def test_the_window_is_built_and_painted_before_a_controller_is_attached(qtbot: QtBot) -> None:
    """The app paints the window first and attaches the controller after (the startup target)."""
    win = MainWindow(MemoryHistoryStore())
    qtbot.addWidget(win)
    win.show()
    assert not win.grab().isNull()  # painted with no controller (and no monitor, no websockets)
    assert win.controller is None
    assert win.status_label.text() == "Starting…"
    win.on_remove()  # commands before the attach do nothing rather than fail
    win.on_discover()
    controller = make_controller()
    add_row(controller, name="llama", state="running")
    win.attach(controller)
    assert win.cards[URL].name.text() == "llama"
    assert win.status_label.text().startswith("Do Not Disturb")


def test_empty_state_then_a_job_card(window: MainWindow) -> None:
    assert window.list_stack.currentIndex() == 0
    assert "No jobs yet" in window.empty.text()
    row = add_row(
        window.controller,
        name="llama",
        state="running",
        step=250,
        total=1000,
        fraction=0.25,
        eta_s=90.0,
        loss=0.5,
        host="gpu",
        link=Link.CONNECTED,
        capabilities=("retry", "cancel"),
    )
    row.add_loss(1, 2.0)
    row.add_loss(2, 1.0)
    window.controller.job_updated.emit(URL)
    assert window.list_stack.currentIndex() == 1
    card = window.cards[URL]
    assert card.name.text() == "llama"
    assert card.percent.text() == "25%"
    assert "step 250 / 1,000" in card.details.text()
    assert "ETA 1m 30s" in card.details.text()
    assert card.bar.value() == 250
    assert len(card.spark.points) == 2
    # the first job becomes current: the detail pane shows it with its buttons
    assert window.detail.title.text() == "llama"
    assert window.detail.facts["Host"].text() == "gpu"
    assert not window.detail.retry.isHidden()
    assert not window.detail.retry.isEnabled()  # a running job is not relaunched by a stray click
    row.state = "failed"
    window.controller.job_updated.emit(URL)
    assert window.detail.retry.isEnabled()
    row.link = Link.FINISHED  # the run has exited (issue 11 item 1): Retry could not work any more
    window.controller.job_updated.emit(URL)
    assert not window.detail.retry.isEnabled()
    assert "no longer reachable" in window.detail.retry.toolTip()


def test_buttons_follow_capabilities_and_connection(window: MainWindow) -> None:
    add_row(window.controller, name="x", state="running", link=Link.RECONNECTING, capabilities=("cancel",))
    assert window.detail.retry.isHidden()
    assert not window.detail.cancel.isHidden()
    assert not window.detail.cancel.isEnabled()


def test_retry_button_asks_the_controller(window: MainWindow, qtbot: QtBot) -> None:
    add_row(window.controller, name="x", state="failed", link=Link.CONNECTED, capabilities=("retry",))
    with qtbot.waitSignal(window.detail.action_requested) as signal:
        window.detail.retry.click()
    assert signal.args == [URL, "retry"]


def test_problem_shows_in_the_banner(window: MainWindow) -> None:
    window.controller.problem.emit(URL, "job-1: auth refused — HTTP 401")
    assert not window.banner.isHidden()
    assert "auth refused" in window.banner_text.text()


def test_close_hides_instead_of_quitting(window: MainWindow, qtbot: QtBot) -> None:
    event = QCloseEvent()
    with qtbot.waitSignal(window.close_requested):
        window.closeEvent(event)
    assert not event.isAccepted()
    window.allow_close = True
    event = QCloseEvent()
    window.closeEvent(event)
    assert event.isAccepted()


def test_job_removed_returns_to_empty_state(window: MainWindow) -> None:
    add_row(window.controller, name="x")
    window.controller.rows.pop(URL)
    window.controller.job_removed.emit(URL)
    assert window.list_stack.currentIndex() == 0
    assert window.detail.title.text() == "No job selected"


def _event(kind: NotificationType, title: str, urgency: str = "normal") -> NotificationEvent:
    return NotificationEvent(type=kind, title=title, message="m", urgency=urgency)


def test_history_view_filters_marks_read_and_exports(qtbot: QtBot, tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "h.sqlite3")
    store.record("a", "alpha", _event(NotificationType.PROGRESS, "alpha 25%"), ts=1.0, status=DeliveryStatus.SHOWN)
    store.record(
        "b", "beta", _event(NotificationType.ERROR, "beta OOM", "critical"), ts=2.0, status=DeliveryStatus.WITHHELD_DND
    )
    win = make_window(store)
    qtbot.addWidget(win)
    win.tabs.setCurrentWidget(win.history_page)  # the view is built when the tab is first shown
    view = win.history_view
    assert view is not None
    assert [e.title for e in view.model.entries] == ["beta OOM", "alpha 25%"]
    assert view.model.data(view.model.index(0, 5)) == "withheld (DND)"
    assert view.model.data(view.model.index(0, 0), Qt.ItemDataRole.FontRole).bold()  # unread in bold
    view.kind.setCurrentText("error")
    assert [e.title for e in view.model.entries] == ["beta OOM"]
    view.kind.setCurrentText("Any")
    view.search.setText("alpha")
    assert [e.title for e in view.model.entries] == ["alpha 25%"]
    view.search.clear()
    view.select_job("b")
    assert [e.job_id for e in view.model.entries] == ["b"]
    view.select_job(None)
    view.status.setCurrentIndex(view.status.findData(DeliveryStatus.SHOWN))
    assert [e.title for e in view.model.entries] == ["alpha 25%"]
    view.status.setCurrentIndex(0)
    with qtbot.waitSignal(view.unread_changed) as unread:
        view.on_mark_all_read()
    assert unread.args == [0]
    assert not view.model.data(view.model.index(0, 0), Qt.ItemDataRole.FontRole)
    view.export_to(tmp_path / "out.json")
    assert [e["title"] for e in json.loads((tmp_path / "out.json").read_text())] == ["beta OOM", "alpha 25%"]
    view.export_to(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().startswith("id,ts,job_id")
    store.close()


def test_empty_history_has_an_empty_state(qtbot: QtBot) -> None:
    win = make_window()
    qtbot.addWidget(win)
    win.tabs.setCurrentIndex(1)
    assert win.tabs.tabText(1) == "History" and win.history_view is not None
    assert win.history_view.table.isHidden()
    assert not win.history_view.empty.isHidden()


def test_add_job_dialog_validates_and_offers_local_jobs(qtbot: QtBot) -> None:
    class Local:
        url = "ws://127.0.0.1:5/ws/notifications/loc"
        token = "secret"
        name = "local"
        job_id = "loc"

    dialog = AddJobDialog([Local()])
    qtbot.addWidget(dialog)
    dialog.url.setText("nonsense")
    dialog.accept()
    assert dialog.result() == 0
    assert not dialog.error.isHidden()
    dialog.local.setCurrentRow(0)
    assert dialog.result_value == (Local.url, "secret")
    dialog.accept()
    assert dialog.result() == 1


def test_settings_dialog_round_trip(qtbot: QtBot) -> None:
    dialog = SettingsDialog(Settings(), {"milestone_title": "{job}: {percent}%"})
    qtbot.addWidget(dialog)
    assert dialog.templates["milestone_title"].placeholderText() == "{job}: {percent}%"
    dialog.milestones.setText("10, 50 90%")
    dialog.kinds["progress"].setChecked(False)
    dialog.checks["sounds"].setChecked(False)
    dialog.templates["completion_title"].setText("{job} done")
    dialog.retention.setValue(30)
    result = dialog.settings()
    assert result.milestones == (10, 50, 90)
    assert "progress" not in result.popup_kinds
    assert result.sounds is False
    assert result.completion_title == "{job} done"
    assert result.retention_days == 30.0
    dialog.milestones.setText("150")
    dialog.accept()
    assert "between 1 and 100" in dialog.error.text()


def test_parse_milestones_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="at least one"):
        parse_milestones(" , ")
    with pytest.raises(ValueError, match="invalid literal"):
        parse_milestones("ten")


def test_about_text_names_chosen_and_skipped_adapters() -> None:
    html = about_text([("Notifications", "desktop-notifier → log", ["tray-balloon: no system tray"])])
    assert "desktop-notifier → log" in html
    assert "skipped tray-balloon: no system tray" in html


def test_tray_icon_and_helpers(qapp: Any) -> None:
    icon = draw_icon("error", 0.5, 3)
    assert not icon.isNull()
    image = icon.pixmap(64, 64).toImage()
    assert image.pixelColor(48, 16).red() > 200  # the red unread badge in the corner
    rows = [JobRow(key="a", job_id="a", state="running"), JobRow(key="b", job_id="b", state="failed")]
    assert overall_tone(rows) == "error"
    assert overall_tone([]) == "idle"
    now = 1_700_000_000.0
    assert 0 < tomorrow_morning(now) - now <= 86400 + 9 * 3600
