"""Trainer overhead: a tiny Transformers + PEFT CPU run with ``NotifyCallback`` vs without.

Runs ``bench.trainer_child`` in a fresh subprocess (imports are not timed), which alternates
A/B runs in-process after one warm-up run of each, then a few probe runs with the callback
instrumented. The ratio is the geometric mean of the per-pair ratios (with / without); the second
row is the direct measurement: the time the training thread spends inside the callback's hooks
plus the CPU of the callback's server and sampler threads, per run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time

from bench.harness import Context, Result, Row, paired_ratio, stats
from bench.session import PY, BenchError, isolated_env

NAME = "trainer"
TITLE = "Trainer wall time with NotifyCallback vs without (tiny GPT-2 + LoRA on CPU)"


def run(ctx: Context) -> Result:
    pairs, steps, probes = ctx.size(20, 2), ctx.size(700, 10), ctx.size(3, 1)
    env = isolated_env(ctx.workdir / "trainer")
    began = time.monotonic()
    proc = subprocess.run(
        [PY, "-m", "bench.trainer_child", "--pairs", str(pairs), "--steps", str(steps), "--probes", str(probes)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    took = time.monotonic() - began
    runs, probed = [], []
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("ev") == "run":
            runs.append(event)
        elif event.get("ev") == "probe":
            probed.append(event)
    if proc.returncode != 0 or not runs:
        raise BenchError(f"trainer child failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")

    def of(variant: str, key: str) -> list[float]:
        return [float(r[key]) for r in runs if r["variant"] == variant]

    with_s, without_s = of("with", "s"), of("without", "s")
    a, b = stats(with_s), stats(without_s)
    pr = paired_ratio(with_s, without_s)
    cpu = paired_ratio(of("with", "cpu"), of("without", "cpu"))
    overhead_pct = (pr.ratio - 1) * 100
    upper_pct = (pr.high - 1) * 100
    result = Result(NAME, TITLE)
    result.notes.append(
        f"{pairs} A/B pairs of {steps}-step train() runs (~{b.median:.1f} s each; batch 8, sequence 32, 2-layer "
        "GPT-2, hidden 32, LoRA r=4 on c_attn), one torch thread, alternating which variant runs first, a full "
        "garbage collection before each run; warm-up runs of both not counted. 'With' is NotifyCallback as "
        "shipped: its job server and its resource sampler (1 sample/s). No app is connected (the usual case "
        "while training). The ratio is the geometric mean of the per-pair wall-time ratios with a t-interval "
        "on their logs; the detail also gives the same for process CPU time (all threads), which the machine's "
        f"other load disturbs less. The whole row group took {took:.0f} s."
    )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="train() wall time",
            ours=a.median,
            reference=b.median,
            reference_name="without callback",
            unit="s",
            ratio=pr.ratio,
            ratio_ci=pr.ci,
            target="≤ +0.5 %, CI upper end ≤ +1 %",
            met=overhead_pct <= 0.5 and upper_pct <= 1.0,
            detail=f"wall {pr.pct()}; CPU time {cpu.pct()}; with {a.span()} s, without {b.span()} s",
        )
    )
    raw: dict[str, object] = {"with_s": with_s, "without_s": without_s, "runs": runs, "steps": steps, "took_s": took}
    if probed:
        hooks = {k: statistics.median(p["hooks_s"].get(k, 0.0) for p in probed) for k in probed[0]["hooks_s"]}
        threads: dict[str, float] = {}
        for name in {n for p in probed for n in p["threads_cpu"] if n.startswith("peft-notify")}:
            threads[name] = statistics.median(p["threads_cpu"].get(name, 0.0) for p in probed)
        total = sum(hooks.values()) + sum(threads.values())
        parts = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in {**hooks, **threads}.items() if v > 0)
        result.rows.append(
            Row(
                benchmark=NAME,
                metric="callback's own time per train() (hooks on the training thread + its threads' CPU)",
                ours=total * 1e3,
                reference=b.median * 1e3,
                reference_name="train() without callback",
                unit="ms",
                ratio=1 + total / b.median,
                detail=f"{100 * total / b.median:.2f} % of train(); median of {len(probed)} instrumented runs, "
                f"ms: {parts} "
                "(hooks: wall clock inside NotifyCallback; threads: their CPU from /proc/self/task/*/schedstat)",
            )
        )
        raw["probes"] = probed
    result.raw = raw
    return result
