"""The detail pane's small resource charts: GPU memory and host RAM of the selected job over time."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from peft_notify.app.accessibility import percent_summary
from peft_notify.app.charts import LossChart
from peft_notify.app.resources_view import ResourceHistory

__all__ = ["ResourceCharts"]


class ResourceCharts(QWidget):
    """Two small charts for the detail pane: GPU memory and host RAM (percent over seconds)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gpu = LossChart()
        self.ram = LossChart()
        for chart, what in ((self.gpu, "GPU memory"), (self.ram, "host RAM")):
            chart.describe = percent_summary(what)  # its text alternative (app/accessibility.py)
            chart.setAccessibleDescription(f"{what} over time")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for caption, chart in (("GPU memory %", self.gpu), ("Host RAM %", self.ram)):
            box = QVBoxLayout()
            label = QLabel(caption)
            label.setObjectName("Muted")
            box.addWidget(label)
            box.addWidget(chart)
            row.addLayout(box, 1)

    def show_history(self, history: ResourceHistory | None) -> None:
        self.gpu.set_points(list(history.gpu) if history else [], QColor("#7c3aed"))
        self.ram.set_points(list(history.ram) if history else [], QColor("#0891b2"))
        self.setVisible(bool(history and (history.gpu or history.ram)))
