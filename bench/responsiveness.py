"""UI responsiveness: lateness of a 10 ms QTimer in the app during a progress flood vs idle.

The timer is installed into the real app from outside (``bench.appchild`` hooks QApplication).
Reference, same app process: the same timer over an idle window of the same length just before
the flood. Target: p99 lateness during the flood ≤ 50 ms.
"""

from __future__ import annotations

import time

from bench.appfixture import running_app
from bench.harness import P99, Context, Result, Row, bootstrap_ci, percentile, stats

NAME = "responsiveness"
TITLE = "p99 lateness of a 10 ms QTimer in the app during a flood vs no flood"


def run(ctx: Context) -> Result:
    count, idle_s, seconds = ctx.size(1_000_000, 3_000), ctx.size(5, 1), ctx.size(6.0, 0.0)
    result = Result(NAME, TITLE)
    with running_app(ctx, jobs=2, tag="ui") as app:
        app.flood_and_wait([0], ctx.size(10_000, 500))  # warm-up
        time.sleep(1.0)
        idle_start = time.perf_counter_ns()
        time.sleep(idle_s)
        idle_end = time.perf_counter_ns()
        done = app.flood_and_wait([1], count, duration=seconds)
        idle = app.lag(idle_start, idle_end)
        busy = app.lag(done["t0"], done["t_end"])
    flood_s = (done["t_end"] - done["t0"]) / 1e9
    b, i = stats(busy), stats(idle)
    result.notes.append(
        f"Idle window {idle_s} s, then a flood of progress frames as fast as the app takes them, sending for at "
        f"most {seconds:g} s: {done['sent']:,} frames processed in {flood_s:.1f} s "
        f"({done['sent'] / flood_s:,.0f} msg/s). Lateness = time between timer callbacks − 10 ms, "
        "sampled on every callback (a starved loop yields fewer, later samples)."
    )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="QTimer lateness p99",
            ours=b.p99,
            reference=i.p99,
            reference_name="no flood",
            unit="ms",
            ratio=None if i.p99 == 0 else b.p99 / i.p99,
            ours_ci=bootstrap_ci(busy, P99, n_boot=1000),
            target="p99 ≤ 50 ms",
            met=b.p99 <= 50.0,
            detail=f"flood: median {b.median:.2f}, p50–max {percentile(busy, 50):.2f}–{b.maximum:.1f} ms, "
            f"{b.n} samples; idle median {i.median:.2f}, max {i.maximum:.1f} ms",
        )
    )
    result.raw = {"flood_ms": busy, "idle_ms": idle, "flood_s": flood_s}
    return result
