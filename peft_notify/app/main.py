"""Start the desktop app: one qasync loop for Qt and asyncio, single instance, everything wired.

:func:`run_app` is what ``peft-notify app`` (and ``peft-notify`` alone, and ``demo``) call.
It returns the exit status; a second launch forwards its URLs to the running instance and
returns 0 at once. Nothing the user can do (bad URL, dead server, broken history or settings
file) stops it from starting: problems show in the window's banner and the log.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from peft_notify import __version__
from peft_notify.app.frame import FirstFrame
from peft_notify.appinfo import APP_ID, CLI_NAME

if TYPE_CHECKING:
    from peft_notify.app.adapters import Adapters
    from peft_notify.app.shell import AppShell
    from peft_notify.app.single import SingleInstance
    from peft_notify.desktop.client import JobClient
    from peft_notify.desktop.frames import ConnectionEvent
    from peft_notify.desktop.monitor import LossCurves
    from peft_notify.desktop.settings import Settings
    from peft_notify.engine.config import EngineConfig
    from peft_notify.ports import ActionHandler, HistoryStore
    from peft_notify.wire import Envelope, NotificationEvent

# Start-up order (launch → first window is a benchmark, bench/startup.py): before the first
# window shows, only QtWidgets, the single-instance check and the settings (does the user start
# minimized?) are imported; the first window is a light frame (app/frame.py) that looks like the
# main window with "Loading…" in place of the jobs. Then the history, the widgets, the tray and
# the real window are built, the window takes the frame's place, and once it has painted, qasync,
# websockets (client), the controller and its monitor, desktop-notifier and the platform
# adapters, the tray's loss-curve renderer and autostart are imported and the controller attached.

__all__ = ["AppOptions", "engine_config", "run_app"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AppOptions:
    """Command-line choices for one app run."""

    urls: Sequence[str] = ()
    token: str | None = None
    minimized: bool = False
    local: bool | None = None  # None: follow the auto_discover setting
    settings_path: Path | None = None
    history_path: Path | None = None
    instance_name: str | None = None  # single-instance socket name (tests use their own)
    quit_after_s: float | None = None  # for tests and screenshots
    on_started: Callable[[AppShell], None] | None = None
    persist_urls: bool = True  # remember the URLs given here as subscriptions (the demo's are temporary)
    on_forwarded: Callable[[], None] | None = None  # another instance took the URLs (the demo keeps serving)


def engine_config(settings: Settings) -> EngineConfig:
    """The engine's configuration from the user's settings (empty templates keep the defaults)."""
    from peft_notify.engine.config import TEMPLATE_NAMES, EngineConfig
    from peft_notify.engine.resources import ResourceThresholds
    from peft_notify.wire import NotificationType

    templates = {name: getattr(settings, name) for name in TEMPLATE_NAMES if getattr(settings, name)}
    return EngineConfig(
        milestones=settings.milestones,
        popup_kinds=frozenset(NotificationType(k) for k in settings.popup_kinds),
        respect_dnd=settings.respect_dnd,
        taskbar_max_hz=settings.taskbar_max_hz,
        sounds=settings.sounds,
        resources=ResourceThresholds.from_mapping(dict(settings.resources)),
        group_trial_popups=settings.group_trial_popups,
        group_grace_s=settings.group_grace_s,
        **templates,
    )


def _engine_defaults() -> dict[str, str]:
    from peft_notify.engine.config import TEMPLATE_NAMES, EngineConfig

    config = EngineConfig()
    return {name: getattr(config, name) for name in TEMPLATE_NAMES}


def _open_history(path: Path | None, settings: Settings) -> tuple[HistoryStore, str | None]:
    from peft_notify.desktop.history import HistoryError, SqliteHistoryStore

    try:
        store = SqliteHistoryStore(path, retention_days=settings.retention_days)
    except HistoryError as exc:
        from peft_notify.desktop.memory_history import MemoryHistoryStore

        log.error("history unavailable, keeping it in memory for this session: %s", exc)
        return MemoryHistoryStore(), f"History is not being saved this session: {exc}"
    return store, store.recovered


def _make_client(
    url: str,
    token: str | None,
    on_message: Callable[[Envelope], None],
    on_event: Callable[[ConnectionEvent], None],
    since: int | None,
) -> JobClient:
    from peft_notify.desktop.client import JobClient

    return JobClient(url, token, on_message=on_message, on_event=on_event, since=since)


def _loss_curve_attachment(curves: LossCurves) -> Callable[[str, NotificationEvent], Path | None]:
    """Completion notifications carry a PNG of the job's loss curve (where the platform shows one)."""
    import platformdirs

    from peft_notify.app.qtplatform import render_loss_curve_png
    from peft_notify.wire import NotificationType

    cache = Path(platformdirs.user_cache_dir("peft-notify", appauthor=False))

    def attachment(job_key: str, event: NotificationEvent) -> Path | None:
        if event.type is not NotificationType.COMPLETION:
            return None
        losses = curves.losses(job_key)
        if len(losses) < 2:
            return None
        cache.mkdir(parents=True, exist_ok=True)
        return render_loss_curve_png(losses, cache / f"loss-{abs(hash(job_key))}.png")

    return attachment


def _set_autostart(enabled: bool) -> object:
    from peft_notify.desktop.autostart import set_autostart

    return set_autostart(enabled)


async def build_adapters(
    on_action: ActionHandler, *, tray: Any = None, window: Any = None, windows_busy_is_dnd: bool = False
) -> Adapters:
    """:func:`peft_notify.app.adapters.build_adapters`, imported when the window has shown."""
    from peft_notify.app.adapters import build_adapters as build

    return await build(on_action, tray=tray, window=window, windows_busy_is_dnd=windows_busy_is_dnd)


@dataclasses.dataclass
class _Parts:
    """What :func:`_build` made before the event loop runs: everything the first paint needs."""

    settings: Settings
    history: HistoryStore
    history_problem: str | None
    shell: AppShell
    save: Callable[[Settings], None]


def _load_settings(options: AppOptions) -> tuple[Settings, Path]:
    from peft_notify.desktop.settings import default_settings_path, load_settings

    settings_path = options.settings_path or default_settings_path()
    return load_settings(settings_path), settings_path


def _build(options: AppOptions, settings: Settings, settings_path: Path) -> _Parts:
    """History and the shell (window, tray): no controller, no connections yet."""
    from peft_notify.app.shell import AppShell
    from peft_notify.desktop.settings import save_settings
    from peft_notify.discovery import list_job_files

    history, history_problem = _open_history(options.history_path, settings)
    _forget_sources()  # before the widgets are built: they reuse that memory
    local = settings.auto_discover if options.local is None else options.local
    settings_for_run = dataclasses.replace(settings, auto_discover=local)

    def save(new: Settings) -> None:
        # --local/--no-local is for this run only: persist the user's own auto_discover choice.
        if options.local is not None:
            new = dataclasses.replace(new, auto_discover=settings.auto_discover)
        save_settings(new, settings_path)

    shell = AppShell(
        settings_for_run,
        history,
        list_local_jobs=list_job_files,
        set_autostart=_set_autostart,
        engine_defaults=_engine_defaults(),
    )
    return _Parts(settings, history, history_problem, shell, save)


def _forget_sources() -> None:
    """Drop the source lines PySide6 has read so far (call between import phases of the start).

    PySide6 replaces ``__import__`` with a hook that calls ``inspect.getsource()`` on every module
    imported after it (to see whether the module uses ``from __feature__ import ...``), so
    ``linecache`` ends up holding the full source of ~300 modules: ~11 MiB of the idle app's RSS
    (bench/memory.py; tracemalloc puts 10.6 MiB in linecache.py). Cleared between phases, the
    next phase's objects reuse that memory; cleared only at the end, it stays with the process.
    Tracebacks read what they need again.
    """
    import linecache

    linecache.clearcache()


SETTLE_S = 10.0  # after start-up: see _settle


def _settle() -> None:
    """Once started (:data:`SETTLE_S` after the controller runs): drop the module sources imported
    since (:func:`_forget_sources`), collect once, and freeze what is left (``gc.freeze``).

    What is alive then (modules, classes, functions, the window, the engine, ~50,000 objects with
    one job) lives as long as the app. Frozen, the collector no longer walks it: every full
    collection (triggered by allocations, e.g. while 1,000 jobs stream progress) used to traverse
    all of it again, a pause of the UI thread (bench ``scale``; issue 17). Objects made later are
    collected as before; what is frozen and later dropped is freed by reference counting, only a
    reference cycle among frozen objects stays (few are expected: the young generations, where
    start-up's garbage is, were collected just before).
    """
    import gc

    _forget_sources()
    # The young generations only: a full collection here walked everything alive (~80 ms with
    # 1,000 jobs connecting, a pause the scale bench saw); start-up's garbage is in the young ones.
    gc.collect(1)
    gc.freeze()
    log.debug("start-up settled: %d objects frozen", gc.get_freeze_count())


class _ExposeWaiter(QObject):
    """Quits ``loop`` at the first Expose of the watched window (its first paint follows at once)."""

    def __init__(self, loop: QEventLoop) -> None:
        super().__init__()
        self.loop = loop

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Expose:
            self.loop.quit()
        return False


def _tray_available() -> bool:
    from PySide6.QtWidgets import QSystemTrayIcon  # only asked when starting minimized

    return QSystemTrayIcon.isSystemTrayAvailable()


def _paint_first(window: QWidget, limit_ms: int = 300) -> None:
    """Let Qt map and paint the just-shown main window before the slow imports (input and sockets wait).

    Returns at once for a hidden window; after ``limit_ms`` at most where no Expose comes.
    """
    _wait_exposed(window, limit_ms)


def _wait_exposed(window: QWidget, limit_ms: int) -> None:
    """:func:`_paint_first` for any just-shown window (the first frame too)."""
    handle = window.windowHandle()
    if not window.isVisible() or handle is None or handle.isExposed():
        return
    loop = QEventLoop()
    waiter = _ExposeWaiter(loop)
    handle.installEventFilter(waiter)
    QTimer.singleShot(limit_ms, loop.quit)
    # Clicks and second launches (QLocalServer) are handled once the controller runs.
    flags = QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents | QEventLoop.ProcessEventsFlag.ExcludeSocketNotifiers
    loop.exec(flags)
    handle.removeEventFilter(waiter)


async def _run(options: AppOptions, single: SingleInstance, parts: _Parts) -> int:
    import asyncio

    from peft_notify.app.controller import Controller
    from peft_notify.desktop.history import default_history_path
    from peft_notify.desktop.monitor import ButtonPresses, LossCurves
    from peft_notify.discovery import list_job_files, runtime_dir
    from peft_notify.engine import Engine

    _forget_sources()
    settings, history, shell = parts.settings, parts.history, parts.shell
    # Every part exists before the controller and its monitor are built: notification buttons
    # go to ``presses``, which the monitor reads; completions draw from ``curves``, which it fills.
    presses, curves = ButtonPresses(), LossCurves()
    tray = shell.tray.icon if shell.tray.available else None
    adapters = await build_adapters(
        presses, tray=tray, window=shell.window, windows_busy_is_dnd=settings.windows_busy_is_dnd
    )
    controller = Controller(
        shell.settings,
        engine=Engine(engine_config(settings)),
        engine_config=engine_config,  # settings apply live (issue 16)
        history=history,
        notifiers=adapters.notifiers,
        taskbar=adapters.taskbar,
        dnd_probe=adapters.dnd_probe,
        client_factory=_make_client,
        save_settings=parts.save,
        discover=list_job_files,
        discovery_dir=runtime_dir,
        presses=presses,
        curves=curves,
        attachment_for=_loss_curve_attachment(curves),
        nats_cursors=(options.history_path or default_history_path()).with_name("nats-cursors.json"),
    )
    _forget_sources()
    shell.selections = adapters.summary
    shell.attach(controller)
    single.message_received.connect(shell.on_instance_message)
    controller.start()
    for url in options.urls:
        controller.subscribe(url, options.token, persist=options.persist_urls)
    for problem in (settings.load_error, parts.history_problem):
        if problem:
            controller.problem.emit("", problem)
    if options.on_started is not None:
        options.on_started(shell)
    _forget_sources()
    # Connecting (websockets) and the first notification (D-Bus) import more: drop those too,
    # then take what start-up built out of the garbage collector's generations.
    asyncio.get_running_loop().call_later(SETTLE_S, _settle)
    import signal

    previous = signal.signal(signal.SIGTERM, lambda *_: shell.quit())  # a clean quit keeps history complete
    if options.quit_after_s is not None:
        asyncio.get_running_loop().call_later(options.quit_after_s, shell.quit)
    await shell.wait_quit()
    signal.signal(signal.SIGTERM, previous)
    await controller.shutdown()
    shell.close()
    single.close()
    close = getattr(history, "close", None)
    if callable(close):
        close()
    return 0


def run_app(options: AppOptions | None = None) -> int:
    """Run the app until the user quits; returns the exit status (see the module docstring)."""
    options = options or AppOptions()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "peft-notify"])
    assert isinstance(app, QApplication)
    app.setApplicationName(CLI_NAME)
    app.setApplicationDisplayName(CLI_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)  # Wayland app_id: docks and GNOME match it to <APP_ID>.desktop
    if sys.platform == "win32":  # group the taskbar button (and its progress) with the Start-menu shortcut
        import ctypes

        ctypes.windll.shell32.SetCurrentProcessExplicitAppUserModelID(APP_ID)  # type: ignore[attr-defined,unused-ignore]
    app.setQuitOnLastWindowClosed(False)
    from peft_notify.app.single import SingleInstance

    single = SingleInstance(options.instance_name or os.environ.get("PEFT_NOTIFY_INSTANCE"))
    message = {
        "urls": list(options.urls),
        "token": options.token,
        "show": not options.minimized,
        "persist": options.persist_urls,
    }
    if single.forward(message):
        print("peft-notify is already running: passed the request to it.")
        if options.on_forwarded is not None:
            options.on_forwarded()
        return 0
    single.listen()
    started = time.monotonic()
    settings, settings_path = _load_settings(options)
    minimized = options.minimized or settings.start_minimized
    frame: FirstFrame | None = None
    if not (minimized and _tray_available()):  # the shell shows the window then
        frame = FirstFrame()  # without the icon (~5 ms: QIcon's enums, decoding and scaling it): set below
        frame.show()
        _wait_exposed(frame, 300)
    from peft_notify.app.shell import product_icon

    app.setWindowIcon(product_icon())  # the product icon; the tray shows the status ring
    parts = _build(options, settings, settings_path)
    if frame is not None:
        frame.hand_over(parts.shell.window)
    parts.shell.start(minimized)
    _paint_first(parts.shell.window)
    if frame is not None:
        frame.done()
    _forget_sources()
    import asyncio

    import qasync

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            status: int = loop.run_until_complete(_run(options, single, parts))
            return status
    finally:
        log.info("app ran for %.1f s", time.monotonic() - started)
        asyncio.set_event_loop(None)
