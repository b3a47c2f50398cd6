"""A live desktop side for the sweep integration tests: the real Monitor, engine and JobClients.

:class:`LiveDesktop` runs the desktop's :class:`~peft_notify.desktop.monitor.Monitor` on its own
asyncio loop in a thread, following every job announced in the (per-test) discovery directory
as it appears, exactly as the app does, and records every action the engine decides.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from peft_notify import wire
from peft_notify.desktop.client import JobClient
from peft_notify.desktop.monitor import Monitor
from peft_notify.discovery import list_job_files
from peft_notify.engine import Engine, EngineConfig, Notify
from peft_notify.engine.actions import Action


class LiveDesktop:
    """Start with ``with LiveDesktop() as desk:``; read :attr:`actions` after the block."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.engine = Engine(config or EngineConfig())
        self.actions: list[Action] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop = threading.Event()
        self.monitor: Monitor | None = None
        self._task: Any = None

    async def perform(self, actions: Sequence[Action]) -> None:
        self.actions.extend(actions)

    def __enter__(self) -> LiveDesktop:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        while self.monitor is None:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._task.result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.actions)):
                return True
            time.sleep(0.05)
        return False

    async def _run(self) -> None:
        def client(url: str, token: str | None, on_message: Any, on_event: Any, since: int | None) -> Any:
            return JobClient(url, token, on_message=on_message, on_event=on_event, since=since)

        self.monitor = Monitor(engine=self.engine, performer=self, client_factory=client, discover=list_job_files)
        self.monitor.start()
        while not self._stop.is_set():
            self.monitor.discover_now()  # the app also watches the directory; a short poll here
            await asyncio.sleep(0.1)
        await self.monitor.drain()
        await self.monitor.shutdown()

    # ------------------------------------------------------------------ reading

    def shown(self) -> list[Notify]:
        return [a for a in self.actions if isinstance(a, Notify)]

    def summaries(self) -> list[Notify]:
        return [a for a in self.shown() if a.job_id.startswith("group:")]

    def errors(self) -> list[Notify]:
        return [a for a in self.shown() if a.event.type is wire.NotificationType.ERROR]
