"""Dedup window and per-job token bucket (issue rule 6).

The engine asks :class:`DedupWindow` first: a repeat of the same (job, key)
within the window becomes a ``MergeRepeat`` (repeat count) instead of a new
entry. Only then does a popup ask the job's :class:`TokenBucket`; errors never
do (they are merged, never rate-limited).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DedupWindow", "TokenBucket"]


@dataclass(slots=True)
class _Seen:
    last_at: float
    repeat: int


class DedupWindow:
    """Remembers (job, key) pairs; a repeat within ``window_s`` of the last one is merged.

    The window slides: a warning that comes every step stays one entry (with a
    growing repeat count) until it has been quiet for ``window_s``.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s if math.isfinite(window_s) and window_s > 0 else 0.0
        self._seen: dict[tuple[str, str], _Seen] = {}

    def check(self, job_id: str, key: str, now: float) -> int | None:
        """Register one occurrence. Returns the repeat count (>= 2) for a repeat, else ``None``."""
        seen = self._seen.get((job_id, key))
        if seen is not None and 0 <= now - seen.last_at < self.window_s:
            seen.last_at = now
            seen.repeat += 1
            return seen.repeat
        self._seen[(job_id, key)] = _Seen(last_at=now, repeat=1)
        return None

    def forget(self, job_id: str) -> None:
        """Drop everything remembered for ``job_id``."""
        for pair in [p for p in self._seen if p[0] == job_id]:
            del self._seen[pair]

    def prune(self, now: float) -> None:
        """Drop entries whose window has passed (keeps memory bounded on long runs)."""
        for pair in [p for p, s in self._seen.items() if now - s.last_at >= self.window_s]:
            del self._seen[pair]


class TokenBucket:
    """A token bucket: ``capacity`` tokens, one more every ``refill_s`` seconds.

    ``capacity`` <= 0 disables limiting (every take succeeds).
    """

    def __init__(self, capacity: int, refill_s: float, now: float) -> None:
        self.capacity = capacity
        self.refill_s = refill_s if math.isfinite(refill_s) and refill_s > 0 else 0.0
        self._tokens = float(max(capacity, 0))
        self._at = now

    def _refill(self, now: float) -> None:
        if now <= self._at:
            return
        if self.refill_s == 0.0:
            self._tokens = float(self.capacity)
        else:
            self._tokens = min(float(self.capacity), self._tokens + (now - self._at) / self.refill_s)
        self._at = now

    def take(self, now: float) -> bool:
        """Take one token if there is one; ``False`` means rate-limited."""
        if self.capacity <= 0:
            return True
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def tokens(self) -> float:
        """Tokens left at the last take (for tests and ``doctor``)."""
        return self._tokens
