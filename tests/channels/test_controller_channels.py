"""The app's controller with a channel from Settings: real engine, real SQLite history, real receiver."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from peft_notify import wire
from peft_notify.app.controller import Controller
from peft_notify.channels import CAPABILITY
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.desktop.settings import ChannelSetting, Settings
from peft_notify.engine import Engine, EngineConfig
from peft_notify.ports import DndState, HistoryQuery
from peft_notify.testing import RecordingNotifier, RecordingTaskbar, ScriptedDndProbe
from tests.app.app_support import ClientFactory, envelope, hello
from tests.channels.conftest import Receiver

URL = "ws://127.0.0.1:9/ws/notifications/job-1"
SELF = "ws://127.0.0.1:9/ws/notifications/job-2"


def test_errors_go_to_the_channel_and_the_delivery_is_in_history(qapp: Any, receiver: Receiver, tmp_path: Path) -> None:
    client_factory = ClientFactory()
    history = SqliteHistoryStore(tmp_path / "h.db")
    channel = ChannelSetting("plain:" + receiver.url("json"), "json://127.0.0.1/…", "error")
    controller = Controller(
        Settings(channels=(channel,)),
        engine=Engine(EngineConfig()),
        history=history,
        notifiers=[RecordingNotifier()],
        taskbar=RecordingTaskbar(),
        dnd_probe=ScriptedDndProbe([DndState.OFF]),
        client_factory=client_factory,
    )
    oom = wire.NotificationEvent(
        type=wire.NotificationType.ERROR, title="llama: out of memory", message="CUDA OOM", error_type="oom_error"
    )

    async def scenario() -> None:
        controller.start()
        assert controller.channels is not None
        controller.subscribe(URL, persist=False)
        controller.subscribe(SELF, persist=False)
        now = time.time()
        for url, job, caps in ((URL, "job-1", ("retry",)), (SELF, "job-2", ("retry", CAPABILITY))):
            client = client_factory.last(url)
            client.on_message(envelope(job, 1, hello(capabilities=caps), ts=now))
            client.on_message(envelope(job, 2, oom, ts=now))
        await controller.drain()
        assert await asyncio.to_thread(controller.channels.hub.flush, 10)
        await asyncio.sleep(0.2)  # the history write is posted back to this loop
        await controller.shutdown()

    asyncio.run(scenario())
    [hit] = receiver.hits  # the job that delivers itself was skipped
    assert hit.json()["title"] == "llama: out of memory"
    errors = [e for e in history.query(HistoryQuery()) if e.kind == "error"]
    delivered = {e.job_id: dict(e.channels) for e in errors}
    assert list(delivered.values()).count({}) == 1
    assert [outcome for d in delivered.values() for outcome in d.values()] == ["sent"]
    history.close()


def test_a_channel_that_fails_for_good_is_said_in_the_banner_once(
    qapp: Any, receiver: Receiver, tmp_path: Path
) -> None:
    client_factory = ClientFactory()
    history = SqliteHistoryStore(tmp_path / "h.db")
    channel = ChannelSetting("plain:" + receiver.url("json", "gone"), "json://…/gone", "error")
    controller = Controller(
        Settings(channels=(channel,)),
        engine=Engine(EngineConfig()),
        history=history,
        notifiers=[RecordingNotifier()],
        taskbar=RecordingTaskbar(),
        dnd_probe=ScriptedDndProbe([DndState.OFF]),
        client_factory=client_factory,
    )
    problems: list[str] = []
    controller.problem.connect(lambda key, text: problems.append(text))

    async def scenario() -> None:
        controller.start()
        controller.subscribe(URL, persist=False)
        client = client_factory.last(URL)
        now = time.time()
        client.on_message(envelope("job-1", 1, hello(), ts=now))
        for seq, kind in ((2, "oom_error"), (3, "cuda_error")):
            note = wire.NotificationEvent(
                type=wire.NotificationType.ERROR, title=f"llama: {kind}", message="x", error_type=kind
            )
            client.on_message(envelope("job-1", seq, note, ts=now))
            await controller.drain()
            assert controller.channels is not None
            assert await asyncio.to_thread(controller.channels.hub.flush, 10)
        await asyncio.sleep(0.2)
        await controller.shutdown()

    asyncio.run(scenario())
    failing = [p for p in problems if p.startswith("Channel ")]
    assert len(failing) == 1
    assert failing[0].startswith(f"Channel json://127.0.0.1:{receiver.port}/gone is failing: failure · HTTP 404")
    outcomes = [dict(e.channels) for e in history.query(HistoryQuery()) if e.kind == "error"]
    assert all(next(iter(o.values())).startswith("failed: failure · HTTP 404") for o in outcomes)
    assert len(outcomes) == 2
    history.close()
