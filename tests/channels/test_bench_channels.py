"""bench/channels.py runs with tiny sizes and produces well-formed rows (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

from bench import harness
from tests.bench.test_bench_smoke import run_bench


def test_channels_bench_runs(tmp_path: Path) -> None:
    result = run_bench("channels", harness.Context(quick=True, workdir=tmp_path / "work"))
    assert [row.metric for row in result.rows] == [
        "event → POST, ChannelHub.offer, p99",
        "event → POST, training relay, p99",
        "progress(), a hanging channel at level progress",
    ]
    assert [row.reference_name for row in result.rows] == [
        "bare urllib POST",
        "bare urllib POST",
        "progress() without channels",
    ]
