"""Scale: one app following many jobs — a sweep over 1, 10, 100 and 1,000 jobs, and a 100-job flood.

*Sweep* (issue 17): one app follows N simulated jobs served by ONE flood server process
(``bench/floodsrv.py``: one WebSocket per job, so the app's side is exactly N real job
connections, without N job processes), each reporting progress ``RATE`` times a second for
``D`` seconds (paced round-robin) and ending with a warning. Lag: lateness p99 of a 10 ms QTimer
in the app while the jobs report; RSS of the app at the end. Reference: the same with 1 job. The
1,000-job point has targets (lag p99 ≤ 100 ms, RSS ≤ 250 MiB); ``bench/plot.py`` draws the sweep.

*Flood*: the flood server sends round-robin over 100 jobs as fast as the app takes them; every
job ends with its own marker, and the flood is over when the last marker reaches the
notification server. Reference for lateness: the same timer while the 100 connected jobs are idle.
"""

from __future__ import annotations

import time
from typing import Any

from bench.appfixture import running_app
from bench.harness import P99, Context, Result, Row, bootstrap_ci, bootstrap_ratio, stats

NAME = "scale"
TITLE = "many simulated jobs on one app: lag p99 and RSS for 1–1,000 jobs; a 100-job flood"

RATE = 5.0  # progress frames per second per job (a job server sends at most 20)


def sweep_point(ctx: Context, jobs: int, seconds: float) -> dict[str, Any]:
    """One app following ``jobs`` paced jobs: lag samples while they report, RSS before and after."""
    with running_app(ctx, jobs=jobs, tag=f"sweep-{jobs}") as app:
        connected_s = (time.perf_counter_ns() - app.app.launched_ns) / 1e9  # launch -> every job connected
        app.flood_and_wait("all", 1)  # every job's first progress: its card exists
        first_s = (time.perf_counter_ns() - app.app.launched_ns) / 1e9  # ... -> every first frame shown
        time.sleep(1.0)
        rss_before = app.app.rss_mb()
        per_job = max(1, int(RATE * seconds))
        done = app.flood_and_wait("all", per_job, rate=RATE * jobs, duration=seconds, timeout=300)
        rss = app.app.rss_mb()
        busy = app.lag(done["t0"], done["t1"])
    ctx.log(
        f"scale sweep: {jobs} jobs, lag p99 {stats(busy).p99:.1f} ms ({len(busy)} samples), RSS {rss:.0f} MiB; "
        f"connected {connected_s:.1f} s, first frames shown {first_s:.1f} s after launch"
    )
    return {
        "jobs": jobs,
        "lag_ms": busy,
        "rss_before": rss_before,
        "rss": rss,
        "sent": done["sent"],
        "connected_s": connected_s,
        "first_s": first_s,
    }


def sweep(ctx: Context, result: Result) -> None:
    sizes: tuple[int, ...] = (1, 5) if ctx.quick else (1, 10, 100, 1000)
    seconds = ctx.size(10.0, 2.0)
    points = [sweep_point(ctx, n, seconds) for n in sizes]
    one, top = points[0], points[-1]
    ref, big = stats(one["lag_ms"]), stats(top["lag_ms"])
    n = top["jobs"]
    result.rows += [
        Row(
            NAME,
            f"{n:,} jobs: UI lag p99",
            big.p99,
            ref.p99,
            "ms",
            target="p99 ≤ 100 ms",
            met=big.p99 <= 100.0,
            ratio=Row.ratio_of(big.p99, ref.p99),
            ratio_ci=bootstrap_ratio(top["lag_ms"], one["lag_ms"], P99, n_boot=500).ci,
            ours_ci=bootstrap_ci(top["lag_ms"], P99, n_boot=500),
            reference_name="1 job, same load per job",
            detail=f"median {big.median:.2f} ms, max {big.maximum:.1f} ms, {big.n} samples; "
            + ", ".join(f"{p['jobs']:,}: {stats(p['lag_ms']).p99:.1f}" for p in points)
            + " ms p99",
        ),
        Row(
            NAME,
            f"{n:,} jobs: app RSS",
            top["rss"],
            one["rss"],
            "MiB",
            target="≤ 250 MiB",
            met=top["rss"] <= 250.0,
            ratio=Row.ratio_of(top["rss"], one["rss"]),
            reference_name="1 job",
            detail=", ".join(f"{p['jobs']:,}: {p['rss']:.0f}" for p in points) + " MiB",
        ),
    ]
    result.notes.append(
        f"Sweep: {', '.join(f'{p:,}' for p in sizes)} jobs served by one flood-server process, each job sending "
        f"{RATE:g} progress frames/s for {seconds:g} s ({RATE * sizes[-1]:,.0f} frames/s for {sizes[-1]:,} jobs), "
        "paced round-robin, after each job's first frame; a fresh app per size. Lag over the sending window; RSS "
        "after it (psutil). Drawn in docs/performance-scale.png."
    )
    result.raw["sweep"] = [
        {
            "jobs": p["jobs"],
            "lag_p99": stats(p["lag_ms"]).p99,
            "lag_median": stats(p["lag_ms"]).median,
            "rss": p["rss"],
            "rss_before": p["rss_before"],
            "sent": p["sent"],
            "lag_samples": len(p["lag_ms"]),  # a 10 ms timer: ~100 a second when the loop is free
            "connected_s": p["connected_s"],
            "first_s": p["first_s"],
        }
        for p in points
    ]


def run(ctx: Context) -> Result:
    jobs, per_job, idle_s, seconds = ctx.size(100, 5), ctx.size(2_000, 100), ctx.size(3, 1), ctx.size(10.0, 0.0)
    result = Result(NAME, TITLE)
    with running_app(ctx, jobs=jobs, tag="scale") as app:
        app.flood_and_wait("all", max(1, per_job // 10))  # warm-up: every job's first progress
        rss_idle = app.app.rss_mb()
        time.sleep(1.0)
        idle_start = time.perf_counter_ns()
        time.sleep(idle_s)
        idle_end = time.perf_counter_ns()
        done = app.flood_and_wait("all", per_job, duration=seconds)
        rss = app.app.rss_mb()
        busy = app.lag(done["t0"], done["t_end"])
        idle = app.lag(idle_start, idle_end)
    elapsed = (done["t_end"] - done["t0"]) / 1e9
    rate = done["sent"] / elapsed
    b, i = stats(busy), stats(idle)
    result.notes.append(
        f"{jobs} jobs × up to {per_job:,} progress frames (sending stops after {seconds:g} s), round-robin, as fast "
        f"as the app takes them: {done['sent']:,} frames processed in {elapsed:.1f} s. RSS after the flood (psutil)."
    )
    result.rows += [
        Row(NAME, f"flood, {jobs} jobs: ingest", rate, None, "msg/s", detail=f"{done['sent']:,} in {elapsed:.1f} s"),
        Row(
            NAME,
            f"flood, {jobs} jobs: QTimer lateness p99",
            b.p99,
            i.p99,
            "ms",
            target="p99 ≤ 100 ms",
            met=b.p99 <= 100.0,
            ratio=None if i.p99 == 0 else b.p99 / i.p99,
            reference_name=f"{jobs} idle jobs",
            detail=f"median {b.median:.2f} ms, max {b.maximum:.1f} ms, {b.n} samples",
        ),
        Row(NAME, f"flood, {jobs} jobs: RSS", rss, rss_idle, "MiB", reference_name="before the flood"),
    ]
    result.raw.update({"rate": rate, "flood_ms": busy, "idle_ms": idle, "rss": rss, "rss_idle": rss_idle})
    sweep(ctx, result)
    return result
