"""MemoryHistoryStore: a HistoryStore that lives only as long as the process.

The app falls back to it for one session when the SQLite history cannot be opened (the
window's banner says that history is not being saved), and tests use it through
:mod:`peft_notify.testing`. Same semantics as :class:`peft_notify.desktop.history.SqliteHistoryStore`
(newest first, filters, repeat merging, read marks) except durability and retention:
entries are kept until the process ends, at most ``max_entries`` (the oldest go first).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from peft_notify.ports import DeliveryStatus, HistoryEntry, HistoryQuery
from peft_notify.wire import NotificationEvent

__all__ = ["MemoryHistoryStore"]


class MemoryHistoryStore:
    """An in-memory HistoryStore (see the module docstring)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.entries: dict[int, HistoryEntry] = {}
        self.max_entries = max_entries
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
        while len(self.entries) > self.max_entries:  # dicts keep insertion order: the oldest first
            del self.entries[next(iter(self.entries))]
        return entry_id

    def merge_repeat(self, job_id: str, key: str, *, ts: float, repeat: int) -> int | None:
        for entry in sorted(self.entries.values(), key=lambda e: e.id, reverse=True):
            if entry.job_id == job_id and entry.key == key:
                self.entries[entry.id] = replace(entry, repeat=repeat, ts=ts, read=False)
                return entry.id
        return None

    def set_status(self, entry_id: int, status: DeliveryStatus, *, backend: str = "", detail: str = "") -> None:
        entry = self.entries.get(entry_id)
        if entry is None:  # dropped by max_entries meanwhile
            return
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
