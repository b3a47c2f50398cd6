"""Job files: written 0600 with the token, listed, dead ones pruned, bad ones skipped."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from peft_notify import discovery


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rt"
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(path))
    return path


def test_runtime_dir_is_private(runtime: Path) -> None:
    path = discovery.runtime_dir()
    assert path == runtime
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_runtime_dir_without_override_is_created(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PEFT_NOTIFY_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir()
    assert discovery.runtime_dir().is_dir()


def test_write_list_remove_roundtrip() -> None:
    path = discovery.write_job_file(url="ws://127.0.0.1:1/ws/notifications/a", job_id="a", name="A", token="s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [job] = discovery.list_job_files()
    assert (job.url, job.job_id, job.name, job.token, job.pid) == (
        "ws://127.0.0.1:1/ws/notifications/a",
        "a",
        "A",
        "s3cret",
        os.getpid(),
    )
    assert job.path == path
    discovery.remove_job_file(path)
    discovery.remove_job_file(path)  # already gone: fine
    assert discovery.list_job_files() == []


def test_dead_process_file_is_pruned() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(proc.stdout)
    path = discovery.write_job_file(url="ws://x:1/ws/notifications/b", job_id="b", name="B", pid=dead_pid)
    assert [j.job_id for j in discovery.list_job_files(prune_dead=False)] == ["b"]
    assert discovery.list_job_files() == []
    assert not path.exists()


def test_unreadable_file_is_skipped(runtime: Path, caplog: pytest.LogCaptureFixture) -> None:
    discovery.runtime_dir()
    (runtime / "1-bad.job.json").write_text("{not json")
    (runtime / "2-partial.job.json").write_text(json.dumps({"url": "ws://x"}))
    good = discovery.write_job_file(url="ws://x:1/ws/notifications/c", job_id="c", name="C")
    assert [j.path for j in discovery.list_job_files()] == [good]
    assert "unreadable job file" in caplog.text
