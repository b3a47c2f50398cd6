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

from PySide6.QtCore import QAbstractNativeEventFilter, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QGuiApplication, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from peft_notify.app.plain import tray_text
from peft_notify.platform.choose import Candidate
from peft_notify.platform.notifier import urgency_of
from peft_notify.platform.taskbar import NullTaskbar, TeeTaskbar
from peft_notify.platform.win32 import read_msg
from peft_notify.ports import ActionHandler, Delivery, Notifier, NotifyRequest, TaskbarProgress, TaskbarState
from peft_notify.redact import redact
from peft_notify.wire import UrgencyLevel

__all__ = [
    "NotifierPermissionWatch",
    "QtAdapterUnavailable",
    "QtWindowTaskbar",
    "TaskbarButtonFilter",
    "TrayBalloonNotifier",
    "combine_taskbars",
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
            # Qt draws the balloon with QLabels (X11) or sends it to the notification server
            # (StatusNotifierItem hosts): look-alikes for < > keep job text literal in both.
            title, message = tray_text(redact(request.event.title)), tray_text(redact(request.event.message))
            self._tray.showMessage(title, message, _BALLOON_ICONS[level], msecs)
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

    Draws no progress: pair it with the platform's native taskbar (:func:`combine_taskbars`),
    which turns off the parts the native adapter does itself (``alert``, ``qt_badge``).
    """

    name = "qt-alert"

    def __init__(self, window: QWidget | None, *, qt_badge: bool = QT_BADGE, alert: bool = True) -> None:
        if window is None:
            raise QtAdapterUnavailable("the app gave no main window")
        self._window = window
        self.qt_badge = qt_badge
        self.alert = alert

    def set(self, value: float, state: TaskbarState) -> None:
        return None

    def clear(self) -> None:
        return None

    def attention(self, critical: bool) -> None:
        if not self.alert:
            return
        # msec 0: until the window is activated; otherwise a few seconds.
        QApplication.alert(self._window, 0 if critical else 5000)

    def badge(self, count: int) -> None:
        if not self.qt_badge:
            return
        app = QGuiApplication.instance()
        setter = getattr(app, "setBadgeNumber", None)  # Qt >= 6.5
        if setter is not None:
            setter(max(0, count))


class TaskbarButtonFilter(QAbstractNativeEventFilter):
    """Calls ``on_created`` when the window ``hwnd()`` receives the registered ``TaskbarButtonCreated``.

    Windows sends that message when the window's taskbar button appears — at first show, when
    the window is shown again from the tray, and after Explorer restarts — and every
    ITaskbarList3 state set before it is lost. Qt's own port did exactly this with an
    application-wide filter matching ``msg->hwnd`` (qt/qtwinextras src/winextras/qwineventfilter.cpp,
    ``QWinEventFilter``; qwintaskbarbutton.cpp then re-applied the progress).
    """

    def __init__(self, message: int, hwnd: Any, on_created: Any) -> None:
        super().__init__()
        self.message = message
        self._hwnd = hwnd
        self._on_created = on_created
        self.seen = 0

    def nativeEventFilter(self, eventType: Any, message: Any) -> tuple[bool, int]:
        try:
            kind = bytes(eventType.data()) if hasattr(eventType, "data") else bytes(eventType)
            if kind not in (b"windows_generic_MSG", b"windows_dispatcher_MSG"):
                return False, 0
            hwnd, msg = read_msg(int(message))
            if msg != self.message or not hwnd or hwnd != self._hwnd():
                return False, 0
            self.seen += 1
            self._on_created()
        except Exception:  # an event filter must never break the event loop
            log.warning("TaskbarButtonCreated handling failed", exc_info=True)
        return False, 0  # let Qt see it too


def _members(taskbar: TaskbarProgress) -> tuple[TaskbarProgress, ...]:
    return taskbar.members if isinstance(taskbar, TeeTaskbar) else (taskbar,)


def combine_taskbars(
    chosen: Sequence[TaskbarProgress], window: QWidget | None = None, app: QApplication | None = None
) -> TaskbarProgress:
    """One TaskbarProgress driving every chosen adapter, with one owner per job.

    - The native adapter that flashes the window (``flashes_window``: Windows FlashWindowEx
      until foreground) replaces ``QApplication.alert``, whose FlashWindowEx stops after 5 s.
    - The native adapter that owns the badge (``owns_badge``: the macOS dock tile's "45%"
      label) turns Qt's ``setBadgeNumber`` off — Qt writes the same dock badge and its
      ``badge(0)`` would wipe the label.
    - Windows: installs :class:`TaskbarButtonFilter` so the native adapter re-creates its
      interface and re-applies the last state when the taskbar button is (re)created.
    """
    members = [t for t in chosen if not isinstance(t, NullTaskbar)]
    flashes = any(getattr(t, "flashes_window", False) for t in members)
    owns_badge = any(getattr(t, "owns_badge", False) for t in members)
    for member in members:
        if isinstance(member, QtWindowTaskbar):
            member.alert = member.alert and not flashes
            member.qt_badge = member.qt_badge and not owns_badge
    native = next((t for t in members if callable(getattr(t, "taskbar_button_created_message", None))), None)
    if native is not None and window is not None:
        install_taskbar_button_filter(native, window, app)
    if not members:
        return NullTaskbar()
    return members[0] if len(members) == 1 else TeeTaskbar(members)


_FILTERS: list[TaskbarButtonFilter] = []  # Qt does not own Python filters: keep them alive


def install_taskbar_button_filter(
    native: Any, window: QWidget, app: QApplication | None = None
) -> TaskbarButtonFilter | None:
    """Install the TaskbarButtonCreated filter for ``window``; ``None`` (logged) when it cannot be."""
    app = app or QApplication.instance()  # type: ignore[assignment]
    if app is None:
        return None
    try:
        window.winId()  # the HWND must exist to allow the message to it
        message = int(native.taskbar_button_created_message())
    except Exception as exc:
        log.warning("cannot watch for TaskbarButtonCreated (progress is lost after an Explorer restart): %s", exc)
        return None
    event_filter = TaskbarButtonFilter(message, lambda: int(window.winId()), native.reset)
    app.installNativeEventFilter(event_filter)
    _FILTERS.append(event_filter)
    return event_filter


class NotifierPermissionWatch(QObject):
    """Says "notifications are off for this app" when the OS refuses the native notifier.

    Asks each notifier that can tell (``check_authorisation``/``off_reason``: the
    desktop-notifier adapter on macOS and Windows) at :meth:`start` and every ``interval_ms``;
    emits ``changed`` with the reason, or ``None`` once they are allowed again, and
    ``problem("", reason)`` (connect it to the window's banner). With a ``tray`` icon, a
    disabled first line of its menu says it too, while it lasts.
    """

    changed = Signal(object)  # str | None
    problem = Signal(str, str)  # (job key "", message), like Controller.problem

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        interval_ms: int = 60_000,
        parent: QObject | None = None,
        *,
        tray: QSystemTrayIcon | None = None,
    ) -> None:
        super().__init__(parent)
        # Only notifiers the OS can silently refuse (macOS, Windows): nothing to poll on Linux.
        self._watched = [n for n in notifiers if getattr(n, "checks_authorisation", False)]
        self.reason: str | None = None
        self._tray = tray
        self.tray_line: QAction | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.on_timeout)
        self._pending: Any = None

    def start(self) -> None:
        if not self._watched:
            return
        self._timer.start()
        self.on_timeout()

    def stop(self) -> None:
        self._timer.stop()
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()

    def on_timeout(self) -> None:
        import asyncio

        if self._pending is not None and not self._pending.done():
            return
        try:
            self._pending = asyncio.ensure_future(self.refresh())
        except RuntimeError:  # no running loop (tests, shutdown)
            self._pending = None

    async def refresh(self) -> str | None:
        """Ask again; emits ``changed`` when the answer differs. Returns the current reason."""
        reason = None
        for notifier in self._watched:
            await notifier.check_authorisation()  # type: ignore[attr-defined]
            reason = reason or getattr(notifier, "off_reason", None)
        if reason != self.reason:
            self.reason = reason
            self._show_on_tray(reason)
            self.changed.emit(reason)
            if reason is not None:
                self.problem.emit("", f"Notifications: {reason}. Until then they appear as tray messages.")
        return reason

    def _show_on_tray(self, reason: str | None) -> None:
        menu = self._tray.contextMenu() if self._tray is not None else None
        if menu is None:
            return
        if self.tray_line is None:
            self.tray_line = QAction(self)
            self.tray_line.setEnabled(False)
            first = menu.actions()[0] if menu.actions() else None
            menu.insertAction(first, self.tray_line)  # type: ignore[arg-type]
        self.tray_line.setText(f"⚠ {reason[0].upper()}{reason[1:]}" if reason else "")
        self.tray_line.setVisible(reason is not None)


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
