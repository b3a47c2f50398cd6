"""Wires the widgets to the controller: window, tray, dialogs, single-instance messages, quitting.

:class:`AppShell` is created by :func:`peft_notify.app.main.run_app` once the controller
exists; ``await shell.wait_quit()`` returns when the user quits (tray or menu).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from peft_notify.app.controller import Controller
from peft_notify.app.tray import Tray
from peft_notify.app.window import MainWindow
from peft_notify.appinfo import icon_file
from peft_notify.desktop.settings import Settings

__all__ = ["AppShell"]

log = logging.getLogger(__name__)

Selections = Sequence[tuple[str, str, Sequence[str]]]


class AppShell(QObject):
    """See the module docstring."""

    def __init__(
        self,
        controller: Controller,
        *,
        selections: Selections = (),
        list_local_jobs: Callable[[], Sequence[Any]] = lambda: (),
        set_autostart: Callable[[bool], object] | None = None,
        engine_defaults: dict[str, str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.selections = selections
        self.list_local_jobs = list_local_jobs
        self.set_autostart = set_autostart
        self.engine_defaults = engine_defaults or {}
        self.window = MainWindow(controller)
        self.window.setWindowIcon(QIcon(str(icon_file(".svg"))))  # the product's icon; the tray shows status
        self.tray = Tray(controller.clock)
        self._quit = asyncio.Event()
        # Owned by the window, so it cannot fire after the window is gone.
        self._tray_timer = QTimer(self.window, singleShot=True, interval=250)
        self._tray_timer.timeout.connect(self.refresh_tray)

        w, t, c = self.window, self.tray, controller
        w.add_job_requested.connect(self.on_add_job)
        w.settings_requested.connect(self.on_settings)
        w.about_requested.connect(self.on_about)
        w.quit_requested.connect(self.quit)
        w.close_requested.connect(self.on_close_requested)
        w.history_view.unread_changed.connect(lambda _n: self.schedule_tray_refresh())
        t.show_requested.connect(self.show_window)
        t.job_requested.connect(lambda key: c.show_job.emit(key, 0))
        t.pause_requested.connect(c.pause_notifications)
        t.mute_toggled.connect(self.on_mute)
        t.quit_requested.connect(self.quit)
        c.job_updated.connect(lambda _key: self.schedule_tray_refresh())
        c.job_removed.connect(lambda _key: self.schedule_tray_refresh())
        c.history_changed.connect(self.schedule_tray_refresh)
        c.pause_changed.connect(t.set_paused)
        c.dnd_changed.connect(t.set_dnd)
        t.mute_action.setChecked(not c.settings.sounds)
        t.set_paused(None)
        t.show()
        self.refresh_tray()

    # -- window and tray -----------------------------------------------------------------

    def show_window(self) -> None:
        self.window.bring_to_front()

    def start(self, minimized: bool) -> None:
        """Show the window unless starting minimized into a working tray."""
        if minimized and self.tray.available:
            return
        self.window.show()

    def schedule_tray_refresh(self) -> None:
        # Progress can arrive hundreds of times a second: redraw the tray at most ~4 times a second.
        if not self._tray_timer.isActive():
            self._tray_timer.start()

    def refresh_tray(self) -> None:
        rows = list(self.controller.rows.values())
        unread = self.window.history_view.unread_count()
        self.tray.refresh(rows, unread)

    def on_close_requested(self) -> None:
        """Window closed: keep running in the tray (first time: say so), or quit."""
        settings = self.controller.settings
        if not (settings.close_to_tray and self.tray.available):
            self.quit()
            return
        self.window.hide()
        if not settings.told_about_tray:
            self.tray.icon.showMessage(
                "peft-notify is still running",
                "It keeps monitoring your jobs in the tray. Use Quit in the tray menu to exit.",
            )
            self.controller.update_settings(dataclasses.replace(settings, told_about_tray=True))

    def on_mute(self, muted: bool) -> None:
        self.controller.update_settings(dataclasses.replace(self.controller.settings, sounds=not muted))

    # -- dialogs (imported when first opened: the window shows sooner) ----------------------

    def on_about(self) -> None:
        from peft_notify.app.dialogs import show_about

        show_about(self.window, self.selections)

    def on_add_job(self) -> None:
        from peft_notify.app.dialogs import AddJobDialog

        try:
            local = [j for j in self.list_local_jobs() if j.url not in self.controller.rows]
        except Exception:
            log.warning("listing local jobs failed", exc_info=True)
            local = []
        dialog = AddJobDialog(local, self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            url, token = dialog.result_value
            self.controller.subscribe(url, token)

    def on_settings(self) -> None:
        from peft_notify.app.dialogs import SettingsDialog

        before = self.controller.settings
        dialog = SettingsDialog(before, self.engine_defaults, self.window)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        after: Settings = dialog.settings()
        if after.autostart != before.autostart and self.set_autostart is not None:
            try:
                self.set_autostart(after.autostart)
            except OSError as exc:
                QMessageBox.warning(self.window, "Start at login", f"Could not change start at login: {exc}")
                after = dataclasses.replace(after, autostart=before.autostart)
        self.controller.update_settings(after)
        self.tray.mute_action.setChecked(not after.sounds)

    # -- other instances, quitting -------------------------------------------------------

    def on_instance_message(self, message: dict[str, Any]) -> None:
        """A second launch passed its command line: subscribe to its URLs and show the window."""
        urls = message.get("urls") or []
        token = message.get("token")
        for url in urls if isinstance(urls, list) else []:
            if isinstance(url, str):
                self.controller.subscribe(
                    url, token if isinstance(token, str) else None, persist=message.get("persist", True) is not False
                )
        if message.get("show", True):
            self.show_window()

    def quit(self) -> None:
        self._quit.set()

    async def wait_quit(self) -> None:
        await self._quit.wait()

    def close(self) -> None:
        self.tray.hide()
        self.window.allow_close = True
        self.window.close()
        app = QApplication.instance()
        if app is not None:
            app.processEvents()
