"""Tests for peft_notify.app.qtplatform: tray balloon (real tray under the desktop session), alert, PNG."""

from __future__ import annotations

import asyncio
import math
import os
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from peft_notify.app.qtplatform import (
    QT_BADGE,
    QtAdapterUnavailable,
    QtWindowTaskbar,
    TrayBalloonNotifier,
    notifier_candidates,
    render_loss_curve_png,
    taskbar_candidates,
)
from peft_notify.platform.choose import select_notifiers
from peft_notify.ports import Notifier, NotifyRequest, TaskbarProgress, TaskbarState
from peft_notify.wire import NotificationEvent, NotificationType


def test_loss_curve_png_is_drawn(qapp: QApplication, tmp_path: Path) -> None:
    losses = [2.5 * math.exp(-i / 30) + 0.1 for i in range(100)] + [float("nan")]
    out = render_loss_curve_png(losses, tmp_path / "curve.png", width=200, height=100)
    image = QImage(str(out))
    assert (image.width(), image.height()) == (200, 100)
    blue = QColor("#3346c4")
    # the curve starts high on the left and ends low on the right
    column_hits = [
        y for y in range(100) if image.pixelColor(13, y).blue() > 150 and image.pixelColor(13, y).red() < 120
    ]
    assert column_hits
    assert min(column_hits) < 30
    right_hits = [y for y in range(100) if image.pixelColor(186, y) == blue]
    assert right_hits
    assert min(right_hits) > 70


def test_loss_curve_needs_two_points(qapp: QApplication, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two"):
        render_loss_curve_png([1.0, float("inf")], tmp_path / "x.png")


def test_tray_balloon_without_tray_is_skipped_with_reason(qapp: QApplication) -> None:
    with pytest.raises(QtAdapterUnavailable, match="no tray icon"):
        TrayBalloonNotifier(None)

    async def select() -> list[tuple[str, str]]:
        selection = await select_notifiers(lambda *_: None, extra=notifier_candidates(tray=None), prefer="tray-balloon")
        for notifier in selection.chosen:
            await notifier.close()
        return [(s.name, s.reason) for s in selection.skipped]

    assert ("tray-balloon", "the app has no tray icon") in asyncio.run(select())


def test_window_taskbar_requires_a_window_and_alerts(qapp: QApplication) -> None:
    with pytest.raises(QtAdapterUnavailable):
        QtWindowTaskbar(None)
    window = QWidget()
    taskbar = taskbar_candidates(window)[0].build()
    assert isinstance(taskbar, TaskbarProgress)
    assert isinstance(taskbar, QtWindowTaskbar)
    taskbar.set(0.5, TaskbarState.NORMAL)
    taskbar.attention(True)
    taskbar.badge(3)
    taskbar.clear()
    QtWindowTaskbar(window, qt_badge=True).badge(2)  # what macOS and Windows do


@pytest.mark.linux
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_linux_leaves_the_badge_to_the_unity_launcher_entry(qapp: QApplication) -> None:
    """Qt's own badge would log 'Invalid object path' for our desktop file name (peft-notify)."""
    assert QT_BADGE is False
    assert QtWindowTaskbar(QWidget()).qt_badge is False


@pytest.mark.desktop
def test_tray_balloon_shows_on_the_real_tray(qapp: QApplication) -> None:
    if os.environ.get("QT_QPA_PLATFORM") != "xcb" or not os.environ.get("DISPLAY"):
        pytest.skip("needs the desktop session's X tray (QT_QPA_PLATFORM=xcb)")
    if not QSystemTrayIcon.isSystemTrayAvailable():
        pytest.skip("no system tray on this display")
    pixmap = QPixmap(16, 16)
    pixmap.fill(QColor("#3346c4"))
    from PySide6.QtGui import QIcon

    tray = QSystemTrayIcon(QIcon(pixmap))
    tray.show()
    actions: list[tuple[str, int, str]] = []
    notifier = TrayBalloonNotifier(tray, lambda *a: actions.append(a))
    assert isinstance(notifier, Notifier)
    event = NotificationEvent(type=NotificationType.ERROR, title="Crashed", message="CUDA OOM", urgency="critical")
    delivery = asyncio.run(notifier.notify(NotifyRequest(record_id=5, job_id="j", event=event)))
    assert delivery.ok
    tray.messageClicked.emit()
    assert actions == [("j", 5, "default")]
    tray.hide()
    assert not asyncio.run(notifier.notify(NotifyRequest(record_id=6, job_id="j", event=event))).ok
    asyncio.run(notifier.close())
