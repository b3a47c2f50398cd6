"""Runs the app (``peft-notify app ...``) or a bare PySide6 window with measurement hooks (child).

``python -m bench.appchild --events FILE [--bare] [--lag-timer] [--engine JSON] -- APP_ARGS...``

The hooks are installed from outside the app, without touching its code:

- ``PySide6.QtWidgets.QApplication`` is replaced by a subclass *before* the app (or qasync)
  imports it. The subclass installs an application-wide event filter that writes ``shown`` (the
  perf_counter_ns of the first ``Expose`` of a top-level window at least 200×100 px, so the tray
  icon does not count) and then removes itself, so it costs nothing afterwards.
- ``--lag-timer``: a 10 ms ``Qt.PreciseTimer`` whose lateness is written as ``lag`` samples.
- ``--engine``: ``EngineConfig`` fields to override (``Engine.__init__`` is wrapped), e.g. many
  milestones and a large rate-limit capacity for the latency benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import IO, Any

from PySide6 import QtCore, QtGui, QtWidgets

_out: IO[str] | None = None
_buffer: list[str] = []
_state: dict[str, Any] = {"shown": False, "last": 0}


def _write(obj: dict[str, Any], flush: bool = False) -> None:
    _buffer.append(json.dumps(obj))
    if (flush or len(_buffer) >= 20) and _out is not None:
        _out.write("\n".join(_buffer) + "\n")
        _out.flush()
        _buffer.clear()


class _ShownFilter(QtCore.QObject):
    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if (
            not _state["shown"]
            and event.type() == QtCore.QEvent.Type.Expose
            and isinstance(obj, QtGui.QWindow)
            and obj.isExposed()
            and obj.width() * obj.height() >= 200 * 100
        ):
            _state["shown"] = True
            # cpu: the process's CPU seconds so far (all threads, from exec): less disturbed by other load.
            shown = {"ev": "shown", "t": time.perf_counter_ns(), "cpu": time.process_time(), "title": obj.title()}
            _write(shown, flush=True)
            app = QtCore.QCoreApplication.instance()
            if app is not None:
                QtCore.QTimer.singleShot(0, lambda: app.removeEventFilter(self))
        return False


class _LagTimer(QtCore.QObject):
    def __init__(self, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.on_timeout)
        self.last = 0

    def start(self) -> None:
        self.last = time.perf_counter_ns()
        self.timer.start()

    def on_timeout(self) -> None:
        now = time.perf_counter_ns()
        _write({"ev": "lag", "t": now, "lag": max(0, now - self.last - 10_000_000)})
        self.last = now


def install_hooks(lag_timer: bool) -> None:
    """Replace QApplication with the measuring subclass (call before the app imports Qt)."""
    base = QtWidgets.QApplication

    class MeasuredApplication(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._bench_filter = _ShownFilter(self)
            self.installEventFilter(self._bench_filter)
            _write({"ev": "qapp", "t": time.perf_counter_ns()}, flush=True)
            if lag_timer:
                self._bench_lag = _LagTimer(self)
                self._bench_lag.start()

    QtWidgets.QApplication = MeasuredApplication  # type: ignore[misc]


def override_engine(overrides: dict[str, Any]) -> None:
    """Wrap ``Engine.__init__`` so every engine the app builds gets ``overrides`` applied."""
    from peft_notify.engine import Engine, EngineConfig

    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    original = Engine.__init__

    def patched(self: Engine, config: EngineConfig | None = None) -> None:
        original(self, dataclasses.replace(config or EngineConfig(), **values))

    Engine.__init__ = patched  # type: ignore[method-assign]


def install_trace() -> None:
    """``--trace``: a ``trace`` event (``s`` stage, ``t`` perf_counter_ns) at each stage of a frame's way to D-Bus.

    Wrapped from outside, like the other hooks: ``data`` (websockets read bytes off the socket),
    ``take`` (the client got the frame), ``recv`` (decoded; a parked progress frame after its
    flush), ``fed`` (engine and UI callbacks done), ``perform`` (the perform worker picked the
    actions up), ``recorded`` (history INSERT done), ``notifier`` (the adapter was called),
    ``call``/``reply`` (the Notify method call on the bus and its reply), ``status`` (history
    status update done). Around them, the UI work on the same loop: ``hist0``/``hist1`` (the
    window's history refresh), ``flush0``/``flush1`` (the controller's 10 Hz row refresh).
    Costs a few microseconds a stamp.
    """
    import functools
    import inspect

    from dbus_fast.aio import MessageBus
    from websockets.asyncio.connection import Connection

    from peft_notify.desktop.client import JobClient
    from peft_notify.desktop.dispatch import Dispatcher
    from peft_notify.desktop.history import SqliteHistoryStore
    from peft_notify.desktop.monitor import Monitor
    from peft_notify.platform.notifier import DesktopNotifierAdapter

    def stamp(stage: str) -> None:
        _write({"ev": "trace", "s": stage, "t": time.perf_counter_ns()})

    def wrap(cls: Any, name: str, before: str | None, after: str | None = None, when: Any = None) -> None:
        original = getattr(cls, name)
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                hit = when is None or when(*args)
                if hit and before:
                    stamp(before)
                try:
                    return await original(*args, **kwargs)
                finally:
                    if hit and after:
                        stamp(after)

            setattr(cls, name, awrapper)
        else:

            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                hit = when is None or when(*args)
                if hit and before:
                    stamp(before)
                try:
                    return original(*args, **kwargs)
                finally:
                    if hit and after:
                        stamp(after)

            setattr(cls, name, wrapper)

    wrap(Connection, "data_received", "data")
    wrap(JobClient, "_take", "take")
    wrap(JobClient, "_receive", "recv")
    wrap(Monitor, "_on_message", None, "fed")
    wrap(Dispatcher, "perform", "perform")
    wrap(SqliteHistoryStore, "record", None, "recorded")
    wrap(SqliteHistoryStore, "set_status", None, "status")
    wrap(DesktopNotifierAdapter, "notify", "notifier")
    wrap(MessageBus, "call", "call", "reply", when=lambda _bus, msg, *rest: getattr(msg, "member", "") == "Notify")
    from peft_notify.app.controller import Controller
    from peft_notify.app.window import MainWindow

    wrap(MainWindow, "on_history_changed", "hist0", "hist1")
    # the 10 Hz row refresh (the controller's timer callback; flush_updates in older versions)
    wrap(Controller, "_flush_some" if hasattr(Controller, "_flush_some") else "flush_updates", "flush0", "flush1")


def experiment_client_coalesce() -> None:
    """Prototype of a fix, for before/after numbers (``BENCH_EXPERIMENT=client-coalesce``).

    Progress frames that arrive in one burst are coalesced before decoding: only the last one
    of a burst (flushed by ``call_soon``, i.e. when the receive loop yields) or the one before a
    non-progress frame is decoded and fed. Not part of the app; see docs/performance.md.
    """
    import asyncio

    from peft_notify.desktop.client import JobClient

    original = JobClient._receive
    pending: dict[int, str | bytes] = {}

    def flush(client: JobClient) -> None:
        frame = pending.pop(id(client), None)
        if frame is not None:
            original(client, frame)

    def receive(self: JobClient, frame: str | bytes) -> bool:
        head = frame[:80] if isinstance(frame, str) else frame[:80].decode("utf-8", "replace")
        if '"type":"progress"' in head:
            if id(self) not in pending:
                asyncio.get_running_loop().call_soon(flush, self)
            pending[id(self)] = frame
            return False
        flush(self)
        return original(self, frame)

    JobClient._receive = receive  # type: ignore[method-assign]


def bare_window() -> int:
    """The reference: the smallest honest PySide6 app, a QMainWindow with a label."""
    app = QtWidgets.QApplication(sys.argv)
    window = QtWidgets.QMainWindow()
    window.setWindowTitle("bare PySide6 window")
    window.setCentralWidget(QtWidgets.QLabel("bare PySide6 window"))
    window.resize(900, 600)
    window.show()
    return app.exec()


def main() -> int:
    global _out
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", required=True)
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--lag-timer", action="store_true")
    parser.add_argument("--engine", default="")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("app_args", nargs="*")
    args = parser.parse_args()
    _out = open(args.events, "a")  # noqa: SIM115 (lives as long as the process)
    _write({"ev": "start", "t": time.perf_counter_ns()}, flush=True)
    install_hooks(args.lag_timer)
    if args.engine:
        override_engine(json.loads(args.engine))
    if os.environ.get("BENCH_EXPERIMENT") == "client-coalesce":
        experiment_client_coalesce()
    if args.trace:
        install_trace()
    if args.bare:
        return bare_window()
    from peft_notify.cli import main as cli_main

    return cli_main(args.app_args)


if __name__ == "__main__":
    sys.exit(main())
