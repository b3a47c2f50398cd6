"""Notify latency: ``job.progress()`` crossing a milestone → ``Notify`` at the D-Bus notification server.

A real :class:`~peft_notify.emitter.JobServer` runs in this process (its daemon thread, as in
training) with 3 jobs of 1,000 steps; the app subscribes to them with milestones at every
percent 1..99 and a large popup rate limit (engine overrides), so each crossing is one popup.
Each crossing: stamp perf_counter_ns, call ``progress()`` with the step that crosses the next
percent, wait until the recording notification server (another process, same monotonic clock)
stamps the ``Notify``, pause 80 ms (so the server's 20 Hz progress coalescing never delays a
crossing: real milestones are minutes apart). Reference: a raw ``Notify`` round trip to the same
server with dbus-fast from this process.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Iterator

from bench.appfixture import text_has
from bench.harness import P50, P99, Context, Result, Row, bootstrap_ci, bootstrap_ratio, percentile, stats
from bench.session import AppChild, BenchError, PrivateBus, app_available, isolated_env

NAME = "latency"
TITLE = "job.progress() crossing a milestone → Notify at the D-Bus server vs a raw Notify round trip"
STEPS = 1000
# Stages in path order: "sent" (the job server handed the frame to websockets, in this process), the
# app's (bench.appchild --trace), and "server", the recorder's Notify stamp.
STAGES = ("sent", "data", "take", "recv", "fed", "perform", "recorded", "notifier", "call", "server", "reply", "status")
UI_WORK = {"hist": "history refresh", "flush": "row refresh"}  # stamped <name>0 … <name>1 around it


def stage_offsets(crossings: list[tuple[int, int]], trace: list[dict[str, object]]) -> dict[str, list[float]]:
    """Per stage, the ms from ``progress()`` to the stage's stamp in each crossing.

    ``crossings``: ``(t0, server_ns)`` per crossing; a crossing's window ends where the next begins.
    The stages are followed in path order: each one's first stamp at or after the previous stage's
    (a taskbar batch performed just before the frame is not the notification's ``perform``). A stage
    missing from a window is left out for that crossing, and the chain goes on from the last found.
    """
    by_stage: dict[str, list[int]] = {stage: [] for stage in STAGES}
    for e in trace:
        if e.get("s") in by_stage:
            by_stage[str(e["s"])].append(int(str(e["t"])))
    for stamps in by_stage.values():
        stamps.sort()
    out: dict[str, list[float]] = {stage: [] for stage in STAGES}
    ends = [t0 for t0, _ in crossings[1:]] + [2**63]
    for (t0, server), end in zip(crossings, ends, strict=True):
        at = t0
        for stage in STAGES:
            if stage == "server":
                t: int | None = server
            else:
                stamps = by_stage[stage]
                i = bisect.bisect_left(stamps, at)
                t = stamps[i] if i < len(stamps) and stamps[i] < end else None
            if t is not None:
                out[stage].append((t - t0) / 1e6)
                at = t
    return out


@contextlib.contextmanager
def stamp_server_sends(stamps: list[int]) -> Iterator[None]:
    """While inside: the perf_counter_ns at which this process's WebSocket server (the JobServer's
    loop thread) hands each frame to websockets, appended to ``stamps``."""
    from websockets.asyncio.server import ServerConnection

    own = ServerConnection.__dict__.get("send")
    original = ServerConnection.send

    async def send(self: ServerConnection, message: object, *args: object, **kwargs: object) -> None:
        stamps.append(time.perf_counter_ns())
        await original(self, message, *args, **kwargs)  # type: ignore[arg-type]

    ServerConnection.send = send  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        if own is None:
            del ServerConnection.send
        else:
            ServerConnection.send = own  # type: ignore[method-assign]


def ui_work(trace: list[dict[str, object]]) -> str:
    """How often and how long the UI's own work held the loop: ``history refresh 297× p50 4.1 max 20 ms; …``."""
    parts = []
    for name, what in UI_WORK.items():
        begin: int | None = None
        spans: list[float] = []
        for e in sorted((e for e in trace if str(e.get("s", "")).startswith(name)), key=lambda e: int(str(e["t"]))):
            t = int(str(e["t"]))
            if e["s"] == f"{name}0":
                begin = t
            elif begin is not None:
                spans.append((t - begin) / 1e6)
                begin = None
        if spans:
            parts.append(f"{what} {len(spans)}× p50 {percentile(spans, 50):.1f} max {max(spans):.1f} ms")
    return "; ".join(parts)


def stage_summary(offsets: dict[str, list[float]], q: float) -> str:
    """``data 1.1 › recv 1.3 › … › server 2.4`` (ms after progress(), the ``q`` percentile of each stage)."""
    parts = [f"{stage} {percentile(values, q):.1f}" for stage, values in offsets.items() if values]
    return " › ".join(parts)


async def raw_round_trips(address: str, n: int) -> list[float]:
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_address=address).connect()
    out = []
    try:
        for i in range(n + 10):
            msg = Message(
                destination="org.freedesktop.Notifications",
                path="/org/freedesktop/Notifications",
                interface="org.freedesktop.Notifications",
                member="Notify",
                signature="susssasa{sv}i",
                body=["bench", 0, "", f"raw {i}", "round trip", [], {}, -1],
            )
            start = time.perf_counter_ns()
            reply = await bus.call(msg)
            elapsed = time.perf_counter_ns() - start
            if reply is None or reply.message_type is MessageType.ERROR:
                raise BenchError(f"raw Notify failed: {reply and reply.body}")
            if i >= 10:
                out.append(elapsed / 1e6)
    finally:
        bus.disconnect()
    return out


def run(ctx: Context) -> Result:
    reason = app_available()
    if reason:
        raise BenchError(reason)
    from peft_notify.emitter import JobServer

    jobs = ctx.size(3, 1)
    per_job = ctx.size(99, 10)
    samples: list[float] = []
    crossings: list[tuple[int, int]] = []
    trace: list[dict[str, object]] = []
    sends: list[int] = []
    server = JobServer(discovery_files=False).start()
    try:
        handles = [server.add_job(f"lat{i}", name=f"latency-{i}", total_steps=STEPS) for i in range(jobs)]
        with PrivateBus() as bus:
            env = isolated_env(ctx.workdir / "latency", bus.address)
            engine = {"milestones": list(range(1, 100)), "rate_capacity": 1_000_000, "dedup_window_s": 0.0}
            with AppChild(env, ["app", *(h.url for h in handles)], engine_overrides=engine, trace=True) as app:
                app.wait_shown(90)
                for h in handles:  # connected end to end: a notification gets through
                    deadline = time.monotonic() + 60
                    while True:
                        start = bus.count()
                        h.notify(f"bench-warmup {h.job_id}", "warm-up")
                        try:
                            bus.wait_notify(text_has(f"bench-warmup {h.job_id}"), 1.0, start)
                            break
                        except BenchError:
                            if time.monotonic() > deadline:
                                raise BenchError(f"app never connected to {h.url}:\n{app.log_tail()}") from None
                time.sleep(0.5)
                with stamp_server_sends(sends):
                    for h in handles:
                        for pct in range(1, per_job + 1):
                            start = bus.count()
                            t0 = time.perf_counter_ns()
                            h.progress(pct * STEPS // 100, loss=1.0)
                            event = bus.wait_notify(text_has(f"{pct}%"), 30, start)
                            samples.append((int(event["t"]) - t0) / 1e6)
                            crossings.append((t0, int(event["t"])))
                            time.sleep(0.08)
                time.sleep(0.3)  # the child writes its events in batches
                trace = [e for e in app.events() if e.get("ev") == "trace"]
                trace += [{"ev": "trace", "s": "sent", "t": t} for t in sends]
            raw = asyncio.run(raw_round_trips(bus.address, ctx.size(300, 20)))
    finally:
        server.stop()
    ours, ref = stats(samples), stats(raw)
    offsets = stage_offsets(crossings, trace)
    result = Result(NAME, TITLE)
    if trace:
        result.notes.append(
            "Stages (bench.appchild --trace, ms after progress(), each stage's percentile on its own): sent = the "
            "job server handed the frame to websockets (this process), data = the app read the frame's bytes, "
            "take/recv = JobClient got/decoded it, fed = engine and UI callbacks done, "
            "perform = the dispatcher started, recorded = history INSERT done, notifier/call = the adapter / the "
            "D-Bus Notify call, server = the recorder's stamp, reply/status = the reply and the history update. "
            f"UI work on the same loop during the run: {ui_work(trace) or 'none seen'}."
        )
    result.notes.append(
        f"{len(samples)} milestone crossings over {jobs} job(s); reference: {len(raw)} raw Notify round trips "
        "(after 10 warm-up calls). Path measured: JobHandle.progress → JobServer loop thread → WebSocket → app "
        "(JobClient, engine, history write, dispatcher, desktop-notifier) → D-Bus → recording server."
    )
    for label, q in (("p50", 50), ("p99", 99)):
        o, r = percentile(samples, q), percentile(raw, q)
        stat = P50 if q == 50 else P99
        pr = bootstrap_ratio(samples, raw, stat, n_boot=1000)
        result.rows.append(
            Row(
                benchmark=NAME,
                metric=f"progress() → Notify {label}",
                ours=o,
                reference=r,
                reference_name="raw Notify round trip",
                unit="ms",
                ratio=o / r if r else None,
                ratio_ci=pr.ci,
                ours_ci=bootstrap_ci(samples, stat, n_boot=1000),
                target="p99 ≤ 25 ms" if q == 99 else "—",
                met=(o <= 25.0) if q == 99 else None,
                detail=f"min–max {ours.minimum:.2f}–{ours.maximum:.1f} ms (n={ours.n}); raw {ref.span('{:.2f}')} ms"
                + (f"; stages {label} (ms after progress()): {stage_summary(offsets, q)}" if trace else ""),
            )
        )
    result.raw = {"ours_ms": samples, "raw_ms": raw, "stages_ms": offsets}
    return result
