"""Fakes and builders shared by the app tests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peft_notify import wire

__all__ = ["ClientFactory", "FakeClient", "envelope", "hello", "progress", "run_app_child"]


class FakeClient:
    """Stands in for JobClient: the test pushes envelopes and connection events through it."""

    def __init__(
        self,
        url: str,
        token: str | None,
        on_message: Callable[[wire.Envelope], None],
        on_event: Callable[[Any], None],
        since: int | None,
    ) -> None:
        self.url, self.token, self.since = url, token, since
        self.on_message, self.on_event = on_message, on_event
        self.sent: list[wire.ActionRequest] = []
        self.stopped = False
        self.accept = True
        self.last_seq: int | None = since

    async def run(self) -> None:
        while not self.stopped:
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self.stopped = True

    async def send_action(self, action: wire.ActionRequest) -> bool:
        self.sent.append(action)
        return self.accept


class ClientFactory:
    """Records every client the controller creates."""

    def __init__(self) -> None:
        self.clients: list[FakeClient] = []

    def __call__(self, *args: Any) -> FakeClient:
        client = FakeClient(*args)
        self.clients.append(client)
        return client

    def last(self, url: str) -> FakeClient:
        return [c for c in self.clients if c.url == url][-1]


def envelope(job_id: str, seq: int, body: wire.Body, ts: float = 1_700_000_000.0) -> wire.Envelope:
    kind = {wire.Hello: "hello", wire.Progress: "progress", wire.Status: "status"}.get(type(body), "notification")
    return wire.Envelope(type=kind, data=body, seq=seq, job_id=job_id, ts=ts)


def hello(
    name: str = "llama",
    total: int = 100,
    pid: int | None = None,
    host: str = "gpu-box",
    capabilities: tuple[str, ...] = ("retry", "cancel"),
) -> wire.Hello:
    return wire.Hello(name=name, run_id="run-1", host=host, pid=pid, total_steps=total, capabilities=capabilities)


def progress(step: int, total: int = 100, loss: float | None = 1.0) -> wire.Progress:
    return wire.Progress(current_step=step, total_steps=total, loss=loss)


def run_app_child(tmp_path: Path, code: str, *args: str, timeout: float = 60) -> Any:
    """Run ``python -c code args...`` with its own XDG dirs under ``tmp_path`` (offscreen without a
    display); assert it exited 0 and return the JSON of its last stdout line."""
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        (tmp_path / name).mkdir(mode=0o700)
        env[name] = str(tmp_path / name)
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
