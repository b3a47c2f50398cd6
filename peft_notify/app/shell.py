"""Wires the widgets to the controller: window, tray, dialogs, single-instance messages, quitting.

:class:`AppShell` is created by :func:`peft_notify.app.main.run_app` before the controller
exists (the window paints first); :meth:`AppShell.attach` connects the controller once it is
built. ``await shell.wait_quit()`` returns when the user quits (tray or menu).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QApplication, QDialog, QMenu, QMessageBox

from peft_notify.app.style import ThemeWatcher
from peft_notify.app.tray import Tray
from peft_notify.app.window import MainWindow
from peft_notify.appinfo import icon_file
from peft_notify.desktop.settings import Settings
from peft_notify.ports import HistoryStore

if TYPE_CHECKING:  # imported after the first paint
    from peft_notify.app.controller import Controller

__all__ = ["AppShell", "product_icon"]

log = logging.getLogger(__name__)

Selections = Sequence[tuple[str, str, Sequence[str]]]


def product_icon() -> QIcon:
    """The product icon for windows: the 256 px PNG scaled once to the sizes X11 and taskbars use.

    Not the SVG: that loads QtSvg and its icon engine (~1.3 MiB of the idle app's RSS,
    bench/memory.py) for an icon never drawn larger than 256 px. Explicit sizes keep what the SVG
    gave (``_NET_WM_ICON`` carries 16–128 px images; one file would give only 256 px), and scaling
    once keeps no decoded 256 px copy per size.
    """
    icon = QIcon()
    image = QImage(str(icon_file(".png")))
    if image.isNull():
        return icon
    smooth = Qt.TransformationMode.SmoothTransformation
    for size in (16, 24, 32, 48, 64, 128):
        icon.addPixmap(QPixmap.fromImage(image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, smooth)))
    return icon


def doctor_command() -> list[str]:
    """How to run ``peft-notify doctor`` from here: the bundle's own binary, else this Python."""
    from peft_notify.appinfo import is_frozen

    return [sys.executable, "doctor"] if is_frozen() else [sys.executable, "-m", "peft_notify", "doctor"]


class _QuitSignal:
    """An ``asyncio.Event`` whose asyncio part is made when someone waits: the shell is built
    before the first paint, and asyncio is imported after it (bench/startup.py)."""

    def __init__(self) -> None:
        self._set = False
        self._event: Any = None

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        import asyncio

        if self._event is None:
            self._event = asyncio.Event()
            if self._set:
                self._event.set()
        await self._event.wait()


class AppShell(QObject):
    """See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        history: HistoryStore,
        *,
        selections: Selections = (),
        list_local_jobs: Callable[[], Sequence[Any]] = lambda: (),
        set_autostart: Callable[[bool], object] | None = None,
        engine_defaults: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller: Controller | None = None
        self._settings = settings  # until the controller (which owns them) is attached
        self.selections = selections
        self.list_local_jobs = list_local_jobs
        self.set_autostart = set_autostart
        self.engine_defaults = engine_defaults or {}
        app = QApplication.instance()
        # Light / dark / high contrast from the system, live (app/style.py); before the window is styled.
        self.theme = ThemeWatcher(app, self) if isinstance(app, QGuiApplication) else None
        self.window = MainWindow(history)
        if self.theme is not None:
            self.theme.changed.connect(self.window.apply_theme)
        self.window.setWindowIcon(product_icon())  # the product's icon; the tray shows status
        self.tray = Tray(clock)
        self._quit = _QuitSignal()
        # Owned by the window, so it cannot fire after the window is gone.
        self._tray_timer = QTimer(self.window, singleShot=True, interval=250)
        self._tray_timer.timeout.connect(self.refresh_tray)

        w, t = self.window, self.tray
        w.add_job_requested.connect(self.on_add_job)
        w.settings_requested.connect(self.on_settings)
        w.about_requested.connect(self.on_about)
        w.report_requested.connect(self.on_report)
        w.quit_requested.connect(self.quit)
        w.close_requested.connect(self.on_close_requested)
        w.unread_changed.connect(lambda _n: self.schedule_tray_refresh())
        t.show_requested.connect(self.show_window)
        self._mirror_tray_menu()
        t.mute_toggled.connect(self.on_mute)
        t.quit_requested.connect(self.quit)
        t.mute_action.setChecked(not settings.sounds)
        t.set_paused(None)
        t.show()
        self.refresh_tray()

    def _mirror_tray_menu(self) -> None:
        """Everything the tray menu offers is also in the window's menu bar, where a keyboard reaches it
        (a tray host's menu may not take the keyboard). The same actions: state and checks stay in step."""
        t = self.tray
        menu = QMenu("&Notifications", self.window)
        menu.addMenu(t.pause_menu)
        for action in (t.all_jobs_action, t.mute_action, t.dnd_action):
            menu.addAction(action)
        bar = self.window.menuBar()
        bar.insertMenu(bar.actions()[-1], menu)  # before Help

    @property
    def settings(self) -> Settings:
        return self.controller.settings if self.controller is not None else self._settings

    def attach(self, controller: Controller) -> None:
        """Connect the window, the tray and the dialogs to ``controller`` (once, after the first paint)."""
        self.controller = c = controller
        t = self.tray
        self.window.attach(controller)
        t.job_requested.connect(lambda key: c.show_job.emit(key, 0))
        t.remove_requested.connect(c.unsubscribe)
        t.pause_requested.connect(c.pause_notifications)
        t.all_jobs_requested.connect(c.watch_all_jobs)
        c.all_jobs_watch_changed.connect(t.set_all_jobs_watched)
        c.job_updated.connect(lambda _key: self.schedule_tray_refresh())
        c.job_removed.connect(lambda _key: self.schedule_tray_refresh())
        c.history_changed.connect(self.schedule_tray_refresh)
        c.pause_changed.connect(t.set_paused)
        c.dnd_changed.connect(lambda state: t.set_dnd(self.dnd_text(state)))
        t.mute_action.setChecked(not c.settings.sounds)
        self.refresh_tray()

    def dnd_text(self, state: str) -> str:
        """The tray's Do Not Disturb line, naming quiet hours when they are why it is on."""
        until = self.controller.quiet_until() if self.controller is not None else None
        return f"{state} (quiet hours until {until:%a %H:%M})" if until is not None else state

    def _update_settings(self, settings: Settings) -> None:
        if self.controller is not None:
            self.controller.update_settings(settings)
        else:
            self._settings = settings

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
        rows = list(self.controller.rows.values()) if self.controller is not None else []
        unread = self.window.unread_count()
        self.tray.refresh(rows, unread)

    def on_close_requested(self) -> None:
        """Window closed: keep running in the tray (first time: say so), or quit."""
        settings = self.settings
        if not (settings.close_to_tray and self.tray.available):
            self.quit()
            return
        self.window.hide()
        if not settings.told_about_tray:
            self.tray.icon.showMessage(
                "peft-notify is still running",
                "It keeps monitoring your jobs in the tray. Use Quit in the tray menu to exit.",
            )
            self._update_settings(dataclasses.replace(settings, told_about_tray=True))

    def on_mute(self, muted: bool) -> None:
        self._update_settings(dataclasses.replace(self.settings, sounds=not muted))

    # -- dialogs (imported when first opened: the window shows sooner) ----------------------

    def on_about(self) -> None:
        from peft_notify.app.dialogs import show_about

        show_about(self.window, self.selections)

    def on_report(self) -> None:
        """Help → Report a problem: run ``peft-notify doctor`` and copy its report to the clipboard."""
        from peft_notify.app.dialogs import ReportDialog

        ReportDialog(doctor_command(), self.window).exec()

    def on_add_job(self) -> None:
        from peft_notify.app.dialogs import AddJobDialog

        if self.controller is None:
            return
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

        before = self.settings
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
        self._update_settings(after)
        self.tray.mute_action.setChecked(not after.sounds)

    # -- other instances, quitting -------------------------------------------------------

    def on_instance_message(self, message: dict[str, Any]) -> None:
        """A second launch passed its command line: subscribe to its URLs and show the window."""
        urls = message.get("urls") or []
        token = message.get("token")
        controller = self.controller  # connected only once attached (the app listens after that)
        for url in urls if isinstance(urls, list) and controller is not None else []:
            if isinstance(url, str) and controller is not None:
                controller.subscribe(
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
