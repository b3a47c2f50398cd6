"""Shared benchmark plumbing: result rows, statistics, the printed table, JSON and Markdown.

Every benchmark module exposes ``NAME``, ``TITLE`` and ``run(ctx: Context) -> Result``. A
benchmark measures ours *and* a reference in the same run and reports their ratio in a
:class:`Row`. ``run`` may raise; :func:`run_one` turns that into a ``Result`` with ``error``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = [
    "Context",
    "RatioCI",
    "Result",
    "Row",
    "Stats",
    "bootstrap_ci",
    "bootstrap_ratio",
    "machine_info",
    "paired_ratio",
    "percentile",
    "render_markdown",
    "render_table",
    "run_one",
    "stats",
    "write_json",
]

_N = TypeVar("_N", int, float)

REPO = Path(__file__).resolve().parent.parent
NOTES_BEGIN = "<!-- notes:begin (hand-written, kept when this file is regenerated) -->"
NOTES_END = "<!-- notes:end -->"


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of repeated samples (same unit as the samples)."""

    n: int
    median: float
    p99: float
    minimum: float
    maximum: float

    def span(self, fmt: str = "{:.3g}") -> str:
        """``min–max (n=N)`` for the table's detail column."""
        return f"{fmt.format(self.minimum)}–{fmt.format(self.maximum)} (n={self.n})"


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation. Raises ``ValueError`` when empty."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def P50(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def P99(samples: Sequence[float]) -> float:
    return percentile(samples, 99)


def stats(samples: Sequence[float]) -> Stats:
    """Median, p99, min and max of ``samples``. Raises ``ValueError`` when empty."""
    if not samples:
        raise ValueError("no samples")
    return Stats(
        n=len(samples),
        median=statistics.median(samples),
        p99=percentile(samples, 99),
        minimum=min(samples),
        maximum=max(samples),
    )


# Two-sided 95 % quantiles of Student's t by degrees of freedom (1..30), then 40, 60, 120, ∞.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045,
        2.042)  # fmt: skip


def t95(df: int) -> float:
    """Two-sided 95 % quantile of Student's t with ``df`` degrees of freedom (table; ≥ 1)."""
    if df < 1:
        raise ValueError("df must be ≥ 1")
    if df <= 30:
        return _T95[df - 1]
    for limit, value in ((40, 2.021), (60, 2.000), (120, 1.980)):
        if df <= limit:
            return value
    return 1.960


@dataclass(frozen=True, slots=True)
class RatioCI:
    """A ratio ours / reference with its 95 % confidence interval ``[low, high]``.

    ``method``: ``paired-t`` (geometric mean of per-pair ratios, t-interval on their logs) or
    ``bootstrap`` (percentile bootstrap of a statistic's ratio over resampled samples).
    """

    ratio: float
    low: float
    high: float
    n: int
    method: str

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)

    def pct(self) -> str:
        """``+0.31 % [−0.20, +0.82]``: the ratio as a change in per cent, with its interval."""
        return f"{(self.ratio - 1) * 100:+.2f} % [{(self.low - 1) * 100:+.2f}, {(self.high - 1) * 100:+.2f}]"


def paired_ratio(ours: Sequence[float], reference: Sequence[float]) -> RatioCI:
    """Interleaved A/B pairs: geometric mean of ``ours[i] / reference[i]`` with a t-interval on the logs.

    Pairs taken back to back share the machine's load, so their ratio cancels most of its drift;
    the interval says how well the pairs pin the ratio down. Raises ``ValueError`` for fewer than
    two pairs, unequal lengths or a non-positive sample.
    """
    if len(ours) != len(reference) or len(ours) < 2:
        raise ValueError(f"need ≥ 2 pairs of equal length, got {len(ours)} and {len(reference)}")
    if min(ours) <= 0 or min(reference) <= 0:
        raise ValueError("samples must be positive")
    logs = [math.log(a / b) for a, b in zip(ours, reference, strict=True)]
    mean = statistics.fmean(logs)
    half = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return RatioCI(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs), "paired-t")


def _resample(samples: Sequence[float], rng: Any) -> list[float]:
    n = len(samples)
    return [samples[rng.randrange(n)] for _ in range(n)]


def bootstrap_ci(
    samples: Sequence[float], stat: Any = statistics.median, n_boot: int = 2000, seed: int = 17
) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of ``stat(samples)`` (e.g. a p99: ``lambda s: percentile(s, 99)``)."""
    import random

    if not samples:
        raise ValueError("no samples")
    rng = random.Random(seed)
    values = sorted(stat(_resample(samples, rng)) for _ in range(n_boot))
    return percentile(values, 2.5), percentile(values, 97.5)


def bootstrap_ratio(
    ours: Sequence[float], reference: Sequence[float], stat: Any = statistics.median, n_boot: int = 2000, seed: int = 17
) -> RatioCI:
    """Unpaired samples: ``stat(ours) / stat(reference)`` with a 95 % percentile-bootstrap interval."""
    import random

    if not ours or not reference:
        raise ValueError("no samples")
    rng = random.Random(seed)
    ratios = sorted(stat(_resample(ours, rng)) / stat(_resample(reference, rng)) for _ in range(n_boot))
    point = stat(ours) / stat(reference)
    return RatioCI(
        point, percentile(ratios, 2.5), percentile(ratios, 97.5), min(len(ours), len(reference)), "bootstrap"
    )


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table: ours vs the reference, and whether the target is met.

    ``met`` is ``None`` for informational rows (no target).
    """

    benchmark: str
    metric: str
    ours: float | None
    reference: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    ratio: float | None = None
    reference_name: str = ""
    detail: str = ""
    ratio_ci: tuple[float, float] | None = None  # 95 % interval of ``ratio``
    ours_ci: tuple[float, float] | None = None  # 95 % interval of ``ours`` (e.g. a p99's bootstrap)

    @staticmethod
    def ratio_of(ours: float | None, reference: float | None) -> float | None:
        if ours is None or reference is None or reference == 0:
            return None
        return ours / reference


@dataclass(slots=True)
class Result:
    """What one benchmark produced: its rows, free-form notes and raw numbers, or an error."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class Context:
    """Options shared by all benchmarks. ``quick``: tiny sizes (smoke tests, development)."""

    quick: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="peft-bench-")))
    verbose: bool = False

    def size(self, full: _N, quick: _N) -> _N:
        return quick if self.quick else full

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class Benchmark(Protocol):
    NAME: str
    TITLE: str

    def run(self, ctx: Context) -> Result: ...


def run_one(module: Any, ctx: Context) -> Result:
    """Run one benchmark module; an exception becomes ``Result.error`` (the others still run)."""
    start = time.perf_counter()
    try:
        result: Result = module.run(ctx)
    except Exception as exc:
        result = Result(name=module.NAME, title=module.TITLE, error=f"{type(exc).__name__}: {exc}")
        result.raw["traceback"] = traceback.format_exc()
    result.seconds = time.perf_counter() - start
    return result


@contextmanager
def timer_ns() -> Iterator[list[int]]:
    """``with timer_ns() as t: ...`` then ``t[0]`` is the elapsed nanoseconds."""
    out: list[int] = []
    start = time.perf_counter_ns()
    yield out
    out.append(time.perf_counter_ns() - start)


# --------------------------------------------------------------------------- output


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _with_ci(value: str, ci: Sequence[float] | None) -> str:
    return value if ci is None else f"{value} [{_fmt(ci[0])}–{_fmt(ci[1])}]"


def _met(row: Row) -> str:
    return "—" if row.met is None else ("yes" if row.met else "**no**")


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    """Table cells: benchmark, metric, ours, reference, ratio, target, met, detail."""
    out: list[list[str]] = []
    for res in results:
        if res.error:
            out.append([res.name, "ERROR", "", "", "", "", "no", res.error])
            continue
        for row in res.rows:
            ref = f"{_fmt(row.reference)}" + (f" ({row.reference_name})" if row.reference_name else "")
            out.append(
                [
                    row.benchmark,
                    f"{row.metric} [{row.unit}]" if row.unit else row.metric,
                    _with_ci(_fmt(row.ours), row.ours_ci),
                    ref,
                    "—" if row.ratio is None else _with_ci(f"{row.ratio:.3g}", row.ratio_ci),
                    row.target or "—",
                    _met(row).replace("*", ""),
                    row.detail,
                ]
            )
    return out


HEADER = ["benchmark", "metric", "ours", "reference", "ratio", "target", "met", "detail"]


def render_table(results: Sequence[Result]) -> str:
    """A plain-text table for the terminal."""
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_state() -> str:
    """``<short commit>`` plus ``+ N modified files`` when the working tree is dirty."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (f" + {len(dirty)} modified files" if dirty else "")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python, Qt and library versions of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        import psutil

        ram = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    libs = {
        name: _version(name)
        for name in (
            "peft-notify",
            "PySide6-Essentials",
            "qasync",
            "websockets",
            "desktop-notifier",
            "dbus-fast",
            "psutil",
            "torch",
            "transformers",
            "peft",
            "tqdm",
        )
    }
    qt = "not installed"
    try:
        from PySide6 import QtCore

        qt = QtCore.qVersion()
    except ImportError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.platform()})"
    except OSError:
        pass
    return {
        "git": _git_state(),
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "ram_gib": ram,
        "os": os_name,
        "python": sys.version.split()[0],
        "qt": qt,
        "libraries": libs,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def to_json(results: Sequence[Result], machine: dict[str, Any], quick: bool) -> dict[str, Any]:
    return {"machine": machine, "quick": quick, "results": [asdict(r) for r in results]}


def write_json(path: Path, results: Sequence[Result], machine: dict[str, Any], quick: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(results, machine, quick), indent=2, default=str) + "\n")


DEFAULT_NOTES = """### Notes

- Numbers were taken on a shared development machine while other work was running; the lead
  re-runs `bench/run` on a quiet machine before a release. Ratios against a reference measured in
  the same run are meant to stay meaningful on a noisy machine; absolute numbers are not.
"""


def load_json(path: Path) -> tuple[list[Result], dict[str, Any], bool]:
    """Results, machine and quick flag from a ``results.json`` written by :func:`write_json`."""
    data = json.loads(path.read_text())
    results = []
    for item in data["results"]:
        rows = [Row(**row) for row in item.pop("rows")]  # intervals come back as lists: fine to render
        results.append(Result(**item, rows=rows))
    return results, data["machine"], bool(data["quick"])


def existing_notes(path: Path) -> str:
    """The hand-written notes between the markers of an existing ``performance.md`` (or a default)."""
    try:
        text = path.read_text()
    except OSError:
        return DEFAULT_NOTES
    match = re.search(re.escape(NOTES_BEGIN) + r"\n(.*?)" + re.escape(NOTES_END), text, re.S)
    return match.group(1) if match else DEFAULT_NOTES


def _load(value: Sequence[float] | None) -> str:
    return "unknown" if not value else " / ".join(f"{v:.2f}" for v in value)


def render_markdown(results: Sequence[Result], machine: dict[str, Any], quick: bool, notes: str) -> str:
    """``docs/performance.md``: table, per-benchmark notes, machine, how to reproduce, kept notes."""
    out = [
        "# Performance",
        "",
        "<!-- Generated by `python -m bench` (bench/run). Edit only between the notes markers below. -->",
        "",
        f"Measured {machine['date']}" + (" with `--quick` (tiny sizes, not representative)" if quick else "") + ".",
        "Each benchmark measures ours and a reference **in the same run**; `ratio` = ours / reference.",
        "Brackets: a 95 % confidence interval — of the ratio for interleaved A/B pairs (t-interval on the",
        "per-pair log-ratios, or a percentile bootstrap for unpaired samples), of `ours` for a percentile.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for cells in table_rows(results):
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out += ["", "## What each benchmark does", ""]
    for res in results:
        out.append(f"### {res.name}: {res.title}")
        out.append("")
        if res.error:
            out.append(f"**Failed:** `{res.error}`")
            out.append("")
        out.extend(f"- {note}" for note in res.notes)
        out.append(f"- Took {res.seconds:.1f} s.")
        out.append("")
    libs = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    out += [
        "## Machine",
        "",
        f"- Code: commit {machine.get('git', 'unknown')}",
        f"- CPU: {machine['cpu']}, {machine['logical_cores']} logical cores",
        f"- RAM: {machine['ram_gib']} GiB",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}, Qt {machine['qt']}",
        *(
            [
                f"- Load average (1/5/15 min) at the start: {_load(machine['load_start'])}; at the end: "
                f"{_load(machine.get('load_end'))} (2 cores: above 2 means other work was waiting for a core)"
            ]
            if machine.get("load_start")
            else []
        ),
        f"- Libraries: {libs}",
        "",
        "## How to reproduce",
        "",
        "```bash",
        "bench/run                      # bootstrap .venv, start the headless desktop session, run everything",
        "bench/run --quick              # tiny sizes, a minute or so",
        "bench/run --only latency startup",
        "python -m bench --out /tmp/r.json   # inside an existing desktop session",
        "```",
        "",
        "`bench/run` writes `bench/results.json` (all raw numbers) and regenerates this file.",
        "",
        NOTES_BEGIN,
        notes.rstrip("\n"),
        NOTES_END,
        "",
    ]
    return "\n".join(out)
