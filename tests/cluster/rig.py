"""Test parts for the cluster tests: a desktop (the real Monitor, engine, dispatcher and in-memory
history with a recording notifier), training nodes as real subprocesses, and a TCP proxy whose
connections a test can cut (a network blip between the desktop and the NATS server)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peft_notify.desktop.dispatch import Dispatcher
from peft_notify.desktop.monitor import Monitor
from peft_notify.engine import Engine
from peft_notify.ports import HistoryQuery
from peft_notify.testing import MemoryHistoryStore, RecordingNotifier, RecordingTaskbar

ROOT = Path(__file__).resolve().parents[2]


def no_websocket(url: str, *_args: Any) -> Any:
    raise AssertionError(f"a cluster test dialled a WebSocket: {url}")


class Desk:
    """One desktop following ``url`` (a nats:// source) through the real Monitor."""

    def __init__(self, url: str, *, cursors: Path | None = None) -> None:
        self.url = url
        self.engine = Engine()
        self.history = MemoryHistoryStore()
        self.notifier = RecordingNotifier()
        self.dispatcher = Dispatcher(
            self.history,
            [self.notifier],
            RecordingTaskbar(),
            job_name=lambda key: getattr(self.engine.job(key), "name", key),
        )
        self.monitor = Monitor(
            engine=self.engine,
            performer=self.dispatcher,
            router=self.dispatcher,
            client_factory=no_websocket,
            nats_cursors=cursors,
        )

    async def __aenter__(self) -> Desk:
        self.monitor.start()
        self.monitor.add(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.monitor.shutdown()

    def popups(self, job_key: str | None = None) -> list[str]:
        """Titles of the notifications shown (of one job)."""
        return [r.event.title for r in self.notifier.requests if job_key is None or r.job_id == job_key]

    def entries(self, job_key: str) -> list[Any]:
        return self.history.query(HistoryQuery(job_id=job_key))

    def job(self, job_key: str) -> Any:
        return self.engine.job(job_key)


async def until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def node(
    url: str, job_id: str, *, steps: int = 100, sleep: float = 0.02, extra: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    """A training process publishing ``job_id`` to the NATS server at ``url``."""
    env = {**os.environ, "PEFT_NOTIFY_RESOURCES": "0", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.cluster.node", "--nats", url, "--job-id", job_id]
    args += ["--steps", str(steps), "--sleep", str(sleep), *extra]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Proxy:
    """A loopback TCP proxy to ``port``; :meth:`cut` drops every connection through it."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.cuts = 0

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.cuts += 1
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


async def finish(proc: subprocess.Popen[str], timeout: float = 90.0) -> tuple[int, str, str]:
    """Wait for a node; its exit status, stdout and stderr (pipes closed)."""
    out, err = await asyncio.to_thread(proc.communicate, None, timeout)
    return proc.returncode, out, err


async def stream_last_seq(url: str) -> int:
    """The last sequence number of the PEFT_JOBS stream, read with a bare nats-py client."""
    import nats

    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info("PEFT_JOBS")
        return int(info.state.last_seq)
    finally:
        await nc.close()
