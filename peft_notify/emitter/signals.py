"""Remove our discovery / rank files when the process is killed by SIGTERM.

``atexit`` does not run when SIGTERM's default action kills the process (what ``kill``,
``docker stop``, Slurm and torchrun do), so a job file would be left behind until a reader
prunes it. :func:`track_file` registers a file and, the first time, installs a SIGTERM
handler — only from the main thread and only when SIGTERM still has its default action
(a handler the user installed is theirs; it usually exits through ``atexit``, which cleans
up too). The handler only unlinks files (no locks: it may interrupt any code), restores
the previous disposition and re-sends the signal, so the process still dies of SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["forget_file", "installed", "track_file"]

log = logging.getLogger(__name__)

_files: set[Path] = set()
_previous: Any = None
_installed = False


def installed() -> bool:
    """Whether our SIGTERM handler is the current one."""
    return _installed and signal.getsignal(signal.SIGTERM) is _on_sigterm


def track_file(path: Path) -> None:
    """Remove ``path`` if SIGTERM kills the process (see the module docstring)."""
    _files.add(path)
    _install()


def forget_file(path: Path) -> None:
    """Stop tracking ``path`` (it was removed normally)."""
    _files.discard(path)


def _install() -> None:
    global _previous, _installed
    if _installed or not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        return
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL:
            return  # the user (or a framework) handles SIGTERM; don't take it over
        _previous = signal.signal(signal.SIGTERM, _on_sigterm)
        _installed = True
    except (ValueError, OSError):  # not the main interpreter / embedded
        log.debug("could not install the SIGTERM clean-up handler", exc_info=True)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _installed
    for path in list(_files):
        with contextlib.suppress(OSError):
            path.unlink()
    _files.clear()
    previous = _previous if _previous is not None else signal.SIG_DFL
    signal.signal(signal.SIGTERM, previous)
    _installed = False
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        os.kill(os.getpid(), signal.SIGTERM)  # die of SIGTERM, as without us
