"""Scale: one app subscribed to 100 concurrently flooded jobs: ingest, QTimer lateness, RSS.

The flood server sends round-robin over all jobs as fast as the app takes them; every job ends
with its own marker, and the flood is over when the last marker reaches the notification server.
Reference for lateness: the same timer while the 100 connected jobs are idle.
"""

from __future__ import annotations

import time

from bench.appfixture import running_app
from bench.harness import Context, Result, Row, stats

NAME = "scale"
TITLE = "100 concurrent simulated jobs on one app: ingest, lag p99, RSS"


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
        Row(NAME, f"ingest, {jobs} jobs", rate, None, "msg/s", detail=f"{done['sent']:,} frames in {elapsed:.1f} s"),
        Row(
            NAME,
            "QTimer lateness p99",
            b.p99,
            i.p99,
            "ms",
            target="p99 ≤ 100 ms",
            met=b.p99 <= 100.0,
            ratio=None if i.p99 == 0 else b.p99 / i.p99,
            reference_name=f"{jobs} idle jobs",
            detail=f"median {b.median:.2f} ms, max {b.maximum:.1f} ms, {b.n} samples",
        ),
        Row(NAME, f"RSS, {jobs} jobs", rss, rss_idle, "MiB", reference_name="before the flood"),
    ]
    result.raw = {"rate": rate, "flood_ms": busy, "idle_ms": idle, "rss": rss, "rss_idle": rss_idle}
    return result
