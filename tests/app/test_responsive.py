"""The app's event loop stays responsive while a job floods it with progress (the whole app, own process)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from peft_notify import wire
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.ports import HistoryQuery
from tests.app.app_support import run_app_child

pytestmark = [pytest.mark.slow]

STEPS = 50_000


class FloodServer:
    """A raw protocol-v1 server that sends a hello and then STEPS progress frames as fast as it can."""

    def __init__(self) -> None:
        self.port = 0
        self.sent = 0
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> FloodServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)

    async def _handler(self, ws: ServerConnection) -> None:
        now = time.time()
        hello = wire.Hello(name="flood", run_id="r1", host="elsewhere", total_steps=STEPS)
        await ws.send(wire.encode(wire.Envelope("hello", hello, seq=0, job_id="flood", ts=now)))
        for step in range(1, STEPS + 1):
            body = wire.Progress(current_step=step, total_steps=STEPS, loss=2.0 - step / STEPS)
            await ws.send(wire.encode(wire.Envelope("progress", body, seq=step, job_id="flood", ts=now)))
            self.sent = step
            if step % 200 == 0:  # a sustained flood (~20k frames/s) rather than one burst
                await asyncio.sleep(0.01)
        await ws.wait_closed()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop


@pytest.fixture
def flood() -> Iterator[FloodServer]:
    with FloodServer() as server:
        yield server


# Runs in a child process: the app with a 20 ms QTimer that records the step the UI shows at each tick.
_CHILD = """
import json, sys, time
from pathlib import Path
from PySide6.QtCore import QTimer
from peft_notify.app.main import AppOptions, run_app

url, tmp, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
intervals, result = [], {"done": False}

def started(shell):
    timer = QTimer(shell)

    def tick():
        rows = list(shell.controller.rows.values())
        if rows and 0 < rows[0].step < steps:  # ticks while the flood is still arriving
            intervals.append(rows[0].step)
        if rows and rows[0].step >= steps:
            result["done"] = True
            shell.quit()

    timer.timeout.connect(tick)
    timer.start(20)

status = run_app(AppOptions(urls=(url,), local=False, settings_path=Path(tmp, "settings.toml"),
                            history_path=Path(tmp, "history.sqlite3"), instance_name=f"{tmp}/instance.sock",
                            quit_after_s=60.0, on_started=started, persist_urls=False))
result["status"], result["intervals"] = status, intervals
print(json.dumps(result))
"""


def test_event_loop_stays_responsive_under_a_progress_flood(tmp_path: Path, flood: FloodServer) -> None:
    url = f"ws://127.0.0.1:{flood.port}/ws/notifications/flood"
    result = run_app_child(tmp_path, _CHILD, url, str(tmp_path), str(STEPS), timeout=120)
    assert result["done"], f"the app saw only part of the flood (server sent {flood.sent})"
    # Behaviour, not timing (latency numbers live in bench/responsiveness.py): the loop kept running
    # the timer *during* the flood, and each tick saw the UI model further along - no starvation.
    seen = result["intervals"]
    assert len(set(seen)) >= 5, f"the timer ran only {len(seen)} times mid-flood: {seen[:20]}"
    assert seen == sorted(seen)
    store = SqliteHistoryStore(tmp_path / "history.sqlite3")
    milestones = [e.milestone for e in store.query(HistoryQuery(kinds=["progress"]))]
    store.close()
    assert sorted(m for m in milestones if m is not None) == [25, 50, 75]
