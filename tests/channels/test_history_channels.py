"""Channel deliveries in the real SQLite history (schema 2) and in ``history --json`` output."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from peft_notify.desktop.history import SqliteHistoryStore, export_csv, export_json
from peft_notify.ports import DeliveryStatus, HistoryQuery
from peft_notify.wire import NotificationEvent, NotificationType

NOW = time.time()


def _event() -> NotificationEvent:
    return NotificationEvent(type=NotificationType.ERROR, title="llama: out of memory", message="CUDA OOM")


def test_deliveries_are_recorded_per_channel_and_exported(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "h.db")
    entry = store.record("j1", "llama", _event(), ts=NOW, status=DeliveryStatus.SHOWN, key="oom")
    store.set_channel(entry, "ntfy://ntfy.sh/t…", "failed", reason="HTTP 500", ts=NOW + 1)
    store.set_channel(entry, "json://127.0.0.1:1/ok", "sent", ts=NOW + 2)
    store.set_channel(entry, "ntfy://ntfy.sh/t…", "sent", ts=NOW + 3)  # a later retry replaces the failure
    [got] = store.query(HistoryQuery())
    assert dict(got.channels) == {"json://127.0.0.1:1/ok": "sent", "ntfy://ntfy.sh/t…": "sent"}
    assert store.get(entry) == got
    [as_json] = json.loads(export_json([got]))
    assert as_json["channels"] == {"json://127.0.0.1:1/ok": "sent", "ntfy://ntfy.sh/t…": "sent"}
    assert "json://127.0.0.1:1/ok: sent" in export_csv([got])
    store.close()


def test_a_schema_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistoryStore(path)
    store.record("j1", "llama", _event(), ts=NOW, status=DeliveryStatus.SHOWN)
    store.close()
    with sqlite3.connect(path) as db:  # make it look like a database written before issue 13
        db.execute("DROP TABLE channel_deliveries")
        db.execute("PRAGMA user_version = 1")
    db.close()
    readonly = SqliteHistoryStore(path, read_only=True)
    [old] = readonly.query(HistoryQuery())
    assert old.channels == ()  # read-only: no migration, and still readable
    readonly.close()
    store = SqliteHistoryStore(path)
    store.set_channel(old.id, "json://x/…", "merged", reason="in a digest of 3", ts=NOW + 1)
    assert store.query(HistoryQuery())[0].channels == (("json://x/…", "merged: in a digest of 3"),)
    store.close()


def test_history_json_cli_prints_each_channels_outcome(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "h.db"
    store = SqliteHistoryStore(path)
    entry = store.record("j1", "llama", _event(), ts=NOW, status=DeliveryStatus.SHOWN, key="oom")
    store.set_channel(entry, "ntfys://ntfy.sh/m…c", "failed", reason="failure · HTTP 500", ts=NOW)
    store.close()
    result = subprocess.run(
        [sys.executable, "-m", "peft_notify", "history", "--json", "--db", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    [printed] = json.loads(result.stdout)
    assert printed["channels"] == {"ntfys://ntfy.sh/m…c": "failed: failure · HTTP 500"}
