"""Notification channels (issue 13): event → receiver POST latency, and training overhead.

Latency: a loopback HTTP receiver in this process stamps each request when its body has been
read. *Channel*: from ``ChannelHub.offer(event)`` to that stamp (worker thread, policy, message,
apprise ``json://`` send). *Relay*: from ``TrainingRelay.observe(envelope)`` (what the job
server hands it) to the stamp — adds the training side's engine. Reference in the same run: a
bare ``urllib.request`` POST of a similar JSON body, from the call to the stamp.

Overhead: ``job.progress()`` per call with a channel at level ``progress`` whose receiver never
answers (every send waits for its timeout), vs the same loop without channels, both in this
process on a real job server (``peft_notify.job(notify=...)``).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.harness import P99, Context, Result, Row, bootstrap_ci, bootstrap_ratio, stats

NAME = "channels"
TITLE = "channels: event → receiver POST vs a bare urllib POST; progress() with a hanging channel"


class _Receiver:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.cond = threading.Condition()
        self.release = threading.Event()

    def wait_for(self, count: int, timeout: float = 30.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.arrivals) >= count, timeout):
                raise TimeoutError(f"receiver got {len(self.arrivals)} of {count} posts")
            return self.arrivals[count - 1]


@contextmanager
def _serve() -> Iterator[tuple[_Receiver, int]]:
    rec = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/hang"):
                rec.release.wait(60)
                return
            with rec.cond:
                rec.arrivals.append(time.perf_counter())
                rec.cond.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield rec, server.server_address[1]
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()


def _latencies(rec: _Receiver, count: int, send: Any) -> list[float]:
    out = []
    for i in range(count):
        target = len(rec.arrivals) + 1
        start = time.perf_counter()
        send(i)
        out.append((rec.wait_for(target) - start) * 1000)
        time.sleep(0.02)
    return out


def run(ctx: Context) -> Result:
    from peft_notify.channels import ChannelEvent, ChannelHub, ChannelSpec, Level, TrainingRelay
    from peft_notify.wire import Envelope, NotificationEvent, NotificationType

    result = Result(NAME, TITLE)
    count = ctx.size(200, 4)
    with _serve() as (rec, port):
        url = f"http://127.0.0.1:{port}/ok"
        body = json.dumps({"version": "1.0", "title": "bench: error", "message": "x" * 80, "type": "failure"})

        def bare(i: int) -> None:
            request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()

        spec = ChannelSpec(f"json://127.0.0.1:{port}/ok", level=Level.PROGRESS, rate=10**6)
        hub = ChannelHub([spec])
        relay = TrainingRelay([ChannelSpec(f"json://127.0.0.1:{port}/ok", level=Level.ERROR, rate=10**6)], host="b")
        try:
            bare(-1)  # warm up: imports, first connection
            hub.offer(ChannelEvent("b", NotificationType.ERROR, "warm", "warm"))
            rec.wait_for(2)

            def channel(i: int) -> None:
                hub.offer(ChannelEvent("b", NotificationType.ERROR, f"e{i}", f"bench: error {i}", "x" * 80))

            def relayed(i: int) -> None:
                note = NotificationEvent(NotificationType.ERROR, f"bench: error {i}", "x" * 80, error_type=f"t{i}")
                relay.observe(Envelope(type="notification", data=note, seq=i + 1, job_id="b", ts=time.time()))

            relay.add_job("b", "bench", "run", started_at=time.time(), total_steps=100)
            samples = {
                "bare": _latencies(rec, count, bare),
                "channel": _latencies(rec, count, channel),
                "relay": _latencies(rec, count, relayed),
            }
            measured = {key: stats(values) for key, values in samples.items()}
        finally:
            hub.close()
            relay.close(0)
    ref = measured["bare"]
    for key, metric in (("channel", "event → POST, ChannelHub.offer"), ("relay", "event → POST, training relay")):
        st = measured[key]
        limit = 2 * ref.p99 + 20.0
        result.rows.append(
            Row(
                benchmark=NAME,
                metric=f"{metric}, p99",
                ours=st.p99,
                reference=ref.p99,
                reference_name="bare urllib POST",
                unit="ms",
                ratio=Row.ratio_of(st.p99, ref.p99),
                ratio_ci=bootstrap_ratio(samples[key], samples["bare"], P99, n_boot=1000).ci,
                ours_ci=bootstrap_ci(samples[key], P99, n_boot=1000),
                target="p99 ≤ 2 × reference + 20 ms",
                met=st.p99 <= limit,
                detail=f"limit {limit:.3g} ms; median {st.median:.3g} ms (bare {ref.median:.3g}), "
                f"added {st.median - ref.median:.3g} ms",
            )
        )
    result.rows.append(_overhead_row(ctx))
    result.notes.append(
        f"{count} sequential events per variant on loopback, 20 ms apart, after one warm-up each; the receiver "
        "stamps a request when its body is read. The hanging-channel row: see the module docstring."
    )
    result.raw = {k: [v.median, v.p99, v.minimum, v.maximum] for k, v in measured.items()}
    return result


def _overhead_row(ctx: Context) -> Row:
    import peft_notify

    batches, calls = ctx.size(20, 3), ctx.size(5000, 300)
    total = (batches + 1) * calls  # the loop passes 25/50/75 % and completes: the channel gets events
    with _serve() as (_rec, port):
        hanging = f"json://127.0.0.1:{port}/hang"
        with (
            peft_notify.job("bench-plain", total_steps=total, print_url=False, linger=0) as plain,
            peft_notify.job(
                "bench-hang", total_steps=total, print_url=False, linger=0, notify=[hanging], notify_level="progress"
            ) as job,
        ):
            # Batches alternate between the two jobs, so a busy machine slows both alike.
            samples: dict[str, list[float]] = {"plain": [], "hang": []}
            step = 0
            for batch in range(batches + 1):
                for key, handle in (("plain", plain), ("hang", job)):
                    start = time.perf_counter_ns()
                    for i in range(step, step + calls):
                        handle.progress(i, loss=1.0)
                    if batch:  # the first batch warms up
                        samples[key].append((time.perf_counter_ns() - start) / calls)
                step += calls
    base, ours = stats(samples["plain"]), stats(samples["hang"])
    target = 5_000.0
    return Row(
        benchmark=NAME,
        metric="progress(), a hanging channel at level progress",
        ours=ours.median / 1000,
        reference=base.median / 1000,
        reference_name="progress() without channels",
        unit="µs/call",
        ratio=Row.ratio_of(ours.median, base.median),
        target=f"≤ {target / 1000:g} µs",
        met=ours.median <= target,
        detail=f"min–max {ours.minimum / 1000:.3g}–{ours.maximum / 1000:.3g} µs (plain {base.span('{:.0f}')} ns)",
    )
