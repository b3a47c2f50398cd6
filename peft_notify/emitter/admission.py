"""A bound on the connections a job server holds before their handshake ends (issue 10, item 5).

Every accepted TCP connection holds a file descriptor of the *training process* until its
WebSocket / HTTP handshake ends or times out. Another local user who opened a few hundred
idle connections to a job's port ran the process out of descriptors: the server spewed
``accept()`` tracebacks and the training loop's own ``open()`` (a checkpoint, a data shard)
failed with ``EMFILE``. :class:`Admission` keeps at most ``limit`` connections waiting for
their handshake; one more drops the *oldest* waiting one (an honest client sends its request
at once and leaves the waiting set within milliseconds; an idle attacker's connection is what
is oldest), so the descriptors held are bounded and the owner's new connection still gets in.
Connections that finished their handshake are bounded elsewhere (the token and the per-job
client slots).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

__all__ = ["Admission"]

log = logging.getLogger(__name__)

WAITING_LIMIT = 64


class Admission:
    """The connections waiting for their handshake, oldest first (one event loop; not thread-safe)."""

    def __init__(self, limit: int = WAITING_LIMIT) -> None:
        self.limit = max(1, limit)
        self.dropped = 0
        self._waiting: dict[Hashable, Callable[[], None]] = {}  # insertion order = arrival order

    @property
    def waiting(self) -> int:
        """How many connections are waiting for their handshake now."""
        return len(self._waiting)

    def arrived(self, key: Hashable, abort: Callable[[], None]) -> None:
        """A connection was accepted; ``abort`` closes it at once. Drops the oldest beyond the limit."""
        self._waiting[key] = abort
        while len(self._waiting) > self.limit:
            oldest = next(iter(self._waiting))
            drop = self._waiting.pop(oldest)
            if not self.dropped:
                log.warning(
                    "more than %d connections are waiting for their handshake (someone is flooding the port?): "
                    "dropping the oldest ones (counted, not logged one by one)",
                    self.limit,
                )
            self.dropped += 1
            drop()

    def settled(self, key: Hashable) -> None:
        """The connection finished its handshake or closed (unknown keys are fine)."""
        self._waiting.pop(key, None)
