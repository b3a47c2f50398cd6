"""The detail pane's timeline after each notification: a row added, the others kept (issue 17).

It was rebuilt, every row a new item, after every notification of any job, on the loop that
reads the next frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidgetItem
from pytestqt.qtbot import QtBot

from peft_notify.app.detail_pane import DetailPane
from peft_notify.app.history_view import PAGE
from peft_notify.app.jobs_model import JobRow
from peft_notify.app.window import MainWindow
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.ports import DeliveryStatus, HistoryEntry, HistoryQuery
from tests.app.test_history_view import CountingStore, record, shown_window

URL = "ws://127.0.0.1:9/ws/notifications/job-1"
URL2 = "ws://127.0.0.1:9/ws/notifications/job-2"


def items(pane: DetailPane) -> list[QListWidgetItem]:
    return [pane.timeline.item(i) for i in range(pane.timeline.count())]


def texts(pane: DetailPane) -> list[str]:
    """The rows' texts after the time stamp (the entries' rows only, not the empty state's)."""
    return [item.text().split("  ", 1)[1] for item in items(pane) if item.data(Qt.ItemDataRole.UserRole) is not None]


def with_jobs(qtbot: QtBot, store: Any) -> MainWindow:
    win = shown_window(qtbot, store)
    controller = win.controller
    assert controller is not None
    for key, job_id in ((URL, "job-1"), (URL2, "job-2")):
        controller.rows[key] = JobRow(key=key, job_id=job_id, name=job_id)
        controller.job_updated.emit(key)
    assert win.detail.key == URL
    return win


def test_the_timeline_grows_a_row_per_notification_and_keeps_the_others(qtbot: QtBot, tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "h.sqlite3")
    win = with_jobs(qtbot, store)
    pane = win.detail
    assert texts(pane) == [] and pane.timeline.item(0).text() == "No notifications for this job yet"
    before: list[QListWidgetItem] = []
    for i in range(5):
        record(store, f"n{i}", 1.0 + i, status=DeliveryStatus.PENDING)
        win.on_history_changed()
        now = items(pane)
        assert len(now) == i + 1 and texts(pane)[0] == f"n{i}  — pending"
        assert all(a is b for a, b in zip(now[1:], before, strict=True))  # the same row objects
        before = now
    pane.timeline.setCurrentRow(2)  # keyboard position on "n2"
    store.queries.clear()
    store.set_status(5, DeliveryStatus.SHOWN)  # n4's Notify reply came back
    win.on_history_changed()
    assert [q.limit for q in store.queries] == [PAGE]  # the newest page, not the whole timeline
    assert texts(pane)[0] == "n4  — shown" and all(a is b for a, b in zip(items(pane), before, strict=True))
    assert items(pane)[0].data(Qt.ItemDataRole.AccessibleTextRole).endswith("n4, shown")
    record(store, "n5", 10.0)
    win.on_history_changed()
    assert pane.timeline.currentItem() is before[2]  # still on "n2", now a row lower
    assert pane.timeline.currentRow() == 3
    # Another job's notification: the timeline does not change (rows and their objects).
    kept = items(pane)
    record(store, "other job", 11.0, job_id="job-2")
    win.on_history_changed()
    assert all(a is b for a, b in zip(items(pane), kept, strict=True)) and len(items(pane)) == len(kept)
    # Another job shown: rebuilt with its entries.
    win.job_list.setCurrentItem(win.items[URL2])
    assert texts(pane) == ["other job  — shown"]
    store.close()


def test_the_timeline_keeps_its_limit_and_rebuilds_when_entries_move(qtbot: QtBot, tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "h.sqlite3")
    for i in range(200):
        record(store, f"old {i}", float(i), key=f"k{i}")
    win = with_jobs(qtbot, store)
    pane = win.detail
    assert pane.timeline.count() == 200
    last = pane.timeline.item(198)
    record(store, "new", 300.0)
    win.on_history_changed()
    assert pane.timeline.count() == 200  # the oldest went, as a full read would have it
    assert texts(pane)[0] == "new  — shown" and pane.timeline.item(199) is last
    assert texts(pane)[-1] == "old 1  — shown"
    store.merge_repeat("job-1", "k150", ts=301.0, repeat=3)  # a merged repeat moves to the top
    win.on_history_changed()
    expected = [e.title for e in store.query(HistoryQuery(job_id="job-1", limit=200))]
    assert [t.split("  ")[0].removesuffix(" ×3") for t in texts(pane)] == expected
    assert texts(pane)[0] == "old 150 ×3  — shown"
    store.close()


def test_show_row_updates_changed_rows_in_place(qtbot: QtBot) -> None:
    pane = DetailPane()
    qtbot.addWidget(pane)
    row = JobRow(key="k", job_id="j", name="j")

    def entry(i: int, status: DeliveryStatus = DeliveryStatus.PENDING, repeat: int = 1) -> HistoryEntry:
        return HistoryEntry(i, float(i), "j", "j", "error", "high", f"t{i}", "m", status, repeat=repeat)

    pane.show_row(row, [entry(2), entry(1)])
    first = items(pane)
    pane.show_row(row, [entry(3), entry(2, DeliveryStatus.SHOWN, repeat=2), entry(1)])
    assert texts(pane) == ["t3  — pending", "t2 ×2  — shown", "t1  — pending"]
    assert items(pane)[1:] == first and all(a is b for a, b in zip(items(pane)[1:], first, strict=True))
    pane.show_row(row, [entry(1)])  # entries went: rebuilt
    assert texts(pane) == ["t1  — pending"]
    pane.show_row(row, [])
    assert pane.timeline.item(0).text() == "No notifications for this job yet"


def test_a_quiet_job_shown_while_others_report_reads_no_job_scan(qtbot: QtBot, tmp_path: Path) -> None:
    """The job's own entries need a scan of history (~5 ms at 100,000 entries); the newest of all
    jobs do not, and what was read last time says the shown job had nothing new in between."""
    store = CountingStore(tmp_path / "h.sqlite3")
    record(store, "mine", 1.0)
    win = with_jobs(qtbot, store)
    pane = win.detail
    first = items(pane)
    store.queries.clear()
    for i in range(3 * PAGE):
        record(store, f"busy {i}", 2.0 + i, job_id="job-2")
        win.on_history_changed()
    assert {q.job_id for q in store.queries} == {None}  # the newest of all jobs only, never a scan for this job
    assert texts(pane) == ["mine  — shown"] and items(pane)[0] is first[0]
    record(store, "mine again", 1000.0)
    win.on_history_changed()
    assert texts(pane) == ["mine again  — shown", "mine  — shown"]
    store.close()


def test_the_charts_are_redrawn_only_when_their_series_change(qtbot: QtBot) -> None:
    """show_row runs at every UI flush (10/s) for the shown job; a chart is set (and repainted,
    ~5-10 ms for a full 900-point series) only when a point was added or replaced."""
    pane = DetailPane()
    qtbot.addWidget(pane)
    row = JobRow(key="k", job_id="j", name="j", state="running")
    for step in range(1, 4):
        row.add_loss(step, 1.0 / step)
    row.resource_history.gpu.append((0, 50.0))
    pane.show_row(row, [])
    loss, gpu, ram = pane.chart.points, pane.resource_charts.gpu.points, pane.resource_charts.ram.points
    assert len(loss) == 3 and gpu == [(0, 50.0)]
    row.step = 10  # a progress update without a new loss or resource sample
    pane.show_row(row, [])
    assert pane.chart.points is loss and pane.resource_charts.gpu.points is gpu
    row.add_loss(3, 0.2)  # the newest point replaced
    pane.show_row(row, [])
    assert pane.chart.points[-1] == (3, 0.2) and pane.resource_charts.gpu.points is gpu
    row.resource_history.ram.append((1, 30.0))
    pane.show_row(row, [])
    assert pane.resource_charts.ram.points == [(1, 30.0)] and pane.resource_charts.ram.points is not ram
    other = JobRow(key="k2", job_id="j2", name="j2", state="running")
    pane.show_row(other, [])
    assert pane.chart.points == [] and pane.resource_charts.isHidden()
    pane.show_row(row, [])
    assert len(pane.chart.points) == 3 and not pane.resource_charts.isHidden()
