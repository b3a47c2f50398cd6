"""``python -m bench``: run the benchmarks, print the table, write results.json and performance.md.

Options: ``--quick`` (tiny sizes), ``--only NAME...``, ``--out PATH`` (JSON; default
bench/results.json), ``--markdown PATH`` (default docs/performance.md; ``-`` to skip),
``--list``, ``--render JSON`` (regenerate the markdown from a results.json). Exit status 0
even when a target is missed (the table says so); 1 when a benchmark crashed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import harness

# Order of the table (issue 6).
BENCHMARKS: tuple[str, ...] = (
    "ingest",
    "responsiveness",
    "latency",
    "overhead",
    "resources",
    "trainer",
    "taskbar",
    "memory",
    "startup",
    "scale",
    "channels",
    "cluster",
)


PICTURE = "performance-scale.png"  # UI lag p99 and RSS against the number of jobs (bench/plot.py)


def load(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run, not representative)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--out", type=Path, default=harness.REPO / "bench" / "results.json", help="JSON results path")
    parser.add_argument(
        "--markdown", default=str(harness.REPO / "docs" / "performance.md"), help="performance.md path, - to skip"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only regenerate the markdown (and table) from a results.json"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.list:
        for name in BENCHMARKS:
            print(f"{name:15} {load(name).TITLE}")
        return 0
    if args.render:
        results, machine, quick = harness.load_json(args.render)
        print(harness.render_table(results))
        write_markdown(args.markdown, results, machine, quick)
        write_picture(args.render, args.markdown, quick)
        return 0
    ctx = harness.Context(quick=args.quick, verbose=not args.quiet)
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    from bench.session import compile_bytecode

    compile_bytecode()  # every app launch loads the package's bytecode, as an installed one does
    results = []
    try:
        for name in args.only or BENCHMARKS:
            module = load(name)
            print(f"==> {name}: {module.TITLE}", file=sys.stderr, flush=True)
            result = harness.run_one(module, ctx)
            if result.error:
                print(f"    FAILED: {result.error}\n{result.raw.get('traceback', '')}", file=sys.stderr)
            results.append(result)
    finally:
        ctx.cleanup()
    machine = {**harness.machine_info(), "load_start": load_start}
    print(harness.render_table(results))
    harness.write_json(args.out, results, machine, args.quick)
    print(f"wrote {args.out}", file=sys.stderr)
    write_markdown(args.markdown, results, machine, args.quick)
    write_picture(args.out, args.markdown, args.quick)
    return 1 if any(r.error for r in results) else 0


def write_picture(results_json: Path, markdown: str, quick: bool) -> None:
    """docs/performance-scale.png next to the markdown, from a full run's scale sweep (a child: Qt offscreen)."""
    if markdown == "-" or quick:
        return
    import subprocess

    target = Path(markdown).with_name(PICTURE)
    done = subprocess.run([sys.executable, "-m", "bench.plot", str(results_json), str(target)], check=False)
    if done.returncode == 0:
        print(f"wrote {target}", file=sys.stderr)


def write_markdown(target: str, results: list[harness.Result], machine: dict[str, Any], quick: bool) -> None:
    """Regenerate ``target`` (``-``: skip), keeping its hand-written notes."""
    if target == "-":
        return
    path = Path(target)
    notes = harness.existing_notes(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(harness.render_markdown(results, machine, quick, notes))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
