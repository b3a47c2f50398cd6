"""The history tab after each notification: nothing while off screen, then the newest page merged in (issue 17).

The window's history refresh ran on the loop that reads the next frame, after every
notification: a query of 2,000 entries and a model reset, even with the tab not shown.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from peft_notify.app.controller import Controller
from peft_notify.app.history_view import PAGE, HistoryView, merge_newest
from peft_notify.app.window import MainWindow
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.desktop.memory_history import MemoryHistoryStore
from peft_notify.desktop.settings import Settings
from peft_notify.engine import Engine
from peft_notify.ports import DeliveryStatus, HistoryEntry, HistoryQuery
from peft_notify.testing import RecordingNotifier, RecordingTaskbar, ScriptedDndProbe
from peft_notify.wire import NotificationEvent, NotificationType
from tests.app.app_support import ClientFactory


class CountingStore(SqliteHistoryStore):
    """The real SQLite store, counting the queries made of it (and their limits)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.queries: list[HistoryQuery] = []

        self.jobs_read = 0

    def query(self, query: HistoryQuery, **kwargs: Any) -> list[HistoryEntry]:
        self.queries.append(query)
        return super().query(query, **kwargs)

    def jobs(self) -> list[tuple[str, str]]:
        self.jobs_read += 1
        return super().jobs()


def record(store: Any, title: str, ts: float, status: DeliveryStatus = DeliveryStatus.SHOWN, **kw: Any) -> int:
    event = NotificationEvent(type=NotificationType.PROGRESS, title=title, message="m")
    return int(store.record(kw.pop("job_id", "job-1"), "llama", event, ts=ts, status=status, **kw))


def shown_window(qtbot: QtBot, store: Any) -> MainWindow:
    controller = Controller(
        Settings(),
        engine=Engine(),
        history=store,
        notifiers=[RecordingNotifier()],
        taskbar=RecordingTaskbar(),
        dnd_probe=ScriptedDndProbe(),
        client_factory=ClientFactory(),
    )
    win = MainWindow(store)
    win.attach(controller)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def titles(view: HistoryView) -> list[str]:
    return [e.title for e in view.model.entries]


def test_a_history_tab_off_screen_reads_nothing_on_a_notification_and_is_current_when_shown(
    qtbot: QtBot, tmp_path: Path
) -> None:
    store = CountingStore(tmp_path / "h.sqlite3")
    record(store, "first", 1.0)
    win = shown_window(qtbot, store)
    assert win.tabs.currentIndex() == 0  # the Jobs tab is shown
    assert win.history_view is None  # not built before the History tab is first shown (idle RSS)
    store.queries.clear()
    for i in range(3):
        record(store, f"n{i}", 2.0 + i)
        win.on_history_changed()  # what the controller's history_changed does
    assert store.queries == []  # no job in the detail pane, and the history tab is not shown
    win.tabs.setCurrentWidget(win.history_page)
    view = win.history_view
    assert view is not None and view.isVisible()
    assert titles(view) == ["n2", "n1", "n0", "first"]  # read once as it is shown
    assert len(store.queries) == 1
    win.tabs.setCurrentIndex(0)
    store.queries.clear()
    record(store, "while on the Jobs tab", 6.0)
    win.on_history_changed()
    assert store.queries == []  # built, but off screen: nothing read
    win.tabs.setCurrentWidget(win.history_page)
    assert titles(view)[0] == "while on the Jobs tab"  # refreshed once as it is shown again
    assert len(store.queries) == 1
    # Minimized, then hidden to the tray: nothing read; restored: refreshed at once.
    win.showMinimized()
    qtbot.waitUntil(win.isMinimized)
    store.queries.clear()
    record(store, "while minimized", 10.0)
    win.on_history_changed()
    assert store.queries == []
    win.showNormal()
    qtbot.waitUntil(lambda: titles(view)[0] == "while minimized")
    win.hide()
    store.queries.clear()
    record(store, "while hidden", 11.0)
    win.on_history_changed()
    assert store.queries == []
    win.show()
    assert titles(view)[0] == "while hidden"
    store.close()


def test_a_history_tab_on_screen_reads_one_page_and_keeps_its_rows(qtbot: QtBot, tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "h.sqlite3")
    for i in range(300):
        record(store, f"old {i}", float(i))
    win = shown_window(qtbot, store)
    win.tabs.setCurrentWidget(win.history_page)
    view = win.history_view
    assert view is not None
    assert len(view.model.entries) == 300
    view.table.selectRow(5)
    selected = view.selected_ids()
    resets: list[bool] = []
    view.model.modelReset.connect(lambda: resets.append(True))
    store.queries.clear()
    new = record(store, "new", 400.0, status=DeliveryStatus.PENDING)
    win.on_history_changed()
    assert [q.limit for q in store.queries] == [PAGE]
    assert titles(view)[:2] == ["new", "old 299"] and len(view.model.entries) == 301
    assert view.model.data(view.model.index(0, 5)) == "pending"
    store.set_status(new, DeliveryStatus.SHOWN)  # the Notify reply came
    win.on_history_changed()
    assert view.model.data(view.model.index(0, 5)) == "shown"
    assert view.selected_ids() == selected  # the same entry, one row lower
    assert not resets
    assert [view.job.itemData(i) for i in range(view.job.count())] == [None, "job-1"]
    record(store, "another job", 401.0, job_id="job-2")
    win.on_history_changed()
    assert view.job.findData("job-2") > 0  # the job filter offers it
    # More than a page at once: everything read again.
    for i in range(PAGE + 1):
        record(store, f"burst {i}", 500.0 + i)
    store.queries.clear()
    win.on_history_changed()
    assert [q.limit for q in store.queries][-1] == 2000
    assert titles(view)[0] == f"burst {PAGE}" and len(view.model.entries) == 302 + PAGE + 1
    assert view.model.data(view.model.index(0, 0), Qt.ItemDataRole.FontRole).bold()  # unread
    store.close()


STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SHOWN, DeliveryStatus.FAILED)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["record", "status", "repeat"]), st.integers(0, 30), st.sampled_from(STATUSES)),
        max_size=60,
    ),
    page=st.integers(1, 6),
    limit=st.integers(1, 15),
    only=st.sampled_from(["all", "shown", "job-2"]),
)
def test_merging_the_newest_page_equals_reading_everything(
    ops: list[tuple[str, int, DeliveryStatus]], page: int, limit: int, only: str
) -> None:
    """After records, status changes of the newest ``page`` entries and merged repeats (which move
    an older entry to the top), the merge is what a full read returns, or None (read it all).
    ``only``: a filter the store does not apply (the history tab's status, the detail pane's job),
    with ``seen`` kept as the views keep it."""
    store = MemoryHistoryStore()
    ts = 0.0

    def keep(e: HistoryEntry) -> bool:
        return only == "all" or (e.status is DeliveryStatus.SHOWN if only == "shown" else e.job_id == only)

    def full() -> list[HistoryEntry]:
        return [e for e in store.query(HistoryQuery(limit=10_000)) if keep(e)][:limit]

    shown, seen = full(), None
    for op, n, status in ops:
        ts += 1.0
        job = f"job-{1 + n % 2}"
        if op == "record":
            record(store, f"e{ts}", ts, status=status, key=f"k{n % 4}", job_id=job)
        elif op == "status":
            newest = store.query(HistoryQuery(limit=page))
            if newest:
                store.set_status(newest[n % len(newest)].id, status)
        else:
            store.merge_repeat(job, f"k{n % 4}", ts=ts, repeat=n + 2)
        read = store.query(HistoryQuery(limit=page))
        merged = merge_newest(shown, read, page, limit, keep=keep, seen=seen)
        shown, seen = (full() if merged is None else merged), (read[0].ts, read[0].id) if read else None
        assert shown == full()


def test_merge_newest_says_when_the_page_does_not_reach_what_is_shown() -> None:
    def entry(i: int) -> HistoryEntry:
        return HistoryEntry(i, float(i), "j", "n", "progress", "normal", f"t{i}", "", DeliveryStatus.SHOWN)

    shown = [entry(i) for i in (5, 4, 3)]
    assert merge_newest(shown, [entry(8), entry(7)], 2, 10) is None  # 6 may be missing
    assert merge_newest(shown, [entry(6), entry(5)], 2, 10) == [entry(i) for i in (6, 5, 4, 3)]
    assert merge_newest(shown, [entry(6)], 2, 10) == [entry(6)]  # less than a page: all there is
    assert merge_newest([], [entry(6), entry(5)], 2, 10) is None
    # Entries the filter leaves out: joined up by what was read last time.
    assert merge_newest(shown, [entry(8), entry(7)], 2, 10, keep=lambda e: e.id != 7, seen=(7.0, 7)) == [
        entry(8),
        *shown,
    ]
    moved = replace(entry(3), ts=9.0)
    assert merge_newest(shown, [moved, entry(5)], 2, 3) == [moved, entry(5), entry(4)]


def test_filters_and_marks_reread_the_entries_not_the_job_list(qtbot: QtBot, tmp_path: Path) -> None:
    """The job list is a GROUP BY over all of history (~140 ms at 100,000 entries): not per key typed."""
    store = CountingStore(tmp_path / "h.sqlite3")
    record(store, "alpha", 1.0)
    record(store, "beta", 2.0, job_id="job-2")
    view = HistoryView(store)
    qtbot.addWidget(view)
    assert store.jobs_read == 1 and view.job.findData("job-2") > 0
    for text in ("a", "al", "alp"):
        view.search.setText(text)
    assert titles(view) == ["alpha"]
    view.search.clear()
    view.unread_only.setChecked(True)
    view.on_mark_all_read()
    assert titles(view) == [] and store.jobs_read == 1
    store.close()


def test_the_history_tab_is_built_when_first_shown_and_reached_by_keyboard(qtbot: QtBot, tmp_path: Path) -> None:
    """Issue 17 (idle RSS): the History tab's view is built the first time the tab is shown, not at
    start; the tab is there and named from the start, Ctrl+2 opens it, Tab walks its controls,
    and an entry "View Details" asked for before it was built is selected when it is."""
    from PySide6.QtGui import QKeySequence
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    store = CountingStore(tmp_path / "h.sqlite3")
    wanted = record(store, "wanted", 1.0)
    record(store, "newer", 2.0)
    win = shown_window(qtbot, store)
    assert [win.tabs.tabText(i) for i in range(win.tabs.count())] == ["Jobs", "History"]
    assert win.history_view is None and store.jobs_read == 0
    assert win.unread_count() == 2  # the tray's count without the view
    win.on_show_job("", wanted)  # "View Details" on a notification: the view is not built for it
    assert win.history_view is None
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    QTest.keySequence(win, QKeySequence("Ctrl+2"))
    view = win.history_view
    assert view is not None and win.tabs.currentIndex() == 1 and view.isVisible()
    assert view.selected_ids() == [wanted]
    assert view.search.accessibleName() == "Search history" and view.job.accessibleName() == "Job filter"
    win.tabs.tabBar().setFocus()
    reached = []
    for _ in range(12):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
    for widget in (view.search, view.job, view.kind, view.urgency, view.status, view.unread_only, view.table):
        assert widget in reached, widget.accessibleName() or widget
    with qtbot.waitSignal(win.unread_changed) as unread:
        view.on_mark_all_read()
    assert unread.args == [0] and win.unread_count() == 0
    store.close()
