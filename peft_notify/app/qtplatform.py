"""Qt-based port adapters: tray-balloon notifier, window alert + badge taskbar, loss-curve PNG.

Owned by the platform side; :mod:`peft_notify.app.adapters` passes these to
:mod:`peft_notify.platform.choose` as extra candidates through
:func:`notifier_candidates` and :func:`taskbar_candidates`. Constructors raise
:class:`QtAdapterUnavailable` when the adapter cannot work (no tray, no window), so
the selection skips them with that reason. Use from the GUI thread only.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from peft_notify.platform.choose import Candidate
from peft_notify.platform.notifier import urgency_of
from peft_notify.ports import ActionHandler, Delivery, Notifier, NotifyRequest, TaskbarProgress, TaskbarState
from peft_notify.wire import UrgencyLevel

__all__ = [
    "QtAdapterUnavailable",
    "QtWindowTaskbar",
    "TrayBalloonNotifier",
    "notifier_candidates",
    "render_loss_curve_png",
    "taskbar_candidates",
]

log = logging.getLogger(__name__)

# Not on Linux: Qt sends the Unity LauncherEntry signal on the path
# /com/canonical/unity/launcherentry/<desktopFileName>, and our desktop file name
# ("peft-notify") has a '-', which D-Bus object paths may not contain, so every call only
# logs "Invalid object path". platform.taskbar.UnityLauncherEntry already sends the count.
QT_BADGE = not sys.platform.startswith("linux")


class QtAdapterUnavailable(Exception):
    """A Qt adapter cannot work here; the message says why."""


_BALLOON_ICONS = {
    UrgencyLevel.LOW: QSystemTrayIcon.MessageIcon.Information,
    UrgencyLevel.NORMAL: QSystemTrayIcon.MessageIcon.Information,
    UrgencyLevel.HIGH: QSystemTrayIcon.MessageIcon.Warning,
    UrgencyLevel.CRITICAL: QSystemTrayIcon.MessageIcon.Critical,
}


class TrayBalloonNotifier:
    """``QSystemTrayIcon.showMessage``: the last resort before the log.

    No buttons; a click on the balloon reports ``"default"`` for the most recent message
    (``messageClicked`` does not say which one, and is unreliable on KDE/Wayland).
    """

    name = "tray-balloon"

    def __init__(self, tray: QSystemTrayIcon | None, on_action: ActionHandler | None = None) -> None:
        if tray is None:
            raise QtAdapterUnavailable("the app has no tray icon")
        if not QSystemTrayIcon.isSystemTrayAvailable():
            raise QtAdapterUnavailable("no system tray on this desktop")
        if not tray.supportsMessages():
            raise QtAdapterUnavailable("the system tray does not show balloon messages")
        self._tray = tray
        self._on_action = on_action
        self._last: tuple[str, int] | None = None
        tray.messageClicked.connect(self.on_message_clicked)

    def capabilities(self) -> frozenset[str]:
        return frozenset({"body", "urgency"})

    async def notify(self, request: NotifyRequest) -> Delivery:
        try:
            if not self._tray.isVisible():
                return Delivery.failed(self.name, "the tray icon is hidden")
            level = urgency_of(request.event)
            # Critical stays up longer; the tray host may cap it.
            msecs = 30_000 if level is UrgencyLevel.CRITICAL else 10_000
            self._tray.showMessage(request.event.title, request.event.message, _BALLOON_ICONS[level], msecs)
            self._last = (request.job_id, request.record_id)
            return Delivery(ok=True, backend=self.name, detail="tray balloon")
        except Exception as exc:  # a notification must never crash monitoring
            log.warning("tray balloon failed", exc_info=True)
            return Delivery.failed(self.name, str(exc))

    def on_message_clicked(self) -> None:
        if self._last is not None and self._on_action is not None:
            self._on_action(self._last[0], self._last[1], "default")

    async def close(self) -> None:
        with contextlib.suppress(RuntimeError, TypeError):  # already disconnected or the tray is gone
            self._tray.messageClicked.disconnect(self.on_message_clicked)


class QtWindowTaskbar:
    """Window attention (``QApplication.alert``: urgency hint / FlashWindow / dock bounce) and
    ``QGuiApplication.setBadgeNumber`` (Qt ≥ 6.5: macOS dock, Windows overlay; not on Linux,
    see :data:`QT_BADGE`).

    Draws no progress: pair it with the platform's native taskbar in a ``TeeTaskbar``.
    """

    name = "qt-alert"

    def __init__(self, window: QWidget | None, *, qt_badge: bool = QT_BADGE) -> None:
        if window is None:
            raise QtAdapterUnavailable("the app gave no main window")
        self._window = window
        self.qt_badge = qt_badge

    def set(self, value: float, state: TaskbarState) -> None:
        return None

    def clear(self) -> None:
        return None

    def attention(self, critical: bool) -> None:
        # msec 0: until the window is activated; otherwise a few seconds.
        QApplication.alert(self._window, 0 if critical else 5000)

    def badge(self, count: int) -> None:
        if not self.qt_badge:
            return
        app = QGuiApplication.instance()
        setter = getattr(app, "setBadgeNumber", None)  # Qt >= 6.5
        if setter is not None:
            setter(max(0, count))


def notifier_candidates(tray: Any = None, on_action: ActionHandler | None = None) -> list[Candidate[Notifier]]:
    """Extra notifier candidates for :func:`peft_notify.platform.choose.select_notifiers`."""
    return [Candidate("tray-balloon", lambda: TrayBalloonNotifier(tray, on_action))]


def taskbar_candidates(window: Any = None) -> list[Candidate[TaskbarProgress]]:
    """Extra taskbar candidates for :func:`peft_notify.platform.choose.select_taskbar`."""
    return [Candidate("qt-alert", lambda: QtWindowTaskbar(window))]


def render_loss_curve_png(losses: Sequence[float], path: Path, *, width: int = 360, height: int = 180) -> Path:
    """Draw ``losses`` (one value per logged step) as a small line chart PNG at ``path``.

    For notification attachments. Needs a QGuiApplication. Non-finite values are skipped.
    Raises ``ValueError`` with fewer than two finite values and ``OSError`` when the PNG
    cannot be written.
    """
    points = [(i, float(v)) for i, v in enumerate(losses) if math.isfinite(v)]
    if len(points) < 2:
        raise ValueError("need at least two finite loss values to draw a curve")
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        margin = 12.0
        plot = QRectF(margin, margin, width - 2 * margin, height - 2 * margin)
        painter.setPen(QPen(QColor("#d0d5e0"), 1))
        for k in range(5):
            y = plot.top() + plot.height() * k / 4
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        lo, hi = min(v for _, v in points), max(v for _, v in points)
        span = hi - lo or 1.0
        first, last = points[0][0], points[-1][0]
        curve = QPainterPath()
        for n, (i, v) in enumerate(points):
            x = plot.left() + plot.width() * (i - first) / (last - first)
            y = plot.bottom() - plot.height() * (v - lo) / span
            if n == 0:
                curve.moveTo(x, y)
            else:
                curve.lineTo(x, y)
        pen = QPen(QColor("#3346c4"), 2.5)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        painter.drawPath(curve)
    finally:
        painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = image.save(str(path), "PNG")  # type: ignore[call-overload]  # stubs say bytes; PySide6 takes str
    if not saved:
        raise OSError(f"could not write {path}")
    return path
