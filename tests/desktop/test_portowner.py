"""portowner: the listener table read from /proc/net/tcp{,6}, and the per-loop-turn snapshot the client uses."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

import pytest

from peft_notify.desktop.portowner import TurnSnapshot, listener_table, listener_uids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="listeners' uids: Linux /proc only")


def _bound() -> tuple[socket.socket, int]:
    """A loopback socket bound to a free port, not listening yet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def test_the_table_has_every_listener_with_its_uid() -> None:
    sock, port = _bound()
    with sock:
        assert listener_uids(port) == frozenset()
        sock.listen()
        table = listener_table()
        assert table is not None and table[port] == frozenset({os.getuid()})
        assert listener_uids(port) == frozenset({os.getuid()})


def test_one_read_serves_a_loop_turn_and_a_listener_bound_before_the_next_turn_is_seen() -> None:
    """The snapshot never hides a listener from a check made in a later loop turn (the port-takeover defence).

    Checks in one turn (the jobs connecting together) share one read; a socket that starts
    listening meanwhile is seen by the first check of the next turn, and by any check once the
    snapshot is older than max_age_s.
    """
    sock, port = _bound()
    other, other_port = _bound()
    snapshot = TurnSnapshot(max_age_s=0.05)

    async def scenario() -> None:
        assert snapshot.uids(port) == frozenset()
        sock.listen()
        for _ in range(100):
            assert snapshot.uids(port) == frozenset()  # the same turn: the same read
        assert snapshot.reads == 1
        await asyncio.sleep(0)  # the next turn
        assert snapshot.uids(port) == frozenset({os.getuid()})
        assert snapshot.reads == 2
        other.listen()
        time.sleep(0.06)  # the same turn, but longer than max_age_s: read again
        assert snapshot.uids(other_port) == frozenset({os.getuid()})
        assert snapshot.reads == 3

    with sock, other:
        asyncio.run(scenario())


def test_a_snapshot_of_another_loop_is_not_reused() -> None:
    sock, port = _bound()
    snapshot = TurnSnapshot(max_age_s=60.0)

    async def check() -> frozenset[int] | None:
        return snapshot.uids(port)

    with sock:
        assert asyncio.run(check()) == frozenset()  # that loop ends before its snapshot's end callback runs
        sock.listen()
        assert asyncio.run(check()) == frozenset({os.getuid()})
    assert snapshot.reads == 2
