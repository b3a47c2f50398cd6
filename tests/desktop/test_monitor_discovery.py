"""Local jobs are never missed (issue 11 items 4 and 6): seen at once, young ones replayed, ends recorded.

A new run id starts fresh. Real discovery files in a private runtime dir, real job servers and
clients where the behaviour depends on them (replay from seq 0), the socket-free rig elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from peft_notify import discovery, wire
from peft_notify.desktop import monitor as monitor_module
from peft_notify.desktop.frames import ClientState
from peft_notify.desktop.monitor import ConnectionAdded, RunStarted
from peft_notify.emitter import JobServer
from peft_notify.ports import DeliveryStatus, HistoryQuery
from tests.desktop.test_monitor import Rig, _real_client, frame, settle, until


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rt"
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(path))
    return path


def discovering_rig(client_factory: Any = None) -> Rig:
    rig = Rig(client_factory)
    rig.monitor.clock = time.time  # job ages are compared with the files' real start times
    rig.monitor.discover = discovery.list_job_files
    rig.monitor.discovery_dir = discovery.runtime_dir
    return rig


def shown(rig: Rig) -> list[wire.NotificationEvent]:
    return [r.event for r in rig.notifier.requests]


def test_a_new_local_job_is_seen_at_once_not_at_the_next_rescan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the app looked every 5 s, so a 3-second job was never seen."""
    monkeypatch.setattr(monitor_module, "DISCOVER_S", 3600.0)  # only the directory check can find it
    rig = discovering_rig()

    async def scenario() -> float:
        rig.monitor.start()
        await asyncio.sleep(0.3)  # the discoverer has scanned the empty directory
        written = time.monotonic()
        discovery.write_job_file(url="ws://127.0.0.1:9/ws/notifications/quick", job_id="quick", name="quick", token="t")
        await until(lambda: any(isinstance(e, ConnectionAdded) for e in rig.events), timeout=5)
        seen = time.monotonic() - written
        await rig.monitor.shutdown()
        return seen

    seen = asyncio.run(scenario())
    assert seen < 2.0  # the directory check runs every DIR_POLL_S; bench/ has the real number
    [conn] = rig.monitor.connections.values()
    assert (conn.local, conn.replay) == (True, True)  # a young job: followed from its first message


def test_a_file_system_watcher_wakes_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_module, "DISCOVER_S", 3600.0)
    rig = discovering_rig()

    async def scenario() -> None:
        rig.monitor.use_external_dir_watch()  # the app's QFileSystemWatcher: no directory polling
        rig.monitor.start()
        await asyncio.sleep(0.3)
        discovery.write_job_file(url="ws://127.0.0.1:9/ws/notifications/w", job_id="w", name="w", token="t")
        await asyncio.sleep(0.5)
        assert not rig.monitor.connections  # nobody said the directory changed
        rig.monitor.discovery_changed()
        await until(lambda: bool(rig.monitor.connections), timeout=2)
        await rig.monitor.shutdown()

    asyncio.run(scenario())


def _serve(progress: list[int], *, state: str | None = None) -> tuple[JobServer, Any]:
    server = JobServer(token="t", discovery_files=False).start()
    handle = server.add_job("train", name="train", total_steps=100)
    for step in progress:
        handle.progress(step, 100)
        time.sleep(0.08)  # slower than the 20 Hz coalescing: each step is its own frame
    if state is not None:
        handle.status(state)
    time.sleep(0.2)
    return server, handle


def _announce(server: JobServer, age_s: float) -> None:
    discovery.write_job_file(
        url=server.url_for("train", with_token=False),
        job_id="train",
        name="train",
        token=server.token,
        started_at=time.time() - age_s,
    )


def _follow(rig: Rig, done: Any) -> None:
    async def scenario() -> None:
        rig.monitor.start()
        rig.monitor.discover_now()
        await until(lambda: any(c.state is ClientState.CONNECTED for c in rig.monitor.connections.values()))
        await until(lambda: done(rig))
        await settle(rig)
        await rig.monitor.shutdown()

    asyncio.run(scenario())


def _milestones(events: list[wire.NotificationEvent]) -> set[int]:
    """Milestones announced: each popup's own, and the ones its message says were passed."""
    found = {e.milestone for e in events if e.milestone}
    for e in events:
        for m in (25, 50, 75):
            if f"{m} %" in e.message and "passed" in e.message:
                found.add(m)
    return found


def test_a_job_discovered_in_its_first_minute_is_followed_from_its_first_message() -> None:
    """Before: milestones passed before discovery were never announced."""
    server, _handle = _serve([10, 30, 60])
    rig = discovering_rig(_real_client)
    try:
        _announce(server, age_s=5)
        _follow(
            rig,
            lambda r: (
                getattr(r.engine.job(next(iter(r.monitor.connections.values())).job_key), "current_step", 0) == 60
            ),
        )
    finally:
        server.stop()
    assert _milestones(shown(rig)) >= {25, 50}


def test_a_job_discovered_later_starts_from_its_snapshot() -> None:
    server, _handle = _serve([10, 30, 60])
    rig = discovering_rig(_real_client)
    try:
        _announce(server, age_s=600)
        _follow(
            rig,
            lambda r: (
                getattr(r.engine.job(next(iter(r.monitor.connections.values())).job_key), "current_step", 0) == 60
            ),
        )
    finally:
        server.stop()
    assert not [e for e in shown(rig) if e.milestone]  # no retroactive popups
    [conn] = rig.monitor.connections.values()
    assert not conn.replay


@pytest.mark.parametrize(("state", "kind"), [("completed", "completion"), ("failed", "error")])
def test_a_job_that_ended_before_it_was_seen_is_recorded_not_shown(state: str, kind: str) -> None:
    server, _handle = _serve([40, 100] if state == "completed" else [40], state=state)
    rig = discovering_rig(_real_client)
    try:
        _announce(server, age_s=600)  # its file was still there: the server lingers

        def recorded(r: Rig) -> bool:
            return any(e.status is DeliveryStatus.MISSED for e in r.history.query(HistoryQuery()))

        _follow(rig, recorded)
    finally:
        server.stop()
    [entry] = rig.history.query(HistoryQuery())
    assert (entry.kind, entry.status) == (kind, DeliveryStatus.MISSED)
    assert entry.title == f"train: {state} before it was seen"
    assert not shown(rig)  # recorded only: it ended long ago


def test_a_young_job_that_already_ended_is_replayed_with_its_completion() -> None:
    """The 3-second Trainer run: over before the app looked, still announced."""
    server, _handle = _serve([30, 70, 100], state="completed")
    rig = discovering_rig(_real_client)
    try:
        _announce(server, age_s=3)
        _follow(rig, lambda r: any(e.type == "completion" for e in shown(r)))
    finally:
        server.stop()
    completion = next(e for e in shown(rig) if e.type == "completion")
    assert _milestones(shown(rig)) | {100} >= {25, 50, 75} or "passed" in completion.message


def test_a_new_run_id_is_a_new_run_card_chart_and_state_start_fresh() -> None:
    """Before: the demo's second run showed "training complete" while at 2 %."""
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        conn = rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/demo-1")
        await asyncio.sleep(0)
        [client] = rig.clients
        first = wire.Hello(name="demo-1", run_id="r1", total_steps=100, started_at=1000.0)
        client.push(frame("demo-1", 1, first))
        for seq, step in enumerate((50, 100), start=2):
            client.push(frame("demo-1", seq, wire.Progress(current_step=step, total_steps=100, loss=1.0 / step)))
        client.push(frame("demo-1", 4, wire.Status(wire.JobState.COMPLETED)))
        await settle(rig)
        assert len(rig.monitor.curves.losses(conn.job_key)) == 2
        second = wire.Hello(name="demo-1", run_id="r2", total_steps=100, started_at=2000.0)
        client.push(frame("demo-1", 5, second))
        client.push(frame("demo-1", 6, wire.Progress(current_step=2, total_steps=100, loss=2.5)))
        await settle(rig)
        view = rig.engine.job(conn.job_key)
        assert (view.state, view.current_step) == (wire.JobState.RUNNING, 2)
        assert rig.monitor.curves.losses(conn.job_key) == [2.5]  # the chart starts fresh
        assert [e.previous_run_id for e in rig.events if isinstance(e, RunStarted)] == ["r1"]
        assert (conn.run_id, conn.run_started_at) == ("r2", 2000.0)
        kinds = [e.kind for e in rig.history.query(HistoryQuery(job_id=conn.job_key))]
        assert "completion" in kinds  # the previous run stays in history
        await rig.monitor.shutdown()

    asyncio.run(scenario())


def test_discovery_survives_a_missing_or_unsafe_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(target, tmp_path / "rt")  # a planted symlink: runtime_dir() refuses it
    rig = discovering_rig()

    async def scenario() -> None:
        rig.monitor.start()
        await asyncio.sleep(0.5)
        await rig.monitor.shutdown()

    asyncio.run(scenario())
    assert not rig.monitor.connections
