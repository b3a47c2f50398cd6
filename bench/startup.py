"""Startup: process launch to the first window shown, app vs a bare PySide6 window.

Both are fresh subprocesses of ``bench.appchild`` (same interpreter, same hook), alternating;
"shown" is the first ``Expose`` event of a top-level window ≥ 200×100 px, stamped with
perf_counter_ns in the child and compared with the parent's stamp taken just before spawning.
The app starts with no subscriptions in empty, temporary config/data dirs.

Second measurement, same run: the FROZEN app (the PyInstaller onedir that ``packaging/build``
makes, from its cache) vs the source app (``python -m peft_notify app``) vs a bare PySide6
window, none of them instrumented: "mapped" is the X server's ``MapNotify`` for the first
top-level window ≥ 200×100 px (:mod:`bench.xmap`), seen by the parent.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import Context, Result, Row, paired_ratio, stats
from bench.session import (
    PY,
    AppChild,
    BenchError,
    PrivateBus,
    app_available,
    compile_bytecode,
    isolated_env,
    stop_process,
)
from bench.xmap import MapWatcher, XmapError

REPO = Path(__file__).resolve().parents[1]
BARE_WINDOW = (
    "from PySide6.QtWidgets import QApplication, QWidget\n"
    "app = QApplication([])\nw = QWidget()\nw.resize(480, 320)\nw.show()\napp.exec()"
)


def frozen_binary(ctx: Context) -> Path:
    """The frozen app from packaging/build's cache (built now if the sources changed). Raises BenchError."""
    if importlib.util.find_spec("PyInstaller") is None:
        raise BenchError("PyInstaller is not installed (pip install -e '.[packaging]')")
    spec = importlib.util.spec_from_file_location("peft_notify_packaging_build", REPO / "packaging" / "build.py")
    if spec is None or spec.loader is None:
        raise BenchError("packaging/build.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if ctx.quick:  # a smoke run builds nothing: the cached onedir of these sources, or no frozen row
        cached = Path(module.cache_root()) / f"onedir-{sys.platform}-{module.build_key()}"
        if not (cached / ".complete").is_file():
            raise BenchError("no cached onedir of these sources (--quick does not run PyInstaller)")
    started = time.monotonic()
    dist = module.onedir()
    ctx.log(f"startup: frozen app ready in {time.monotonic() - started:.1f} s ({dist})")
    return Path(dist) / "peft-notify" / "peft-notify"


def mapped_startups(ctx: Context, reps: int, bus_address: str, frozen: Path | None) -> dict[str, list[float]]:
    """Milliseconds from spawn to the first big window mapped, per variant, alternating."""
    variants = {"bare": [PY, "-c", BARE_WINDOW], "source": [PY, "-m", "peft_notify", "app"]}
    if frozen is not None:
        variants["frozen"] = [str(frozen), "app"]
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for rep in range(reps + 1):  # rep 0 warms the page cache
        for name, argv in variants.items():
            env = isolated_env(ctx.workdir / f"mapped-{rep}-{name}", bus_address, PEFT_NOTIFY_INSTANCE=f"b{rep}{name}")
            if name == "frozen":
                env.pop("PYTHONPATH", None)
            with MapWatcher() as watcher:
                launched = time.perf_counter_ns()
                proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
                try:
                    ms = (watcher.wait_map(90) - launched) / 1e6
                finally:
                    stop_process(proc)
            if rep:
                samples[name].append(ms)
        ctx.log(f"startup (mapped) rep {rep}: " + ", ".join(f"{n} {s[-1]:.0f} ms" for n, s in samples.items() if s))
    return samples


NAME = "startup"
TITLE = "launch to first window shown, app vs a bare PySide6 window"


def run(ctx: Context) -> Result:
    reason = app_available()
    if reason:
        raise BenchError(reason)
    reps = ctx.size(15, 2)
    stale = compile_bytecode()
    ours: list[float] = []
    ref: list[float] = []
    cpu: dict[bool, list[float]] = {True: [], False: []}
    with PrivateBus() as bus:
        for rep in range(reps + 1):  # rep 0 warms the page cache
            for bare in (True, False):
                env = isolated_env(ctx.workdir / f"startup-{rep}-{bare}", bus.address)
                with AppChild(env, [] if bare else ["app"], bare=bare, lag_timer=False) as child:
                    ms = (child.wait_shown(90) - child.launched_ns) / 1e6
                    cpu_s = child.shown_cpu_s()
                if rep:
                    (ref if bare else ours).append(ms)
                    if cpu_s is not None:
                        cpu[bare].append(cpu_s * 1000)
            ctx.log(f"startup rep {rep}: app {ms:.0f} ms")
    a, b = stats(ours), stats(ref)
    pr = paired_ratio(ours, ref)
    result = Result(NAME, TITLE)
    result.notes.append(
        f"{reps} pairs of launches (bare window, then app) after one warm-up pair; ours/reference are medians, "
        "the ratio is the geometric mean of the per-pair ratios with its 95 % interval. The detail adds the "
        "same ratio for the CPU time each process had used when its window was exposed (all threads, from exec), "
        "which other work on the machine disturbs far less than the clock. The package's bytecode is compiled "
        f"first, as pip installs it ({stale} of its .pyc files were missing or stale)."
    )
    cpu_note = ""
    if len(cpu[False]) == len(cpu[True]) >= 2:
        cr = paired_ratio(cpu[False], cpu[True])
        cpu_note = (
            f"; CPU time to the first expose {statistics.median(cpu[False]):.0f} vs "
            f"{statistics.median(cpu[True]):.0f} ms: {cr.ratio:.2f}× [{cr.low:.2f}–{cr.high:.2f}]"
        )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="launch → first window shown",
            ours=a.median,
            reference=b.median,
            reference_name="bare PySide6 window",
            unit="ms",
            ratio=pr.ratio,
            ratio_ci=pr.ci,
            target="≤ 1.3 × reference",
            met=pr.ratio <= 1.3,
            detail=f"ours {a.span('{:.0f}')} ms; reference {b.span('{:.0f}')} ms{cpu_note}",
        )
    )
    result.raw = {"ours_ms": ours, "reference_ms": ref, "ours_cpu_ms": cpu[False], "reference_cpu_ms": cpu[True]}
    _frozen_rows(ctx, result, reps)
    return result


def _frozen_rows(ctx: Context, result: Result, reps: int) -> None:
    frozen: Path | None = None
    why = ""
    try:
        frozen = frozen_binary(ctx)
    except Exception as exc:  # the source-vs-bare row still counts; say why the frozen one is missing
        why = f"frozen app unavailable: {exc}"
        result.notes.append(why)
    try:
        with PrivateBus() as bus:
            samples = mapped_startups(ctx, reps, bus.address, frozen)
    except (XmapError, TimeoutError) as exc:
        result.notes.append(f"mapped-window startup not measured: {exc}")
        return
    bare = stats(samples["bare"])
    result.notes.append(
        f"Frozen/source/bare: {reps} alternating uninstrumented launches each after a warm-up round, "
        "launch → X11 MapNotify of the first window ≥ 200×100 px; medians."
    )
    for name, label in (("frozen", "frozen app (PyInstaller onedir)"), ("source", "source app (python -m)")):
        if name not in samples:
            result.rows.append(
                Row(
                    NAME,
                    f"launch → window mapped, {label}",
                    None,
                    bare.median,
                    "ms",
                    reference_name="bare PySide6 window",
                    detail=why,
                )
            )
            continue
        st = stats(samples[name])
        pr = paired_ratio(samples[name], samples["bare"])
        extra = ""
        if name == "frozen":
            fs = paired_ratio(samples["frozen"], samples["source"])
            extra = f"; frozen/source {fs.ratio:.2f}× [{fs.low:.2f}–{fs.high:.2f}]"
        result.rows.append(
            Row(
                benchmark=NAME,
                metric=f"launch → window mapped, {label}",
                ours=st.median,
                reference=bare.median,
                unit="ms",
                ratio=pr.ratio,
                ratio_ci=pr.ci,
                reference_name="bare PySide6 window",
                target="≤ 1.3 × reference" if name == "frozen" else "",
                met=pr.ratio <= 1.3 if name == "frozen" else None,
                detail=f"ours {st.span('{:.0f}')} ms; bare {bare.span('{:.0f}')} ms{extra}",
            )
        )
    result.raw.update({f"mapped_{k}_ms": v for k, v in samples.items()})
