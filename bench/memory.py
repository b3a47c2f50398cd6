"""Memory: app RSS idle with one job vs a bare PySide6 window; RSS growth over a long flood.

Each in a fresh subprocess. Idle RSS is the median of 10 samples over 2 s, taken 3 s after the
window was shown (and, for the app, its job connected); bare window and app alternate, several
pairs, and the ratio is the geometric mean of the per-pair ratios with a 95 % interval.
Growth: RSS after a warm-up flood of 50,000 messages vs after 1,000,000 more (the app must not keep per-message state).
"""

from __future__ import annotations

import statistics
import time

from bench.appfixture import running_app
from bench.harness import Context, Result, Row, paired_ratio
from bench.session import AppChild, PrivateBus, isolated_env

NAME = "memory"
TITLE = "app RSS idle with one job vs a bare PySide6 window; growth after 1M messages"


def settled_rss(app: AppChild, settle_s: float) -> float:
    time.sleep(settle_s)
    samples = []
    for _ in range(10):
        samples.append(app.rss_mb())
        time.sleep(0.2)
    return statistics.median(samples)


def rss_split(app: AppChild) -> dict[str, float]:
    """Diagnostics: the process's resident memory split into anonymous (Python objects, Qt's heap,
    thread arenas) and file-backed (libraries' pages), MiB, from ``/proc/PID/smaps_rollup`` (Linux)."""
    assert app.proc is not None
    fields: dict[str, float] = {}
    try:
        with open(f"/proc/{app.proc.pid}/smaps_rollup") as rollup:
            for line in rollup:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Anonymous"):
                    fields[name] = int(rest.split()[0]) / 1024
    except OSError:
        return {}
    if "Rss" not in fields or "Anonymous" not in fields:
        return {}
    return {"anonymous": fields["Anonymous"], "file": fields["Rss"] - fields["Anonymous"]}


def _bare_rss(ctx: Context, settle: float, index: int, split: dict[str, dict[str, float]] | None = None) -> float:
    with PrivateBus() as bus:
        env = isolated_env(ctx.workdir / f"mem-bare-{index}", bus.address)
        with AppChild(env, bare=True, lag_timer=False) as bare:
            bare.wait_shown()
            rss = settled_rss(bare, settle)
            if split is not None:
                split["bare"] = rss_split(bare)
            return rss


def run(ctx: Context) -> Result:
    settle = ctx.size(3.0, 0.5)
    warm, total = ctx.size(50_000, 2_000), ctx.size(1_000_000, 20_000)
    budget = ctx.size(240.0, 60.0)  # seconds of flooding at most: a slow app cannot take 1M in time
    pairs = ctx.size(4, 2)
    result = Result(NAME, TITLE)
    bare_rss_all: list[float] = []
    idle_rss_all: list[float] = []
    for pair in range(pairs - 1):  # the last pair's app goes on to the growth measurement below
        bare_rss_all.append(_bare_rss(ctx, settle, pair))
        with running_app(ctx, jobs=1, tag=f"memory-idle-{pair}") as app:
            idle_rss_all.append(settled_rss(app.app, settle))
    split: dict[str, dict[str, float]] = {}
    bare_rss_all.append(_bare_rss(ctx, settle, pairs, split))
    with running_app(ctx, jobs=1, tag="memory") as app:
        idle_rss_all.append(settled_rss(app.app, settle))
        split["app"] = rss_split(app.app)
        app.flood_and_wait([0], warm, duration=10.0)
        before = settled_rss(app.app, 1.0)
        sent = 0
        start = time.perf_counter()
        while sent < total and time.perf_counter() - start < budget:
            done = app.flood_and_wait([0], min(200_000, total - sent), duration=30.0)
            sent += done["sent"]
            ctx.log(f"memory: {sent:,} messages, RSS {app.app.rss_mb():.1f} MiB")
        elapsed = time.perf_counter() - start
        after = settled_rss(app.app, 1.0)
    growth = after - before
    bare_rss, idle_rss = statistics.median(bare_rss_all), statistics.median(idle_rss_all)
    pr = paired_ratio(idle_rss_all, bare_rss_all)
    per_million = growth / sent * 1_000_000 if sent else 0.0
    verdict = growth if sent >= total else max(growth, per_million)
    result.notes.append(
        f"RSS from psutil (MiB). Growth measured over {sent:,} progress frames ({elapsed:.0f} s; goal {total:,}, "
        f"flooding stops after {budget:g} s — when it stopped early the verdict uses the growth linearly "
        f"extrapolated to {total:,}, if larger) after a "
        f"{warm:,}-frame warm-up; the bare window is a QMainWindow with a label (`bench/appchild.py --bare`)."
    )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="idle RSS, one job",
            ours=idle_rss,
            reference=bare_rss,
            reference_name="bare PySide6 window",
            unit="MiB",
            ratio=pr.ratio,
            ratio_ci=pr.ci,
            target="≤ 1.3 × reference",
            met=pr.ratio <= 1.3,
            detail=f"{pairs} pairs; app {min(idle_rss_all):.1f}–{max(idle_rss_all):.1f} MiB, "
            f"bare {min(bare_rss_all):.1f}–{max(bare_rss_all):.1f} MiB",
        )
    )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric=f"RSS growth after {sent:,} messages",
            ours=growth,
            reference=before,
            reference_name="RSS before",
            unit="MiB",
            target="≤ 10 MB",
            met=verdict * 2**20 <= 10_000_000,
            detail=f"{before:.1f} → {after:.1f} MiB; {per_million:.1f} MiB per 1M messages (linear)",
        )
    )
    if split.get("app") and split.get("bare"):
        a, b = split["app"], split["bare"]
        result.notes.append(
            f"Where the idle RSS is (last pair, /proc/PID/smaps_rollup): app {a['anonymous']:.1f} MiB anonymous "
            f"(Python objects, Qt's heap, thread arenas) + {a['file']:.1f} MiB file-backed (libraries' pages); "
            f"bare window {b['anonymous']:.1f} + {b['file']:.1f} MiB."
        )
    result.raw = {
        "rss_split": split,
        "bare_rss": bare_rss_all,
        "idle_rss": idle_rss_all,
        "before": before,
        "after": after,
        "messages": sent,
    }
    return result
