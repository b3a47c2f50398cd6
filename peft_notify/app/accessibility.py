"""What screen readers hear: accessible names for job cards and charts, and the checks the tests run.

Call :func:`card_name` / :func:`loss_summary` to build the spoken text of a job card or a loss
chart, and :func:`set_accessible_name` to apply a name that may change (it tells assistive
technology through ``QAccessible.updateAccessibility``, which custom widgets must do themselves).
:func:`unnamed_focusables` is what ``tests/app/test_accessibility.py``
checks every window and dialog with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAccessible, QAccessibleEvent, QColor, QIcon, QPainter, QPen
from PySide6.QtWidgets import QAbstractButton, QLabel, QWidget

__all__ = [
    "card_name",
    "draw_state_mark",
    "focusables",
    "loss_summary",
    "percent_summary",
    "set_accessible_name",
    "spoken_duration",
    "spoken_name",
    "status_icon",
    "unnamed_focusables",
]


#: Kind → (icon file in resources/icons, the word said with it). Each icon has its own shape
#: (octagon, triangle, circle with a tick, pie), so no kind is told by colour alone.
STATUS_ICONS = {
    "error": ("status-error.svg", "error"),
    "warning": ("status-warning.svg", "warning"),
    "completion": ("status-completion.svg", "completed"),
    "progress": ("status-progress.svg", "progress"),
}


_ICONS: dict[str, QIcon] = {}


def status_icon(kind: str) -> QIcon:
    """The icon of a notification kind (an empty icon for an unknown kind); never an emoji,
    which renders as an empty box where no emoji font is installed. One QIcon per kind, shared:
    the timeline rebuilt after each notification then renders each SVG once, not once a row."""
    icon = _ICONS.get(kind)
    if icon is None:
        from peft_notify.appinfo import resources_dir

        name = STATUS_ICONS.get(kind, ("", ""))[0]
        icon = _ICONS[kind] = QIcon(str(resources_dir() / "icons" / name)) if name else QIcon()
    return icon


def draw_state_mark(painter: QPainter, tone: str, box: QRectF, color: QColor) -> None:
    """Draw the shape that tells a state without its colour: ``ok`` (running) a dot, ``done`` a
    tick, ``warn`` a triangle with a bar, ``error`` a cross, ``idle`` nothing. Used by the tray icon."""
    painter.save()
    w = box.width()
    if tone == "ok":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawEllipse(box.adjusted(w * 0.2, w * 0.2, -w * 0.2, -w * 0.2))
    elif tone == "done":
        painter.setPen(QPen(color, w * 0.22, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
        painter.drawPolyline(
            [
                QPointF(box.left() + w * 0.1, box.top() + w * 0.55),
                QPointF(box.left() + w * 0.4, box.top() + w * 0.82),
                QPointF(box.left() + w * 0.92, box.top() + w * 0.18),
            ]
        )
    elif tone == "warn":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawPolygon(
            [
                QPointF(box.center().x(), box.top()),
                QPointF(box.right(), box.bottom()),
                QPointF(box.left(), box.bottom()),
            ]
        )
        painter.setBrush(QColor("black"))
        painter.drawRect(QRectF(box.center().x() - w * 0.07, box.top() + w * 0.35, w * 0.14, w * 0.38))
    elif tone == "error":
        painter.setPen(QPen(color, w * 0.24, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        inner = box.adjusted(w * 0.12, w * 0.12, -w * 0.12, -w * 0.12)
        painter.drawLine(inner.topLeft(), inner.bottomRight())
        painter.drawLine(inner.topRight(), inner.bottomLeft())
    painter.restore()


class _RowLike(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def status_text(self) -> str: ...
    @property
    def finished(self) -> bool: ...

    fraction: float | None
    eta_s: float | None
    state: str


def _number(value: float) -> str:
    return f"{value:.2g}"


def spoken_duration(seconds: float) -> str:
    """``35`` → ``"35 s"``, ``200`` → ``"3 min 20 s"``, ``3720`` → ``"1 h 2 min"`` (as read aloud)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def loss_summary(points: Sequence[tuple[int, float]]) -> str:
    """A text alternative of a loss curve: ``"loss 2.6 → 0.46 over 400 steps, falling"``."""
    if not points:
        return "no loss reported yet"
    first_step, first = points[0]
    last_step, last = points[-1]
    if len(points) == 1:
        return f"loss {_number(last)} at step {last_step:,}"
    steps = last_step - first_step
    span = max(abs(first), abs(last), 1e-12)
    change = (last - first) / span
    trend = "falling" if change < -0.02 else "rising" if change > 0.02 else "flat"
    return f"loss {_number(first)} → {_number(last)} over {steps:,} steps, {trend}"


def percent_summary(what: str) -> Callable[[Sequence[tuple[int, float]]], str]:
    """A text alternative for a percent-over-seconds chart: ``"GPU memory 40 % → 81 % over 3 min 0 s, rising"``."""

    def describe(points: Sequence[tuple[int, float]]) -> str:
        if not points:
            return f"{what}: no samples yet"
        (t0, first), (t1, last) = points[0], points[-1]
        change = last - first
        trend = "rising" if change > 2 else "falling" if change < -2 else "steady"
        if len(points) == 1:
            return f"{what} {last:.0f} %"
        return f"{what} {first:.0f} % → {last:.0f} % over {spoken_duration(t1 - t0)}, {trend}"

    return describe


def card_name(row: _RowLike) -> str:
    """A job card as one sentence: ``"llama-3-8b-lora: running, 13 %, ETA 35 s"``."""
    parts = [row.status_text]
    if row.fraction is not None:
        parts.append(f"{row.fraction * 100:.0f} %")
    if not row.finished and row.state != "paused" and row.eta_s is not None:
        parts.append(f"ETA {spoken_duration(row.eta_s)}")
    return f"{row.title}: {', '.join(parts)}"


def set_accessible_name(widget: QWidget, name: str, description: str | None = None) -> None:
    """Set ``widget``'s accessible name (and description) and tell assistive technology when it changed."""
    changed = False
    if widget.accessibleName() != name:
        widget.setAccessibleName(name)
        changed = True
    if description is not None and widget.accessibleDescription() != description:
        widget.setAccessibleDescription(description)
        changed = True
    if changed and QAccessible.isActive():
        QAccessible.updateAccessibility(QAccessibleEvent(widget, QAccessible.Event.NameChanged))


def focusables(root: QWidget) -> list[QWidget]:
    """The visible, enabled widgets under ``root`` that take keyboard focus (Tab or click)."""
    found = []
    for widget in root.findChildren(QWidget):
        if not (widget.isVisibleTo(root) and widget.isEnabled()):
            continue
        if widget.focusPolicy().value & 0x1 and widget.focusProxy() is None:  # Qt.TabFocus
            found.append(widget)
    return found


def spoken_name(widget: QWidget) -> str:
    """What a screen reader calls ``widget``: its accessible name, else its text, else its label buddy's."""
    iface = QAccessible.queryAccessibleInterface(widget)
    if iface is not None:
        name = iface.text(QAccessible.Text.Name)
        if name:
            return name.replace("&", "")
    if isinstance(widget, QAbstractButton):
        return widget.text().replace("&", "")
    return ""


def unnamed_focusables(root: QWidget) -> list[QWidget]:
    """Focusable widgets under ``root`` a screen reader could not name (each one a bug)."""
    buddies = {id(label.buddy()) for label in root.findChildren(QLabel) if label.buddy() is not None}
    return [w for w in focusables(root) if not spoken_name(w) and id(w) not in buddies]
