"""One job in the job list: name, host, state, progress bar, step/total, ETA, loss and sparkline.

:class:`JobCard` is a plain widget filled from a :class:`JobRow` by :meth:`JobCard.show_row`;
the window puts one in each ``QListWidget`` item so arrow keys and selection work as usual.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from peft_notify.app.accessibility import card_name, set_accessible_name
from peft_notify.app.charts import LossChart
from peft_notify.app.jobs_model import JobRow
from peft_notify.app.plain import plain_label, plain_tooltip
from peft_notify.app.resources_view import card_text
from peft_notify.app.style import tone_color
from peft_notify.desktop.frames import shown_url

__all__ = ["TONE_COLORS", "JobCard"]

TONE_COLORS = {
    "ok": "#2563eb",
    "done": "#16a34a",
    "warn": "#d97706",
    "error": "#dc2626",
    "idle": "#6b7280",
}


class JobCard(QFrame):
    """A compact card for one job (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("JobCard")
        self._color = TONE_COLORS["idle"]
        self._selected = False
        self._styled: tuple[str, bool] | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.name = QLabel()
        self.name.setObjectName("JobName")
        self.state = QLabel()
        self.state.setObjectName("JobState")
        self.state.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.host = QLabel()
        self.host.setObjectName("Muted")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.percent = QLabel()
        self.percent.setObjectName("Percent")
        self.percent.setMinimumWidth(self.percent.fontMetrics().horizontalAdvance("100%") + 4)
        self.percent.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.details = QLabel()
        self.details.setObjectName("Muted")
        self.resources = QLabel()  # GPU memory / utilisation and disk free (docs/resources.md)
        self.resources.setObjectName("Muted")
        self.resources.hide()
        self.spark = LossChart()
        self.spark.setFixedWidth(110)
        for label in (self.name, self.state, self.host, self.percent, self.details, self.resources):
            plain_label(label)  # job names and texts come from the job server (issue 10 item 4)

        top = QHBoxLayout()
        top.addWidget(self.name, 1)
        top.addWidget(self.state)
        bar_row = QHBoxLayout()
        bar_row.addWidget(self.bar, 1)
        bar_row.addWidget(self.percent)
        bottom = QHBoxLayout()
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.details)
        text.addWidget(self.resources)
        text.addWidget(self.host)
        bottom.addLayout(text, 1)
        bottom.addWidget(self.spark)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 12, 10)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addLayout(bar_row)
        layout.addLayout(bottom)

    def set_selected(self, selected: bool) -> None:
        """Outline the card when its list item is current."""
        self._selected = selected
        self._restyle()

    def _restyle(self) -> None:
        # setStyleSheet re-polishes the whole card: only when the look actually changes.
        if self._styled == (self._color, self._selected):
            return
        self._styled = (self._color, self._selected)
        outline = "2px solid palette(highlight)" if self._selected else "1px solid palette(mid)"
        self.setStyleSheet(f"#JobCard {{ border: {outline}; border-left: 5px solid {self._color}; }}")

    def show_row(self, row: JobRow) -> None:
        """Refresh every field from ``row``."""
        color = tone_color(row.tone)  # the current theme's (light, dark, high contrast: app/style.py)
        self._color = color
        self._restyle()
        self.name.setText(row.title)
        self.state.setText(row.status_text.capitalize())
        if self.state.property("tone") != color:
            self.state.setProperty("tone", color)
            self.state.setStyleSheet(f"color: {color}; font-weight: 600;")
            self.bar.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; border-radius: 4px; }}")
        self.host.setText(" · ".join(x for x in (row.host or "", row.job_id) if x))
        if row.fraction is None:
            self.bar.setRange(0, 0 if row.state == "running" else 1000)  # busy indicator when total unknown
            self.bar.setValue(0)
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(round(row.fraction * 1000))
        self.percent.setText(row.percent_text)
        self.details.setText("  ·  ".join(x for x in (row.step_text, row.eta_text, row.loss_text) if x))
        resources = card_text(row.resources)
        if resources != self.resources.text():
            self.resources.setText(resources)
            self.resources.setVisible(bool(resources))
        self.spark.set_points(row.losses, QColor(color))
        self.setToolTip(plain_tooltip(f"{row.title}\n{row.status_text}\n{shown_url(row.key)}"))  # no token
        set_accessible_name(self, card_name(row))  # "llama: running, 13 %, ETA 35 s" (docs/app.md)
        set_accessible_name(self.bar, f"{row.title} progress", row.percent_text)
