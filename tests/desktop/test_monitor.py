"""Monitor: connections → engine → dispatcher, with real job servers where identity is at stake.

A job's identity is its connection (issue 10 item 3). The attack tests run a real victim
JobServer and a real second server that poses as the victim; the dispatcher, the history
store and the notifier are the package's real in-memory ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from peft_notify import wire
from peft_notify.desktop.client import JobClient
from peft_notify.desktop.dispatch import Dispatcher
from peft_notify.desktop.frames import ClientState, ConnectionEvent, FrameTracker, parse_job_url
from peft_notify.desktop.monitor import (
    ButtonPresses,
    ConnectionAdded,
    ConnectionRemoved,
    Decided,
    LinkChanged,
    MessageFed,
    Monitor,
    MonitorEvent,
    Performed,
    ShowJob,
)
from peft_notify.emitter import JobServer
from peft_notify.engine import Engine
from peft_notify.engine.actions import Action, Notify, SetTaskbar
from peft_notify.ports import HistoryQuery
from peft_notify.testing import FakeClock, MemoryHistoryStore, RecordingNotifier, RecordingTaskbar

TS = 1_700_000_000.0


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))


def env(job_id: str | None, seq: int, body: wire.Body) -> wire.Envelope:
    kind = {wire.Hello: "hello", wire.Progress: "progress", wire.Status: "status"}.get(type(body), "notification")
    return wire.Envelope(type=kind, data=body, seq=seq, job_id=job_id, ts=TS)


def frame(job_id: str, seq: int, body: wire.Body) -> str:
    return wire.encode(env(job_id, seq, body))


def hello(name: str = "job", run_id: str = "run-1") -> wire.Hello:
    return wire.Hello(name=name, run_id=run_id, total_steps=100, capabilities=("retry", "cancel"))


def oom(title: str = "CUDA out of memory") -> wire.NotificationEvent:
    return wire.NotificationEvent(
        type=wire.NotificationType.ERROR, title=title, message="boom", error_type="oom_error", urgency="critical"
    )


class Rig:
    """A monitor with the real dispatcher, in-memory history and a recording notifier."""

    def __init__(self, client_factory: Any = None) -> None:
        self.engine = Engine()
        self.history = MemoryHistoryStore()
        self.presses = ButtonPresses()
        self.notifier = RecordingNotifier(on_action=self.presses)
        self.dispatcher = Dispatcher(
            self.history,
            [self.notifier],
            RecordingTaskbar(),
            job_name=lambda key: getattr(self.engine.job(key), "name", key),
        )
        self.events: list[MonitorEvent] = []
        self.clients: list[FakeClient] = []
        self.monitor = Monitor(
            engine=self.engine,
            performer=self.dispatcher,
            router=self.dispatcher,
            presses=self.presses,
            client_factory=client_factory or self.fake_client,
            on_event=self.events.append,
            clock=FakeClock(TS).now,
        )

    def fake_client(self, url: str, token: str | None, on_message: Any, on_event: Any, since: int | None) -> Any:
        client = FakeClient(url, on_message, on_event)
        self.clients.append(client)
        return client


class FakeClient:
    """Stands in for JobClient in the socket-free tests: frames go through a real FrameTracker."""

    def __init__(self, url: str, on_message: Callable[[wire.Envelope], None], on_event: Any) -> None:
        target = parse_job_url(url)
        self.url, self.tracker = url, FrameTracker(target.job_id, label=target.address)
        self.on_message, self.on_event = on_message, on_event
        self.sent: list[wire.ActionRequest] = []
        self.stopped = asyncio.Event()

    def push(self, *frames: str) -> None:
        for text in frames:
            got = self.tracker.receive(text)
            if got is not None:
                self.on_message(got)

    async def run(self) -> None:
        self.on_event(ConnectionEvent(ClientState.CONNECTED))
        await self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()

    async def send_action(self, action: wire.ActionRequest) -> bool:
        self.sent.append(action)
        return True


async def settle(rig: Rig) -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    await rig.monitor.drain()


def test_two_jobs_sharing_an_id_on_different_ports_are_two_jobs() -> None:
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        a = rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/sim")
        b = rig.monitor.add("ws://127.0.0.1:8002/ws/notifications/sim")
        assert a.job_key != b.job_key
        await asyncio.sleep(0)
        first, second = rig.clients
        first.push(frame("sim", 1, hello("a")), frame("sim", 2, wire.Progress(current_step=30, total_steps=100)))
        second.push(frame("sim", 1, hello("b")), frame("sim", 2, wire.Progress(current_step=5, total_steps=100)))
        second.push(frame("sim", 3, oom()))
        await settle(rig)
        rig.notifier.invoke("retry")  # on b's error
        await settle(rig)
        assert rig.engine.job(a.job_key).current_step == 30
        assert rig.engine.job(b.job_key).current_step == 5
        assert [e.job_name for e in rig.history.query(HistoryQuery(job_id=a.job_key))] == ["a"]  # its 25 %
        [b_error] = rig.history.query(HistoryQuery(job_id=b.job_key))
        assert b_error.kind == "error" and "CUDA out of memory" in b_error.title
        assert (first.sent, [s.action for s in second.sent]) == ([], ["retry"])
        await rig.monitor.shutdown()

    asyncio.run(scenario())


def test_frames_naming_another_job_are_refused_and_counted() -> None:
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/mine")
        await asyncio.sleep(0)
        (client,) = rig.clients
        client.push(frame("mine", 1, hello()), frame("other", 2, oom()), frame("other", 3, hello("x", "r9")))
        client.push(frame("mine", 4, wire.Status(state=wire.JobState.RUNNING)))
        await settle(rig)
        await rig.monitor.shutdown()

    asyncio.run(scenario())
    (client,) = rig.clients
    assert client.tracker.foreign == 2
    assert rig.history.query(HistoryQuery()) == []
    assert [view.job_id for view in rig.engine.jobs()] == ["mine@127.0.0.1:8001"]
    fed = [e.envelope.seq for e in rig.events if isinstance(e, MessageFed)]
    assert fed == [1, 4]


def test_removing_a_connection_frees_its_engine_state() -> None:
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        url = "ws://127.0.0.1:8001/ws/notifications/j"
        rig.monitor.add(url)
        await asyncio.sleep(0)
        rig.clients[0].push(frame("j", 1, hello()), frame("j", 2, wire.Progress(current_step=3, total_steps=100)))
        await settle(rig)
        assert len(rig.engine.jobs()) == 1
        rig.monitor.remove(url)
        await settle(rig)
        assert rig.engine.jobs() == []
        assert rig.clients[0].stopped.is_set()
        assert rig.monitor.connection_for_job("j@127.0.0.1:8001") is None
        await rig.monitor.shutdown()

    asyncio.run(scenario())
    kinds = [type(e) for e in rig.events]
    assert kinds.index(ConnectionAdded) < kinds.index(ConnectionRemoved)


def test_bad_url_and_a_second_url_for_the_same_job_are_refused() -> None:
    rig = Rig()
    with pytest.raises(ValueError, match="not a job URL"):
        rig.monitor.add("ftp://example/x")
    with pytest.raises(ValueError, match="since="):
        rig.monitor.add("ws://h:1/ws/notifications/j?since=²")
    with pytest.raises(ValueError, match="not a job URL"):
        rig.monitor.add("ws://h:1/ws/notifications/j?since=" + "9" * 5000)
    rig.monitor.add("ws://h:1/ws/notifications/j")
    with pytest.raises(ValueError, match="already followed"):
        rig.monitor.add("http://h:1/ws/notifications/j")
    assert rig.monitor.find("http://h:1/ws/notifications/j") is rig.monitor.connections["ws://h:1/ws/notifications/j"]


def test_notification_click_shows_the_job_and_marks_it_read() -> None:
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        conn = rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/j")
        await asyncio.sleep(0)
        rig.clients[0].push(frame("j", 1, hello()), frame("j", 2, oom()))
        await settle(rig)
        rig.notifier.invoke("default")
        await settle(rig)
        [shown] = [e for e in rig.events if isinstance(e, ShowJob)]
        assert shown.connection is conn
        assert rig.history.query(HistoryQuery(unread_only=True)) == []
        await rig.monitor.shutdown()

    asyncio.run(scenario())


def test_a_press_without_a_running_loop_is_reported_not_raised() -> None:
    rig = Rig()
    rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/j")
    assert rig.monitor.request_action("ws://127.0.0.1:8001/ws/notifications/j", "cancel") is None
    assert any("event loop is not running" in getattr(e, "message", "") for e in rig.events)


def test_button_presses_from_another_thread_reach_the_monitor() -> None:
    rig = Rig()

    async def scenario() -> None:
        rig.monitor.start()
        rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/j")
        await asyncio.sleep(0)
        rig.clients[0].push(frame("j", 1, hello()), frame("j", 7, oom()))
        await settle(rig)
        thread = threading.Thread(target=rig.notifier.invoke, args=("cancel",))
        thread.start()
        thread.join()
        async with asyncio.timeout(5):
            while not rig.clients[0].sent:
                await asyncio.sleep(0.01)
        await rig.monitor.shutdown()

    asyncio.run(scenario())
    assert rig.clients[0].sent == [wire.ActionRequest("cancel", ref_seq=7)]


# ---------------------------------------------------------------- attacks with real servers


@pytest.fixture
def victim() -> Iterator[tuple[JobServer, Any, list[wire.ActionRequest]]]:
    server = JobServer(token="victim-token", discovery_files=False).start()
    handle = server.add_job("victim", name="victim-job", total_steps=100, capabilities=["retry", "cancel"])
    got: list[wire.ActionRequest] = []
    handle.on_action(got.append)
    yield server, handle, got
    server.stop()


@asynccontextmanager
async def impostor(frames: list[str]) -> AsyncIterator[tuple[str, list[str]]]:
    """A second real server: serves ``frames`` on /ws/notifications/evil, records what clients send."""
    received: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        for text in frames:
            await ws.send(text)
        async for message in ws:
            received.append(str(message))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws/notifications/evil", received


def _real_client(url: str, token: str | None, on_message: Any, on_event: Any, since: int | None) -> JobClient:
    return JobClient(url, token, on_message=on_message, on_event=on_event, since=since, base_delay=0.05)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def test_a_server_posing_as_another_job_cannot_write_its_history_complete_it_or_get_its_retry(
    victim: tuple[JobServer, Any, list[wire.ActionRequest]],
) -> None:
    """Issue 10 item 3, as attacked: frames labelled with the victim's id from a second server."""
    server, handle, victim_got = victim
    fake = [
        frame("evil", 0, hello("evil", "r-evil")),
        frame("victim", 1, oom("victim-job: CUDA out of memory")),  # a fake error under the victim's id
        frame("victim", 2, wire.Status(state=wire.JobState.COMPLETED)),  # a fake completion
        *(frame(f"rot-{i}", 3 + i, wire.Progress(current_step=i)) for i in range(300)),  # rotating job ids
        frame("evil", 400, oom("victim-job: CUDA out of memory")),  # its own, dressed as the victim's
    ]
    rig = Rig(_real_client)

    async def scenario() -> None:
        rig.monitor.start()
        victim_url = server.url_for("victim").split("?")[0]
        victim_conn = rig.monitor.add(victim_url, "victim-token")
        await until(lambda: rig.engine.job(victim_conn.job_key) is not None)
        handle.progress(10)
        handle.status("failed", "the run ended")  # Retry is now accepted by the victim's server
        async with impostor(fake) as (evil_url, evil_received):
            evil = rig.monitor.add(evil_url)
            await until(lambda: evil.client is not None and getattr(evil.client, "foreign", 0) == 302)
            await until(lambda: any(r.job_id == evil.job_key for r in rig.notifier.requests))
            await settle(rig)
            for index, request in enumerate(rig.notifier.requests):
                if "out of memory" in request.event.title:  # every notification dressed as the victim's
                    rig.notifier.invoke("retry", index)
            await until(lambda: len(evil_received) >= 1)
            assert all('"retry"' in message for message in evil_received)
            assert len(rig.engine.jobs()) == 2  # rotating ids created no engine state
            rig.monitor.remove(evil_url)
            await settle(rig)
            assert [view.job_id for view in rig.engine.jobs()] == [victim_conn.job_key]
        everything = rig.history.query(HistoryQuery())
        assert [e.kind for e in everything if e.job_id != evil.job_key] == ["error"]  # the victim's own "failed"
        assert [e.job_id for e in everything if "out of memory" in e.title] == [evil.job_key]
        await rig.monitor.shutdown()

    asyncio.run(scenario())
    assert victim_got == []  # the victim's server never got a Retry
    assert not [r for r in rig.notifier.requests if r.event.type is wire.NotificationType.COMPLETION]


def test_two_real_servers_both_serving_sim_stay_two_jobs() -> None:
    first = JobServer(token="t", discovery_files=False).start()
    second = JobServer(token="t", discovery_files=False).start()
    rig = Rig(_real_client)
    try:
        a_handle = first.add_job("sim", name="sim", total_steps=100)
        b_handle = second.add_job("sim", name="sim", total_steps=100)

        async def scenario() -> None:
            rig.monitor.start()
            a = rig.monitor.add(first.url_for("sim").split("?")[0], "t")
            b = rig.monitor.add(second.url_for("sim").split("?")[0], "t")
            await until(lambda: a.state is ClientState.CONNECTED and b.state is ClientState.CONNECTED)
            a_handle.progress(60)
            b_handle.progress(10)
            b_handle.status("completed")
            await until(lambda: (rig.engine.job(b.job_key) or object()).__class__.__name__ == "JobView")
            await until(lambda: getattr(rig.engine.job(b.job_key), "state", None) is wire.JobState.COMPLETED)
            await until(lambda: getattr(rig.engine.job(a.job_key), "current_step", 0) == 60)
            await settle(rig)
            assert rig.engine.job(a.job_key).state is wire.JobState.RUNNING  # b's completion is not a's
            await rig.monitor.shutdown()

        asyncio.run(scenario())
    finally:
        first.stop()
        second.stop()
    links = [e for e in rig.events if isinstance(e, LinkChanged)]
    assert {e.connection.job_key for e in links} == {
        f"sim@127.0.0.1:{first.port}",
        f"sim@127.0.0.1:{second.port}",
    }


def test_history_listeners_hear_once_per_burst_and_never_for_a_taskbar_update() -> None:
    """Performed makes the app refresh its history views on the loop the next frame waits for
    (bench latency: a refresh per taskbar update held milestone frames ~15 ms): a batch that only
    moves the taskbar says nothing, and a burst of notifications is one Performed once the queue
    is drained, counting every history action of the burst."""
    rig, clock = Rig(), FakeClock(TS)
    rig.monitor.clock = clock.now

    async def scenario() -> None:
        rig.monitor.start()
        await asyncio.sleep(0)
        rig.monitor.add("ws://127.0.0.1:8001/ws/notifications/j")
        await asyncio.sleep(0)
        client = rig.clients[0]
        client.push(frame("j", 1, hello()))
        await settle(rig)
        rig.events.clear()
        for step in (3, 4, 5):  # no milestone; the taskbar follows (at once or on its trailing edge)
            client.push(frame("j", step - 1, wire.Progress(current_step=step, total_steps=100)))
            clock.advance(1.0)
            rig.monitor.tick()
        await settle(rig)
        decided = [a for e in rig.events if isinstance(e, Decided) for a in e.actions]
        assert decided and all(isinstance(a, SetTaskbar) for a in decided)  # the taskbar moved
        assert [e for e in rig.events if isinstance(e, Performed)] == []
        rig.events.clear()
        client.push(*(frame("j", 5 + i, oom(f"failure {i}")) for i in range(3)))  # three batches queued
        await settle(rig)
        assert [e.count for e in rig.events if isinstance(e, Performed)] == [3]
        assert sum(e.repeat for e in rig.history.query(HistoryQuery())) == 3  # (a repeated error merges)
        await rig.monitor.shutdown()

    asyncio.run(scenario())


def test_a_long_flood_of_history_writes_still_refreshes_history_views_along_the_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the queue never empties (a slow notifier under a flood), Performed still comes every
    PERFORMED_EVERY_S, and the counts add up to every history action performed."""
    monkeypatch.setattr("peft_notify.desktop.monitor.PERFORMED_EVERY_S", 0.05)

    class SlowPerformer:
        async def perform(self, actions: list[Action]) -> None:
            await asyncio.sleep(0.02)

    event = wire.NotificationEvent(type=wire.NotificationType.COMPLETION, title="t", message="")
    events: list[MonitorEvent] = []

    class Queued(Engine):  # every tick decides one notification: the flood
        def tick(self, *, now: float, dnd: Any) -> list[Action]:
            return [Notify(job_id="j", event=event, key="k")]

    monitor = Monitor(
        engine=Queued(), performer=SlowPerformer(), client_factory=Rig().fake_client, on_event=events.append
    )

    async def scenario() -> None:
        monitor.start()
        for _ in range(12):
            monitor.tick()
        await monitor.drain()
        counts = [e.count for e in events if isinstance(e, Performed)]
        assert len(counts) >= 2 and sum(counts) == 12
        await monitor.shutdown()

    asyncio.run(scenario())
