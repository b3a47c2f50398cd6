"""Shared fixtures: a private discovery directory and a running JobServer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from peft_notify.emitter import JobServer


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runtime"
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def server() -> Iterator[JobServer]:
    srv = JobServer().start()
    yield srv
    srv.stop()
