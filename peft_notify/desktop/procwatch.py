"""Is a job's training process on this machine, and is it still alive? (psutil, no Qt).

The monitor asks when a connection drops: a local job whose pid is gone died without a
word (the OOM killer's SIGKILL sends no message); one whose pid lives is just unreachable.
"""

from __future__ import annotations

import socket
from functools import cache
from urllib.parse import urlsplit

__all__ = ["is_local_host", "process_alive"]

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


@cache
def _this_host() -> frozenset[str]:
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(n for n in names if n)


def is_local_host(host: str, url: str = "") -> bool:
    """Whether ``host`` (from the job's hello) or ``url``'s host is this machine."""
    if host and host.lower() in _this_host():
        return True
    url_host = (urlsplit(url).hostname or "").lower()
    return url_host in _LOOPBACK or (bool(url_host) and url_host in _this_host())


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    import psutil  # here, not at module level: the app imports this module before its window shows

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return psutil.pid_exists(pid) if pid > 0 else False
