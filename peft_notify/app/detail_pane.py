"""The selected job in detail: facts, live loss curve, event timeline, Retry/Cancel buttons.

:meth:`DetailPane.show_row` fills it from a :class:`JobRow` plus that job's history entries
(called at every UI flush and after every notification: for the job already shown it adds
timeline rows for new entries, updates changed ones in place, and sets a chart only when its
series changed); ``action_requested(key, action)`` fires when Retry/Cancel is pressed. Each is shown when the
job's hello advertised it; Cancel is enabled while the run is live, Retry only while the job
can take it (:attr:`JobRow.can_retry`: failed and still connected).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from peft_notify.app.accessibility import STATUS_ICONS, status_icon
from peft_notify.app.charts import LossChart
from peft_notify.app.history_merge import STATUS_TEXT
from peft_notify.app.jobs_model import JobRow, Link, format_duration
from peft_notify.app.plain import plain_label, plain_tooltip
from peft_notify.app.resources_view import detail_text
from peft_notify.app.style import tone_color
from peft_notify.desktop.curve import Curve
from peft_notify.desktop.frames import shown_url
from peft_notify.ports import HistoryEntry

if TYPE_CHECKING:  # built with the charts, when a job is first shown
    from peft_notify.app.resource_charts import ResourceCharts

__all__ = ["DetailPane"]


def _last(series: Curve) -> tuple[int, tuple[int, float] | None]:
    """A series' length and newest point: what says it changed (appended, or its last replaced)."""
    return len(series), series[-1] if series else None


class DetailPane(QWidget):
    """Detail of one job (see the module docstring)."""

    action_requested = Signal(str, str)
    entry_activated = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = ""
        self.job_id = ""
        self._tone = ""
        self._shown_events: Sequence[HistoryEntry] | None = None
        self._shown_key = ""
        self._entries: list[HistoryEntry] = []  # the timeline's rows' entries, newest first
        self._charted: tuple[tuple[object, ...], tuple[object, ...]] = ((), ())  # what the charts show
        self.title = QLabel("Select a job")
        self.title.setObjectName("DetailTitle")
        self.title.setWordWrap(True)
        self.state = QLabel()
        self.state.setObjectName("DetailState")
        plain_label(self.title)  # job names and texts come from the job server (issue 10 item 4)
        plain_label(self.state)
        self.facts: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setHorizontalSpacing(14)
        for name in ("Progress", "ETA", "Loss", "Host", "Resources", "Connection", "URL"):
            value = plain_label(QLabel())
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            self.facts[name] = value
            caption = QLabel(name)
            caption.setObjectName("Muted")
            caption.setBuddy(value)
            value.setAccessibleName(name)
            form.addRow(caption, value)
        # The charts are built when a job is first shown (issue 17, idle RSS): _charts().
        self.chart: LossChart | None = None
        self.resource_charts: ResourceCharts | None = None
        self.timeline = QListWidget()
        self.timeline.setAccessibleName("Event timeline")
        self.timeline.itemActivated.connect(self._on_item)
        self.retry = QPushButton("Re&try")
        self.cancel = QPushButton("&Cancel job")
        self.retry.clicked.connect(lambda: self.action_requested.emit(self.key, "retry"))
        self.cancel.clicked.connect(lambda: self.action_requested.emit(self.key, "cancel"))
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.state)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.retry)
        buttons.addWidget(self.cancel)
        timeline_label = QLabel("Events")
        timeline_label.setObjectName("Section")
        self._layout = layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addLayout(head)
        layout.addLayout(form)
        layout.addWidget(timeline_label)
        layout.addWidget(self.timeline, 2)
        layout.addLayout(buttons)
        self.show_row(None, [])

    def _charts(self) -> tuple[LossChart, ResourceCharts]:
        """The loss chart and the resource charts, built (between the facts and the timeline) the
        first time a job is shown: with no job there is nothing to chart."""
        if self.chart is None or self.resource_charts is None:
            from peft_notify.app.resource_charts import ResourceCharts

            loss_label = QLabel("Loss")
            loss_label.setObjectName("Section")
            self.chart = LossChart(detailed=True)
            self.resource_charts = ResourceCharts()  # GPU memory and host RAM over time (docs/resources.md)
            self.resource_charts.setVisible(False)  # until the job has samples (show_history)
            at = self._layout.indexOf(self.timeline) - 1  # before the timeline's caption
            for offset, (widget, stretch) in enumerate(((loss_label, 0), (self.chart, 3), (self.resource_charts, 1))):
                self._layout.insertWidget(at + offset, widget, stretch)
            self._charted = ((), ())
        return self.chart, self.resource_charts

    def show_row(self, row: JobRow | None, events: Sequence[HistoryEntry]) -> None:
        """Show ``row`` (None: the empty state) and its ``events`` (newest first)."""
        enabled = row is not None
        self.timeline.setEnabled(enabled)
        if self.chart is not None:
            self.chart.setEnabled(enabled)
        if row is None:
            self.key = self.job_id = ""
            self.title.setText("No job selected")
            self.state.clear()
            for label in self.facts.values():
                label.setText("—")
            if self.chart is not None and self.resource_charts is not None:
                self.chart.set_points([])
                self.resource_charts.show_history(None)
            self._charted = ((), ())
            self.timeline.clear()
            self._entries = []
            self._shown_events, self._shown_key, self._tone = None, "", ""
            self.retry.setVisible(False)
            self.cancel.setVisible(False)
            return
        self.key, self.job_id = row.key, row.job_id
        color = tone_color(row.tone)  # the current theme's (app/style.py)
        self.title.setText(row.title)
        self.state.setText(row.status_text.capitalize())
        if self._tone != color:
            self._tone = color
            self.state.setStyleSheet(f"color: {color}; font-weight: 600;")
        self.facts["Progress"].setText(f"{row.percent_text}  ({row.step_text})")
        self.facts["ETA"].setText(format_duration(row.eta_s) if not row.finished else "—")
        self.facts["Loss"].setText("—" if row.loss is None else f"{row.loss:.5g}")
        self.facts["Host"].setText(" · ".join(x for x in (row.host, f"pid {row.pid}" if row.pid else "") if x) or "—")
        show_detail = row.link_detail and row.link is not Link.CONNECTED
        link = row.link.value + (f" ({row.link_detail})" if show_detail else "")
        self.facts["Connection"].setText(link)
        self.facts["URL"].setText(shown_url(row.key))  # never the token: screens are shared and screenshotted
        # The charts only when their series changed: this runs at every UI flush (10/s) for the
        # shown job, and each set_points repaints (a 900-point sparkline ~5-10 ms; issue 17).
        chart, resource_charts = self._charts()
        losses = (id(row.losses), len(row.losses), row.losses[-1] if row.losses else None, color)
        if losses != self._charted[0]:
            chart.set_points(row.losses, QColor(color))
        self.facts["Resources"].setText(detail_text(row.resources))
        history = row.resource_history
        resources = (id(history), *(_last(series) for series in (history.gpu, history.ram)))
        if resources != self._charted[1]:
            resource_charts.show_history(history)
        self._charted = (losses, resources)
        connected = row.link is Link.CONNECTED
        self.retry.setVisible("retry" in row.capabilities)
        self.cancel.setVisible("cancel" in row.capabilities)
        # Retry relaunches the run: only after a failure and while the job can still take it.
        self.retry.setEnabled(row.can_retry)
        self.retry.setToolTip(row.retry_hint)
        self.cancel.setEnabled(connected and not row.finished)
        if self._shown_events is events and self._shown_key == row.key:
            return  # a progress update: the timeline has not changed
        same_job = self._shown_key == row.key
        self._shown_events, self._shown_key = events, row.key
        if not (same_job and self._update_timeline(events)):
            self._rebuild_timeline(events)

    def _rebuild_timeline(self, events: Sequence[HistoryEntry]) -> None:
        """A row per entry (another job shown, or entries that moved)."""
        self.timeline.clear()
        for entry in events:
            self.timeline.addItem(self._item(entry))
        self._entries = list(events)
        if not events:
            self.timeline.addItem(QListWidgetItem("No notifications for this job yet"))

    def _update_timeline(self, events: Sequence[HistoryEntry]) -> bool:
        """Show ``events`` of the job shown by adding rows for the new entries at the top and
        updating the rows whose entry changed (PENDING → SHOWN, a repeat) in place; the other rows
        and their widgets stay. False when the rows cannot be kept (entries moved or went): rebuild.

        After each notification this costs a row or two, not one per entry (issue 17).
        """
        old = self._entries
        if not old:
            return not events  # the placeholder: a rebuild is as cheap
        added = 0
        while added < len(events) and events[added].id != old[0].id:
            added += 1
        same = min(len(old), len(events) - added)
        if same == 0 or any(events[added + i].id != old[i].id for i in range(same)):
            return False
        for i in range(same):
            if events[added + i] is not old[i] and events[added + i] != old[i]:
                self._fill(self.timeline.item(i), events[added + i])
        for i in range(len(old) - 1, same - 1, -1):  # the oldest, beyond the timeline's limit
            self.timeline.takeItem(i)
        for entry in reversed(events[:added]):
            self.timeline.insertItem(0, self._item(entry))
        self._entries = list(events)
        return True

    def _item(self, entry: HistoryEntry) -> QListWidgetItem:
        item = QListWidgetItem(status_icon(entry.kind), "")
        item.setData(Qt.ItemDataRole.UserRole, entry.id)
        self._fill(item, entry)
        return item

    @staticmethod
    def _fill(item: QListWidgetItem, entry: HistoryEntry) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(entry.ts))
        repeat = f" ×{entry.repeat}" if entry.repeat > 1 else ""
        status = STATUS_TEXT.get(entry.status, entry.status.value)
        word = STATUS_ICONS.get(entry.kind, ("", entry.kind))[1]
        item.setText(f"{stamp}  {entry.title}{repeat}  — {status}")
        item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{word}, {stamp}, {entry.title}{repeat}, {status}")
        item.setToolTip(plain_tooltip(entry.message))

    def focus_first(self) -> None:
        """Move the keyboard focus into the pane (Enter on a job card): the timeline of its events."""
        self.timeline.setFocus(Qt.FocusReason.OtherFocusReason)
        if self.timeline.currentRow() < 0 and self.timeline.count():
            self.timeline.setCurrentRow(0)

    def _on_item(self, item: QListWidgetItem) -> None:
        entry_id = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(entry_id, int):
            self.entry_activated.emit(self.job_id, entry_id)
