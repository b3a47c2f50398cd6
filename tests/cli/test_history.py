"""``peft-notify history``: prints what the app recorded, as text, JSON or CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peft_notify.cli import main
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.ports import DeliveryStatus
from peft_notify.wire import NotificationEvent, NotificationType


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "h.sqlite3"
    store = SqliteHistoryStore(path)
    for job, kind, title in (("a", NotificationType.PROGRESS, "a: 25%"), ("b", NotificationType.ERROR, "b: OOM")):
        event = NotificationEvent(type=kind, title=title, message="m")
        store.record(job, job.upper(), event, ts=1_800_000_000.0, status=DeliveryStatus.SHOWN)
    store.close()
    return path


def test_text_output(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "a: 25%" in out
    assert "b: OOM" in out
    assert "shown" in out


def test_json_filtered_by_job(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--job", "b", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(e["job_id"], e["title"], e["kind"]) for e in data] == [("b", "b: OOM", "error")]


def test_csv_and_kind_filter(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--csv", "--kind", "progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("id,ts,job_id")
    assert len(lines) == 2


def test_missing_database_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(tmp_path / "none.sqlite3")]) == 0
    assert "No history yet" in capsys.readouterr().out
