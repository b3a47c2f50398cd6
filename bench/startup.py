"""Startup: process launch to the first window shown, app vs a bare PySide6 window.

Both are fresh subprocesses of ``bench.appchild`` (same interpreter, same hook), alternating;
"shown" is the first ``Expose`` event of a top-level window ≥ 200×100 px, stamped with
perf_counter_ns in the child and compared with the parent's stamp taken just before spawning.
The app starts with no subscriptions in empty, temporary config/data dirs.
"""

from __future__ import annotations

from bench.harness import Context, Result, Row, stats
from bench.session import AppChild, BenchError, PrivateBus, app_available, isolated_env

NAME = "startup"
TITLE = "launch to first window shown, app vs a bare PySide6 window"


def run(ctx: Context) -> Result:
    reason = app_available()
    if reason:
        raise BenchError(reason)
    reps = ctx.size(7, 1)
    ours: list[float] = []
    ref: list[float] = []
    with PrivateBus() as bus:
        for rep in range(reps + 1):  # rep 0 warms the page cache
            for bare in (True, False):
                env = isolated_env(ctx.workdir / f"startup-{rep}-{bare}", bus.address)
                with AppChild(env, [] if bare else ["app"], bare=bare, lag_timer=False) as child:
                    ms = (child.wait_shown(90) - child.launched_ns) / 1e6
                if rep:
                    (ref if bare else ours).append(ms)
            ctx.log(f"startup rep {rep}: app {ms:.0f} ms")
    a, b = stats(ours), stats(ref)
    result = Result(NAME, TITLE)
    result.notes.append(f"{reps} alternating launches of each after one warm-up pair; medians.")
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="launch → first window shown",
            ours=a.median,
            reference=b.median,
            reference_name="bare PySide6 window",
            unit="ms",
            ratio=a.median / b.median,
            target="≤ 1.5 × reference",
            met=a.median / b.median <= 1.5,
            detail=f"ours {a.span('{:.0f}')} ms; reference {b.span('{:.0f}')} ms",
        )
    )
    result.raw = {"ours_ms": ours, "reference_ms": ref}
    return result
