"""Cluster transport (issue 15 part 2): ingest through NATS JetStream, and many jobs on one NATS server.

Both rows run the real app (``peft-notify app nats://…/FILTER`` on its qasync loop: the NATS
source, frame bookkeeping, engine, dispatcher, history, UI) against a real ``nats-server -js``
(file store); this process publishes pre-encoded protocol-v1 frames with core NATS (the stream
stores them), so the publisher is the same for ours and the reference.

*Ingest*: one job's hello, N progress frames and a marker warning; rate = N / (the marker
reaches the D-Bus notification server − first publish). Reference in the same run, interleaved
rep by rep: ``bench.natsfleet bare`` (a nats-py JetStream ordered push consumer that only counts) on
another subject, rate = N / (it received the marker − first publish).

*Many jobs*: J jobs appear at once (a hello each), report progress once a second for D seconds
and complete; the app follows all of them. Lag: lateness of a 10 ms QTimer in the app while the
jobs run, vs the same timer idle before they start (reference). RSS of the app at the end.
"""

from __future__ import annotations

import asyncio
import time

from bench.appfixture import BIG_RATE_LIMIT, text_has
from bench.harness import P99, Context, Result, Row, bootstrap_ci, paired_ratio, stats
from bench.natsfleet import NatsServerChild, completed, ensure_stream, hello, job_frames, progress, publish
from bench.session import PY, AppChild, BenchError, LineReader, PrivateBus, app_available, isolated_env, stop_process

NAME = "cluster"
TITLE = "NATS JetStream: ingest via the app vs a bare nats-py subscriber; many jobs on one app (lag p99, RSS)"


def run(ctx: Context) -> Result:
    reason = app_available()
    if reason:
        raise BenchError(reason)
    result = Result(NAME, TITLE)
    with NatsServerChild(ctx.workdir / "nats") as nats:
        asyncio.run(ensure_stream(nats.url))
        _ingest(ctx, nats, result)
        _many(ctx, nats, result)
    return result


def _ingest(ctx: Context, nats: NatsServerChild, result: Result) -> None:
    import subprocess

    reps, count = ctx.size(5, 2), ctx.size(50_000, 2_000)
    ours: list[float] = []
    ref: list[float] = []
    workdir = ctx.workdir / f"cluster-ingest-{time.perf_counter_ns()}"
    with PrivateBus() as bus:
        env = isolated_env(workdir, bus.address)
        bare_proc = subprocess.Popen(
            [PY, "-m", "bench.natsfleet", "bare", nats.url, "peft.jobs.bare.>"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        bare = LineReader(bare_proc, "bare")
        try:
            bare.wait_for(lambda e: e.get("ev") == "ready", 60)
            app_args = ["app", f"{nats.url}/peft.jobs.ing.>", "--no-local"]
            with AppChild(env, app_args, engine_overrides=BIG_RATE_LIMIT) as app:
                app.wait_shown(90)
                time.sleep(1.0)  # the source has connected and caught up (an empty stream)
                for rep in range(reps + 1):  # rep 0 warms up
                    text = f"bench-marker c{rep} j0"
                    start = bus.count()
                    frames = job_frames(f"ing.{rep}", count, text)
                    t0 = asyncio.run(publish(nats.url, [(f"peft.jobs.ing.{rep}", f) for f in frames]))
                    event = bus.wait_notify(text_has(text), 600, start)
                    rate = count / ((int(event["t"]) - t0) / 1e9)
                    seen = len(bare.snapshot())
                    frames = job_frames(f"bare.{rep}", count, text)
                    t0 = asyncio.run(publish(nats.url, [(f"peft.jobs.bare.{rep}", f) for f in frames]))
                    got = bare.wait_for(lambda e: e.get("ev") == "marker", 600, seen)
                    brate = count / ((int(got["t"]) - t0) / 1e9)
                    ctx.log(f"cluster ingest rep {rep}: app {rate:,.0f} msg/s, bare nats-py {brate:,.0f} msg/s")
                    if rep:
                        ours.append(rate)
                        ref.append(brate)
        finally:
            stop_process(bare_proc, 0.0, bare)
    a, b = stats(ours), stats(ref)
    pr = paired_ratio(ours, ref) if len(ours) >= 2 else None
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="ingest through NATS (app, progress frames)",
            ours=a.median,
            reference=b.median,
            reference_name="bare nats-py ordered consumer",
            unit="msg/s",
            ratio=pr.ratio if pr else Row.ratio_of(a.median, b.median),
            ratio_ci=pr.ci if pr else None,
            target="≥ 0.8 × reference",
            met=(pr.ratio if pr else a.median / b.median) >= 0.8,
            detail=f"{reps} reps of {count:,} frames; app {a.span('{:,.0f}')}, bare {b.span('{:,.0f}')}",
        )
    )
    result.raw["ingest"] = {"app": ours, "bare": ref, "count": count}


def _many(ctx: Context, nats: NatsServerChild, result: Result) -> None:
    jobs, seconds, idle_s = ctx.size(1000, 20), ctx.size(20, 3), ctx.size(5.0, 1.0)
    workdir = ctx.workdir / f"cluster-many-{time.perf_counter_ns()}"
    with PrivateBus() as bus:
        env = isolated_env(workdir, bus.address)
        app_args = ["app", f"{nats.url}/peft.jobs.many.>", "--no-local"]
        with AppChild(env, app_args, engine_overrides=BIG_RATE_LIMIT) as app:
            app.wait_shown(90)
            time.sleep(1.0)
            rss_idle = app.rss_mb()
            idle_start = time.perf_counter_ns()
            time.sleep(idle_s)
            idle_end = time.perf_counter_ns()
            start = bus.count()
            ids = [f"many.{i}" for i in range(jobs)]
            asyncio.run(publish(nats.url, [(f"peft.jobs.{j}", hello(j, seconds)) for j in ids]))
            busy_start = time.perf_counter_ns()
            for step in range(1, seconds + 1):
                tick = time.monotonic()
                asyncio.run(publish(nats.url, [(f"peft.jobs.{j}", progress(j, step, step, seconds)) for j in ids]))
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            running_end = time.perf_counter_ns()
            asyncio.run(publish(nats.url, [(f"peft.jobs.{j}", completed(j, seconds + 1)) for j in ids]))
            deadline = time.monotonic() + 300
            done = 0
            assert bus.lines is not None
            while time.monotonic() < deadline:
                done = sum(1 for e in bus.lines.snapshot()[start:] if "training complete" in str(e.get("summary", "")))
                if done >= jobs:
                    break
                time.sleep(0.5)
            busy_end = time.perf_counter_ns()
            rss = app.rss_mb()
            server_rss = nats.rss_mb()
            time.sleep(0.5)
            busy = app.lag_samples(busy_start, running_end)  # jobs appear and run
            ending = app.lag_samples(running_end, busy_end)  # all of them complete in the same second
            idle = app.lag_samples(idle_start, idle_end)
    b, i, e = stats(busy), stats(idle), stats(ending or [0.0])
    ending_s = (busy_end - running_end) / 1e9
    result.rows += [
        Row(
            benchmark=NAME,
            metric=f"{jobs} jobs on one NATS server: UI lag p99 while they run",
            ours=b.p99,
            reference=i.p99,
            reference_name="same timer, idle before the jobs",
            unit="ms",
            ratio=Row.ratio_of(b.p99, i.p99),
            ours_ci=bootstrap_ci(busy, P99, n_boot=1000),
            target="p99 ≤ 100 ms",
            met=b.p99 <= 100.0,
            detail=f"median {b.median:.3g} ms, max {b.maximum:.3g} ms; then {jobs} completions at once: "
            f"{done} shown in {ending_s:.0f} s, lag p99 {e.p99:.3g} ms, max {e.maximum:.3g} ms",
        ),
        Row(
            benchmark=NAME,
            metric=f"{jobs} jobs on one NATS server: app RSS",
            ours=rss,
            reference=rss_idle,
            reference_name="app RSS before the jobs",
            unit="MiB",
            ratio=Row.ratio_of(rss, rss_idle),
            target="≤ 250 MiB",
            met=rss <= 250.0,
            detail=f"+{rss - rss_idle:.0f} MiB for {jobs} jobs; nats-server RSS {server_rss:.0f} MiB",
        ),
    ]
    result.notes.append(
        f"Many jobs: {jobs} jobs appear at once and report progress every second for {seconds} s (one frame each, "
        f"{jobs} frames/s): the lag row is that phase. Then all complete in the same second; {done} of {jobs} "
        f"completion popups reached the notification server, {ending_s:.0f} s later (in the row's detail). "
        "Scaled for a 2-core machine shared with other work; the issue's 1,000 jobs is the full size."
    )
    result.raw["many"] = {
        "jobs": jobs,
        "done": done,
        "running": [b.median, b.p99, b.maximum],
        "completing": [e.median, e.p99, e.maximum, ending_s],
        "rss": [rss_idle, rss],
    }
