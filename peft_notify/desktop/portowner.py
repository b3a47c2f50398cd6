"""Which local user listens on a loopback port (Linux ``/proc/net/tcp``), to pin a job's owner.

A followed job that dies (killed, crashed) leaves its port free, and the client keeps
reconnecting to it with the job's token. Another local user who binds that port then
received the token in the handshake and could pose as the job under its own URL: fake
"training complete" or errors recorded under the victim's identity (issue 10 items 1 and 3).
:class:`JobClient` therefore notes which uid listened on a loopback job's port when it first
connected and refuses to send anything to the port once another uid listens there.

Only Linux exposes listeners' uids; elsewhere :func:`listener_uids` returns ``None`` (no check).
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

__all__ = ["is_loopback_host", "listener_uids"]

_LISTEN = "0A"
_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``*.localhost`` or a loopback address (brackets allowed)."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listener_uids(port: int, tables: tuple[Path, ...] = _TABLES) -> frozenset[int] | None:
    """The uids of every TCP socket listening on ``port`` (any address); ``None`` when unknown."""
    if not sys.platform.startswith("linux"):
        return None
    uids: set[int] = set()
    readable = False
    for table in tables:
        try:
            lines = table.read_text(encoding="ascii", errors="replace").splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 8 or fields[3] != _LISTEN:
                continue
            _, _, hex_port = fields[1].rpartition(":")
            try:
                if int(hex_port, 16) == port:
                    uids.add(int(fields[7]))
            except ValueError:
                continue
    return frozenset(uids) if readable else None
