"""Issue 10, training side: each attack performed against a real JobServer (a second uid where it matters).

Item 1: tokens always, actions gated. Item 2: DNS rebinding (Host). Item 5: slots and
stalled clients. Item 6: paged, cached /api/notifications. Item 8: one log line per
minute of bad frames. Item 9: strict ``since=`` parsing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from peft_notify import wire
from peft_notify.emitter import JobServer
from tests.emitter.ws_helpers import recv_json

OTHER_UID = 65534  # nobody
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every uid (the venv's interpreter may live under /root)


def _http(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, json.loads(body) if body else None


def _raw_request(port: int, path: str, host: str | None = None, headers: str = "") -> str:
    """Send one HTTP/1.1 WebSocket handshake by hand; returns the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
            ).encode()
        )
        return sock.recv(65536).split(b"\r\n", 1)[0].decode("latin-1")


def _wait(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.fixture
def server() -> Iterator[JobServer]:
    srv = JobServer(progress_hz=0).start()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- item 1: another local user

ATTACK = r"""
import json, os, socket, sys, urllib.error, urllib.request
port, job, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {"uid": os.getuid()}
def http(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
out["jobs"], out["notes"], out["healthz"] = http("/api/jobs"), http("/api/notifications/" + job), http("/healthz")
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("GET /ws/notifications/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % (job, port)).encode())
out["ws"] = s.recv(4096).split(b"\r\n", 1)[0].decode()
try:
    out["files"] = [open(os.path.join(folder, n)).read() for n in os.listdir(folder)]
except OSError as e:
    out["files"] = type(e).__name__
print(json.dumps(out))
"""


def _as_other_user(code: str, *args: str) -> dict[str, Any]:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs root, setpriv and /usr/bin/python3 to act as a second uid")
    proc = subprocess.run(
        [setpriv, f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", SYSTEM_PYTHON, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_another_local_user_can_neither_read_nor_control_a_loopback_job(runtime_dir: Path) -> None:
    runtime_dir.parent.chmod(0o755)  # the attacker may look, as on a real machine; the runtime dir itself is 0700
    with JobServer() as srv:  # no token given: one is generated anyway
        handle = srv.add_job("victim", name="train.py", capabilities=["retry", "cancel"])
        handle.error("git clone https://alice:pw@host/x failed", "system_crash")
        got = _as_other_user(ATTACK, str(srv.port), "victim", str(runtime_dir))
    assert got["uid"] == OTHER_UID
    assert (got["jobs"], got["notes"], got["healthz"]) == (401, 401, 200)
    assert "401" in got["ws"]
    assert got["files"] == "PermissionError"  # the token lives only in the 0600 file in the 0700 dir


def _action_roundtrip(srv: JobServer, job_id: str, actions: list[str]) -> None:
    async def main() -> None:
        async with connect(srv.url_for(job_id)) as ws:
            await recv_json(ws)
            for name in actions:
                await ws.send(wire.encode_action(wire.ActionRequest(name)))
            await asyncio.sleep(0.3)

    asyncio.run(main())


def test_actions_need_the_capability_and_retry_needs_an_ended_run(server: JobServer) -> None:
    plain = server.add_job("plain")  # advertises nothing
    runner = server.add_job("runner", capabilities=["retry", "cancel"])
    got: list[tuple[str, str]] = []
    plain.on_action(lambda a: got.append(("plain", a.action)))
    runner.on_action(lambda a: got.append(("runner", a.action)))

    _action_roundtrip(server, "plain", ["retry", "cancel"])
    _action_roundtrip(server, "runner", ["retry", "shutdown"])  # running: no retry; shutdown is not offered
    assert got == []
    assert server.refused_actions == 4

    _action_roundtrip(server, "runner", ["cancel"])
    runner.status("failed", "boom")
    _wait(lambda: server.event_log("runner").state is wire.JobState.FAILED)
    _action_roundtrip(server, "runner", ["retry"])
    _wait(lambda: len(got) == 2)
    assert got == [("runner", "cancel"), ("runner", "retry")]


def test_every_server_has_a_token_and_only_healthz_is_open(server: JobServer) -> None:
    assert server.token and len(server.token) >= 24
    server.add_job("j")
    assert _http(server.port, "/healthz")[0] == 200
    for path in ("/api/jobs", "/api/notifications/j", "/nowhere"):
        assert _http(server.port, path)[0] == 401
    assert "401" in _raw_request(server.port, "/ws/notifications/j")
    assert "101" in _raw_request(server.port, f"/ws/notifications/j?token={server.token}")


# --------------------------------------------------------------------------- item 2: DNS rebinding


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("evil.example:{port}", False),
        ("rebind.attacker.test", False),
        ("127.0.0.1:{port}", True),
        ("localhost:{port}", True),
        ("[::1]:{port}", True),
        ("app.localhost:{port}", True),
    ],
)
def test_dns_rebinding_host_is_refused_even_with_the_token(server: JobServer, host: str, allowed: bool) -> None:
    server.add_job("j")
    auth = f"Authorization: Bearer {server.token}\r\n"
    status = _raw_request(server.port, "/ws/notifications/j", host=host.format(port=server.port), headers=auth)
    assert ("101" in status) is allowed, status
    api = _raw_request(server.port, "/api/jobs", host=host.format(port=server.port), headers=auth)
    assert ("200" in api) is allowed, api


def test_a_configured_bind_name_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_ALLOWED_HOSTS", "gpu-box.lab.example, other.example")
    with JobServer(allowed_hosts=["gpu-box"], discovery_files=False) as srv:
        srv.add_job("j")
        auth = f"Authorization: Bearer {srv.token}\r\n"
        assert "101" in _raw_request(srv.port, "/ws/notifications/j", host=f"gpu-box:{srv.port}", headers=auth)
        assert "403" in _raw_request(srv.port, "/ws/notifications/j", host=f"other-box:{srv.port}", headers=auth)
        fqdn = f"gpu-box.lab.example:{srv.port}"
        assert "101" in _raw_request(srv.port, "/ws/notifications/j", host=fqdn, headers=auth)


# --------------------------------------------------------------------------- item 5: slots


def test_owner_gets_in_while_attackers_hold_connections() -> None:
    with JobServer(max_clients_per_job=4, discovery_files=False) as srv:
        srv.add_job("j")
        # Attackers: some hold bare TCP connections (slowloris), some complete handshakes without the token.
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(16)]
        try:
            refused = [_raw_request(srv.port, "/ws/notifications/j") for _ in range(32)]
            assert all("401" in status for status in refused)
            assert srv.subscriber_count("j") == 0  # no slot was taken by anyone unauthenticated

            async def owner() -> dict[str, Any]:
                async with connect(srv.url_for("j")) as ws:
                    return await recv_json(ws)

            assert asyncio.run(owner())["type"] == "hello"
        finally:
            for sock in idle:
                sock.close()


def _stalled_subscriber(srv: JobServer, job_id: str) -> socket.socket:
    """An authenticated client that never reads (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(
        f"GET /ws/notifications/{job_id}?token={srv.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


def test_a_client_whose_buffer_stays_full_is_evicted_and_its_slot_freed() -> None:
    with JobServer(max_clients_per_job=2, send_timeout=1.0, discovery_files=False) as srv:
        handle = srv.add_job("j")
        stalled = [_stalled_subscriber(srv, "j") for _ in range(2)]
        try:
            _wait(lambda: srv.subscriber_count("j") == 2)
            assert "503" in _raw_request(srv.port, f"/ws/notifications/j?token={srv.token}")  # slots full
            deadline = time.monotonic() + 30
            sent = 0
            while srv.subscriber_count("j") and time.monotonic() < deadline:  # until the socket buffers are full
                for _ in range(50):
                    handle.warning(f"warning {sent} " + "x" * 4000)
                    sent += 1
                time.sleep(0.05)
            assert srv.subscriber_count("j") == 0, f"still subscribed after {sent} warnings"

            async def owner() -> dict[str, Any]:
                async with connect(srv.url_for("j")) as ws:
                    return await recv_json(ws)

            assert asyncio.run(owner())["type"] == "hello"
        finally:
            for sock in stalled:
                sock.close()


# --------------------------------------------------------------------------- item 6: /api/notifications


def test_notifications_are_paged_with_a_bounded_default(server: JobServer) -> None:
    handle = server.add_job("j")
    for i in range(250):
        handle.warning(f"w{i}")
    _wait(lambda: len(server.event_log("j").notifications) == 250)
    auth = {"Authorization": f"Bearer {server.token}"}
    status, latest = _http(server.port, "/api/notifications/j", auth)
    assert status == 200
    assert len(latest) == 100  # default page: the latest 100
    assert latest[-1]["message"] == "w249"
    _, first = _http(server.port, "/api/notifications/j?since=0&limit=10", auth)
    assert [n["message"] for n in first] == [f"w{i}" for i in range(10)]
    _, following = _http(server.port, f"/api/notifications/j?since={first[-1]['seq']}&limit=5", auth)
    assert [n["message"] for n in following] == [f"w{i}" for i in range(10, 15)]
    _, clamped = _http(server.port, "/api/notifications/j?since=0&limit=999999", auth)
    assert len(clamped) == 250


def test_pacer_spaces_answers_and_refuses_a_queue_longer_than_its_wait() -> None:
    from peft_notify.emitter.httpgate import Pacer

    pacer = Pacer(rate=10.0, max_wait=0.25)
    assert pacer.delay(100.0) == 0.0
    assert pacer.delay(100.0) == pytest.approx(0.1)
    assert pacer.delay(100.0) == pytest.approx(0.2)
    assert pacer.delay(100.0) is None  # would wait 0.3 s > 0.25: come back later
    assert pacer.delay(101.0) == 0.0  # idle time is not banked into a burst


def test_pollers_in_a_tight_loop_are_paced_and_told_to_come_back() -> None:
    """Eight clients polling /api/notifications as fast as they can: the server answers at most
    ``api_rate`` a second in all (each poller waits for its answer, so this bounds the CPU they take
    from training), and a request that would queue past the wait is answered 429 + Retry-After."""
    srv = JobServer(api_rate=20.0, discovery_files=False).start()
    try:
        srv.add_job("j").warning("w")
        auth = {"Authorization": f"Bearer {srv.token}"}
        answers: list[int] = []
        stop = time.monotonic() + 2.0

        def poll() -> None:
            while time.monotonic() < stop:
                answers.append(_http(srv.port, "/api/notifications/j", auth)[0])

        pollers = [threading.Thread(target=poll) for _ in range(8)]
        for t in pollers:
            t.start()
        for t in pollers:
            t.join(30)
        ok = answers.count(200)
        assert 10 <= ok <= 20 * 2.5 + 8, answers  # ~20/s for 2 s, plus what was in flight
        assert set(answers) <= {200}, answers  # 8 waiting pollers queue < 2 s: no 429 yet
        # 60 at once queue ~3 s at 20/s: the tail is told to come back.
        burst: list[tuple[int, Any]] = []
        threads = [threading.Thread(target=lambda: burst.append(_http(srv.port, "/api/notifications/j", auth)))
                   for _ in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = [status for status, _ in burst]
        assert statuses.count(429) >= 1, statuses
        assert statuses.count(200) >= 30, statuses
    finally:
        srv.stop()


def test_notification_bodies_are_encoded_once_per_seq_not_per_request(
    server: JobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    original = wire.to_dict
    monkeypatch.setattr(wire, "to_dict", lambda env: encoded.append(1) or original(env))
    handle = server.add_job("j")
    for i in range(50):
        handle.warning(f"w{i} " + "y" * 3000)
    _wait(lambda: len(server.event_log("j").notifications) == 50)
    auth = {"Authorization": f"Bearer {server.token}"}
    assert len(_http(server.port, "/api/notifications/j", auth)[1]) == 50
    logged = len(encoded)  # each notification was encoded when it was logged
    for _ in range(20):
        assert len(_http(server.port, "/api/notifications/j", auth)[1]) == 50
    assert len(encoded) == logged  # ... and never again per poll


POLLER = r"""
import sys, time, urllib.request
port, token, until = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
request = urllib.request.Request(f"http://127.0.0.1:{port}/api/notifications/j",
                                 headers={"Authorization": "Bearer " + token})
while time.time() < until:  # a dashboard polling 10 times a second
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    time.sleep(0.1)
"""


def test_a_poll_costs_the_server_little_cpu_however_long_the_history(server: JobServer) -> None:
    """The server thread's own CPU time per /api/notifications request (robust to machine load).

    Before issue 10 item 6 every request built the whole history's JSON on the loop thread:
    ~26 ms of CPU (holding the GIL, so training stalled) with 1,000 notifications of 4 KB held;
    now a page is joined from notifications encoded once (~1.3 ms, mostly HTTP handling).
    """
    handle = server.add_job("j")
    for i in range(1000):
        handle.warning(f"warning {i} " + "z" * 4000)
    _wait(lambda: len(server.event_log("j").notifications) == 1000)
    [thread] = [t for t in threading.enumerate() if t.name == "peft-notify-server" and t.is_alive()]
    clock = time.pthread_getcpuclockid(thread.ident or 0)
    auth = {"Authorization": f"Bearer {server.token}"}
    _http(server.port, "/api/notifications/j", auth)  # warm-up
    before = time.clock_gettime(clock)
    for _ in range(20):
        assert len(_http(server.port, "/api/notifications/j", auth)[1]) == 100
    per_request = (time.clock_gettime(clock) - before) / 20
    assert per_request < 0.008, f"{per_request * 1000:.1f} ms of server CPU per request"


def _steps_per_second(handle: Any, seconds: float) -> float:
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        time.sleep(0.002)  # the step's GPU / C++ work: the GIL is released meanwhile
        sum(range(300))  # and a little Python that needs it back
        steps += 1
        handle.progress(steps, loss=1.0 / steps)
    return steps / (time.perf_counter() - start)


@pytest.mark.slow
def test_polling_clients_do_not_slow_training_down(server: JobServer) -> None:
    """8 clients polling /api/notifications 10 times a second (1,000 notifications of 4 KB held) vs none.

    Issue 10 item 6 measured 830 → 100-120 steps/s (ratio ~0.13) before the fix: the loop
    thread built the whole 4 MB body per request (~26 ms) while holding the GIL; 80 requests a
    second then saturate it. Baseline and loaded windows alternate (the pollers are paused with
    SIGSTOP for the baseline ones), so a machine that gets busier or quieter during the test
    does not skew the ratio; the bound is loose on purpose (the pollers share this machine's
    cores), the 5 % figure is measured in bench/ on a quiet machine.
    """
    handle = server.add_job("j")
    for i in range(1000):
        handle.warning(f"warning {i} " + "z" * 4000)
    _wait(lambda: len(server.event_log("j").notifications) == 1000)
    until = time.time() + 60.0
    pollers = [
        subprocess.Popen([sys.executable, "-c", POLLER, str(server.port), server.token, str(until)]) for _ in range(8)
    ]
    baseline: list[float] = []
    loaded: list[float] = []
    try:
        time.sleep(1.0)  # every poller is up
        for _ in range(6):
            for proc in pollers:
                proc.send_signal(signal.SIGSTOP)
            baseline.append(_steps_per_second(handle, 0.5))
            for proc in pollers:
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.1)
            loaded.append(_steps_per_second(handle, 0.5))
    finally:
        for proc in pollers:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=30)
    ratio = statistics.median(loaded) / statistics.median(baseline)
    # Step time with/without pollers, measured on the loaded 2-core dev machine: 1.04-1.12x now,
    # 2.8-4.7x with the pre-fix server (a 26 ms body build holds the GIL the step needs back).
    assert ratio > 0.7, (baseline, loaded)


# --------------------------------------------------------------------------- item 8: log flood


def test_a_flood_of_bad_frames_is_logged_once_then_counted(server: JobServer, caplog: pytest.LogCaptureFixture) -> None:
    server.add_job("j")
    caplog.set_level(logging.WARNING, logger="peft_notify.emitter")

    async def main() -> None:
        async with connect(server.url_for("j")) as ws:
            await recv_json(ws)
            for _ in range(500):
                await ws.send('{"type": "action", "data": {"action": 12}}')
            await ws.send(wire.encode_action(wire.ActionRequest("cancel")))  # refused (not offered): same throttle
            await asyncio.sleep(0.5)

    asyncio.run(main())
    _wait(lambda: server.bad_frames == 500)
    lines = [r.getMessage() for r in caplog.records if "bad frame" in r.getMessage() or "refused" in r.getMessage()]
    assert len(lines) == 1, lines
    server.stop()  # the count of the unfinished minute is logged at shutdown
    summaries = [r.getMessage() for r in caplog.records if "not logged one by one" in r.getMessage()]
    assert summaries == ["500 more bad or refused client frames in the last minute (not logged one by one)"]


# --------------------------------------------------------------------------- item 9: since=


@pytest.mark.parametrize("since", ["²", "٣", "1" * 5000, "-1", "1_000", " 7", "0x10"])
def test_a_malformed_since_is_400_not_500(server: JobServer, since: str) -> None:
    server.add_job("j")
    from urllib.parse import quote

    query = f"?since={quote(since)}&token={server.token}"
    assert "400" in _raw_request(server.port, f"/ws/notifications/j{query}")
    assert _http(server.port, f"/api/notifications/j{query}")[0] == 400
    # Without the token the answer is 401: nothing is parsed for an unauthenticated caller.
    assert "401" in _raw_request(server.port, f"/ws/notifications/j?since={quote(since)}")


def test_threads_are_not_left_behind() -> None:
    before = threading.active_count()
    with JobServer(discovery_files=False) as srv:
        srv.add_job("j")
    _wait(lambda: threading.active_count() <= before + 1)
