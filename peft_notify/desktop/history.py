"""Notification history in SQLite: every notification the engine decides, kept before the OS sees it.

:class:`SqliteHistoryStore` implements :class:`peft_notify.ports.HistoryStore`. Open one per
process (the app, ``peft-notify history``) and call it from one thread. The database lives in
the platformdirs user data dir (:func:`default_history_path`), uses WAL, migrates its schema
with ``PRAGMA user_version`` inside one ``BEGIN IMMEDIATE`` transaction (concurrent first opens
race safely) and prunes by age and row count.

Data safety (issue 10 item 11):

- ``read_only=True`` (``peft-notify history``) opens ``file:...?mode=ro`` and never creates,
  moves or chmods anything; a path that does not exist, is not a regular file, is not an
  SQLite file or holds no history raises :class:`NotAHistoryDatabase`.
- Only the app's own default database is ever moved aside, and only when SQLite itself proves
  it corrupt (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``, a failed ``PRAGMA quick_check``);
  ``recovered`` then says what happened so the UI can tell the user. A locked, busy, full or
  unreadable database is never moved: locks are waited for (busy timeout, then retries) and
  everything else raises :class:`HistoryError`, which the dispatcher reports once while
  notifications keep showing.

Nothing slow runs before a notification is shown (issue 17, notify latency): the write of a
``PENDING`` entry (the dispatcher's, right before the notifier) is one INSERT, committed to the
WAL without an fsync (``synchronous=NORMAL``). The slow parts — the WAL checkpoint (which
fsyncs; SQLite's automatic one is switched off on this connection) and the retention pass —
run in the next write that comes after the notification was shown (``set_status``, or any
write that is not a ``PENDING`` record) once they are due. A crash in between loses nothing:
the WAL is checkpointed when the database is next opened.

Job-provided text (names, titles, messages) is passed through :func:`peft_notify.redact.redact`
before it is written, so a job server that does not redact still gets no secret on disk.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, TypeVar

import platformdirs

from peft_notify.ports import DeliveryStatus, HistoryEntry, HistoryQuery
from peft_notify.redact import redact
from peft_notify.wire import NotificationEvent

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DEFAULT_RETENTION_DAYS",
    "HistoryError",
    "NotAHistoryDatabase",
    "SqliteHistoryStore",
    "csv_safe",
    "default_history_path",
    "entry_to_dict",
    "export_csv",
    "export_json",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_RETENTION_DAYS: Final = 90.0
DEFAULT_MAX_ROWS: Final = 100_000
_PRUNE_EVERY: Final = 500  # records between two retention passes
_CHECKPOINT_EVERY: Final = 300  # writes between two WAL checkpoints (~3 pages each: SQLite's default is 1000 pages)
# A PENDING record checkpoints only when this far overdue (nothing wrote after a notification for long).
_CHECKPOINT_OVERDUE: Final = 10 * _CHECKPOINT_EVERY
_SQLITE_HEADER: Final = b"SQLite format 3\x00"
# Primary result codes (the low byte of extended codes) that prove the file itself is bad.
_CORRUPTION: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# Another connection holds a lock: wait and retry, never treat as damage.
_CONTENTION: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_RETRIES: Final = 5

_COLUMNS: Final = (
    "id, ts, job_id, job_name, kind, urgency, title, message, status, key, repeat, read, "
    "milestone, error_type, backend, detail, seq"
)

# Index i holds the statements that take the schema from version i to i + 1. They run one by
# one inside the BEGIN IMMEDIATE transaction of _migrate (executescript would commit first).
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
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
        )
        """,
        "CREATE INDEX notifications_ts ON notifications (ts)",
        "CREATE INDEX notifications_job_key ON notifications (job_id, key)",
    ),
    (  # 2: what each notification channel did with an entry (issue 13)
        """
        CREATE TABLE channel_deliveries (
            entry_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            ts REAL NOT NULL,
            PRIMARY KEY (entry_id, channel)
        )
        """,
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)


class HistoryError(Exception):
    """The history database failed for an environment reason (disk full, permissions, locked)."""


class NotAHistoryDatabase(HistoryError):
    """The path does not exist, is not a regular file, or holds no peft-notify history."""


class _IntegrityFailure(Exception):
    """``PRAGMA quick_check`` reported damage: SQLite's own proof of corruption."""


class _NewerSchema(Exception):
    """A newer peft-notify wrote this database: never overwrite or move it."""


def default_history_path() -> Path:
    """Where the app keeps its history: ``<user data dir>/peft-notify/history.sqlite3``."""
    return Path(platformdirs.user_data_dir("peft-notify", appauthor=False)) / "history.sqlite3"


def _enum_value(value: object) -> str:
    return str(getattr(value, "value", value))


def _code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (None when it did not come from SQLite)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _is_corruption(exc: BaseException) -> bool:
    return isinstance(exc, _IntegrityFailure) or _code(exc) in _CORRUPTION


def _describe(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)


def _with_retries(func: Callable[[], T], attempts: int = _RETRIES) -> T:
    """Run ``func``; on SQLITE_BUSY/LOCKED (past the busy timeout) wait and try again."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return func()
        except sqlite3.Error as exc:
            if _code(exc) not in _CONTENTION or attempt == attempts - 1:
                raise
            log.debug("history database busy (%s); retrying in %.2f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")  # pragma: no cover


class SqliteHistoryStore:
    """Durable notification history (see the module docstring).

    Raises :class:`HistoryError` from any method when SQLite fails. The constructor raises it
    when the database cannot be opened (locked past the retries, not writable, written by a
    newer version, or — for any path but the app's default — damaged), and
    :class:`NotAHistoryDatabase` when ``read_only`` and the path holds no history.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        read_only: bool = False,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        max_rows: int = DEFAULT_MAX_ROWS,
        timeout: float = 2.0,
        now: float | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_history_path()
        self.read_only = read_only
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.recovered: str | None = None  # set when a corrupt default database was moved aside
        self._timeout = timeout
        self._since_prune = 0
        self._since_checkpoint = 0
        # The unread count, kept up to date by our own writes; recounted when another connection
        # committed (PRAGMA data_version moved) or after a delete. The tray asks several times a
        # second while notifications come in: a COUNT(*) was ~7 ms at 100,000 entries.
        self._unread: int | None = None
        self._unread_seen = -1
        self._last_ts: float | None = None  # the newest record's time: "now" for a retention pass it made due
        if read_only:
            self._db = self._open_read_only()
            return
        try:
            self._db = self._open()
        except (OSError, _NewerSchema) as exc:
            raise HistoryError(f"cannot open the history database at {self.path}: {exc}") from exc
        except (sqlite3.Error, _IntegrityFailure) as exc:
            if not (_is_corruption(exc) and self._is_default()):
                raise HistoryError(
                    f"cannot open the history database at {self.path}: {_describe(exc)}; it was left untouched"
                ) from exc
            moved = self._move_aside(exc)
            try:
                self._db = self._open()
            except (sqlite3.Error, OSError, _IntegrityFailure, _NewerSchema) as again:
                raise HistoryError(f"cannot create a history database at {self.path}: {again}") from again
            self.recovered = (
                f"The history database was damaged ({_describe(exc)}); it was moved to {moved} and a new one started."
            )
            log.error("%s", self.recovered)
        self.prune(now=now)

    # -- opening -------------------------------------------------------------------------

    def _is_default(self) -> bool:
        """Only the app's own database may ever be moved aside (never a user-given path)."""
        try:
            return self.path.resolve() == default_history_path().resolve()
        except OSError:
            return False

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            # Create it 0600 ourselves (SQLite would honour the umask); -wal/-shm copy this mode.
            # O_EXCL: of several processes opening a fresh path at once exactly one creates it.
            flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            os.close(os.open(self.path, flags, 0o600))
        except FileExistsError:
            self._check_existing()
        db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            # Read before changing anything: a newer version's database is left exactly as it is.
            version = int(_with_retries(lambda: db.execute("PRAGMA user_version").fetchone()[0]))
            if version > SCHEMA_VERSION:
                raise _NewerSchema(
                    f"schema version {version} is newer than this program's {SCHEMA_VERSION}"
                    " (written by a newer peft-notify)"
                )
            _with_retries(lambda: db.execute("PRAGMA journal_mode=WAL").fetchone())
            db.execute("PRAGMA synchronous=NORMAL")
            # The checkpoint (the fsync) runs after a notification is shown, never in the write before it.
            db.execute("PRAGMA wal_autocheckpoint=0")
            check = _with_retries(lambda: db.execute("PRAGMA quick_check").fetchone()[0])
            if check != "ok":
                raise _IntegrityFailure(f"integrity check failed: {check}")
            _with_retries(lambda: self._migrate(db))
        except BaseException:
            db.close()
            raise
        self._keep_private()
        return db

    def _keep_private(self) -> None:
        """Our own database stays 0600 (older versions created it with the umask's mode)."""
        if not self._is_default():
            return
        try:
            st = self.path.stat()
            if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(self.path, 0o600)
        except OSError:
            log.warning("could not make %s private", self.path, exc_info=True)

    def _check_existing(self) -> None:
        """Refuse an existing path that is not a regular file or (unless ours) not SQLite; touch nothing."""
        st = self.path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{self.path} is not a regular file")
        if self._is_default():
            return  # our own file: SQLite itself decides whether it is damaged
        if st.st_size and _read_header(self.path) != _SQLITE_HEADER:
            raise OSError(f"{self.path} is not an SQLite database")

    def _migrate(self, db: sqlite3.Connection) -> None:
        if int(db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION:
            return
        # One write transaction: a second process opening the same fresh file waits here (busy
        # timeout), then sees the new version and does nothing.
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise _NewerSchema(
                    f"schema version {version} is newer than this program's {SCHEMA_VERSION}"
                    " (written by a newer peft-notify)"
                )
            for target in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[target]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if version < SCHEMA_VERSION:
            log.info("history database migrated to schema %d", SCHEMA_VERSION)

    def _open_read_only(self) -> sqlite3.Connection:
        """Open for reading only: ``mode=ro``, nothing created, moved or chmod-ed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise NotAHistoryDatabase(f"{self.path} does not exist") from None
        except OSError as exc:
            raise HistoryError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise NotAHistoryDatabase(f"{self.path} is not a file")
        try:
            header = _read_header(self.path, 20)
        except OSError as exc:
            raise HistoryError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if header[:16] != _SQLITE_HEADER:
            raise NotAHistoryDatabase(f"{self.path} is not an SQLite database")
        # A WAL database with no -wal file has no open writer; opening it mode=ro would still
        # create -wal/-shm next to it, so read it as immutable instead (creates nothing).
        wal_mode = header[18:20] == b"\x02\x02"
        immutable = wal_mode and not Path(f"{self.path}-wal").exists()
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")
        try:
            db = sqlite3.connect(uri, uri=True, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot open {self.path}: {_describe(exc)}") from exc
        try:
            db.row_factory = sqlite3.Row
            table = _with_retries(
                lambda: db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'notifications'"
                ).fetchone(),
                attempts=2,  # a reader at the terminal waits one busy timeout and a retry, not ten seconds
            )
        except sqlite3.Error as exc:
            db.close()
            if _code(exc) in _CORRUPTION:
                raise NotAHistoryDatabase(f"{self.path} is not a readable SQLite database: {_describe(exc)}") from exc
            raise HistoryError(f"cannot read {self.path}: {_describe(exc)}") from exc
        if table is None:
            db.close()
            raise NotAHistoryDatabase(f"{self.path} is an SQLite database but holds no peft-notify history")
        return db

    def _move_aside(self, exc: BaseException) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(Path(f"{target}{suffix}"))
        log.error("history database %s is corrupt (%s); moved to %s", self.path, _describe(exc), target)
        return target

    def close(self) -> None:
        """Close the connection (idempotent); SQLite checkpoints the WAL when its last connection closes."""
        self._db.close()

    def _housekeep(self, now: float | None = None) -> None:
        """The slow upkeep that is due: the retention pass, the WAL checkpoint (after a notification shows)."""
        if self._since_prune >= _PRUNE_EVERY:
            self.prune(now=self._last_ts if now is None else now)
        if self._since_checkpoint >= _CHECKPOINT_EVERY:
            self._checkpoint()

    def _checkpoint(self) -> None:
        self._since_checkpoint = 0
        try:
            # PASSIVE: copies what it can without waiting for readers (peft-notify history); the rest next time.
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # not a lost write: the WAL keeps everything until the next one
            log.warning("history WAL checkpoint failed: %s", _describe(exc))

    def _wrote(self) -> None:
        self._since_checkpoint += 1

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return _with_retries(lambda: self._db.execute(sql, params), attempts=2 if self.read_only else _RETRIES)
        except sqlite3.Error as exc:
            raise HistoryError(f"history database error: {_describe(exc)}") from exc

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
        """Store one notification; returns its id. Call before handing it to the OS.

        A ``PENDING`` record (about to be shown) is only the INSERT: upkeep waits for the next write.
        """
        cursor = self._execute(
            "INSERT INTO notifications (ts, job_id, job_name, kind, urgency, title, message, status, key,"
            " milestone, error_type, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ts,
                job_id,
                redact(job_name),
                _enum_value(event.type),
                _enum_value(event.urgency),
                redact(event.title),
                redact(event.message),
                status.value,
                key,
                event.milestone,
                event.error_type,
                seq,
            ),
        )
        entry_id = cursor.lastrowid
        assert entry_id is not None
        if self._unread is not None:
            self._unread += 1  # a new entry is unread
        self._since_prune += 1
        self._last_ts = ts
        self._wrote()
        if status is not DeliveryStatus.PENDING:
            self._housekeep(now=ts)
        elif self._since_checkpoint >= _CHECKPOINT_OVERDUE:
            self._checkpoint()
        return entry_id

    def merge_repeat(self, job_id: str, key: str, *, ts: float, repeat: int) -> int | None:
        """Bump the newest (job, key) entry's repeat count and mark it unread; its id, or None."""
        row = self._execute(
            "SELECT id, read FROM notifications WHERE job_id = ? AND key = ? ORDER BY id DESC LIMIT 1", (job_id, key)
        ).fetchone()
        if row is None:
            return None
        self._execute("UPDATE notifications SET repeat = ?, ts = ?, read = 0 WHERE id = ?", (repeat, ts, row[0]))
        if row[1] and self._unread is not None:
            self._unread += 1  # a read entry became unread again
        self._wrote()
        self._housekeep(now=ts)
        return int(row[0])

    def set_status(self, entry_id: int, status: DeliveryStatus, *, backend: str = "", detail: str = "") -> None:
        """Record what became of a notification (shown, fallback, failed); then the upkeep that is due."""
        self._execute(
            "UPDATE notifications SET status = ?, backend = ?, detail = ? WHERE id = ?",
            (status.value, backend, redact(detail), entry_id),
        )
        self._wrote()
        self._housekeep()

    def set_channel(self, entry_id: int, channel: str, outcome: str, *, reason: str = "", ts: float) -> None:
        """Record what notification channel ``channel`` (its privacy URL) did with entry ``entry_id``:
        ``sent``, ``failed`` (with ``reason``), ``merged`` (into a digest) or ``updated``."""
        self._execute(
            "INSERT OR REPLACE INTO channel_deliveries (entry_id, channel, outcome, reason, ts) VALUES (?, ?, ?, ?, ?)",
            (entry_id, redact(channel), outcome, redact(reason), ts),
        )
        self._wrote()

    def latest_id(self, job_id: str, key: str) -> int | None:
        """The newest entry of (job, key), or ``None``: where a channel's delivery of it is recorded."""
        row = self._execute(
            "SELECT id FROM notifications WHERE job_id = ? AND key = ? ORDER BY id DESC LIMIT 1", (job_id, key)
        ).fetchone()
        return None if row is None else int(row[0])

    def _with_channels(self, entries: list[HistoryEntry]) -> list[HistoryEntry]:
        if not entries:
            return entries
        found: dict[int, list[tuple[str, str]]] = {}
        ids = [e.id for e in entries]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            try:
                rows = self._execute(
                    "SELECT entry_id, channel, outcome, reason FROM channel_deliveries"
                    f" WHERE entry_id IN ({', '.join('?' * len(chunk))}) ORDER BY ts",
                    chunk,
                ).fetchall()
            except HistoryError:
                if self.read_only:  # an older schema opened read-only: no channel column to show
                    return entries
                raise
            for entry_id, channel, outcome, reason in rows:
                found.setdefault(int(entry_id), []).append((channel, f"{outcome}: {reason}" if reason else outcome))
        return [dataclasses.replace(e, channels=tuple(found[e.id])) if e.id in found else e for e in entries]

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
        return self._with_channels([_entry(row) for row in self._execute(sql, params).fetchall()])

    def mark_read(self, ids: Sequence[int] | None = None) -> int:
        """Mark ``ids`` (all when None) read; returns how many changed."""
        self._wrote()
        if ids is None:
            changed = int(self._execute("UPDATE notifications SET read = 1 WHERE read = 0").rowcount)
        else:
            changed = 0
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                sql = f"UPDATE notifications SET read = 1 WHERE read = 0 AND id IN ({', '.join('?' * len(chunk))})"
                changed += self._execute(sql, chunk).rowcount
        if self._unread is not None:
            self._unread = max(0, self._unread - changed)
        return changed

    # -- extras for the UI and the CLI ---------------------------------------------------

    def get(self, entry_id: int) -> HistoryEntry | None:
        """One entry by id."""
        row = self._execute(f"SELECT {_COLUMNS} FROM notifications WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else self._with_channels([_entry(row)])[0]

    def unread_count(self) -> int:
        """How many entries are unread (counted once, then kept by this store's own writes)."""
        seen = int(self._execute("PRAGMA data_version").fetchone()[0])  # moves when another connection commits
        if self._unread is None or seen != self._unread_seen:
            self._unread = int(self._execute("SELECT COUNT(*) FROM notifications WHERE read = 0").fetchone()[0])
            self._unread_seen = seen
        return self._unread

    def jobs(self) -> list[tuple[str, str]]:
        """(job_id, job_name) pairs present in history, most recent first."""
        rows = self._execute(
            "SELECT job_id, job_name, MAX(ts) AS last FROM notifications GROUP BY job_id ORDER BY last DESC"
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def prune(self, now: float | None = None) -> int:
        """Apply retention (age, then row count); returns how many rows were deleted."""
        self._since_prune = 0
        if self.read_only:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention_days * 86400.0
        deleted = self._execute("DELETE FROM notifications WHERE ts < ?", (cutoff,)).rowcount
        # The newest max_rows stay (by ts, then id): find the first one past them, delete it and older.
        # (A NOT IN (... LIMIT max_rows) took ~50 ms at 100,000 rows; this walks the ts index.)
        first_over = self._execute(
            "SELECT ts, id FROM notifications ORDER BY ts DESC, id DESC LIMIT 1 OFFSET ?", (self.max_rows,)
        ).fetchone()
        if first_over is not None:
            ts, entry_id = first_over
            deleted += self._execute(
                "DELETE FROM notifications WHERE ts < ? OR (ts = ? AND id <= ?)", (ts, ts, entry_id)
            ).rowcount
        if deleted:
            self._unread = None  # recounted when next asked
            self._execute("DELETE FROM channel_deliveries WHERE entry_id NOT IN (SELECT id FROM notifications)")
            log.info("history retention removed %d entries", deleted)
        return deleted


def _read_header(path: Path, size: int = 16) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


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
    out["channels"] = dict(entry.channels)  # {privacy URL: "sent" | "failed: reason" | "merged: ..."}
    return out


def export_json(entries: Iterable[HistoryEntry]) -> str:
    """Entries as a JSON array (what ``peft-notify history --json`` prints)."""
    return json.dumps([entry_to_dict(e) for e in entries], indent=2, ensure_ascii=False)


# A spreadsheet evaluates a cell that starts with one of these as a formula (`=cmd|' /C calc'!A0`,
# DDE); OWASP "CSV Injection": prefix such a text cell with a single quote so it stays text.
# Full-width forms too (some locales' spreadsheets take `＝` for `=`), and after leading blanks
# (a spreadsheet may trim them before it looks at the first character).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_BLANKS: Final = " \t\r\n\u00a0\u3000"


def csv_safe(value: object) -> object:
    """``value`` made inert for spreadsheets: text starting with ``= + - @`` tab or CR (after any
    blanks; also their full-width forms) gets a ``'``."""
    if isinstance(value, str) and (
        value.startswith(_FORMULA_START) or value.lstrip(_BLANKS).startswith(_FORMULA_START)
    ):
        return "'" + value
    return value


def _cell(value: object) -> object:
    if isinstance(value, dict):  # channels: "json://host/…: sent; ntfy://…: failed: HTTP 500"
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return value


def export_csv(entries: Iterable[HistoryEntry]) -> str:
    """Entries as CSV with a header row; text cells that would start a formula are made inert."""
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for entry in entries:
        row = {name: csv_safe(_cell(value)) for name, value in entry_to_dict(entry).items()}
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)
    if writer is None:
        buffer.write(_COLUMNS.replace(" ", "") + ",channels\r\n")
    return buffer.getvalue()
