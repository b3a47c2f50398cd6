"""The history tab: every notification, filterable, searchable, unread in bold.

:class:`HistoryView` reads from a ``HistoryStore`` (``query``/``mark_read``/``jobs``): up to
:data:`LIMIT` entries with the current filters on :meth:`reread` (filters changed, marked
read) and on :meth:`refresh` (also the jobs for the job filter: built, shown again), and only
the newest :data:`PAGE` on :meth:`on_history_changed` (the controller's ``history_changed``,
after every notification), merged into what it shows; while the tab is not on screen that
does nothing but note that the view is stale, and the view refreshes once when it is shown
again (issue 17: this ran on the loop that reads the next frame). Filters:
job, kind, urgency, delivery status, free text, unread only. "Mark read" / "Mark all read" and
Export (JSON/CSV) act on the store. ``entry_activated(job_id, entry_id)`` fires on
double-click/Enter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from peft_notify.app.history_merge import LIMIT, PAGE, STATUS_TEXT, entry_order, merge_newest, unread_count
from peft_notify.app.plain import plain_tooltip
from peft_notify.app.style import tone_color
from peft_notify.desktop.history import export_csv, export_json
from peft_notify.ports import HistoryEntry, HistoryQuery, HistoryStore

__all__ = [
    "LIMIT",
    "PAGE",
    "STATUS_TEXT",
    "HistoryModel",
    "HistoryView",
    "entry_order",
    "merge_newest",
    "unread_count",
]

log = logging.getLogger(__name__)

_HEADERS = ("Time", "Job", "Kind", "Urgency", "Title", "Status", "Channels")
_ANY = "Any"
_KIND_TONES = {"error": "error", "warning": "warn"}  # coloured by the current theme (app/style.py)
_SearchRole = Qt.ItemDataRole.UserRole


def _combo(name: str) -> QComboBox:
    combo = QComboBox()
    combo.setAccessibleName(name)
    return combo


def _ts(ts: float) -> str:
    today = time.strftime("%Y-%m-%d") == time.strftime("%Y-%m-%d", time.localtime(ts))
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M", time.localtime(ts))


def _channels_text(entry: HistoryEntry) -> str:
    """``"sent"`` / ``"1 sent, 1 failed"`` over the entry's channels (issue 13); the tooltip names them."""
    counts: dict[str, int] = {}
    for _channel, outcome in entry.channels:
        word = outcome.split(":", 1)[0]
        counts[word] = counts.get(word, 0) + 1
    if len(entry.channels) == 1:
        return entry.channels[0][1].split(":", 1)[0]
    return ", ".join(f"{n} {word}" for word, n in counts.items())


class HistoryModel(QAbstractTableModel):
    """Table model over a list of HistoryEntry."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[HistoryEntry] = []
        self.ids: set[int] = set()  # of the entries
        self._bold = QFont()
        self._bold.setBold(True)

    def set_entries(self, entries: list[HistoryEntry]) -> None:
        self.beginResetModel()
        self.entries = entries
        self.ids = {e.id for e in entries}
        self.endResetModel()

    def update_entries(self, entries: list[HistoryEntry]) -> None:
        """Show ``entries``: new ones at the top inserted, changed ones updated in place, the oldest
        ones beyond the list removed; a reset only when rows moved (the view keeps its rows,
        selection and scroll position, and re-measures only what changed)."""
        old = self.entries
        added = 0
        while added < len(entries) and entries[added].id not in self.ids:
            added += 1
        same = min(len(old), len(entries) - added)
        changed: list[int] = []
        for i in range(same):
            now, was = entries[added + i], old[i]
            if now is was:  # merge_newest keeps the older entries as they were
                continue
            if now.id != was.id:
                self.set_entries(entries)  # rows moved or left the filter: rare (a merged repeat)
                return
            if now != was:
                changed.append(i)
        if len(old) > same:
            self.beginRemoveRows(QModelIndex(), same, len(old) - 1)
            self.entries = old[:same]
            self.endRemoveRows()
        self.entries = entries[added : added + same]  # the same rows, their newest versions
        if changed:
            first, last = min(changed), max(changed)
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(_HEADERS) - 1))
        if added:
            self.beginInsertRows(QModelIndex(), 0, added - 1)
            self.entries = entries
            self.endInsertRows()
        self.entries = entries
        self.ids.difference_update(e.id for e in old[same:])
        self.ids.update(e.id for e in entries[:added])

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation is Qt.Orientation.Horizontal:
            return _HEADERS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            title = entry.title + (f"  (×{entry.repeat})" if entry.repeat > 1 else "")
            values = (
                _ts(entry.ts),
                entry.job_name or entry.job_id,
                entry.kind,
                entry.urgency,
                title,
                STATUS_TEXT.get(entry.status, entry.status.value),
                _channels_text(entry),
            )
            return values[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            extra = f"\nvia {entry.backend}" if entry.backend else ""
            extra += f"\n{entry.detail}" if entry.detail else ""
            extra += "".join(f"\n{channel}: {outcome}" for channel, outcome in entry.channels)
            return plain_tooltip(f"{entry.title}\n{entry.message}{extra}")
        if role == Qt.ItemDataRole.ForegroundRole and entry.kind in _KIND_TONES:
            return QColor(tone_color(_KIND_TONES[entry.kind]))
        if role == Qt.ItemDataRole.FontRole and not entry.read:
            return self._bold
        if role == _SearchRole:
            return entry.id
        return None


class HistoryView(QWidget):
    """History tab (see the module docstring)."""

    entry_activated = Signal(str, int)
    unread_changed = Signal(int)

    def __init__(self, history: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self._jobs: set[str | None] = {None}  # the job filter's choices
        self._stale = False  # history changed while the view was not on screen
        self._seen: tuple[float, int] | None = None  # the newest entry read (merge_newest's ``seen``)
        self._watched: QWidget | None = None  # the window whose minimizing and restoring we follow
        self.search = QLineEdit(placeholderText="Search titles and messages…  (Ctrl+F)", clearButtonEnabled=True)
        self.search.setAccessibleName("Search history")
        for action in self.search.findChildren(QAction):  # the clear button: named for screen readers
            action.setText("Clear search")
        self.job = _combo("Job filter")
        self.job.addItem(_ANY, None)  # before its signal is connected: building reads the store once
        self.kind = _combo("Kind filter")
        self.kind.addItems([_ANY, "progress", "completion", "warning", "error"])
        self.urgency = _combo("Urgency filter")
        self.urgency.addItems([_ANY, "low", "normal", "high", "critical"])
        self.status = _combo("Status filter")
        self.status.addItem(_ANY, None)
        for status, text in STATUS_TEXT.items():
            self.status.addItem(text, status)
        self.unread_only = QCheckBox("&Unread only")
        self.mark_read_button = QPushButton("Mark &read")
        self.mark_all_button = QPushButton("Mark &all read")
        self.export_button = QPushButton("E&xport…")
        self.empty = QLabel("No notifications yet. They appear here as soon as a job reports something.")
        self.empty.setObjectName("EmptyState")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model = HistoryModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)

        filters = QHBoxLayout()
        filters.addWidget(self.search, 2)
        for label, combo in (
            ("&Job", self.job),
            ("&Kind", self.kind),
            ("Ur&gency", self.urgency),
            ("&Status", self.status),
        ):
            caption = QLabel(label)
            caption.setBuddy(combo)
            filters.addWidget(caption)
            filters.addWidget(combo)
        filters.addWidget(self.unread_only)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.mark_read_button, self.mark_all_button, self.export_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty, 1)
        layout.addLayout(buttons)

        # Filters and marks re-read the entries, not the job list (GROUP BY over all of history:
        # ~140 ms at 100,000 entries on this machine, on every key typed in the search field).
        self.search.textChanged.connect(self.reread)
        for combo in (self.job, self.kind, self.urgency, self.status):
            combo.currentIndexChanged.connect(self.reread)
        self.unread_only.toggled.connect(self.reread)
        self.mark_read_button.clicked.connect(self.on_mark_read)
        self.mark_all_button.clicked.connect(self.on_mark_all_read)
        self.export_button.clicked.connect(self.on_export)
        self.table.activated.connect(self.on_activated)
        self.refresh()

    def current_query(self, limit: int = LIMIT) -> HistoryQuery:
        kind, urgency = self.kind.currentText(), self.urgency.currentText()
        return HistoryQuery(
            job_id=self.job.currentData(),
            kinds=() if kind == _ANY else (kind,),
            urgencies=() if urgency == _ANY else (urgency,),
            text=self.search.text().strip(),
            unread_only=self.unread_only.isChecked(),
            limit=limit,
        )

    def on_screen(self) -> bool:
        """The tab is shown, in a window that is neither hidden (in the tray) nor minimized."""
        return self.isVisible() and not self.window().isMinimized()

    def on_history_changed(self) -> None:
        """History changed (after every notification): on screen, read the newest :data:`PAGE`
        entries into the table; off screen, only note it (:meth:`refresh` runs once it is shown)."""
        if not self.on_screen():
            self._stale = True
            return
        status = self.status.currentData()
        try:
            newest = self.history.query(self.current_query(PAGE))
        except Exception:
            log.error("could not read history", exc_info=True)
            return
        merged = merge_newest(
            self.model.entries,
            newest,
            PAGE,
            LIMIT,
            keep=None if status is None else (lambda e: e.status is status),
            shown_ids=self.model.ids,
            seen=self._seen,
        )
        if merged is None:  # more than a page is new
            self.reread()
            return
        self._seen = entry_order(newest[0]) if newest else None
        self._add_jobs((e.job_id, e.job_name) for e in newest)
        self.model.update_entries(merged)
        self.table.setVisible(bool(merged))
        self.empty.setVisible(not merged)
        # No unread_changed here: counting unread entries reads all of history (~7 ms at 100,000),
        # and whoever shows the count refreshes on the controller's history_changed anyway.

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        window = self.window()
        if window is not self and window is not self._watched:  # restored from minimized: see eventFilter
            window.installEventFilter(self)
            self._watched = window
        self._refresh_if_stale()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() is QEvent.Type.WindowStateChange:
            self._refresh_if_stale()
        return False

    def _refresh_if_stale(self) -> None:
        if self._stale and self.on_screen():
            self.refresh()

    def refresh(self) -> None:
        """Re-read the store with the current filters, and its jobs for the job filter (keeps the
        selection where it can)."""
        self._stale = False
        self._refresh_jobs()
        self.reread()

    def reread(self) -> None:
        """Re-read the entries with the current filters (keeps the selection where it can)."""
        try:
            entries = self.history.query(self.current_query())
        except Exception as exc:
            log.error("could not read history", exc_info=True)
            self.empty.setText(f"Could not read the history: {exc}")
            entries = []
        self._seen = entry_order(entries[0]) if entries else None
        self._add_jobs((e.job_id, e.job_name) for e in entries)
        status = self.status.currentData()
        if status is not None:
            entries = [e for e in entries if e.status is status]
        selected = set(self.selected_ids())
        self.model.set_entries(entries)
        for row, entry in enumerate(entries):
            if entry.id in selected:
                self.table.selectRow(row)
        self.table.setVisible(bool(entries))
        self.empty.setVisible(not entries)
        self.unread_changed.emit(self.unread_count())

    def unread_count(self) -> int:
        """Unread entries in the whole store (not just the filtered ones)."""
        return unread_count(self.history)

    def _refresh_jobs(self) -> None:
        jobs = getattr(self.history, "jobs", None)
        pairs: list[tuple[str, str]] = (
            jobs()
            if callable(jobs)
            else sorted({(e.job_id, e.job_name) for e in self.history.query(HistoryQuery(limit=5000))})
        )
        self._add_jobs(pairs)

    def _add_jobs(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Offer the jobs of ``pairs`` (job_id, name) in the job filter that it does not offer yet."""
        new = [(job_id, name) for job_id, name in pairs if job_id not in self._jobs]
        if not new:
            return
        self.job.blockSignals(True)
        for job_id, name in new:
            if job_id not in self._jobs:
                self._jobs.add(job_id)
                self.job.addItem(name or job_id or "(app)", job_id)
        self.job.blockSignals(False)

    def select_job(self, job_id: str | None) -> None:
        index = self.job.findData(job_id)
        self.job.setCurrentIndex(max(index, 0))

    def select_entry(self, entry_id: int) -> None:
        for row, entry in enumerate(self.model.entries):
            if entry.id == entry_id:
                self.table.selectRow(row)
                self.table.scrollTo(self.model.index(row, 0))

    def selected_ids(self) -> list[int]:
        rows = {i.row() for i in self.table.selectionModel().selectedRows()}
        return [self.model.entries[r].id for r in sorted(rows) if r < len(self.model.entries)]

    def on_mark_read(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.history.mark_read(ids)
            self.reread()

    def on_mark_all_read(self) -> None:
        self.history.mark_read(None)
        self.reread()

    def on_activated(self, index: QModelIndex) -> None:
        entry = self.model.entries[index.row()]
        self.history.mark_read([entry.id])
        self.entry_activated.emit(entry.job_id, entry.id)
        self.reread()

    def on_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export history", "peft-notify-history.json", "JSON (*.json);;CSV (*.csv)"
        )
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> None:
        """Write the currently filtered entries to ``path`` (CSV when it ends in .csv, else JSON)."""
        text = export_csv(self.model.entries) if path.suffix.lower() == ".csv" else export_json(self.model.entries)
        path.write_text(text, encoding="utf-8")
