"""A job's loss curve in 16 bytes a point: ``(step, loss)`` pairs in a fixed-size ring of two arrays.

:class:`Curve` is what :class:`~peft_notify.desktop.monitor.LossCurves` keeps for each job and
what the window's cards and detail pane read. It behaves like ``deque(maxlen=N)`` of
``(step, loss)`` tuples for what they use (``append``, ``[-1]`` read and replace, iteration
oldest first, ``len``, ``clear``), but a deque of tuples costs ~110 bytes a point: 600 points
for each of 1,000 followed jobs were ~63 MiB of the app (issue 17); these arrays take ~9 MiB,
and the garbage collector has nothing in them to scan.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

__all__ = ["Curve"]


class Curve:
    """The newest ``maxlen`` ``(step, loss)`` points, oldest first (see the module docstring)."""

    __slots__ = ("_losses", "_start", "_steps", "maxlen")

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("a curve holds at least one point")
        self.maxlen = maxlen
        self._steps = array("q")
        self._losses = array("d")
        self._start = 0  # where the oldest point is once the ring is full (0 until then)

    def append(self, point: tuple[int, float]) -> None:
        """Add the newest point; when full, the oldest one goes."""
        step, loss = point
        if len(self._steps) < self.maxlen:
            self._steps.append(step)
            self._losses.append(loss)
            return
        self._steps[self._start] = step
        self._losses[self._start] = loss
        self._start = (self._start + 1) % self.maxlen

    def clear(self) -> None:
        self._steps = array("q")
        self._losses = array("d")
        self._start = 0

    def _slot(self, index: int) -> int:
        size = len(self._steps)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("curve index out of range")
        return (self._start + index) % size

    def __getitem__(self, index: int) -> tuple[int, float]:
        slot = self._slot(index)
        return self._steps[slot], self._losses[slot]

    def __setitem__(self, index: int, point: tuple[int, float]) -> None:
        slot = self._slot(index)
        self._steps[slot], self._losses[slot] = point

    def __len__(self) -> int:
        return len(self._steps)

    def __bool__(self) -> bool:
        return len(self._steps) > 0

    def __iter__(self) -> Iterator[tuple[int, float]]:
        steps, losses, start = self._steps, self._losses, self._start
        for slot in range(start, len(steps)):
            yield steps[slot], losses[slot]
        for slot in range(start):
            yield steps[slot], losses[slot]

    def __repr__(self) -> str:
        return f"Curve({list(self)!r}, maxlen={self.maxlen})"
