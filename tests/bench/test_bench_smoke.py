"""Every benchmark runs with tiny sizes and produces well-formed rows (no timing assertions)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench import harness

desktop_reason = (
    "needs the desktop session (DISPLAY and DBUS_SESSION_BUS_ADDRESS): eval $(../shared/desktop-session/start.sh)"
)
needs_desktop = pytest.mark.skipif(
    not (os.environ.get("DISPLAY") and os.environ.get("DBUS_SESSION_BUS_ADDRESS")), reason=desktop_reason
)


@pytest.fixture
def ctx(tmp_path: Path) -> harness.Context:
    return harness.Context(quick=True, workdir=tmp_path / "work")


def check_result(result: harness.Result, name: str) -> None:
    assert result.error is None, f"{result.error}\n{result.raw.get('traceback', '')}"
    assert result.name == name
    assert result.rows, "a benchmark must produce at least one row"
    for row in result.rows:
        assert row.benchmark == name
        assert row.metric
        assert row.ours is None or math.isfinite(row.ours)
        assert row.reference is None or math.isfinite(row.reference)
        assert row.met in (None, True, False)
        if row.met is not None:
            assert row.target, "a row with a verdict names its target"
    assert result.notes, "every benchmark says what it measured"
    json.dumps(harness.to_json([result], {"machine": "test"}, quick=True), default=str)
    assert name in harness.render_table([result])


def run_bench(name: str, ctx: harness.Context) -> harness.Result:
    result = harness.run_one(bench_main.load(name), ctx)
    check_result(result, name)
    return result


def test_overhead_runs(ctx: harness.Context) -> None:
    result = run_bench("overhead", ctx)
    metrics = [row.metric for row in result.rows]
    assert metrics == [
        "progress(), no client",
        "progress(), one client",
        "progress(), stalled client",
        "training steps/s, 8 clients polling /api/notifications as fast as they can",
        "training steps/s, 8 clients polling /api/notifications 10×/s each",
    ]
    assert all(row.reference_name == "tqdm.update(1)" for row in result.rows[:3])
    for row in result.rows[3:]:  # interleaved windows: a ratio with its 95 % interval, and the target
        assert row.reference_name == "same loop, no poller"
        assert row.ratio_ci is not None and row.ratio_ci[0] <= row.ratio <= row.ratio_ci[1]
        assert row.target == "≥ 0.95 × reference"


def test_resources_runs(ctx: harness.Context) -> None:
    result = run_bench("resources", ctx)
    assert [row.metric for row in result.rows] == [
        "CPU time per step, sampler running",
        "wall time per step, sampler running",
        "sampler thread's own CPU per step (direct)",
        "one sample, on its thread",
    ]
    assert result.rows[0].reference_name == "same loop without it"
    assert result.rows[0].target == "≤ +0.1 %"
    assert all(row.ratio_ci is not None for row in result.rows[:2])


@pytest.mark.ml
@pytest.mark.slow
def test_trainer_runs(ctx: harness.Context) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    result = run_bench("trainer", ctx)
    assert result.raw["with_s"] and result.raw["without_s"]


@pytest.mark.desktop
@needs_desktop
@pytest.mark.parametrize("name", ["ingest", "responsiveness", "latency", "taskbar", "memory", "startup", "scale"])
def test_desktop_benchmark_runs(name: str, ctx: harness.Context) -> None:
    run_bench(name, ctx)


def test_channels_runs(ctx: harness.Context) -> None:
    result = run_bench("channels", ctx)
    for row in result.rows[:2]:  # the target: p99 ≤ 2 × a bare POST's p99 + 20 ms
        assert row.target == "p99 ≤ 2 × reference + 20 ms" and row.ours_ci is not None


SWEEP = {
    "results": [
        {"name": "scale", "raw": {"sweep": [{"jobs": n, "lag_p99": 2.0 * n, "rss": 100 + n / 10} for n in (1, 10)]}},
        {"name": "cluster", "raw": {"many": {"jobs": 20, "running": [1.0, 30.0, 40.0], "rss": [120.0, 130.0]}}},
    ]
}


def test_plot_draws_the_scale_picture(tmp_path: Path) -> None:
    pytest.importorskip("PySide6")
    from bench import plot

    assert plot.series(SWEEP) == {"WebSocket": [(1, 2.0, 100.1), (10, 20.0, 101.0)], "NATS": [(20, 30.0, 130.0)]}
    results, png = tmp_path / "r.json", tmp_path / "docs" / "scale.png"
    results.write_text(json.dumps(SWEEP))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(Path(harness.REPO))}
    done = subprocess.run([sys.executable, "-m", "bench.plot", str(results), str(png)], env=env, check=False)
    assert done.returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results.write_text(json.dumps({"results": []}))  # no sweep: one line, exit 2
    argv = [sys.executable, "-m", "bench.plot", str(results), str(png)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "no scale sweep" in done.stderr


def test_stats_and_percentile() -> None:
    st = harness.stats([3.0, 1.0, 2.0, 4.0])
    assert (st.n, st.median, st.minimum, st.maximum) == (4, 2.5, 1.0, 4.0)
    assert harness.percentile([0.0, 10.0], 50) == 5.0
    assert harness.percentile(list(range(101)), 99) == 99.0
    with pytest.raises(ValueError, match="no samples"):
        harness.stats([])


def test_paired_ratio_interval() -> None:
    exact = harness.paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert exact.ratio == pytest.approx(2.0) and exact.ci == pytest.approx((2.0, 2.0))
    # Load drift that hits both sides of a pair alike cancels; what is left sets the interval.
    ref = [1.0, 1.5, 0.8, 1.2, 1.1, 0.9]
    noise = [1.01, 0.99, 1.02, 0.98, 1.0, 1.0]
    pr = harness.paired_ratio([r * 1.05 * n for r, n in zip(ref, noise, strict=True)], ref)
    assert pr.low < 1.05 < pr.high and pr.high - pr.low < 0.05
    assert pr.method == "paired-t" and pr.n == 6
    assert pr.pct().startswith("+4.99 % [+3.")
    with pytest.raises(ValueError, match="pairs"):
        harness.paired_ratio([1.0], [1.0])
    assert harness.t95(1) == 12.706 and harness.t95(10_000) == 1.96


def test_bootstrap_intervals() -> None:
    samples = [float(i) for i in range(200)]
    low, high = harness.bootstrap_ci(samples, harness.P99, n_boot=300)
    assert low <= harness.percentile(samples, 99) <= high
    br = harness.bootstrap_ratio([2 * x + 2 for x in samples], [x + 1 for x in samples], n_boot=300)
    assert br.low <= br.ratio <= br.high and br.ratio == pytest.approx(2.0)


def test_table_shows_intervals() -> None:
    row = harness.Row("demo", "p99", 20.0, 10.0, "ms", ratio=2.0, ratio_ci=(1.5, 2.5), ours_ci=(18.0, 23.0))
    table = harness.render_table([harness.Result("demo", "a demo", rows=[row], notes=["x"])])
    assert "20 [18–23]" in table and "2 [1.5–2.5]" in table


def _result() -> harness.Result:
    row = harness.Row("demo", "speed", 8.0, 10.0, "msg/s", target="≥ 0.8 ×", met=True, ratio=0.8)
    return harness.Result("demo", "a demo", rows=[row], notes=["what it does"])


def test_markdown_keeps_hand_written_notes(tmp_path: Path) -> None:
    machine: dict[str, Any] = harness.machine_info()
    path = tmp_path / "performance.md"
    first = harness.render_markdown([_result()], machine, False, harness.existing_notes(path))
    assert "| demo | speed [msg/s] | 8 | 10 | 0.8 | ≥ 0.8 × | yes |" in first
    path.write_text(first.replace("### Notes", "### Notes\n\nHand-written: profile shows X."))
    second = harness.render_markdown([_result()], machine, False, harness.existing_notes(path))
    assert "Hand-written: profile shows X." in second
    assert second.count(harness.NOTES_BEGIN) == 1


def test_failed_benchmark_becomes_an_error_row(ctx: harness.Context) -> None:
    class Broken:
        NAME = "broken"
        TITLE = "raises"

        @staticmethod
        def run(_ctx: harness.Context) -> harness.Result:
            raise RuntimeError("boom")

    result = harness.run_one(Broken, ctx)
    assert result.error == "RuntimeError: boom"
    assert "ERROR" in harness.render_table([result])


def test_main_writes_json_and_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, md = tmp_path / "r.json", tmp_path / "perf.md"
    monkeypatch.setattr(bench_main, "load", lambda _name: _DemoModule)
    assert bench_main.main(["--quick", "--only", "overhead", "--out", str(out), "--markdown", str(md), "-q"]) == 0
    data = json.loads(out.read_text())
    assert data["quick"] is True
    assert data["results"][0]["rows"][0]["metric"] == "speed"
    assert "## Machine" in md.read_text()
    assert "## How to reproduce" in md.read_text()


def test_render_regenerates_markdown_from_json(tmp_path: Path) -> None:
    out, md = tmp_path / "r.json", tmp_path / "perf.md"
    harness.write_json(out, [_result()], harness.machine_info(), quick=False)
    assert bench_main.main(["--render", str(out), "--markdown", str(md)]) == 0
    assert "| demo | speed [msg/s] | 8 | 10 | 0.8 |" in md.read_text()


class _DemoModule:
    NAME = "demo"
    TITLE = "a demo"

    @staticmethod
    def run(_ctx: harness.Context) -> harness.Result:
        return _result()
