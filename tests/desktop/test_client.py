"""JobClient against real servers: resume without loss or duplicates, backoff, auth, bad frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.sync.server import ServerConnection as SyncServerConnection
from websockets.sync.server import serve as sync_serve

from peft_notify import wire
from peft_notify.desktop.client import JobClient
from peft_notify.desktop.frames import ClientState, ConnectionEvent, FrameTracker, backoff, normalize_url, parse_job_url
from peft_notify.emitter import JobServer
from peft_notify.engine import Engine, Notify


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))


@pytest.fixture
def server() -> Iterator[JobServer]:
    srv = JobServer().start()
    yield srv
    srv.stop()


def _sep(url: str) -> str:
    return "&" if "?" in url else "?"


def _address(url: str) -> str:
    """``url`` without its query (the token the server put in it)."""
    return url.split("?", 1)[0]


def test_backoff_is_exponential_capped_with_full_jitter() -> None:
    assert list(islice(backoff(0.5, 4.0, rng=lambda: 1.0), 6)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert list(islice(backoff(0.5, 4.0, rng=lambda: 0.5), 3)) == [0.25, 0.5, 1.0]
    assert all(0.0 <= d <= 30.0 for d in islice(backoff(), 100))


def test_normalize_url_accepts_http_forms() -> None:
    assert normalize_url("http://h:1/ws/notifications/j") == "ws://h:1/ws/notifications/j"
    assert normalize_url("https://h:1/ws/notifications/j?since=3") == "wss://h:1/ws/notifications/j?since=3"
    assert normalize_url("ws://h:1/ws/notifications/j") == "ws://h:1/ws/notifications/j"
    with pytest.raises(ValueError, match="not a job URL"):
        normalize_url("ftp://h/x")


def test_frame_tracker_is_fed_without_a_socket() -> None:
    """The Sans-I/O bookkeeping: bad frames, replays, another job's frames, a new run."""

    def f(seq: int, body: wire.Body, kind: str, job: str = "j") -> str:
        return wire.encode(wire.Envelope(type=kind, data=body, seq=seq, job_id=job, ts=0.0))

    tracker = FrameTracker("j")
    note = wire.NotificationEvent(type=wire.NotificationType.WARNING, title="t", message="m")
    delivered = [
        tracker.receive(frame)
        for frame in (
            f(0, wire.Hello(name="n", run_id="r1", last_seq=0), "hello"),
            f(1, note, "notification"),
            "{not json",
            f(1, note, "notification"),  # a replay
            f(2, note, "notification", job="someone-else"),  # posing as another job
            f(2, wire.Status(state=wire.JobState.COMPLETED), "status"),
        )
    ]
    assert [env.seq if env else None for env in delivered] == [0, 1, None, None, None, 2]
    assert (tracker.bad_frames, tracker.duplicates, tracker.foreign, tracker.finished) == (1, 1, 1, True)
    assert tracker.resume_url("ws://h:1/ws/notifications/j?token=t") == (
        "ws://h:1/ws/notifications/j?token=t&since=2&run_id=r1"
    )
    assert tracker.receive(f(0, wire.Hello(name="n", run_id="r2"), "hello")) is not None  # a relaunched run
    assert tracker.last_seq == 0 and tracker.receive(f(1, note, "notification")) is not None


def test_parse_job_url_is_the_one_strict_check() -> None:
    job = parse_job_url("https://Host:8443/ws/notifications/run-7/?token=s3cret&since=12")
    assert (job.url, job.job_id, job.host, job.port, job.since) == (
        "wss://Host:8443/ws/notifications/run-7/?token=s3cret&since=12",
        "run-7",
        "host",
        8443,
        12,
    )
    assert job.job_key == "run-7@host:8443"
    assert "s3cret" not in job.address
    assert parse_job_url("ws://[::1]:9/ws/notifications/j").job_key == "j@[::1]:9"
    for bad in (
        "ws://h:99999/ws/notifications/j",
        "ws:///ws/notifications/j",
        "ws://h:1/ws/notifications/bad id",
        "ws://h:1/ws/notifications/j?since=-1",
        "ws://h:1/ws/notifications/j?since=٣",
    ):
        with pytest.raises(ValueError, match="not a job URL"):
            parse_job_url(bad)
    with pytest.raises(ValueError) as info:
        parse_job_url("ftp://h/x?token=s3cret")
    assert "s3cret" not in str(info.value)  # a message never shows the token


class Recorder:
    """Collects envelopes and connection events; lets a test wait for a condition."""

    def __init__(self) -> None:
        self.messages: list[wire.Envelope] = []
        self.events: list[ConnectionEvent] = []
        self.changed = asyncio.Event()

    def on_message(self, env: wire.Envelope) -> None:
        self.messages.append(env)
        self.changed.set()

    def on_event(self, event: ConnectionEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, pred: object, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not pred():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

    def seqs(self) -> list[int]:
        return [m.seq for m in self.messages if m.type != "hello" and m.seq is not None]

    def texts(self) -> list[str]:
        return [m.data.message for m in self.messages if isinstance(m.data, wire.NotificationEvent)]


def test_finishes_after_terminal_status_and_close(server: JobServer) -> None:
    handle = server.add_job("j", total_steps=3)

    async def main() -> tuple[ClientState, Recorder]:
        rec = Recorder()
        client = JobClient(server.url_for("j"), on_message=rec.on_message, on_event=rec.on_event)
        task = asyncio.create_task(client.run())
        await rec.until(lambda: client.state is ClientState.CONNECTED)
        for step in (1, 2, 3):
            handle.progress(step)
        handle.status("completed")
        await rec.until(lambda: any(isinstance(m.data, wire.Status) for m in rec.messages))
        await asyncio.to_thread(server.stop)
        return await asyncio.wait_for(task, 10), rec

    state, rec = asyncio.run(main())
    assert state is ClientState.FINISHED
    assert rec.messages[0].type == "hello"
    assert rec.events[-1].state is ClientState.FINISHED


def test_server_dies_client_reconnects_and_resumes_without_loss_or_dups(server: JobServer) -> None:
    handle = server.add_job("j")
    port = server.port

    async def main() -> tuple[Recorder, JobClient]:
        rec = Recorder()
        url = server.url_for("j")
        client = JobClient(
            url + _sep(url) + "since=0", on_message=rec.on_message, on_event=rec.on_event, base_delay=0.05
        )
        task = asyncio.create_task(client.run())
        for i in range(3):
            handle.warning(f"a{i}")
        await rec.until(lambda: len(rec.texts()) == 3)
        await asyncio.to_thread(server.stop)
        await rec.until(lambda: any(e.retry_in is not None for e in rec.events))
        # A restarted job on the same port: a new run, sequence numbers start again at 1.
        again = JobServer(port=port, token=server.token).start()
        try:
            h2 = again.add_job("j")
            h2.warning("b0")
            h2.warning("b1")
            await rec.until(lambda: len(rec.texts()) == 5)
            # A client-side drop (not a server restart): resume with since= on the same run.
            ws = client._ws
            assert ws is not None
            await ws.close(1001, "test drop")
            h2.warning("b2")
            await rec.until(lambda: len(rec.texts()) == 6)
            h2.status("completed")
            await rec.until(lambda: any(isinstance(m.data, wire.Status) for m in rec.messages))
        finally:
            await asyncio.to_thread(again.stop)
        await asyncio.wait_for(task, 10)
        return rec, client

    rec, client = asyncio.run(main())
    assert rec.texts() == ["a0", "a1", "a2", "b0", "b1", "b2"]
    reconnecting = [e for e in rec.events if e.state is ClientState.RECONNECTING and e.retry_in is not None]
    assert reconnecting
    assert all(0.0 <= e.retry_in <= 30.0 for e in reconnecting if e.retry_in is not None)
    assert client.connects >= 3
    assert client.state is ClientState.FINISHED


def test_wrong_token_stops_with_auth_refused() -> None:
    with JobServer(token="good", discovery_files=False) as srv:
        srv.add_job("j")
        rec = Recorder()

        async def main() -> ClientState:
            client = JobClient(_address(srv.url_for("j")), token="bad", on_event=rec.on_event)
            return await asyncio.wait_for(client.run(), 10)

        assert asyncio.run(main()) is ClientState.AUTH_REFUSED
        assert "wrong token" in rec.events[-1].detail

        async def good() -> ClientState:
            client = JobClient(_address(srv.url_for("j")), token="good", on_event=rec.on_event)
            task = asyncio.create_task(client.run())
            await rec.until(lambda: client.state is ClientState.CONNECTED)
            client.stop()
            return await asyncio.wait_for(task, 10)

        assert asyncio.run(good()) is ClientState.STOPPED


def test_unknown_job_is_a_protocol_error(server: JobServer) -> None:
    async def main() -> ClientState:
        return await asyncio.wait_for(JobClient(server.url_for("missing")).run(), 10)

    assert asyncio.run(main()) is ClientState.PROTOCOL_ERROR


def test_bad_frames_are_skipped_and_old_seqs_dropped() -> None:
    """A hand-written server sends garbage, a duplicate and an oversized frame between good ones."""

    def env(seq: int, text: str) -> str:
        body = wire.NotificationEvent(type=wire.NotificationType.WARNING, title="t", message=text)
        return wire.encode(wire.Envelope(type="notification", data=body, seq=seq, job_id="j", ts=0.0))

    hello = wire.encode(wire.Envelope(type="hello", data=wire.Hello(name="n", run_id="r"), seq=0, job_id="j", ts=0.0))
    sent = threading.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(hello)
        await ws.send(env(1, "one"))
        await ws.send("{not json")
        await ws.send(json.dumps({"v": 1, "type": "progress"}))
        await ws.send(env(1, "dup"))
        await ws.send("x" * (wire.MAX_FRAME_BYTES + 10))
        await ws.send(env(2, "two"))
        sent.set()
        await ws.wait_closed()

    async def main() -> tuple[Recorder, JobClient]:
        rec = Recorder()
        async with serve(handler, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            client = JobClient(f"ws://127.0.0.1:{port}/ws/notifications/j", on_message=rec.on_message)
            task = asyncio.create_task(client.run())
            await rec.until(lambda: "two" in rec.texts())
            client.stop()
            await asyncio.wait_for(task, 10)
        return rec, client

    rec, client = asyncio.run(main())
    assert rec.texts() == ["one", "two"]
    assert client.bad_frames == 3
    assert client.duplicates == 1
    assert client.connects == 1


def test_send_action_reaches_the_job(server: JobServer) -> None:
    handle = server.add_job("j", capabilities=["retry", "cancel"])  # a job takes only the actions it offers
    got = threading.Event()
    handle.on_action(lambda action: got.set() if action.action == "cancel" else None)

    async def main() -> bool:
        rec = Recorder()
        client = JobClient(server.url_for("j"), on_event=rec.on_event)
        assert await client.send_action(wire.ActionRequest("cancel")) is False  # not connected yet
        task = asyncio.create_task(client.run())
        await rec.until(lambda: client.state is ClientState.CONNECTED)
        ok = await client.send_action(wire.ActionRequest("cancel", ref_seq=1))
        await asyncio.to_thread(got.wait, 5)
        client.stop()
        await task
        return ok

    assert asyncio.run(main()) is True
    assert got.is_set()


# ---------------------------------------------------------------- progress coalescing


def _frame(seq: int, body: wire.Body, kind: str) -> str:
    return wire.encode(wire.Envelope(type=kind, data=body, seq=seq, job_id="j", ts=0.0))


def _burst_after_hello(frames: list[str], rec: Recorder, client_setup: object = None) -> JobClient:
    """Serve hello, then ``frames`` while the client is still busy with the hello (so they are buffered)."""
    seen_hello, sent = threading.Event(), threading.Event()

    def handler(ws: SyncServerConnection) -> None:
        ws.send(_frame(0, wire.Hello(name="n", run_id="r", total_steps=100), "hello"))
        seen_hello.wait(5)  # the burst must not share a read with the hello
        for frame in frames:
            ws.send(frame)
        sent.set()
        with contextlib.suppress(Exception):
            ws.recv()  # until the client closes

    def on_message(env: wire.Envelope) -> None:
        if isinstance(env.data, wire.Hello):
            seen_hello.set()
            sent.wait(5)  # blocks the client's loop: the burst piles up in the socket meanwhile
            time.sleep(0.05)
        rec.on_message(env)

    with sync_serve(handler, "127.0.0.1", 0) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        port = srv.socket.getsockname()[1]
        client = JobClient(f"ws://127.0.0.1:{port}/ws/notifications/j", on_message=on_message)
        if callable(client_setup):
            client_setup(client)

        async def main() -> None:
            task = asyncio.create_task(client.run())
            await rec.until(lambda: any(isinstance(m.data, wire.Status) for m in rec.messages))
            client.stop()
            await asyncio.wait_for(task, 10)

        asyncio.run(main())
        srv.shutdown()
    return client


def test_a_buffered_progress_burst_is_coalesced_and_milestones_still_fire() -> None:
    """40 buffered progress frames crossing 25/50/75: one is decoded; the engine names the passed ones."""
    progress = [_frame(i, wire.Progress(current_step=2 * i, total_steps=100), "progress") for i in range(1, 41)]
    end = _frame(41, wire.Status(state=wire.JobState.PAUSED), "status")
    rec = Recorder()
    client = _burst_after_hello([*progress, end], rec)

    delivered = [m for m in rec.messages if isinstance(m.data, wire.Progress)]
    assert [m.seq for m in delivered] == [40]
    assert client.coalesced == 39
    assert client.last_seq == 41
    assert [m.type for m in rec.messages] == ["hello", "progress", "status"]
    engine = Engine()
    notifies = [a for m in rec.messages for a in engine.feed(m, now=1000.0) if isinstance(a, Notify)]
    (milestone,) = notifies
    assert milestone.event.milestone == 75
    assert "passed 25 % and 50 % too" in milestone.event.message


def test_non_progress_frames_are_delivered_in_order_between_coalesced_progress() -> None:
    def prog(seq: int, step: int) -> str:
        return _frame(seq, wire.Progress(current_step=step, total_steps=100), "progress")

    warn = wire.NotificationEvent(type=wire.NotificationType.WARNING, title="t", message="spike")
    frames = [
        prog(1, 1),
        prog(2, 2),
        _frame(3, warn, "notification"),
        prog(4, 4),
        '{"v":1,"seq":5,"type":"future","job_id":"j","ts":"2026-01-01T00:00:00.000Z","data":{}}',
        prog(6, 6),
        prog(7, 7),
        _frame(8, wire.Status(state=wire.JobState.PAUSED), "status"),
    ]
    rec = Recorder()
    client = _burst_after_hello(frames, rec)
    assert [m.seq for m in rec.messages] == [0, 2, 3, 4, 5, 7, 8]
    assert [m.type for m in rec.messages] == [
        "hello",
        "progress",
        "notification",
        "progress",
        "future",
        "progress",
        "status",
    ]
    assert client.coalesced == 2


def test_progress_with_evaluation_metrics_is_never_coalesced() -> None:
    def prog(seq: int, step: int, **metrics: float) -> str:
        return _frame(seq, wire.Progress(current_step=step, total_steps=100, metrics=metrics), "progress")

    frames = [prog(1, 1), prog(2, 2, eval_loss=1.5), prog(3, 3), prog(4, 4), prog(5, 5, eval_loss=1.2), prog(6, 6)]
    frames.append(_frame(7, wire.Status(state=wire.JobState.PAUSED), "status"))
    rec = Recorder()
    client = _burst_after_hello(frames, rec)
    delivered = [m.data for m in rec.messages if isinstance(m.data, wire.Progress)]
    evals = [(p.current_step, p.metrics["eval_loss"]) for p in delivered if p.metrics]
    assert evals == [(2, 1.5), (5, 1.2)]
    assert delivered[-1].current_step == 6
    assert client.coalesced == 1  # only step 3 (superseded by 4); an evaluation flushes what is parked before it


def test_the_receive_loop_yields_to_the_event_loop_during_a_burst() -> None:
    """A callback scheduled by the first frame of a burst runs before the burst is done."""
    seen: list[int] = []
    rec = Recorder()
    warn = wire.NotificationEvent(type=wire.NotificationType.WARNING, title="t", message="start")
    progress = [_frame(i, wire.Progress(current_step=i, total_steps=100), "progress") for i in range(2, 62)]
    frames = [_frame(1, warn, "notification"), *progress, _frame(62, wire.Status(state=wire.JobState.PAUSED), "status")]
    original = rec.on_message

    def on_message(env: wire.Envelope) -> None:
        original(env)
        if isinstance(env.data, wire.NotificationEvent):
            asyncio.get_running_loop().call_soon(lambda: seen.append(client_ref[0].coalesced))

    client_ref: list[JobClient] = []

    def setup(client: JobClient) -> None:
        client.yield_every = 8
        client_ref.append(client)

    rec.on_message = on_message  # type: ignore[method-assign]
    client = _burst_after_hello(frames, rec, setup)
    assert client.coalesced + len([m for m in rec.messages if isinstance(m.data, wire.Progress)]) == 60
    assert seen and seen[0] < 8  # without yielding it would only run after all 60 frames (coalesced 59)


class _CountingLoop(asyncio.SelectorEventLoop):
    """The standard loop, counting the callbacks the client module schedules (instrumentation, not a mock)."""

    client_callbacks = 0

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        if getattr(callback, "__module__", "") == "peft_notify.desktop.client":
            self.client_callbacks += 1
        return super().call_soon(callback, *args, context=context)


def test_progress_parked_by_many_clients_in_one_loop_turn_is_delivered_by_one_callback() -> None:
    """20 jobs' progress frames arriving in the same loop turn: all delivered, by one loop callback, not 20.

    Under qasync every ready callback is a Qt timer of its own; with 1,000 jobs that was one per frame.
    """
    jobs = 20
    go, all_sent = threading.Event(), threading.Event()
    sent, lock = [0], threading.Lock()
    hellos: list[str] = []
    progress_seen: list[str] = []
    at_unblock: list[int] = []

    def handler(ws: SyncServerConnection) -> None:
        job = ws.request.path.rsplit("/", 1)[-1] if ws.request is not None else "?"
        ws.send(wire.encode(wire.Envelope(type="hello", data=wire.Hello(name=job, run_id="r"), seq=0, job_id=job)))
        go.wait(10)
        ws.send(wire.encode(wire.Envelope(type="progress", data=wire.Progress(current_step=5), seq=1, job_id=job)))
        with lock:
            sent[0] += 1
            if sent[0] == jobs:
                all_sent.set()
        with contextlib.suppress(Exception):
            ws.recv()  # until the client closes

    loop = _CountingLoop()

    def on_message(env: wire.Envelope) -> None:
        if isinstance(env.data, wire.Hello):
            hellos.append(env.data.name)
            if len(hellos) == jobs:  # block the loop until every job's progress is in its socket
                go.set()
                all_sent.wait(10)
                time.sleep(0.1)
                at_unblock.append(loop.client_callbacks)
        elif isinstance(env.data, wire.Progress):
            progress_seen.append(env.job_id or "")

    with sync_serve(handler, "127.0.0.1", 0) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        port = srv.socket.getsockname()[1]
        clients = [
            JobClient(f"ws://127.0.0.1:{port}/ws/notifications/j{i}", on_message=on_message) for i in range(jobs)
        ]

        async def main() -> None:
            tasks = [asyncio.create_task(c.run()) for c in clients]
            async with asyncio.timeout(20):
                while len(progress_seen) < jobs:
                    await asyncio.sleep(0.01)
            for c in clients:
                c.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)

        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            runner.run(main())
        srv.shutdown()
    assert sorted(progress_seen) == sorted(f"j{i}" for i in range(jobs))
    assert at_unblock and loop.client_callbacks - at_unblock[0] == 1
