"""The tray icon: state at a glance (idle / running / error + unread badge), tooltip, menu.

:class:`Tray` wraps ``QSystemTrayIcon``; when the desktop has no tray (``available`` is False)
it stays hidden and the app keeps working without it (closing the window then quits). Menu:
Show window, one entry per job, Pause notifications (1 h / until tomorrow / until resumed /
Resume), Mute sounds, the current DND state, Quit. Call :meth:`refresh` when jobs change.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from peft_notify.app.accessibility import draw_state_mark
from peft_notify.app.job_card import TONE_COLORS
from peft_notify.app.jobs_model import JobRow, aggregate_progress
from peft_notify.app.plain import menu_text, tray_text
from peft_notify.app.resources_view import worst_condition

__all__ = ["MAX_TRAY_JOBS", "Tray", "draw_icon", "tomorrow_morning"]

MAX_TRAY_JOBS = 20  # jobs listed in the tray's menu and tooltip; the rest are counted (the window has all)


def tomorrow_morning(now: float, hour: int = 8) -> float:
    """Epoch seconds of ``hour``:00 local time tomorrow ("Pause until tomorrow")."""
    day = dt.datetime.fromtimestamp(now).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour)).timestamp()


def draw_icon(tone: str, progress: float | None, badge: int, size: int = 64) -> QIcon:
    """The tray/window icon: a ring showing ``progress`` in the tone's colour, plus a badge."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = QColor(TONE_COLORS.get(tone, TONE_COLORS["idle"]))
    ring = QRectF(size * 0.1, size * 0.1, size * 0.8, size * 0.8)
    p.setPen(QPen(QColor(160, 160, 160, 120), size * 0.12))
    p.drawEllipse(ring)
    p.setPen(QPen(color, size * 0.12, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    if progress is None:
        if tone != "idle":
            p.drawEllipse(ring)
    else:
        p.drawArc(ring, 90 * 16, -round(360 * 16 * max(0.0, min(1.0, progress))))
    # A shape per state (dot, tick, triangle, cross): the state is never told by colour alone.
    draw_state_mark(p, tone, QRectF(size * 0.32, size * 0.32, size * 0.36, size * 0.36), color)
    p.setPen(Qt.PenStyle.NoPen)
    if badge > 0:
        text = "9+" if badge > 9 else str(badge)
        box = QRectF(size * 0.5, 0, size * 0.5, size * 0.5)
        p.setBrush(QColor(TONE_COLORS["error"]))
        p.drawEllipse(box)
        font = QFont()
        font.setPixelSize(round(size * 0.3))
        font.setBold(True)
        p.setFont(font)
        p.setPen(QColor("white"))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
    p.end()
    return QIcon(pixmap)


def overall_tone(rows: list[JobRow]) -> str:
    tones = {r.tone for r in rows}
    for tone in ("error", "warn", "ok", "done"):
        if tone in tones:
            return tone
    return "idle"


class Tray(QObject):
    """See the module docstring."""

    show_requested = Signal()
    job_requested = Signal(str)
    remove_requested = Signal(str)  # a dead subscription's "Remove" (its key)
    pause_requested = Signal(object)  # float | None
    all_jobs_requested = Signal(bool)  # "tell me when all running jobs have finished" (docs/sweeps.md)
    mute_toggled = Signal(bool)
    quit_requested = Signal()

    def __init__(self, clock: Callable[[], float] = time.time, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.clock = clock
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.icon = QSystemTrayIcon(draw_icon("idle", None, 0), self)
        self.menu = QMenu()
        self.show_action = self.menu.addAction("&Show window")
        self.show_action.triggered.connect(self.show_requested)
        self.jobs_menu = self.menu.addMenu("&Jobs")
        self.menu.addSeparator()
        self.pause_menu = self.menu.addMenu("&Pause notifications")
        group = QActionGroup(self)
        for label, until in (
            ("For 1 &hour", lambda: self.clock() + 3600.0),
            ("Until &tomorrow", lambda: tomorrow_morning(self.clock())),
            ("Until r&esumed", lambda: float("inf")),
        ):
            action = QAction(label, group)
            action.triggered.connect(lambda _=False, f=until: self.pause_requested.emit(f()))
            self.pause_menu.addAction(action)
        self.pause_menu.addSeparator()
        self.resume_action = self.pause_menu.addAction("&Resume notifications")
        self.resume_action.triggered.connect(lambda: self.pause_requested.emit(None))
        self.all_jobs_action = self.menu.addAction("Tell me when &all running jobs have finished")
        self.all_jobs_action.setCheckable(True)
        self.all_jobs_action.triggered.connect(self.all_jobs_requested)  # the user's clicks only
        self.mute_action = self.menu.addAction("&Mute sounds")
        self.mute_action.setCheckable(True)
        self.mute_action.toggled.connect(self.mute_toggled)
        self.dnd_action = self.menu.addAction("Do Not Disturb: unknown")
        self.dnd_action.setEnabled(False)
        self.menu.addSeparator()
        self.menu.addAction("&Quit").triggered.connect(self.quit_requested)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        self.paused_until: float | None = None
        self._entries: tuple[int, list[tuple[str, str, bool]]] | None = None  # what the jobs menu lists
        self.refresh([], 0)

    def show(self) -> None:
        if self.available:
            self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_requested.emit()

    def set_paused(self, until: float | None) -> None:
        self.paused_until = until
        self.resume_action.setEnabled(until is not None)
        if until is None:
            self.pause_menu.setTitle("&Pause notifications")
        elif until == float("inf"):
            self.pause_menu.setTitle("Notifications &paused (until resumed)")
        else:
            self.pause_menu.setTitle(f"Notifications &paused until {time.strftime('%a %H:%M', time.localtime(until))}")

    def set_all_jobs_watched(self, armed: bool) -> None:
        """Check or uncheck the "all running jobs finished" entry (armed, disarmed, or it fired)."""
        self.all_jobs_action.setChecked(armed)

    def set_dnd(self, state: str) -> None:
        self.dnd_action.setText(f"Do Not Disturb: {state}")

    def refresh(self, rows: list[JobRow], unread: int) -> None:
        """Redraw icon, tooltip and the per-job entries from ``rows``."""
        progress = aggregate_progress(rows)
        self.icon.setIcon(draw_icon(overall_tone(rows), progress, unread))
        lines = ["peft-notify"]
        worst = worst_condition(row.resources for row in rows)
        if worst:
            lines.append(f"⚠ {worst}")  # the worst resource condition of any job (docs/resources.md)
        for row in rows[:MAX_TRAY_JOBS]:
            lines.append(f"{row.title}: {row.percent_text} — {row.status_text}")
        if len(rows) > MAX_TRAY_JOBS:
            lines.append(f"… and {len(rows) - MAX_TRAY_JOBS:,} more jobs")
        if not rows:
            lines.append("No jobs")
        if unread:
            lines.append(f"{unread} unread notification{'s' if unread != 1 else ''}")
        if self.paused_until is not None:
            lines.append("Notifications paused")
        self.icon.setToolTip(tray_text("\n".join(lines)))  # job names come from job servers
        shown = rows[:MAX_TRAY_JOBS]  # a menu of 1,000 entries helps nobody; the window lists them all
        labels = [menu_text(f"{row.title} — {row.percent_text}, {row.status_text}") for row in shown]
        entries = (len(rows), [(row.key, label, row.dead) for row, label in zip(shown, labels, strict=True)])
        if entries == self._entries:
            return  # unchanged: no rebuild (it runs every 250 ms while jobs report)
        self._entries = entries
        self.jobs_menu.clear()
        self.jobs_menu.setEnabled(bool(rows))
        for row, label in zip(shown, labels, strict=True):
            if not row.dead:
                action = self.jobs_menu.addAction(label)
                action.triggered.connect(lambda _=False, key=row.key: self.job_requested.emit(key))
                continue
            # Refused, gone, a bad URL or ended: it can be removed from here (issue 11 item 8).
            sub = self.jobs_menu.addMenu(label)
            sub.addAction("&Show").triggered.connect(lambda _=False, key=row.key: self.job_requested.emit(key))
            sub.addAction("&Remove").triggered.connect(lambda _=False, key=row.key: self.remove_requested.emit(key))
        if len(rows) > MAX_TRAY_JOBS:
            more = self.jobs_menu.addAction(f"Show &all {len(rows):,} jobs in the window")
            more.triggered.connect(self.show_requested)
