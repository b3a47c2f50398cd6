"""``peft-notify history``: prints what the app recorded, as text, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
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


def test_missing_default_database_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["history"]) == 0
    assert "No history yet" in capsys.readouterr().out
    assert not (tmp_path / "data").exists()  # reading created nothing


def _snapshot(directory: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry below ``directory``: mode, inode and (for files) content."""
    out: dict[str, tuple[int, int, bytes | None]] = {}
    for p in sorted(directory.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(directory))] = (st.st_mode, st.st_ino, p.read_bytes() if p.is_file() else None)
    return out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "does not exist"),
        ("directory", "is not a file"),
        ("text", "is not an SQLite database"),
        ("empty", "is not an SQLite database"),
        ("other-sqlite", "holds no peft-notify history"),
    ],
)
def test_db_that_is_not_a_history_is_exit_2_and_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str, message: str
) -> None:
    # The attack: `history --db /etc` (run as root) chmod-ed it 0600, renamed it to
    # *.broken-<time> and put an empty database in its place. Here /etc is a temp directory.
    target = tmp_path / "etc"
    if make == "directory":
        target.mkdir(mode=0o755)
        (target / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        (target / "passwd").chmod(0o644)
    elif make == "text":
        target.write_text("root:x:0:0:root:/root:/bin/bash\n")
        target.chmod(0o644)
    elif make == "empty":
        target.touch(mode=0o644)
    elif make == "other-sqlite":
        db = sqlite3.connect(target)
        db.execute("CREATE TABLE users (name)")
        db.close()
        target.chmod(0o644)
    before = _snapshot(tmp_path)
    for fmt in ([], ["--json"], ["--csv"]):
        assert main(["history", "--db", str(target), *fmt]) == 2
        captured = capsys.readouterr()
        assert message in captured.err
        assert captured.out == ""
    assert _snapshot(tmp_path) == before


def test_reading_a_live_history_changes_nothing(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(db.parent)
    assert main(["history", "--db", str(db)]) == 0
    assert "b: OOM" in capsys.readouterr().out
    assert _snapshot(db.parent) == before


def test_locked_database_is_exit_1_and_not_moved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A rollback-journal database under an EXCLUSIVE lock (another process writing).
    path = tmp_path / "h.sqlite3"
    store = SqliteHistoryStore(path)
    store.record(
        "j",
        "J",
        NotificationEvent(type=NotificationType.ERROR, title="keep me", message=""),
        ts=1.0,
        status=DeliveryStatus.SHOWN,
    )
    store.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        before = _snapshot(tmp_path)
        assert main(["history", "--db", str(path)]) == 1
        assert "locked" in capsys.readouterr().err
        assert _snapshot(tmp_path) == before
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert main(["history", "--db", str(path)]) == 0
    assert "keep me" in capsys.readouterr().out


ESCAPES = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;pwned\x07\x1b[2J\x9b2J\u202e"


def test_terminal_escapes_from_jobs_are_neutralised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.sqlite3"
    store = SqliteHistoryStore(path)
    event = NotificationEvent(type=NotificationType.ERROR, title=f"t{ESCAPES}", message=f"m{ESCAPES}")
    store.record(f"id{ESCAPES}", f"name{ESCAPES}", event, ts=1.0, status=DeliveryStatus.SHOWN)
    store.close()
    for fmt in ([], ["--json"], ["--csv"]):
        assert main(["history", "--db", str(path), *fmt]) == 0
        out = capsys.readouterr().out
        assert not any(ch in out for ch in "\x1b\x07\x9b\u202e"), (fmt, out)
    assert main(["history", "--db", str(path), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["title"] == f"t{ESCAPES}"  # JSON stays lossless: the characters are \u-escaped


def test_csv_formula_is_inert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.sqlite3"
    store = SqliteHistoryStore(path)
    payload = "=cmd|' /C calc'!A0"
    event = NotificationEvent(type=NotificationType.ERROR, title=payload, message="@SUM(1+1)")
    store.record("j", payload, event, ts=1.0, status=DeliveryStatus.SHOWN)
    store.close()
    assert main(["history", "--db", str(path), "--csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["title"], row["job_name"], row["message"]) == ("'" + payload, "'" + payload, "'@SUM(1+1)")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two jobs with random hex ids (as ``peft-notify run`` makes them) and readable names."""
    path = tmp_path / "runs.sqlite3"
    store = SqliteHistoryStore(path)
    for ts, job, name, title in (
        (1_800_000_000.0, "3f9a1c2b7d4e", "tiny-gpt2-lora", "tiny-gpt2-lora: 25 %"),
        (1_800_000_100.0, "88aa77bb66cc@127.0.0.1:8765", "llama-lora", "llama-lora: 25 %"),
        (1_800_000_200.0, "3f9a1c2b7d4e", "tiny-gpt2-lora", "tiny-gpt2-lora: 50 %"),
    ):
        event = NotificationEvent(type=NotificationType.PROGRESS, title=title, message="m")
        store.record(job, name, event, ts=ts, status=DeliveryStatus.SHOWN)
    store.close()
    return path


@pytest.mark.parametrize("job", ["tiny-gpt2-lora", "3f9a1c2b7d4e"])
def test_job_filter_takes_the_name_or_the_id(runs: Path, job: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 item 9: ``--job tiny-gpt2-lora`` found nothing (it needed the hex id)."""
    assert main(["history", "--db", str(runs), "--job", job, "--json"]) == 0
    titles = [e["title"] for e in json.loads(capsys.readouterr().out)]
    assert titles == ["tiny-gpt2-lora: 50 %", "tiny-gpt2-lora: 25 %"]


def test_job_filter_takes_the_id_of_a_job_keyed_by_its_address(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(runs), "--job", "88aa77bb66cc", "--json"]) == 0
    assert [e["title"] for e in json.loads(capsys.readouterr().out)] == ["llama-lora: 25 %"]
    assert main(["history", "--db", str(runs), "--job", "nobody"]) == 0
    assert "No notifications match." in capsys.readouterr().out


def test_text_listing_shows_name_and_id_newest_first_as_the_help_says(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[-1].strip() for line in lines] == [
        "tiny-gpt2-lora: 50 %",
        "llama-lora: 25 %",
        "tiny-gpt2-lora: 25 %",
    ]
    assert all("tiny-gpt2-lora" in line and "3f9a1c2b7d4e" in line for line in (lines[0], lines[2]))
    assert "llama-lora" in lines[1] and "88aa77bb66cc@127.0.0.1:8765" in lines[1]
    assert "newest first" in _history_help()


def _history_help() -> str:
    import argparse

    from peft_notify.cli import history

    parser = argparse.ArgumentParser()
    history.register(parser.add_subparsers())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices["history"].format_help().split())


def test_a_damaged_default_history_is_one_line_and_left_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 item 9: the corrupt-DB notice came three times, and from this read-only command."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from peft_notify.desktop.history import default_history_path

    path = default_history_path()
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notifications (x)")
    db.commit()
    db.close()
    with path.open("r+b") as f:  # damage the first page past the header
        f.seek(100)
        f.write(b"garbage" * 8)
    before = _snapshot(tmp_path)
    assert main(["history"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert "malformed" in captured.err
    assert _snapshot(tmp_path) == before  # nothing moved aside, nothing recreated
