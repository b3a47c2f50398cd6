"""SqliteHistoryStore: the port's semantics, durability, migrations, retention, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import errno
import io
import json
import logging
import multiprocessing
import os
import sqlite3
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peft_notify.desktop.dispatch import Dispatcher
from peft_notify.desktop.history import (
    _MIGRATIONS,
    SCHEMA_VERSION,
    HistoryError,
    NotAHistoryDatabase,
    SqliteHistoryStore,
    default_history_path,
    export_csv,
    export_json,
)
from peft_notify.engine.actions import Notify
from peft_notify.ports import DeliveryStatus, HistoryQuery, HistoryStore
from peft_notify.testing import MemoryHistoryStore, RecordingNotifier, RecordingTaskbar
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


@pytest.fixture
def default_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's own default history path, inside tmp_path (platformdirs honours XDG_DATA_HOME)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    path = default_history_path()
    assert path.is_relative_to(tmp_path)
    return path


def test_corrupt_default_database_is_moved_aside(default_db: Path, caplog: pytest.LogCaptureFixture) -> None:
    default_db.parent.mkdir(parents=True)
    default_db.write_bytes(b"this is not an sqlite database at all" * 100)
    with caplog.at_level(logging.ERROR, logger="peft_notify.desktop.history"):
        s = SqliteHistoryStore(now=NOW)
    assert s.recovered is not None
    assert "moved to" in s.recovered
    assert "SQLITE_NOTADB" in s.recovered
    aside = list(default_db.parent.glob("history.sqlite3.broken-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not")
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    s.record("j", "n", event(), ts=NOW, status=DeliveryStatus.SHOWN)
    assert len(s.query(HistoryQuery())) == 1
    s.close()


def test_damaged_pages_of_the_default_database_are_moved_aside(default_db: Path) -> None:
    # Real corruption SQLite finds itself: overwrite the table's pages after the header.
    s = SqliteHistoryStore(now=NOW)
    for i in range(300):
        s.record("j", "n", event(title=f"t{i}", message="x" * 200), ts=NOW + i, status=DeliveryStatus.SHOWN)
    s.close()
    data = bytearray(default_db.read_bytes())
    data[4096 : len(data)] = b"\xff" * (len(data) - 4096)
    default_db.write_bytes(bytes(data))
    s = SqliteHistoryStore(now=NOW)
    assert s.recovered is not None
    assert len(list(default_db.parent.glob("history.sqlite3.broken-*"))) == 1
    s.close()


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry below ``directory``: its mode and (for files) its content."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for p in sorted(directory.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(directory))] = (st.st_mode, p.read_bytes() if p.is_file() else None)
    return out


def test_a_user_given_file_that_is_not_sqlite_is_never_touched(tmp_path: Path) -> None:
    # The attack: `history --db /etc/passwd`-like paths got chmod 0600, renamed and replaced.
    path = tmp_path / "notes.txt"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    path.chmod(0o644)
    before = _snapshot(tmp_path)
    with pytest.raises(HistoryError, match="not an SQLite database"):
        SqliteHistoryStore(path, now=NOW)
    assert _snapshot(tmp_path) == before


def test_a_user_given_directory_is_never_touched(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    target.mkdir(mode=0o755)
    (target / "hosts").write_text("127.0.0.1 localhost\n")
    before = _snapshot(tmp_path)
    with pytest.raises(HistoryError, match="not a regular file"):
        SqliteHistoryStore(target, now=NOW)
    with pytest.raises(NotAHistoryDatabase, match="not a file"):
        SqliteHistoryStore(target, read_only=True)
    assert _snapshot(tmp_path) == before


def test_corrupt_user_given_database_is_not_moved(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    SqliteHistoryStore(path, now=NOW).close()
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)
    path.write_bytes(bytes(data))
    before = _snapshot(tmp_path)
    with pytest.raises(HistoryError, match="left untouched"):
        SqliteHistoryStore(path, now=NOW)
    assert _snapshot(tmp_path) == before


def test_newer_schema_is_left_untouched(default_db: Path) -> None:
    # Not corruption: a newer peft-notify wrote it. Moving it aside would hide that version's
    # history, so the store refuses it (the app then keeps history in memory) and touches nothing.
    default_db.parent.mkdir(parents=True)
    db = sqlite3.connect(default_db)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = _snapshot(default_db.parent)
    with pytest.raises(HistoryError, match="newer"):
        SqliteHistoryStore(now=NOW)
    assert _snapshot(default_db.parent) == before


def _hold_exclusive_lock(path: Path) -> sqlite3.Connection:
    """A second connection that holds an EXCLUSIVE lock on a rollback-journal database."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=DELETE")
    for target in range(SCHEMA_VERSION):
        for statement in _MIGRATIONS[target]:
            holder.execute(statement)
    holder.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    holder.execute(
        "INSERT INTO notifications (ts, job_id, kind, urgency, title, status) VALUES (?, 'j', 'error', 'critical',"
        " 'precious', 'shown')",
        (NOW,),
    )
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_locked_default_database_is_not_moved_aside(default_db: Path) -> None:
    # The attack: any DatabaseError counted as corruption, so a merely locked healthy database
    # (and its -wal) was renamed aside and history said "No notifications match".
    default_db.parent.mkdir(parents=True)
    holder = _hold_exclusive_lock(default_db)
    try:
        with pytest.raises(HistoryError, match="locked"):
            SqliteHistoryStore(timeout=0.05, now=NOW)
        assert list(default_db.parent.glob("*.broken-*")) == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    s = SqliteHistoryStore(now=NOW)
    assert s.recovered is None
    assert [e.title for e in s.query(HistoryQuery())] == ["precious"]
    s.close()


def test_a_lock_released_while_retrying_is_waited_for(default_db: Path) -> None:
    default_db.parent.mkdir(parents=True)
    holder = _hold_exclusive_lock(default_db)
    release = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        s = SqliteHistoryStore(timeout=0.05, now=NOW)  # busy timeout shorter than the lock: retries win
    finally:
        release.join()
        holder.close()
    assert s.recovered is None
    assert [e.title for e in s.query(HistoryQuery())] == ["precious"]
    s.close()


def _open_and_record(barrier: Any, results: Any, index: int) -> None:
    try:
        barrier.wait(timeout=10)
        store = SqliteHistoryStore(now=NOW)
        store.record("j", "n", event(title=f"p{index}"), ts=NOW, status=DeliveryStatus.SHOWN)
        results.put((index, store.recovered or "ok"))
        store.close()
    except BaseException as exc:
        results.put((index, f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
def test_concurrent_first_opens_race_safely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The attack: 4 processes opening a fresh database at once moved it aside in 24 of 30
    # trials ("table notifications already exists") and some failed with "disk I/O error".
    ctx = multiprocessing.get_context("fork")
    for trial in range(30):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / f"trial{trial}"))
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_and_record, args=(barrier, results, i)) for i in range(4)]
        for p in procs:
            p.start()
        outcomes = sorted(results.get(timeout=30) for _ in procs)
        for p in procs:
            p.join(timeout=10)
        assert outcomes == [(i, "ok") for i in range(4)], f"trial {trial}"
        path = default_history_path()
        assert list(path.parent.glob("*.broken-*")) == [], f"trial {trial}"
        s = SqliteHistoryStore(read_only=True)
        assert sorted(e.title for e in s.query(HistoryQuery())) == ["p0", "p1", "p2", "p3"]
        s.close()


def test_read_only_open_creates_moves_and_chmods_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    s = SqliteHistoryStore(path, now=NOW)
    s.record("j", "n", event(), ts=NOW, status=DeliveryStatus.SHOWN)
    s.close()
    path.chmod(0o640)
    before = _snapshot(tmp_path)
    ro = SqliteHistoryStore(path, read_only=True)
    assert [e.title for e in ro.query(HistoryQuery())] == ["50% reached"]
    with pytest.raises(HistoryError):
        ro.record("j", "n", event(), ts=NOW, status=DeliveryStatus.SHOWN)
    ro.close()
    assert _snapshot(tmp_path) == before


def test_read_only_sees_a_running_writer(tmp_path: Path) -> None:
    # With the app running (its -wal present) the reader uses mode=ro and sees committed rows.
    path = tmp_path / "h.sqlite3"
    writer = SqliteHistoryStore(path, now=NOW)
    writer.record("j", "n", event(title="live"), ts=NOW, status=DeliveryStatus.SHOWN)
    ro = SqliteHistoryStore(path, read_only=True)
    assert [e.title for e in ro.query(HistoryQuery())] == ["live"]
    ro.close()
    writer.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "not an SQLite database"),
        (b"hello, world\n" * 50, "not an SQLite database"),
        ("sqlite-without-history", "holds no peft-notify history"),
    ],
)
def test_read_only_refuses_what_is_not_a_history(tmp_path: Path, content: bytes | str | None, message: str) -> None:
    path = tmp_path / "x.db"
    if content == "sqlite-without-history":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t (x)")
        db.close()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    before = _snapshot(tmp_path)
    with pytest.raises(NotAHistoryDatabase, match=message):
        SqliteHistoryStore(path, read_only=True)
    assert _snapshot(tmp_path) == before


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


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB tmpfs, so the disk really fills up (needs root and mount permission)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_full_disk_keeps_notifications_showing_and_says_so_once(
    small_tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_tmpfs / "h.sqlite3"
    store = SqliteHistoryStore(path, now=NOW)
    store.record("j", "n", event(title="before"), ts=NOW, status=DeliveryStatus.SHOWN)
    notifier = RecordingNotifier()
    dispatcher = Dispatcher(store, [notifier], RecordingTaskbar())
    filler = _fill(small_tmpfs)
    with caplog.at_level(logging.INFO, logger="peft_notify.desktop"):
        for i in range(20):
            asyncio.run(dispatcher.perform([Notify("job", event(title=f"n{i}", message="x" * 3000), key=f"k{i}")]))
        assert len(notifier.requests) == 20  # every notification still reached the user
        said = [r for r in caplog.records if "history is not being written" in r.getMessage()]
        assert len(said) == 1
        assert "SQLITE_FULL" in said[0].getMessage()
        filler.unlink()
        asyncio.run(dispatcher.perform([Notify("job", event(title="after"), key="after")]))
        assert any("being written again" in r.getMessage() for r in caplog.records)
    titles = [e.title for e in store.query(HistoryQuery())]
    assert titles[0] == "after"
    assert "before" in titles
    assert len(titles) < 22  # some were really lost to the full disk, yet nothing was moved aside
    assert sorted(p.name for p in small_tmpfs.iterdir() if "broken" in p.name) == []
    store.close()


def test_history_entries_are_redacted(store: SqliteHistoryStore) -> None:
    token = "hf_" + "AbC123" * 6
    store.record(
        "j",
        f"train.py --hf-token {token}",
        event(NotificationType.ERROR, f"auth failed for {token}", message="git clone https://alice:pw@host/r"),
        ts=NOW,
        status=DeliveryStatus.SHOWN,
    )
    [entry] = store.query(HistoryQuery())
    stored = " ".join([entry.job_name, entry.title, entry.message])
    assert token not in stored
    assert "alice:pw" not in stored
    assert stored.count("[redacted]") == 3
    raw = store.path.read_bytes() + Path(f"{store.path}-wal").read_bytes()
    assert token.encode() not in raw


@pytest.mark.parametrize("payload", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_export_makes_formulas_inert(store: SqliteHistoryStore, payload: str) -> None:
    # The attack: a job named `=cmd|' /C calc'!A0` became a live formula in the exported CSV.
    store.record(payload, payload, event(title=payload, message=payload), ts=NOW, status=DeliveryStatus.SHOWN)
    [row] = list(csv.DictReader(io.StringIO(export_csv(store.query(HistoryQuery())))))
    for column in ("job_id", "job_name", "title", "message"):
        assert row[column] == "'" + payload
    assert float(row["ts"]) == NOW  # numbers stay numbers


def test_retention_by_count_keeps_the_newest_even_among_equal_timestamps(tmp_path: Path) -> None:
    """The count pass keeps the newest max_rows by (ts, id): ties at the cut are decided by id."""
    s = SqliteHistoryStore(tmp_path / "h.sqlite3", max_rows=3, now=NOW)
    ids = [s.record("j", "n", event(title=f"e{i}"), ts=NOW + (i >= 2), status=DeliveryStatus.SHOWN) for i in range(5)]
    assert s.prune(now=NOW + 10) == 2
    assert [e.id for e in s.query(HistoryQuery())] == [ids[4], ids[3], ids[2]]
    s.close()


def test_nothing_slow_runs_in_the_write_before_a_notification_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PENDING record the dispatcher writes right before the notifier is one INSERT: the retention
    pass (~50 ms at 100,000 rows) and the WAL checkpoint (an fsync: ~3 ms here, more on a busy disk)
    that fall due run in the set_status after the notification was shown (issue 17, notify latency).
    SQLite's own checkpoint is off on this connection, so no INSERT commits into one either."""
    monkeypatch.setattr("peft_notify.desktop.history._PRUNE_EVERY", 5)
    monkeypatch.setattr("peft_notify.desktop.history._CHECKPOINT_EVERY", 4)
    store = SqliteHistoryStore(tmp_path / "h.sqlite3", max_rows=3, now=NOW)
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    sql: list[str] = []
    store._db.set_trace_callback(sql.append)
    ids = [store.record("j", "n", event(title=f"m{i}"), ts=NOW + i, status=DeliveryStatus.PENDING) for i in range(6)]
    assert sql and all(s.lstrip().startswith("INSERT") for s in sql)  # no DELETE, no checkpoint
    sql.clear()
    store.set_status(ids[-1], DeliveryStatus.SHOWN)  # shown: now the upkeep
    assert any(s.startswith("DELETE") for s in sql) and any("wal_checkpoint" in s for s in sql)
    assert [e.id for e in store.query(HistoryQuery())] == ids[:2:-1]
    store.close()


def test_the_notifier_sees_a_recorded_entry_and_no_upkeep_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real dispatcher: when the notifier is called its entry is in history (PENDING),
    and the retention pass / checkpoint that were due did not run before it; after perform, the
    entry is SHOWN and the upkeep has run. Every notification is in history."""
    monkeypatch.setattr("peft_notify.desktop.history._PRUNE_EVERY", 3)
    monkeypatch.setattr("peft_notify.desktop.history._CHECKPOINT_EVERY", 2)
    store = SqliteHistoryStore(tmp_path / "h.sqlite3", now=NOW)
    sql: list[str] = []
    store._db.set_trace_callback(sql.append)
    seen: list[tuple[DeliveryStatus | None, list[str]]] = []

    class Checking(RecordingNotifier):
        async def notify(self, request: Any) -> Any:
            entry = store.get(request.record_id)
            seen.append((entry.status if entry else None, [s for s in sql if not s.startswith("SELECT")]))
            return await super().notify(request)

    dispatcher = Dispatcher(store, [Checking()], RecordingTaskbar(), clock=lambda: NOW)
    for i in range(4):
        sql.clear()
        asyncio.run(dispatcher.perform([Notify("job", event(title=f"n{i}"), key=f"k{i}")]))
    assert [status for status, _ in seen] == [DeliveryStatus.PENDING] * 4
    assert all(len(writes) == 1 and writes[0].startswith("INSERT") for _, writes in seen)
    assert any("wal_checkpoint" in s for s in sql)  # the last one's upkeep: after it was shown
    entries = store.query(HistoryQuery())
    assert [e.title for e in entries] == ["n3", "n2", "n1", "n0"]
    assert {e.status for e in entries} == {DeliveryStatus.SHOWN}
    store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["record", "repeat", "read_one", "read_all", "prune", "other", "count"]), max_size=30))
def test_the_kept_unread_count_is_always_the_real_count(tmp_path: Path, ops: list[str]) -> None:
    """unread_count() is counted once and then kept by the store's own writes (the tray asks several
    times a second; a COUNT(*) was ~7 ms at 100,000 entries): after any mix of records, repeats that
    re-mark a read entry unread, marks, retention deletes and writes by another process's store, it
    equals a fresh COUNT(*)."""
    path = tmp_path / f"h-{len(list(tmp_path.iterdir()))}.sqlite3"
    store = SqliteHistoryStore(path, now=NOW, max_rows=2)
    other = SqliteHistoryStore(path, now=NOW)
    try:
        ts, ids = NOW, []
        for op in ops:
            ts += 1
            if op == "record":
                ids.append(
                    store.record("j", "job", event(), ts=ts, status=DeliveryStatus.SHOWN, key=f"k{len(ids) % 2}")
                )
            elif op == "repeat":
                store.merge_repeat("j", "k0", ts=ts, repeat=2)
            elif op == "read_one" and ids:
                store.mark_read([ids[-1]])
            elif op == "read_all":
                store.mark_read()
            elif op == "prune":
                store.prune(now=ts)
            elif op == "other":  # another process (watch, a second app) writes the same file
                other.record("o", "other", event(), ts=ts, status=DeliveryStatus.SHOWN)
                if len(ops) % 2:
                    other.mark_read()
            assert store.unread_count() == _fresh_unread(path)
    finally:
        store.close()
        other.close()


def _fresh_unread(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM notifications WHERE read = 0").fetchone()[0])
