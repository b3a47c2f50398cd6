"""Screenshots of every window and dialog, for docs/app.md and for looking at 100 % / 200 % scaling.

Run under the real desktop session (Xvfb + dunst + a tray; see ../shared/desktop-session):

    eval "$(../shared/desktop-session/start.sh)"
    for theme in light dark high-contrast; do PEFT_NOTIFY_THEME=$theme .venv/bin/python docs/screenshots/take.py; done
    QT_SCALE_FACTOR=2 .venv/bin/python docs/screenshots/take.py

Builds the real window, controller, engine and dialogs with three jobs (running, completed,
failed) and their history, shows each on the X screen and saves it with ``QScreen.grabWindow``
as ``docs/screenshots/<what>-<theme>[-200].png``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox, QWidget

OUT = Path(__file__).resolve().parent


def grab(widget: QWidget, name: str) -> None:
    """Show ``widget`` on the X screen, let it paint, and save what the screen shows of it."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    widget.show()
    widget.raise_()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    screen = widget.screen()
    shot = screen.grabWindow(widget.winId())
    scale = os.environ.get("QT_SCALE_FACTOR", "1")
    theme = os.environ.get("PEFT_NOTIFY_THEME", "light")
    suffix = f"-{theme}" + ("" if scale in ("1", "") else f"-{float(scale) * 100:.0f}")
    path = OUT / f"{name}{suffix}.png"
    shot.save(str(path))
    print(path)


def main() -> int:
    sys.path.insert(0, str(OUT.parents[1]))
    app = QApplication(sys.argv)
    from peft_notify.app.controller import Controller
    from peft_notify.app.dialogs import AddJobDialog, ReportDialog, SettingsDialog, about_text
    from peft_notify.app.jobs_model import JobRow, Link
    from peft_notify.app.shell import AppShell
    from peft_notify.desktop.settings import Settings
    from peft_notify.engine import Engine
    from peft_notify.ports import DeliveryStatus
    from peft_notify.testing import MemoryHistoryStore, RecordingNotifier, RecordingTaskbar, ScriptedDndProbe
    from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel
    from tests.app.app_support import ClientFactory

    history = MemoryHistoryStore()
    now = time.time()
    events = [
        (
            "llama-3-8b-lora@127.0.0.1:8765",
            "llama-3-8b-lora",
            NotificationType.PROGRESS,
            "llama-3-8b-lora: 25% complete",
        ),
        ("mistral-7b-qlora@127.0.0.1:8766", "mistral-7b-qlora", NotificationType.ERROR, "CUDA out of memory"),
        ("phi-3-mini@127.0.0.1:8767", "phi-3-mini", NotificationType.COMPLETION, "phi-3-mini: training complete"),
        ("llama-3-8b-lora@127.0.0.1:8765", "llama-3-8b-lora", NotificationType.WARNING, "Loss spike"),
    ]
    for i, (job_id, name, kind, title) in enumerate(events):
        urgency = UrgencyLevel.CRITICAL if kind is NotificationType.ERROR else UrgencyLevel.NORMAL
        event = NotificationEvent(type=kind, title=title, message="step 120 / 400", urgency=urgency)
        history.record(job_id, name, event, ts=now - 300 + i * 60, status=DeliveryStatus.SHOWN)
    controller = Controller(
        Settings(quiet_hours="mon-fri 22:00-08:00"),
        engine=Engine(),
        history=history,
        notifiers=[RecordingNotifier()],
        taskbar=RecordingTaskbar(),
        dnd_probe=ScriptedDndProbe(),
        client_factory=ClientFactory(),
    )
    rows = [
        JobRow(
            key="ws://127.0.0.1:8765/ws/notifications/llama-3-8b-lora",
            job_id="llama-3-8b-lora@127.0.0.1:8765",
            name="llama-3-8b-lora",
            host="gpu-box",
            pid=4242,
            state="running",
            link=Link.CONNECTED,
            step=52,
            total=400,
            fraction=0.13,
            eta_s=35.0,
            loss=0.46,
            capabilities=("retry", "cancel"),
        ),
        JobRow(
            key="ws://127.0.0.1:8766/ws/notifications/mistral-7b-qlora",
            job_id="mistral-7b-qlora@127.0.0.1:8766",
            name="mistral-7b-qlora",
            host="gpu-box",
            state="failed",
            link=Link.CONNECTED,
            step=120,
            total=400,
            fraction=0.3,
            loss=1.9,
            errors=1,
            capabilities=("retry",),
        ),
        JobRow(
            key="ws://127.0.0.1:8767/ws/notifications/phi-3-mini",
            job_id="phi-3-mini@127.0.0.1:8767",
            name="phi-3-mini",
            host="laptop",
            state="completed",
            link=Link.FINISHED,
            step=400,
            total=400,
            fraction=1.0,
            loss=0.31,
        ),
    ]
    import math

    for row in rows:
        for step in range(0, row.step + 1, 8):
            row.add_loss(step, 0.4 + 2.2 * math.exp(-step / 90) + 0.03 * math.sin(step))
    shell = AppShell(
        Settings(),
        history,
        selections=[
            (
                "Notifications",
                "desktop-notifier → log",
                ["tray-balloon: no system tray", "note: dunst 1.9 has no actions in history"],
            )
        ],
    )
    shell.attach(controller)
    for row in rows:
        controller.rows[row.key] = row
        controller.job_updated.emit(row.key)
    window = shell.window
    window.history_view.refresh()
    grab(window, "main")
    window.tabs.setCurrentIndex(1)
    grab(window, "history")
    window.tabs.setCurrentIndex(0)
    window.on_problem("", "⚠ Loss spike: llama-3-8b-lora loss jumped from 0.52 to 3.9 at step 310")
    grab(window, "main-banner")
    window.banner.hide()

    for dialog, name in (
        (AddJobDialog([]), "add-job"),
        (SettingsDialog(Settings(quiet_hours="mon-fri 22:00-08:00"), parent=window), "settings"),
        (
            ReportDialog([sys.executable, "-c", "print('peft-notify doctor\\nnotifier: desktop-notifier')"], window),
            "report",
        ),
    ):
        assert isinstance(dialog, QDialog)
        grab(dialog, name)
        if isinstance(dialog, SettingsDialog):
            for page, title in ((1, "behaviour"), (2, "channels")):
                dialog.pages.setCurrentIndex(page)
                grab(dialog, f"settings-{title}")
        dialog.close()
    box = QMessageBox(window)
    box.setWindowTitle("About peft-notify")
    from PySide6.QtCore import Qt

    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text(shell.selections))
    grab(box, "about")
    box.close()
    QTimer.singleShot(0, app.quit)
    shell.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
