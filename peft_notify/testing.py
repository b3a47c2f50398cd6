"""Fakes for the ports, shipped so users can test their own integrations.

Each fake implements one protocol of :mod:`peft_notify.ports` in memory and
records what it was asked to do. Use them in unit tests; on Linux, also test
the real adapters against the real desktop session.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from peft_notify.ports import (
    ActionHandler,
    Delivery,
    DeliveryStatus,
    DndState,
    HistoryEntry,
    HistoryQuery,
    NotifyRequest,
    TaskbarState,
)
from peft_notify.wire import NotificationEvent

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


class MemoryHistoryStore:
    """An in-memory HistoryStore with the same semantics as the SQLite one."""

    def __init__(self) -> None:
        self.entries: dict[int, HistoryEntry] = {}
        self._ids = itertools.count(1)

    def record(
        self,
        job_id: str,
        job_name: str,
        event: NotificationEvent,
        *,
        ts: float,
        status: DeliveryStatus,
        key: str = "",
        seq: int | None = None,
    ) -> int:
        entry_id = next(self._ids)
        self.entries[entry_id] = HistoryEntry(
            id=entry_id,
            ts=ts,
            job_id=job_id,
            job_name=job_name,
            kind=str(getattr(event.type, "value", event.type)),
            urgency=str(getattr(event.urgency, "value", event.urgency)),
            title=event.title,
            message=event.message,
            status=status,
            key=key,
            milestone=event.milestone,
            error_type=event.error_type,
            seq=seq,
        )
        return entry_id

    def merge_repeat(self, job_id: str, key: str, *, ts: float, repeat: int) -> int | None:
        for entry in sorted(self.entries.values(), key=lambda e: e.id, reverse=True):
            if entry.job_id == job_id and entry.key == key:
                self.entries[entry.id] = replace(entry, repeat=repeat, ts=ts, read=False)
                return entry.id
        return None

    def set_status(self, entry_id: int, status: DeliveryStatus, *, backend: str = "", detail: str = "") -> None:
        entry = self.entries[entry_id]
        self.entries[entry_id] = replace(entry, status=status, backend=backend, detail=detail)

    def query(self, query: HistoryQuery) -> list[HistoryEntry]:
        text = query.text.lower()
        found = [
            e
            for e in self.entries.values()
            if (query.job_id is None or e.job_id == query.job_id)
            and (not query.kinds or e.kind in query.kinds)
            and (not query.urgencies or e.urgency in query.urgencies)
            and (not text or text in e.title.lower() or text in e.message.lower())
            and (not query.unread_only or not e.read)
        ]
        found.sort(key=lambda e: (e.ts, e.id), reverse=True)
        return found[: query.limit]

    def mark_read(self, ids: Sequence[int] | None = None) -> int:
        targets = list(self.entries) if ids is None else [i for i in ids if i in self.entries]
        changed = 0
        for entry_id in targets:
            if not self.entries[entry_id].read:
                self.entries[entry_id] = replace(self.entries[entry_id], read=True)
                changed += 1
        return changed
