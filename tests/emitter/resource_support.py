"""Real parts for the resource tests: a small tmpfs to fill, and a process tree that uses memory and CPU."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "8m") -> Iterator[Path]:
    """Mount a real tmpfs of ``size`` at ``path`` for the block (tests run as root); skip if not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): disk rules need one")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path, size: int) -> Path:
    """Write ``size`` real bytes into ``path`` (on the tmpfs, so they occupy it)."""
    with path.open("wb") as f:
        chunk = b"\0" * (1 << 20)
        left = size
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    return path


# A parent that holds ~48 MiB, spins one grandchild on the CPU, and waits to be killed.
TREE = r"""
import subprocess, sys, time
block = bytearray(48 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
print(child.pid, flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def busy_tree() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A real process tree: (the parent, the busy grandchild's pid). Killed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        grandchild = int(proc.stdout.readline())
        yield proc, grandchild
    finally:
        import psutil

        with contextlib.suppress(psutil.Error):
            for p in psutil.Process(proc.pid).children(recursive=True):
                p.kill()
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
