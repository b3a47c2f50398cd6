"""JobServer over real sockets: security, replay, limits, actions, HTTP API, never blocking."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from peft_notify import discovery, wire
from peft_notify.emitter import JobServer, PortInUseError
from tests.emitter.ws_helpers import recv_json, recv_until


def _is_completed(m: dict[str, Any]) -> bool:
    return bool(m["type"] == "status" and m["data"]["state"] == "completed")


def _http(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
        exc.close()
        return exc.code, body


def test_binds_loopback_by_default(server: JobServer) -> None:
    assert server.host == "127.0.0.1"
    handle = server.add_job("j")
    # The URL printed at start carries the job's token (issue 10: every job has one).
    assert handle.url == f"ws://127.0.0.1:{server.port}/ws/notifications/j?token={server.token}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass


def test_non_loopback_bind_generates_a_token() -> None:
    srv = JobServer(host="0.0.0.0", discovery_files=False)
    assert srv.token is not None
    assert len(srv.token) >= 24


def test_hello_first_then_live_events(server: JobServer) -> None:
    handle = server.add_job("j", name="llama", total_steps=10, capabilities=["retry"])
    handle.progress(3, loss=0.5)

    async def main() -> list[dict[str, Any]]:
        async with connect(server.url_for("j")) as ws:
            hello = await recv_json(ws)
            handle.notify("halfway", "50 %", milestone=50)
            handle.status("completed")
            return [hello, *await recv_until(ws, _is_completed)]

    hello, *rest = asyncio.run(main())
    assert hello["type"] == "hello"
    env = wire.decode(json.dumps(hello))
    assert isinstance(env.data, wire.Hello)
    assert env.data.name == "llama"
    assert env.data.capabilities == ("retry",)
    assert env.data.progress is not None
    assert env.data.progress.current_step == 3
    assert [m["type"] for m in rest][-2:] == ["notification", "status"]
    seqs = [m["seq"] for m in rest]
    assert seqs == sorted(set(seqs))
    assert all(s > env.data.last_seq for s in seqs)


def test_wrong_or_missing_token_is_refused() -> None:
    with JobServer(token="right-token", discovery_files=False) as srv:
        srv.add_job("j")

        async def attempt(url: str, headers: dict[str, str] | None = None) -> int:
            try:
                async with connect(url, additional_headers=headers):
                    return 101
            except InvalidStatus as exc:
                assert b"missing or wrong token" in exc.response.body
                return exc.response.status_code

        url = srv.url_for("j", with_token=False)
        assert asyncio.run(attempt(url)) == 401
        assert asyncio.run(attempt(url + "?token=wrong")) == 401
        assert asyncio.run(attempt(url, {"Authorization": "Bearer wrong"})) == 401
        assert asyncio.run(attempt(url + "?token=right-token")) == 101
        assert asyncio.run(attempt(url, {"Authorization": "Bearer right-token"})) == 101


def test_browser_origin_is_rejected_allow_listed_one_accepted() -> None:
    with JobServer(allowed_origins=["app://peft-notify"], discovery_files=False) as srv:
        srv.add_job("j")

        async def attempt(origin: str) -> int:
            try:
                async with connect(srv.url_for("j"), additional_headers={"Origin": origin}):
                    return 101
            except InvalidStatus as exc:
                assert b"not allowed" in exc.response.body
                return exc.response.status_code

        assert asyncio.run(attempt("https://evil.example")) == 403
        assert asyncio.run(attempt("http://localhost:3000")) == 403
        assert asyncio.run(attempt("app://peft-notify")) == 101


def test_unknown_job_and_path_are_404(server: JobServer) -> None:
    async def attempt(url: str) -> tuple[int, bytes]:
        try:
            async with connect(url):
                return 101, b""
        except InvalidStatus as exc:
            return exc.response.status_code, bytes(exc.response.body)

    status, body = asyncio.run(attempt(server.url_for("nope")))
    assert status == 404
    assert json.loads(body)["error"] == "unknown job 'nope'"
    status, _ = asyncio.run(attempt(f"ws://127.0.0.1:{server.port}/elsewhere?token={server.token}"))
    assert status == 404


def test_http_api(server: JobServer) -> None:
    handle = server.add_job("j", name="api", total_steps=4)
    handle.progress(2)
    handle.error("CUDA out of memory", "oom_error")
    base = f"http://127.0.0.1:{server.port}"
    auth = {"Authorization": f"Bearer {server.token}"}

    assert _http(f"{base}/healthz") == (200, {"ok": True})

    def error_seen() -> bool:
        return bool(_http(f"{base}/api/notifications/j", auth)[1])

    _wait(error_seen)
    status, notes = _http(f"{base}/api/notifications/j", auth)
    assert status == 200
    assert notes[0]["error_type"] == "oom_error"
    assert notes[0]["urgency"] == "critical"
    status, jobs = _http(f"{base}/api/jobs", auth)
    assert status == 200
    assert jobs[0]["job_id"] == "j"
    assert jobs[0]["current_step"] == 2
    assert _http(f"{base}/api/notifications/other", auth)[0] == 404


def test_http_api_needs_the_token() -> None:
    with JobServer(token="t0k", discovery_files=False) as srv:
        srv.add_job("j")
        base = f"http://127.0.0.1:{srv.port}"
        assert _http(f"{base}/api/jobs")[0] == 401
        assert _http(f"{base}/api/jobs", {"Authorization": "Bearer t0k"})[0] == 200


def test_resume_with_since_sees_every_event_once(server: JobServer) -> None:
    handle = server.add_job("j", total_steps=1000)

    async def main() -> list[int]:
        seen: list[int] = []
        async with connect(server.url_for("j") + "&since=0") as ws:
            await recv_json(ws)
            for i in range(5):
                handle.warning(f"w{i}")
            got = await recv_until(ws, lambda m: m["data"].get("message") == "w4")
            seen += [m["seq"] for m in got]
        # Disconnected: these happen while nobody listens.
        for i in range(5, 10):
            handle.warning(f"w{i}")
        handle.status("completed")
        await asyncio.sleep(0.2)
        async with connect(server.url_for("j") + f"&since={seen[-1]}") as ws:
            hello = await recv_json(ws)
            assert hello["data"]["replay_gap"] is False
            got = await recv_until(ws, _is_completed)
            seen += [m["seq"] for m in got]
        return seen

    seen = asyncio.run(main())
    assert seen == list(range(1, 12))


def test_huge_frame_from_a_client_does_not_crash_the_server(server: JobServer) -> None:
    handle = server.add_job("j")

    async def main() -> str:
        async with connect(server.url_for("j"), max_size=None) as bad:
            await recv_json(bad)
            await bad.send("x" * (wire.MAX_FRAME_BYTES * 4))
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(bad.recv(), 5)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
        async with connect(server.url_for("j")) as good:
            await recv_json(good)
            await good.send('{"type": "action", "data": {"action": 12}}')  # bad but small: skipped
            handle.warning("still alive")
            message = await recv_json(good)
            return str(message["data"]["message"])

    assert asyncio.run(main()) == "still alive"
    assert server.bad_frames == 2


def test_actions_reach_callbacks_and_exceptions_are_logged(server: JobServer, caplog: pytest.LogCaptureFixture) -> None:
    handle = server.add_job("j", capabilities=["retry"])
    handle.status("failed", "boom")  # retry is taken only once the run has ended (issue 10)
    got: list[wire.ActionRequest] = []
    done = threading.Event()

    @handle.on_action
    def boom(action: wire.ActionRequest) -> None:
        raise RuntimeError("callback bug")

    @handle.on_action
    def record(action: wire.ActionRequest) -> None:
        got.append(action)
        done.set()

    async def main() -> None:
        async with connect(server.url_for("j")) as ws:
            await recv_json(ws)
            await ws.send(wire.encode_action(wire.ActionRequest("retry", ref_seq=3)))
            await asyncio.to_thread(done.wait, 5)

    asyncio.run(main())
    assert got == [wire.ActionRequest("retry", ref_seq=3)]
    assert "callback bug" in caplog.text


def test_stalled_client_does_not_block_training(server: JobServer) -> None:
    """A client that never reads: 100k reports still return, memory stays bounded."""
    handle = server.add_job("j", total_steps=100_000)
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        b"GET /ws/notifications/j HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        for step in range(1, 100_001):
            handle.progress(step, loss=1.0 / step)
            if step % 50 == 0:
                handle.warning(f"warning {step} " + "x" * 400)
        # The training side is done while the stalled client has read nothing.
        job_log = server.event_log("j")
        _wait(lambda: job_log.snapshot is not None and job_log.snapshot.current_step == 100_000)
        assert len(job_log._important) <= job_log.important_capacity
        assert len(job_log._progress) <= job_log.progress_capacity

        async def healthy() -> dict[str, Any]:
            async with connect(server.url_for("j")) as ws:
                return await recv_json(ws)

        hello = asyncio.run(healthy())
        assert hello["data"]["progress"]["current_step"] == 100_000
    finally:
        stalled.close()


def test_progress_is_coalesced_latest_always_sent(server: JobServer) -> None:
    handle = server.add_job("j", total_steps=10_000)

    async def main() -> list[dict[str, Any]]:
        async with connect(server.url_for("j")) as ws:
            await recv_json(ws)
            for step in range(1, 10_001):
                handle.progress(step)
            return await recv_until(ws, lambda m: m["data"].get("current_step") == 10_000)

    got = asyncio.run(main())
    assert len(got) < 10_000
    steps = [m["data"]["current_step"] for m in got]
    assert steps == sorted(steps)


def test_progress_nobody_listens_to_waits_in_the_mailbox_and_reaches_a_late_client(server: JobServer) -> None:
    """No client, no tap: progress does not wake the server's loop (nothing is logged while training
    runs unwatched), yet a client that connects later, /api/jobs and the log at stop all get the latest."""
    handle = server.add_job("quiet", total_steps=10_000)
    job_log = server.event_log("quiet")
    before = job_log.last_seq
    for step in range(1, 5_001):
        handle.progress(step, loss=1.0 / step)
    threading.Event().wait(0.3)  # time the loop would need to take it, were it woken
    assert job_log.last_seq == before  # the loop was never woken for it
    status, jobs = _http(f"http://127.0.0.1:{server.port}/api/jobs", {"Authorization": f"Bearer {server.token}"})
    assert status == 200 and jobs[0]["current_step"] == 5_000
    handle.progress(5_001)

    async def late() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with connect(server.url_for("quiet")) as ws:
            hello = await recv_json(ws)
            handle.progress(5_002)  # a listener now: live progress flows again
            return hello, await recv_until(ws, lambda m: m["data"].get("current_step") == 5_002)

    hello, live = asyncio.run(late())
    assert hello["data"]["progress"]["current_step"] == 5_001
    assert live[-1]["data"]["current_step"] == 5_002
    handle.progress(5_003)  # nobody listens again: kept until the server stops
    server.stop()
    assert job_log.snapshot is not None and job_log.snapshot.current_step == 5_003


def test_a_progress_entering_a_new_percent_is_not_held_by_the_rate_limit() -> None:
    """Milestones are whole percents: a progress that enters a new one goes out at once, not on the
    rate limit's trailing edge (issue 17, notify latency: up to 1/progress_hz = 50 ms by default).
    Here the limit is one frame per 100 s, so without the bypass step 110 would not come in time."""
    srv = JobServer(progress_hz=0.01, discovery_files=False).start()
    try:
        handle = srv.add_job("m", total_steps=1000)

        async def main() -> list[dict[str, Any]]:
            async with connect(srv.url_for("m")) as ws:
                await recv_json(ws)
                handle.progress(100)  # 10 %: the first frame goes at once anyway
                got = await recv_until(ws, lambda m: m["data"].get("current_step") == 100)
                handle.progress(101)  # still 10 %: held by the 100 s window
                handle.progress(110)  # 11 %: a milestone may be due, out now (with the latest, 110)
                return got + await recv_until(ws, lambda m: m["data"].get("current_step") == 110)

        steps = [m["data"]["current_step"] for m in asyncio.run(main()) if m["type"] == "progress"]
        assert steps == [100, 110]  # 101 was coalesced away, as before
    finally:
        srv.stop()


def test_evaluations_are_never_coalesced_away(server: JobServer) -> None:
    handle = server.add_job("ev", total_steps=10_000)

    async def main() -> list[dict[str, Any]]:
        async with connect(server.url_for("ev")) as ws:
            await recv_json(ws)
            for step in range(1, 10_001):
                handle.progress(step, metrics={"eval_loss": 1.0 / step} if step % 1000 == 0 else None)
            return await recv_until(ws, lambda m: m["data"].get("current_step") == 10_000)

    got = asyncio.run(main())
    assert len(got) < 10_000  # plain progress is still coalesced
    evals = [m["data"]["current_step"] for m in got if "metrics" in m["data"]]
    assert evals == list(range(1000, 10_001, 1000))  # every evaluation, at its own step
    steps = [m["data"]["current_step"] for m in got]
    assert steps == sorted(steps)


def test_port_in_use_is_a_clear_error_or_falls_back(server: JobServer) -> None:
    with pytest.raises(PortInUseError, match="already in use"):
        JobServer(port=server.port, discovery_files=False).start()
    with JobServer(port=server.port, fallback_to_free_port=True, discovery_files=False) as other:
        assert other.port not in (0, server.port)


def test_discovery_file_written_and_removed(runtime_dir: Path) -> None:
    srv = JobServer(token="tok").start()
    handle = srv.add_job("disc", name="Disc")
    [job] = discovery.list_job_files()
    assert (job.url, job.token, job.name) == (srv.url_for("disc", with_token=False), "tok", "Disc")
    assert handle.url == f"{job.url}?token=tok"
    srv.stop()
    assert discovery.list_job_files() == []


def test_invalid_reports_are_logged_not_raised(server: JobServer, caplog: pytest.LogCaptureFixture) -> None:
    handle = server.add_job("j", total_steps=10)
    handle.progress(5, loss=float("nan"))  # dropped field, progress still sent
    handle.progress(-3)  # invalid: logged and dropped
    handle.notify("x" * 10, "m", milestone=500)  # invalid milestone: logged and dropped
    handle.status("completed")
    job_log = server.event_log("j")
    _wait(lambda: job_log.state is wire.JobState.COMPLETED)
    assert "dropping an invalid report" in caplog.text


def _wait(pred: Any, timeout: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


def test_resumed_job_starts_with_its_step_in_the_hello(server: JobServer) -> None:
    server.add_job("resumed", name="r", total_steps=100, start_step=40)

    async def main() -> dict[str, Any]:
        async with connect(server.url_for("resumed")) as ws:
            return await recv_json(ws)

    hello = asyncio.run(main())
    assert hello["type"] == "hello"
    assert hello["data"]["progress"]["current_step"] == 40
    assert hello["data"]["progress"]["total_steps"] == 100


def test_new_run_sends_a_fresh_hello_on_the_open_connection(server: JobServer) -> None:
    handle = server.add_job("again", name="again", total_steps=10)

    async def main() -> list[dict[str, Any]]:
        async with connect(server.url_for("again")) as ws:
            first = await recv_json(ws)
            handle.progress(5)
            handle.status("failed", "boom")
            got = await recv_until(ws, lambda m: m["type"] == "status")
            run_id = await asyncio.to_thread(server.new_run, "again", total_steps=20)
            handle.progress(1)
            got += await recv_until(ws, lambda m: m["type"] == "progress")
            assert got[-2]["data"]["run_id"] == run_id
            return [first, *got]

    got = asyncio.run(main())
    kinds = [(m["type"], m["data"].get("state") or m["data"].get("current_step")) for m in got]
    assert kinds == [("hello", "running"), ("progress", 5), ("status", "failed"), ("hello", "running"), ("progress", 1)]
    assert got[3]["data"]["total_steps"] == 20
    assert got[0]["data"]["run_id"] != got[3]["data"]["run_id"]
    seqs = [m["seq"] for m in got[1:3]] + [got[4]["seq"]]
    assert seqs == sorted(seqs)  # numbering continues: a reconnecting client misses nothing


def test_a_logged_loss_is_not_coalesced_away_by_the_next_plain_step() -> None:
    """The Transformers callback reports every step without a loss (on_step_end) and the loss only
    at its logging steps (on_log, right after): in a fast loop the next plain step replaced the
    logged one before the 20 Hz flush, so the app saw almost no loss. A logged loss now goes out
    (at most the latest one per flush), then the latest step."""
    srv = JobServer(discovery_files=False).start()
    try:
        handle = srv.add_job("fast", total_steps=3000)

        async def main() -> list[dict[str, Any]]:
            async with connect(srv.url_for("fast")) as ws:
                await recv_json(ws)
                for step in range(1, 3001):
                    handle.progress(step)
                    if step % 7 == 0:
                        handle.progress(step, loss=1.0 / step)  # on_log of the same step
                    time.sleep(0.0005)
                return await recv_until(ws, lambda m: m["data"].get("current_step") == 3000)

        got = [m["data"] for m in asyncio.run(main()) if m["type"] == "progress"]
        with_loss = [d for d in got if d.get("loss") is not None]
        assert all(d["loss"] == 1.0 / d["current_step"] for d in with_loss)  # the loss of its own step
        frames = len(got)
        # Nearly every flush carries the newest logged loss (one is logged every ~4 ms here).
        assert len(with_loss) >= frames // 2 - 2, (len(with_loss), frames)
        steps = [d["current_step"] for d in got]
        assert steps == sorted(steps)
    finally:
        srv.stop()
