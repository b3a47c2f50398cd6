"""Training overhead: what one ``job.progress()`` call costs the training loop.

Measured in this process with a real :class:`~peft_notify.emitter.JobServer` (its loop on its
daemon thread, as in training) with no client, with one reading client (``bench.bareclient`` in
a subprocess) and with a stalled client (a raw socket that completes the WebSocket handshake and
never reads, after 2,000 one-KiB notifications filled its socket buffers). References in the
same run: a no-op Python function call and ``tqdm.update(1)`` (writing to /dev/null).
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.harness import Context, Result, Row, Stats, stats
from bench.session import PY, BenchError, LineReader, isolated_env, stop_process

NAME = "overhead"
TITLE = "job.progress() per step vs a no-op call and tqdm.update(1)"

_STALLED_CHILD = """
import base64, os, socket, sys, time, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((url.hostname, url.port))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {url.path} HTTP/1.1\\r\\nHost: {url.netloc}\\r\\nUpgrade: websocket\\r\\n"
           f"Connection: Upgrade\\r\\nSec-WebSocket-Key: {key}\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n").encode())
head = b""
while b"\\r\\n\\r\\n" not in head:
    head += s.recv(1)
print('{"ev": "connected", "status": "%s"}' % head.split(b"\\r\\n")[0].decode(), flush=True)
time.sleep(3600)   # never read again
"""


def per_call_ns(fn: Callable[[int], None], batches: int, calls: int) -> Stats:
    """ns per call of ``fn(i)``: one sample per batch of ``calls`` calls (after one warm-up batch)."""
    samples: list[float] = []
    step = 0
    for b in range(batches + 1):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn(step)
            step += 1
        elapsed = time.perf_counter_ns() - start
        if b:
            samples.append(elapsed / calls)
    return stats(samples)


def _noop(step: int) -> None:
    return None


def _progress(handle: Any, step: int) -> None:
    handle.progress(step, loss=1.0)


def run(ctx: Context) -> Result:
    from tqdm import tqdm

    from peft_notify.emitter import JobServer

    result = Result(NAME, TITLE)
    batches, calls = ctx.size(30, 4), ctx.size(5000, 300)
    result.notes.append(
        f"{batches} batches × {calls} calls after a warm-up batch; the table shows the median of the per-batch "
        "means, the detail column min–max over batches. Same process, same loop shape for every variant."
    )
    noop = per_call_ns(_noop, batches, calls)
    with open(os.devnull, "w") as devnull:
        bar = tqdm(total=10**12, file=devnull)
        tq = per_call_ns(lambda _step: bar.update(1), batches, calls)
        bar.close()
    env = isolated_env(ctx.workdir / "overhead")
    measured: dict[str, Stats] = {}
    server = JobServer(discovery_files=False, ping_interval=None).start()
    children: list[LineReader] = []
    try:
        for case in ("no client", "one client", "stalled client"):
            handle = server.add_job(f"ovh-{case.split()[0]}", name=case, total_steps=10**12)
            if case == "one client":
                proc = subprocess.Popen(
                    [PY, "-m", "bench.bareclient", handle.url], stdout=subprocess.PIPE, text=True, env=env
                )
                children.append(LineReader(proc, "client"))
                children[-1].wait_for(lambda e: e.get("ev") == "connected", 30)
            elif case == "stalled client":
                proc = subprocess.Popen([PY, "-c", _STALLED_CHILD, handle.url], stdout=subprocess.PIPE, text=True)
                children.append(LineReader(proc, "stalled"))
                event = children[-1].wait_for(lambda e: e.get("ev") == "connected", 30)
                if " 101 " not in event["status"] + " ":
                    raise BenchError(f"stalled client handshake failed: {event['status']}")
                filler = "x" * 1024
                for i in range(2000):
                    handle.notify(f"filler {i}", filler)
                time.sleep(1.0)
            measured[case] = per_call_ns(functools.partial(_progress, handle), batches, calls)
    finally:
        for lines in children:
            stop_process(lines.proc, 0.0, lines)
        server.stop()
    targets = {"no client": 5_000.0, "one client": None, "stalled client": 20_000.0}
    for case, st in measured.items():
        target = targets[case]
        result.rows.append(
            Row(
                benchmark=NAME,
                metric=f"progress(), {case}",
                ours=st.median / 1000,
                reference=tq.median / 1000,
                reference_name="tqdm.update(1)",
                unit="µs/call",
                ratio=Row.ratio_of(st.median, tq.median),
                target="—" if target is None else f"≤ {target / 1000:g} µs",
                met=None if target is None else st.median <= target,
                detail=f"min–max {st.minimum / 1000:.3g}–{st.maximum / 1000:.3g} µs; no-op call {noop.median:.0f} ns",
            )
        )
    result.raw = {
        "noop_ns": noop.median,
        "tqdm_ns": tq.median,
        **{f"{k}_ns": [v.median, v.minimum, v.maximum] for k, v in measured.items()},
    }
    return result
