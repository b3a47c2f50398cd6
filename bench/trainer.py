"""Trainer overhead: a tiny Transformers + PEFT CPU run with ``NotifyCallback`` vs without.

Runs ``bench.trainer_child`` in a fresh subprocess (imports are not timed), which alternates
A/B runs in-process after one warm-up run of each. The ratio is median(with) / median(without).
"""

from __future__ import annotations

import json
import subprocess

from bench.harness import Context, Result, Row, paired_ratio, stats
from bench.session import PY, BenchError, isolated_env

NAME = "trainer"
TITLE = "Trainer wall time with NotifyCallback vs without (tiny GPT-2 + LoRA on CPU)"


def run(ctx: Context) -> Result:
    pairs, steps = ctx.size(20, 2), ctx.size(200, 10)
    env = isolated_env(ctx.workdir / "trainer")
    proc = subprocess.run(
        [PY, "-m", "bench.trainer_child", "--pairs", str(pairs), "--steps", str(steps)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    runs = []
    for line in proc.stdout.splitlines():
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue
    if proc.returncode != 0 or not runs:
        raise BenchError(f"trainer child failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    with_s = [r["s"] for r in runs if r["variant"] == "with"]
    without_s = [r["s"] for r in runs if r["variant"] == "without"]
    a, b = stats(with_s), stats(without_s)
    pr = paired_ratio(with_s, without_s)
    cpu = paired_ratio(
        [r["cpu"] for r in runs if r["variant"] == "with"], [r["cpu"] for r in runs if r["variant"] == "without"]
    )
    overhead_pct = (pr.ratio - 1) * 100
    upper_pct = (pr.high - 1) * 100
    result = Result(NAME, TITLE)
    result.notes.append(
        f"{pairs} A/B pairs of {steps} steps each (batch 8, sequence 32, 2-layer GPT-2, hidden 32, LoRA r=4 on "
        "c_attn), one torch thread, alternating which variant runs first; warm-up runs of both not counted. "
        "'With' is NotifyCallback as shipped: its job server and its resource sampler (1 sample/s). "
        "No app is connected (the usual case while training). The ratio is the geometric mean of the per-pair "
        "wall-time ratios with a t-interval on their logs; the detail also gives the same for process CPU time "
        "(all threads), which the machine's other load disturbs less."
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
    result.raw = {"with_s": with_s, "without_s": without_s, "runs": runs, "steps": steps}
    return result
