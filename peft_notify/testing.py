"""Fakes for the ports, shipped so users can test their own integrations.

Each fake implements one protocol of :mod:`peft_notify.ports` in memory and
records what it was asked to do. Use them in unit tests; on Linux, also test
the real adapters against the real desktop session. :class:`MemoryHistoryStore` is the real
in-memory store of :mod:`peft_notify.desktop.memory_history`, re-exported here for tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from peft_notify.desktop.memory_history import MemoryHistoryStore
from peft_notify.ports import ActionHandler, Delivery, DndState, NotifyRequest, TaskbarState

__all__ = [
    "FakeClock",
    "MemoryHistoryStore",
    "RecordingNotifier",
    "RecordingTaskbar",
    "ScriptedDndProbe",
]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        return self._now


class RecordingNotifier:
    """A Notifier that records every request; ``fail=True`` makes it report failure."""

    def __init__(self, name: str = "recording", *, fail: bool = False, on_action: ActionHandler | None = None) -> None:
        self.name = name
        self.fail = fail
        self.on_action = on_action
        self.requests: list[NotifyRequest] = []
        self.closed = False

    def capabilities(self) -> frozenset[str]:
        return frozenset({"actions", "body", "sound", "urgency"})

    async def notify(self, request: NotifyRequest) -> Delivery:
        if self.fail:
            return Delivery.failed(self.name, "configured to fail")
        self.requests.append(request)
        return Delivery(ok=True, backend=self.name, platform_id=str(len(self.requests)))

    async def close(self) -> None:
        self.closed = True

    def invoke(self, action: str, index: int = -1) -> None:
        """Simulate the user pressing ``action`` on the ``index``-th shown notification."""
        if self.on_action is None:
            raise RuntimeError("no on_action handler was given")
        request = self.requests[index]
        self.on_action(request.job_id, request.record_id, action)


@dataclass
class RecordingTaskbar:
    """A TaskbarProgress that records calls as tuples: ("set", value, state), ("clear",), ..."""

    name: str = "recording-taskbar"
    calls: list[tuple[object, ...]] = field(default_factory=list)

    def set(self, value: float, state: TaskbarState) -> None:
        self.calls.append(("set", value, state))

    def clear(self) -> None:
        self.calls.append(("clear",))

    def attention(self, critical: bool) -> None:
        self.calls.append(("attention", critical))

    def badge(self, count: int) -> None:
        self.calls.append(("badge", count))


class ScriptedDndProbe:
    """A DndProbe answering from a script; the last state repeats forever."""

    def __init__(self, states: Iterable[DndState] = (DndState.OFF,), name: str = "scripted") -> None:
        self.name = name
        self._states = list(states) or [DndState.UNKNOWN]
        self.calls = 0

    def set(self, state: DndState) -> None:
        """Answer ``state`` from now on."""
        self._states = [state]
        self.calls = 0

    async def state(self) -> DndState:
        index = min(self.calls, len(self._states) - 1)
        self.calls += 1
        return self._states[index]
