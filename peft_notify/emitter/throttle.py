"""LogThrottle: log the first of a kind of warning, then one count per window (issue 10, item 8).

A client that sends garbage in a loop must not fill the training log: the first bad frame
is logged in full, the rest of the window only counted, and the count is reported once
the window ended. Sans-I/O: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LogThrottle"]


@dataclass
class LogThrottle:
    """Counts occurrences per ``window`` seconds (see the module docstring)."""

    window: float = 60.0
    window_start: float | None = None
    suppressed: int = 0

    def note(self, now: float) -> bool:
        """One occurrence at ``now``; True when it should be logged in full (the first of its window)."""
        if self.window_start is None or now - self.window_start >= self.window:
            self.window_start = now
            return True
        self.suppressed += 1
        return False

    def take_summary(self, now: float, *, force: bool = False) -> int:
        """How many were not logged in a window that has ended (all so far with ``force``); resets."""
        if self.suppressed == 0 or self.window_start is None:
            return 0
        if not force and now - self.window_start < self.window:
            return 0
        count, self.suppressed = self.suppressed, 0
        return count

    def window_end(self) -> float | None:
        """When the current window ends (``None`` before the first occurrence)."""
        return None if self.window_start is None else self.window_start + self.window
