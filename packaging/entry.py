"""Entry point of the frozen (PyInstaller) ``peft-notify`` binary: the same CLI as the wheel's.

Besides the CLI it understands ``peft-notify -c CODE [ARG...]`` like ``python -c``: code that
runs ``[sys.executable, "-c", ...]`` in a child (``doctor``'s tray probe) keeps working when
``sys.executable`` is this binary rather than a Python interpreter.
"""

from __future__ import annotations

import os
import sys


def _multiprocessing_worker() -> int:
    """A process ``multiprocessing`` spawned from this binary (``--multiprocessing-fork``): run it.

    What ``multiprocessing.freeze_support()`` with PyInstaller's multiprocessing runtime hook did;
    the spec leaves the hook out (it imported multiprocessing at every start). Its helper
    processes (resource tracker, forkserver) arrive as ``-c CODE``, which :func:`_main` runs.
    """
    import multiprocessing.process
    import multiprocessing.spawn

    multiprocessing.process.ORIGINAL_DIR = None  # type: ignore[attr-defined]  # as the hook did
    kwds: dict[str, int | None] = {}
    for arg in sys.argv[2:]:
        name, value = arg.split("=")
        kwds[name] = None if value == "None" else int(value)
    multiprocessing.spawn.spawn_main(**kwds)  # type: ignore[arg-type]
    return 0


def _main() -> int:
    if sys.stdout is None or sys.stderr is None:  # Windows GUI build (console=False): no streams
        devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        sys.stdout = sys.stdout or devnull
        sys.stderr = sys.stderr or devnull
    if len(sys.argv) >= 2 and sys.argv[1] == "--multiprocessing-fork":
        return _multiprocessing_worker()
    # Older macOS versions pass a process serial number to apps started from the Finder.
    sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if not a.startswith("-psn_"))]
    if len(sys.argv) >= 3 and sys.argv[1] == "-c":
        code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
        return 0
    from peft_notify.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_main())
