"""Notification history in SQLite: every notification the engine decides, kept before the OS sees it.

:class:`SqliteHistoryStore` implements :class:`peft_notify.ports.HistoryStore`. Open one per
process (the app, ``peft-notify history``) and call it from one thread. The database lives in
the platformdirs user data dir (:func:`default_history_path`), uses WAL, migrates its schema
with ``PRAGMA user_version`` and prunes by age and row count. A database that cannot be opened
(corrupt, not a database, locked past the timeout) is moved aside and a fresh one created: the
app never fails to start because of its history. ``recovered`` then says what happened so the
UI can tell the user. Environment failures later on raise :class:`HistoryError`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import platformdirs

from peft_notify.ports import DeliveryStatus, HistoryEntry, HistoryQuery
from peft_notify.wire import NotificationEvent

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_RETENTION_DAYS",
    "HistoryError",
    "SqliteHistoryStore",
    "default_history_path",
    "entry_to_dict",
    "export_csv",
    "export_json",
]

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS: Final = 90.0
DEFAULT_MAX_ROWS: Final = 100_000
_PRUNE_EVERY: Final = 500  # records between two retention passes

_COLUMNS: Final = (
    "id, ts, job_id, job_name, kind, urgency, title, message, status, key, repeat, read, "
    "milestone, error_type, backend, detail, seq"
)

# Index i holds the SQL that takes the schema from version i to i + 1.
_MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        job_id TEXT NOT NULL,
        job_name TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        urgency TEXT NOT NULL,
        title TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        key TEXT NOT NULL DEFAULT '',
        repeat INTEGER NOT NULL DEFAULT 1,
        read INTEGER NOT NULL DEFAULT 0,
        milestone INTEGER,
        error_type TEXT,
        backend TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        seq INTEGER
    );
    CREATE INDEX notifications_ts ON notifications (ts);
    CREATE INDEX notifications_job_key ON notifications (job_id, key);
    """,
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)


class HistoryError(Exception):
    """The history database failed for an environment reason (disk full, permissions, locked)."""


def default_history_path() -> Path:
    """Where the app keeps its history: ``<user data dir>/peft-notify/history.sqlite3``."""
    return Path(platformdirs.user_data_dir("peft-notify", appauthor=False)) / "history.sqlite3"


def _enum_value(value: object) -> str:
    return str(getattr(value, "value", value))


class SqliteHistoryStore:
    """Durable notification history (see the module docstring).

    Raises :class:`HistoryError` from any method when SQLite fails; never on construction
    unless even a fresh database cannot be created (e.g. the directory is not writable).
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout: float = 2.0,
        now: float | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_history_path()
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.recovered: str | None = None  # set when a bad database was moved aside
        self._timeout = timeout
        self._since_prune = 0
        try:
            self._db = self._open()
        except OSError as exc:
            raise HistoryError(f"cannot create a history database at {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            moved = self._move_aside(exc)
            try:
                self._db = self._open()
            except (sqlite3.Error, OSError) as again:
                raise HistoryError(f"cannot create a history database at {self.path}: {again}") from again
            self.recovered = (
                f"The history database was unreadable ({exc}); it was moved to {moved} and a new one started."
            )
            log.error("%s", self.recovered)
        self.prune(now=now)

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Create it 0600 ourselves: SQLite would honour the umask. Its -wal/-shm files copy this mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)
        db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this program's {SCHEMA_VERSION}")
        for target in range(version, SCHEMA_VERSION):
            db.executescript(f"BEGIN; {_MIGRATIONS[target]}; PRAGMA user_version = {target + 1}; COMMIT;")
            log.info("history database migrated to schema %d", target + 1)

    def _move_aside(self, exc: BaseException) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{target}{suffix}"))
        log.error("history database %s is unusable (%s); moved to %s", self.path, exc, target)
        return target

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._db.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise HistoryError(f"history database error: {exc}") from exc

    # -- HistoryStore port ---------------------------------------------------------------

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
        """Store one notification; returns its id. Call before handing it to the OS."""
        cursor = self._execute(
            "INSERT INTO notifications (ts, job_id, job_name, kind, urgency, title, message, status, key,"
            " milestone, error_type, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ts,
                job_id,
                job_name,
                _enum_value(event.type),
                _enum_value(event.urgency),
                event.title,
                event.message,
                status.value,
                key,
                event.milestone,
                event.error_type,
                seq,
            ),
        )
        entry_id = cursor.lastrowid
        assert entry_id is not None
        self._since_prune += 1
        if self._since_prune >= _PRUNE_EVERY:
            self.prune(now=ts)
        return entry_id

    def merge_repeat(self, job_id: str, key: str, *, ts: float, repeat: int) -> int | None:
        """Bump the newest (job, key) entry's repeat count and mark it unread; its id, or None."""
        row = self._execute(
            "SELECT id FROM notifications WHERE job_id = ? AND key = ? ORDER BY id DESC LIMIT 1", (job_id, key)
        ).fetchone()
        if row is None:
            return None
        self._execute("UPDATE notifications SET repeat = ?, ts = ?, read = 0 WHERE id = ?", (repeat, ts, row[0]))
        return int(row[0])

    def set_status(self, entry_id: int, status: DeliveryStatus, *, backend: str = "", detail: str = "") -> None:
        """Record what became of a notification (shown, fallback, failed)."""
        self._execute(
            "UPDATE notifications SET status = ?, backend = ?, detail = ? WHERE id = ?",
            (status.value, backend, detail, entry_id),
        )

    def query(self, query: HistoryQuery, *, statuses: Iterable[DeliveryStatus] = ()) -> list[HistoryEntry]:
        """Entries matching ``query`` (and any of ``statuses``), newest first."""
        where: list[str] = []
        params: list[Any] = []
        if query.job_id is not None:
            where.append("job_id = ?")
            params.append(query.job_id)
        for column, values in (("kind", list(query.kinds)), ("urgency", list(query.urgencies))):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        wanted = [s.value for s in statuses]
        if wanted:
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if query.text:
            pattern = "%" + query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(title LIKE ? ESCAPE '\\' OR message LIKE ? ESCAPE '\\' OR job_name LIKE ? ESCAPE '\\')")
            params.extend([pattern, pattern, pattern])
        if query.unread_only:
            where.append("read = 0")
        sql = f"SELECT {_COLUMNS} FROM notifications"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        params.append(query.limit)
        return [_entry(row) for row in self._execute(sql, params).fetchall()]

    def mark_read(self, ids: Sequence[int] | None = None) -> int:
        """Mark ``ids`` (all when None) read; returns how many changed."""
        if ids is None:
            return self._execute("UPDATE notifications SET read = 1 WHERE read = 0").rowcount
        changed = 0
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            sql = f"UPDATE notifications SET read = 1 WHERE read = 0 AND id IN ({', '.join('?' * len(chunk))})"
            changed += self._execute(sql, chunk).rowcount
        return changed

    # -- extras for the UI and the CLI ---------------------------------------------------

    def get(self, entry_id: int) -> HistoryEntry | None:
        """One entry by id."""
        row = self._execute(f"SELECT {_COLUMNS} FROM notifications WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else _entry(row)

    def unread_count(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM notifications WHERE read = 0").fetchone()[0])

    def jobs(self) -> list[tuple[str, str]]:
        """(job_id, job_name) pairs present in history, most recent first."""
        rows = self._execute(
            "SELECT job_id, job_name, MAX(ts) AS last FROM notifications GROUP BY job_id ORDER BY last DESC"
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def prune(self, now: float | None = None) -> int:
        """Apply retention (age, then row count); returns how many rows were deleted."""
        self._since_prune = 0
        cutoff = (time.time() if now is None else now) - self.retention_days * 86400.0
        deleted = self._execute("DELETE FROM notifications WHERE ts < ?", (cutoff,)).rowcount
        deleted += self._execute(
            "DELETE FROM notifications WHERE id NOT IN"
            " (SELECT id FROM notifications ORDER BY ts DESC, id DESC LIMIT ?)",
            (self.max_rows,),
        ).rowcount
        if deleted:
            log.info("history retention removed %d entries", deleted)
        return deleted


def _entry(row: sqlite3.Row) -> HistoryEntry:
    try:
        status = DeliveryStatus(row["status"])
    except ValueError:  # written by a newer version: keep the row visible
        status = DeliveryStatus.PENDING
    return HistoryEntry(
        id=int(row["id"]),
        ts=float(row["ts"]),
        job_id=row["job_id"],
        job_name=row["job_name"],
        kind=row["kind"],
        urgency=row["urgency"],
        title=row["title"],
        message=row["message"],
        status=status,
        key=row["key"],
        repeat=int(row["repeat"]),
        read=bool(row["read"]),
        milestone=row["milestone"],
        error_type=row["error_type"],
        backend=row["backend"],
        detail=row["detail"],
        seq=row["seq"],
    )


def entry_to_dict(entry: HistoryEntry) -> dict[str, Any]:
    """A JSON-ready dict of one entry (status as its string value)."""
    out = asdict(entry)
    out["status"] = entry.status.value
    return out


def export_json(entries: Iterable[HistoryEntry]) -> str:
    """Entries as a JSON array (what ``peft-notify history --json`` prints)."""
    return json.dumps([entry_to_dict(e) for e in entries], indent=2, ensure_ascii=False)


def export_csv(entries: Iterable[HistoryEntry]) -> str:
    """Entries as CSV with a header row."""
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for entry in entries:
        row = entry_to_dict(entry)
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)
    if writer is None:
        buffer.write(_COLUMNS.replace(" ", "") + "\r\n")
    return buffer.getvalue()
