"""SqliteHistoryStore: the port's semantics, durability, migrations, retention, recovery."""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from peft_notify.desktop.history import (
    SCHEMA_VERSION,
    HistoryError,
    SqliteHistoryStore,
    export_csv,
    export_json,
)
from peft_notify.ports import DeliveryStatus, HistoryQuery, HistoryStore
from peft_notify.testing import MemoryHistoryStore
from peft_notify.wire import NotificationEvent, NotificationType

NOW = 1_700_000_000.0


def event(
    kind: NotificationType = NotificationType.PROGRESS, title: str = "50% reached", **kw: object
) -> NotificationEvent:
    return NotificationEvent(type=kind, title=title, message=kw.pop("message", "step 500/1000"), **kw)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteHistoryStore]:
    s = SqliteHistoryStore(tmp_path / "h.sqlite3", now=NOW)
    yield s
    s.close()


def test_implements_the_port(store: SqliteHistoryStore) -> None:
    assert isinstance(store, HistoryStore)


def test_record_then_set_status_round_trips(store: SqliteHistoryStore) -> None:
    ev = event(milestone=50, urgency="normal")
    entry_id = store.record("job-1", "llama", ev, ts=NOW, status=DeliveryStatus.PENDING, key="milestone:50", seq=7)
    store.set_status(entry_id, DeliveryStatus.SHOWN, backend="desktop-notifier", detail="id 3")
    [entry] = store.query(HistoryQuery())
    assert entry.id == entry_id
    assert (entry.job_id, entry.job_name, entry.kind, entry.urgency) == ("job-1", "llama", "progress", "normal")
    assert (entry.title, entry.message, entry.milestone, entry.seq, entry.key) == (
        "50% reached",
        "step 500/1000",
        50,
        7,
        "milestone:50",
    )
    assert entry.status is DeliveryStatus.SHOWN
    assert (entry.backend, entry.detail, entry.read, entry.repeat) == ("desktop-notifier", "id 3", False, 1)


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    first = SqliteHistoryStore(path, now=NOW)
    first.record("j", "n", event(), ts=NOW, status=DeliveryStatus.PENDING)
    first.close()
    second = SqliteHistoryStore(path, now=NOW)
    assert [e.title for e in second.query(HistoryQuery())] == ["50% reached"]
    second.close()


def test_file_is_private_and_uses_wal(store: SqliteHistoryStore) -> None:
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_filters_by_job_kind_urgency_status_text_and_unread(store: SqliteHistoryStore) -> None:
    a = store.record("a", "alpha", event(), ts=NOW, status=DeliveryStatus.SHOWN)
    store.record(
        "b",
        "beta",
        event(NotificationType.ERROR, "CUDA OOM", urgency="critical"),
        ts=NOW + 1,
        status=DeliveryStatus.FAILED,
    )
    store.record(
        "b", "beta", event(NotificationType.WARNING, "loss 100% spike"), ts=NOW + 2, status=DeliveryStatus.WITHHELD_DND
    )
    assert [e.job_id for e in store.query(HistoryQuery(job_id="a"))] == ["a"]
    assert [e.title for e in store.query(HistoryQuery(kinds=["error", "warning"]))] == ["loss 100% spike", "CUDA OOM"]
    assert [e.title for e in store.query(HistoryQuery(urgencies=["critical"]))] == ["CUDA OOM"]
    assert [e.title for e in store.query(HistoryQuery(), statuses=[DeliveryStatus.WITHHELD_DND])] == ["loss 100% spike"]
    assert [e.title for e in store.query(HistoryQuery(text="oom"))] == ["CUDA OOM"]
    assert [e.title for e in store.query(HistoryQuery(text="alpha"))] == ["50% reached"]
    # LIKE wildcards in the search text are literal
    assert [e.title for e in store.query(HistoryQuery(text="100%"))] == ["loss 100% spike"]
    assert [e.title for e in store.query(HistoryQuery(text="_"))] == []
    store.mark_read([a])
    assert {e.id for e in store.query(HistoryQuery(unread_only=True))} == {2, 3}
    assert len(store.query(HistoryQuery(limit=1))) == 1


def test_mark_read_counts_changes(store: SqliteHistoryStore) -> None:
    ids = [store.record("j", "n", event(), ts=NOW + i, status=DeliveryStatus.SHOWN) for i in range(3)]
    assert store.unread_count() == 3
    assert store.mark_read([ids[0], 999]) == 1
    assert store.mark_read([ids[0]]) == 0
    assert store.mark_read() == 2
    assert store.unread_count() == 0


def test_merge_repeat_updates_latest_matching_entry(store: SqliteHistoryStore) -> None:
    store.record("j", "n", event(), ts=NOW, status=DeliveryStatus.SHOWN, key="warn:spike")
    newer = store.record("j", "n", event(), ts=NOW + 1, status=DeliveryStatus.SHOWN, key="warn:spike")
    store.mark_read()
    assert store.merge_repeat("j", "warn:spike", ts=NOW + 5, repeat=4) == newer
    entry = store.get(newer)
    assert entry is not None
    assert (entry.repeat, entry.ts, entry.read) == (4, NOW + 5, False)
    assert store.merge_repeat("j", "other", ts=NOW, repeat=2) is None


def test_same_semantics_as_memory_fake(store: SqliteHistoryStore) -> None:
    memory = MemoryHistoryStore()
    for target in (store, memory):
        target.record("a", "alpha", event(), ts=NOW, status=DeliveryStatus.PENDING, key="k")
        target.record("b", "beta", event(NotificationType.ERROR, "boom"), ts=NOW + 1, status=DeliveryStatus.SHOWN)
        target.merge_repeat("a", "k", ts=NOW + 2, repeat=3)
        target.set_status(1, DeliveryStatus.FALLBACK, backend="tray")
        target.mark_read([2])
    assert store.query(HistoryQuery()) == memory.query(HistoryQuery())


def test_retention_by_age_and_count(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    s = SqliteHistoryStore(path, retention_days=1, max_rows=3, now=NOW)
    s.record("j", "n", event(title="old"), ts=NOW - 2 * 86400, status=DeliveryStatus.SHOWN)
    for i in range(4):
        s.record("j", "n", event(title=f"new{i}"), ts=NOW + i, status=DeliveryStatus.SHOWN)
    assert s.prune(now=NOW + 10) == 2
    assert [e.title for e in s.query(HistoryQuery())] == ["new3", "new2", "new1"]
    s.close()


def test_corrupt_database_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not an sqlite database at all" * 100)
    with caplog.at_level(logging.ERROR, logger="peft_notify.desktop.history"):
        s = SqliteHistoryStore(path, now=NOW)
    assert s.recovered is not None
    assert "moved to" in s.recovered
    aside = list(tmp_path.glob("h.sqlite3.broken-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not")
    assert any("unusable" in r.getMessage() for r in caplog.records)
    s.record("j", "n", event(), ts=NOW, status=DeliveryStatus.SHOWN)
    assert len(s.query(HistoryQuery())) == 1
    s.close()


def test_newer_schema_is_moved_aside_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    s = SqliteHistoryStore(path, now=NOW)
    assert s.recovered is not None
    assert "newer" in s.recovered
    s.close()


def test_migrates_an_empty_version_zero_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    sqlite3.connect(path).close()
    s = SqliteHistoryStore(path, now=NOW)
    assert s.recovered is None
    assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    s.close()


def test_environment_failure_raises_history_error(tmp_path: Path) -> None:
    s = SqliteHistoryStore(tmp_path / "h.sqlite3", now=NOW)
    s.close()
    with pytest.raises(HistoryError):
        s.record("j", "n", event(), ts=NOW, status=DeliveryStatus.PENDING)


def test_unwritable_directory_raises_history_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HistoryError):
        SqliteHistoryStore(blocker / "sub" / "h.sqlite3", now=NOW)


def test_exports(store: SqliteHistoryStore) -> None:
    store.record("j", "n", event(title='say "hi", ok'), ts=NOW, status=DeliveryStatus.SHOWN)
    entries = store.query(HistoryQuery())
    data = json.loads(export_json(entries))
    assert data[0]["title"] == 'say "hi", ok'
    assert data[0]["status"] == "shown"
    rows = list(csv.DictReader(io.StringIO(export_csv(entries))))
    assert rows[0]["title"] == 'say "hi", ok'
    assert rows[0]["job_id"] == "j"
    assert export_csv([]).startswith("id,ts,job_id")
