"""Loss curves drawn with QPainter: a sparkline for job cards, a labelled chart for the detail pane.

Call :meth:`LossChart.set_points` with ``(step, loss)`` pairs whenever the job updates; painting
scales to the widget (and to the screen's device pixel ratio), so it stays sharp at 200 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from peft_notify.app.accessibility import loss_summary, set_accessible_name

__all__ = ["LossChart", "nice_ticks"]


def nice_ticks(lo: float, hi: float, count: int = 6) -> tuple[list[float], int]:
    """Round axis ticks covering [lo, hi] (1, 2 or 5 × 10^k apart) and the decimals to print them with.

    ``nice_ticks(0.5386, 2.539)`` → ``([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], 1)``.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise ValueError(f"need finite lo < hi, got {lo!r}, {hi!r}")
    raw = (hi - lo) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    if start > lo:  # lo / step underflowed to 0 (a subnormal lo): one step lower covers it
        start -= step
    ticks: list[float] = []
    value = start
    while value < hi + step * 1e-9:
        ticks.append(round(value, 12))
        value = start + len(ticks) * step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return ticks, decimals


class LossChart(QWidget):
    """A loss curve; ``detailed=False`` is the bare sparkline used in job cards."""

    def __init__(self, *, detailed: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.detailed = detailed
        self.points: list[tuple[int, float]] = []
        self.color = self.palette().highlight().color()  # until set_points gives the job's tone
        self.setSizePolicy(
            QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed if not detailed else QSizePolicy.Policy.Expanding
        )
        # What a screen reader says instead of the picture (resource charts set their own).
        self.describe: Callable[[Sequence[tuple[int, float]]], str] = loss_summary
        self.setAccessibleName(loss_summary(self.points))
        self.setAccessibleDescription("Loss curve")

    def sizeHint(self) -> QSize:
        return QSize(320, 180) if self.detailed else QSize(120, 28)

    def minimumSizeHint(self) -> QSize:
        return QSize(160, 100) if self.detailed else QSize(60, 22)

    def set_points(self, points: Iterable[tuple[int, float]], color: QColor | None = None) -> None:
        """Show ``points``; the chart's accessible name becomes their text alternative."""
        self.points = list(points)
        if color is not None:
            self.color = color
        set_accessible_name(self, self.describe(self.points), self.accessibleDescription())
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        area = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        if self.detailed:
            painter.fillRect(self.rect(), self.palette().base())
            area = area.adjusted(metrics.horizontalAdvance("0.0000") + 10, 8, -10, -(metrics.height() + 8))
        if len(self.points) < 2:
            if self.detailed:
                painter.setPen(self.palette().placeholderText().color())
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No loss reported yet")
            painter.end()
            return
        steps = [p[0] for p in self.points]
        losses = [p[1] for p in self.points]
        lo, hi = min(losses), max(losses)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        first, last = steps[0], max(steps[-1], steps[0] + 1)

        def at(step: int, loss: float) -> QPointF:
            x = area.left() + (step - first) / (last - first) * area.width()
            y = area.bottom() - (loss - lo) / (hi - lo) * area.height()
            return QPointF(x, y)

        ticks, decimals = nice_ticks(lo, hi) if self.detailed else ([lo, hi], 0)
        lo, hi = ticks[0], ticks[-1]  # the axis spans whole ticks
        if self.detailed:
            grid = QColor(self.palette().text().color())
            grid.setAlpha(40)
            text_color = self.palette().placeholderText().color()
            for value in ticks:
                y = area.bottom() - (value - lo) / (hi - lo) * area.height()
                painter.setPen(QPen(grid, 1))
                painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
                painter.setPen(text_color)
                label = QRectF(0, y - metrics.height() / 2, area.left() - 6, metrics.height())
                painter.drawText(
                    label, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{value:.{decimals}f}"
                )
            bottom = QRectF(area.left(), area.bottom() + 4, area.width(), metrics.height())
            painter.drawText(bottom, Qt.AlignmentFlag.AlignLeft, f"step {first:,}")
            painter.drawText(bottom, Qt.AlignmentFlag.AlignRight, f"step {steps[-1]:,}")
        path = QPainterPath(at(*self.points[0]))
        for point in self.points[1:]:
            path.lineTo(at(*point))
        if self.detailed:
            fill = QPainterPath(path)
            fill.lineTo(QPointF(at(*self.points[-1]).x(), area.bottom()))
            fill.lineTo(QPointF(area.left(), area.bottom()))
            shade = QColor(self.color)
            shade.setAlpha(40)
            painter.fillPath(fill, shade)
        painter.setPen(QPen(self.color, 2.0 if self.detailed else 1.5))
        painter.drawPath(path)
        painter.setBrush(self.color)
        painter.drawEllipse(at(*self.points[-1]), 2.5, 2.5)
        painter.end()
