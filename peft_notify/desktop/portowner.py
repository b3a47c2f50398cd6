"""Which local user listens on a loopback port (Linux ``/proc/net/tcp``), to pin a job's owner.

A followed job that dies (killed, crashed) leaves its port free, and the client keeps
reconnecting to it with the job's token. Another local user who binds that port then
received the token in the handshake and could pose as the job under its own URL: fake
"training complete" or errors recorded under the victim's identity (issue 10 items 1 and 3).
:class:`JobClient` therefore notes which uid listened on a loopback job's port when it first
connected and refuses to send anything to the port once another uid listens there.

Only Linux exposes listeners' uids; elsewhere :func:`listener_uids` returns ``None`` (no check).

Connecting many jobs at once (1,000 at start-up) read and parsed the whole table once per
job, and the table grows with every connection: quadratic (issue 17: 36 % of the connect time).
:class:`TurnSnapshot` shares one read among the checks made in the same event-loop turn (and
never longer than :attr:`TurnSnapshot.max_age_s`): a check always uses a table read after the
previous loop turn began, so a listener bound before a check's turn is always seen.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["TurnSnapshot", "is_loopback_host", "listener_table", "listener_uids"]

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
    table = listener_table(tables)
    return None if table is None else table.get(port, frozenset())


def listener_table(tables: tuple[Path, ...] = _TABLES) -> dict[int, frozenset[int]] | None:
    """Every listening TCP port with the uids listening on it (one read); ``None`` when unknown."""
    if not sys.platform.startswith("linux"):
        return None
    found: dict[int, set[int]] = {}
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
                found.setdefault(int(hex_port, 16), set()).add(int(fields[7]))
            except ValueError:
                continue
    return {port: frozenset(uids) for port, uids in found.items()} if readable else None


class TurnSnapshot:
    """:func:`listener_uids` for checks made from an event loop, sharing one read per loop turn.

    The first check reads the tables and schedules the snapshot's end with ``call_soon``, so it
    ends when the loop gets to the callbacks queued during this turn; checks until then (the
    jobs started together) use it, and never one older than ``max_age_s``. A later check reads
    again: a listener that appeared before then is seen, as without the snapshot.
    """

    def __init__(
        self,
        max_age_s: float = 0.05,
        read: Callable[[], dict[int, frozenset[int]] | None] = listener_table,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_s = max_age_s
        self.reads = 0
        self._read = read
        self._clock = clock
        self._table: dict[int, frozenset[int]] | None = None
        self._at = 0.0
        self._valid = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def uids(self, port: int) -> frozenset[int] | None:
        """Like :func:`listener_uids`; call it from the running loop."""
        loop = asyncio.get_running_loop()
        if not self._valid or loop is not self._loop or self._clock() - self._at > self.max_age_s:
            self._table, self._at, self._valid, self._loop = self._read(), self._clock(), True, loop
            self.reads += 1
            loop.call_soon(self._end)
        return None if self._table is None else self._table.get(port, frozenset())

    def _end(self) -> None:
        self._valid = False
