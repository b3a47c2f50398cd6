"""Training overhead: what one ``job.progress()`` call costs the training loop.

Measured in this process with a real :class:`~peft_notify.emitter.JobServer` (its loop on its
daemon thread, as in training) with no client, with one reading client (``bench.bareclient`` in
a subprocess) and with a stalled client (a raw socket that completes the WebSocket handshake and
never reads, after 2,000 one-KiB notifications filled its socket buffers). References in the
same run: a no-op Python function call and ``tqdm.update(1)`` (writing to /dev/null).

A second row (issue 10 item 6) times a synthetic training step (1 ms without the GIL, a little
Python, ``progress()``) while 8 clients poll ``/api/notifications`` as fast as they can (a job
holding 1,000 four-KiB notifications), against the same step with the pollers paused
(SIGSTOP), in alternating windows so machine load drifts cancel out. Target: ≥ 0.95 × the steps/s without pollers.
"""

from __future__ import annotations

import functools
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench.harness import Context, Result, Row, Stats, paired_ratio, stats
from bench.session import PY, BenchError, LineReader, isolated_env, stop_process

NAME = "overhead"
TITLE = "job.progress() per step vs a no-op call and tqdm.update(1)"

_STALLED_CHILD = """
import base64, os, socket, sys, time, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
target = url.path + ("?" + url.query if url.query else "")   # the query carries the job's token
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect((url.hostname, url.port))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {target} HTTP/1.1\\r\\nHost: {url.netloc}\\r\\nUpgrade: websocket\\r\\n"
           f"Connection: Upgrade\\r\\nSec-WebSocket-Key: {key}\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n").encode())
head = b""
while b"\\r\\n\\r\\n" not in head:
    head += s.recv(1)
print('{"ev": "connected", "status": "%s"}' % head.split(b"\\r\\n")[0].decode(), flush=True)
time.sleep(3600)   # never read again
"""


_POLLER = """
import sys, time, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
pause = float(sys.argv[3])
while True:
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    time.sleep(pause)
"""


def _step_us(handle: Any, seconds: float) -> float:
    """Mean µs per synthetic training step: 1 ms with the GIL released (the GPU / C++ part), a
    little Python that needs it back, and one progress() call (~800 steps/s, as in issue 10)."""
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        time.sleep(0.001)
        sum(range(300))
        steps += 1
        handle.progress(steps, loss=1.0)
    return (time.perf_counter() - start) / steps * 1e6


def polling_row(ctx: Context, pause: float) -> Row:
    """Step time with 8 clients polling /api/notifications (``pause`` s between polls) vs none."""
    from peft_notify.emitter import JobServer

    windows, seconds = ctx.size(16, 2), ctx.size(1.0, 0.3)
    server = JobServer(discovery_files=False, ping_interval=None).start()
    pollers: list[subprocess.Popen[bytes]] = []
    quiet: list[float] = []
    polled: list[float] = []
    server_share: list[float] = []  # CPU of the process's other threads (the server loop) per wall second
    try:
        handle = server.add_job("poll", total_steps=10**12)
        for i in range(1000):
            handle.warning(f"warning {i} " + "z" * 4000)
        time.sleep(1.0)
        url = f"http://127.0.0.1:{server.port}/api/notifications/poll"
        pollers = [subprocess.Popen([PY, "-c", _POLLER, url, server.token, str(pause)]) for _ in range(8)]
        time.sleep(1.0)
        for _ in range(windows):
            for proc in pollers:
                proc.send_signal(signal.SIGSTOP)
            quiet.append(_step_us(handle, seconds))
            for proc in pollers:
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.1)
            cpu, mine, wall = time.process_time(), time.thread_time(), time.perf_counter()
            polled.append(_step_us(handle, seconds))
            others = (time.process_time() - cpu) - (time.thread_time() - mine)
            server_share.append(others / (time.perf_counter() - wall))
    finally:
        for proc in pollers:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=30)
        server.stop()
    rates = [1e6 / us for us in polled]
    quiet_rates = [1e6 / us for us in quiet]
    pr = paired_ratio(rates, quiet_rates)  # window i polled right after window i quiet
    return Row(
        benchmark=NAME,
        metric="training steps/s, 8 clients polling /api/notifications "
        + ("as fast as they can" if pause == 0 else f"{1 / pause:g}×/s each"),
        ours=statistics.median(rates),
        reference=statistics.median(quiet_rates),
        reference_name="same loop, no poller",
        unit="steps/s",
        ratio=pr.ratio,
        ratio_ci=pr.ci,
        target="≥ 0.95 × reference",
        met=pr.ratio >= 0.95,
        detail=(
            f"{windows} alternating windows of {seconds:g} s; 1,000 × 4 KiB notifications held; server thread "
            f"{100 * statistics.median(server_share):.1f} % of a core while polled (the rest of a slowdown is "
            "the pollers' own CPU on this machine)"
        ),
    )


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
    result.rows += [polling_row(ctx, 0.0), polling_row(ctx, 0.1)]
    result.raw = {
        "polling_steps_per_s": [[row.ours, row.reference] for row in result.rows[-2:]],
        "noop_ns": noop.median,
        "tqdm_ns": tq.median,
        **{f"{k}_ns": [v.median, v.minimum, v.maximum] for k, v in measured.items()},
    }
    return result
