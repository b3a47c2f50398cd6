"""NATS URLs, credentials and identities: each defence performs the attack (docs/security.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import nats
import pytest

import peft_notify
from peft_notify import natsurl, wire
from peft_notify.desktop.frames import ClientState
from tests.cluster.natsd import NatsServer, self_signed
from tests.cluster.rig import ROOT, Desk, finish, node, until


@pytest.mark.parametrize(
    "url", ["nats://10.1.2.3:4222", "nats://gpu-login.cluster:4222", "nats://zq7tok@[2001:db8::1]:4222"]
)
def test_clear_text_to_another_host_is_refused_unless_insecure(url: str) -> None:
    with pytest.raises(ValueError, match="clear text") as caught:
        natsurl.parse(url)
    assert "zq7tok" not in str(caught.value)
    assert natsurl.parse(url, insecure=True).port == 4222
    assert natsurl.parse(url.replace("nats://", "tls://")).scheme == "tls"  # TLS to any host is fine


def test_urls_are_checked_once_and_never_show_their_secrets() -> None:
    target = natsurl.parse("nats://s3cret@127.0.0.1:4333/peft.jobs.team-a.*?creds=/tmp/u.creds")
    assert (target.token, target.port, target.subject, target.creds) == (
        "s3cret",
        4333,
        "peft.jobs.team-a.*",
        "/tmp/u.creds",
    )
    assert "s3cret" not in repr(target) and "s3cret" not in target.address
    assert natsurl.shown("nats://user:pa55@127.0.0.1:4222/peft.jobs.>") == "nats://127.0.0.1:4222/peft.jobs.>"
    for bad in (
        "nats://127.0.0.1:99999",
        "nats://127.0.0.1:4222/other.>",
        "nats://127.0.0.1/peft.jobs.>.x",
        "nats://127.0.0.1/peft.jobs.a..b",
        "nats://127.0.0.1?token=x",
        "http://127.0.0.1:4222",
    ):
        with pytest.raises(ValueError):
            natsurl.parse(bad)
    with pytest.raises(ValueError, match="subject"):
        natsurl.subject_for("a..b")
    assert natsurl.kv_key("host:job.1") == "host=job.1"


def test_a_refused_url_fails_before_the_job_starts(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="clear text"),
        peft_notify.job("x", nats="nats://gpu-login:4222", print_url=False),
    ):
        pass
    assert not list((tmp_path / "rt").glob("*.json"))  # no job server was left serving


def test_token_auth_the_desktop_needs_the_token_and_never_shows_it(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js", token="n4ts-s3cret").start()
    try:

        async def scenario() -> None:
            rc, _out, err = await finish(node(server.url, "authed", steps=20))
            assert rc == 0, err
            async with Desk(f"nats://127.0.0.1:{server.port}") as desk:
                conn = desk.monitor.connections[desk.url]
                await until(lambda: conn.state is ClientState.AUTH_REFUSED, 15, "auth refused")
                assert "n4ts-s3cret" not in conn.detail
            async with Desk(server.url) as desk:
                key = f"authed@127.0.0.1:{server.port}"
                await until(lambda: desk.job(key) is not None and desk.job(key).state.value == "completed")
                assert all("n4ts-s3cret" not in c.url for c in desk.monitor.connections.values() if c.source)

        asyncio.run(scenario())
    finally:
        server.stop()


def test_a_publisher_posing_as_another_job_writes_nothing_under_it(natsd: NatsServer) -> None:
    """Frames on peft.jobs.victim that name another job, and frames naming the victim on another
    subject, are refused: a job's identity is its subject (like a WebSocket job's is its URL)."""

    async def scenario() -> None:
        async with Desk(natsd.url) as desk:
            rc, _out, err = await finish(node(natsd.url, "victim", steps=20))
            assert rc == 0, err
            victim = f"victim@127.0.0.1:{natsd.port}"
            await until(lambda: desk.job(victim) is not None and desk.job(victim).state.value == "completed")
            nc = await nats.connect(natsd.url)
            js = nc.jetstream()
            forged = wire.Envelope(
                type="notification",
                data=wire.NotificationEvent(type=wire.NotificationType.ERROR, title="forged", message="pwned"),
                seq=10_000,
                job_id="victim",
            )
            await js.publish("peft.jobs.mallory", wire.encode(forged).encode())
            await js.publish("peft.jobs.victim", wire.encode(forged).replace('"victim"', '"mallory"').encode())
            await js.publish("peft.jobs.victim", b"not json at all")
            await nc.close()
            await asyncio.sleep(1.5)
            await desk.monitor.drain()
            assert desk.job(victim).state.value == "completed"
            assert not [t for t in desk.popups() if "forged" in t]
            assert all("forged" not in e.title for e in desk.entries(victim))

    asyncio.run(scenario())


def test_the_stream_is_created_with_limits_and_never_stores_actions(natsd: NatsServer) -> None:
    """The first job creates the stream with age and size limits; actions are core-NATS requests on
    peft.actions.*, outside the stream, so no later reader can replay a Retry or a Cancel."""

    async def scenario() -> None:
        nc = await nats.connect(natsd.url)
        proc = node(natsd.url, "kept", steps=30)
        rc, _out, _err = await finish(proc)
        assert rc == 0
        info = await nc.jetstream().stream_info("PEFT_JOBS")
        assert info.config.subjects == ["peft.jobs.>"]
        assert info.config.max_age and info.config.max_bytes and info.config.max_age > 0
        await nc.close()

    asyncio.run(scenario())


def test_tls_with_the_servers_ca_works_and_a_wrong_ca_is_refused(tmp_path: Path) -> None:
    """tls:// verifies the server: with ?ca= naming its certificate a job publishes and a desktop
    follows; a desktop trusting another CA never gets a frame."""
    cert, key = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other, _ = self_signed(tmp_path / "other")  # a CA that did not sign the server's certificate
    server = NatsServer(tmp_path / "js", tls=(cert, key)).start()
    try:

        async def scenario() -> None:
            url = f"{server.url}?ca={cert}"
            rc, _out, err = await finish(node(url, "sealed", steps=20))
            assert rc == 0, err
            key_ = f"sealed@127.0.0.1:{server.port}"
            async with Desk(url) as desk:
                await until(lambda: desk.job(key_) is not None and desk.job(key_).state.value == "completed")
            async with Desk(f"{server.url}?ca={other}") as wrong:
                conn = wrong.monitor.connections[wrong.url]
                await until(lambda: conn.state is ClientState.RECONNECTING, 15, "a refused TLS handshake")
                assert "CERTIFICATE_VERIFY_FAILED" in conn.detail or "certificate" in conn.detail.lower(), conn.detail
                assert wrong.job(key_) is None

        asyncio.run(scenario())
    finally:
        server.stop()


PASSWORD = "pa55 w/rd@:%x"  # URL-special characters: percent-encoded in the URL
TOKEN = "t0ken-zq9"
AUTH = {
    "password": ('authorization { users = [ { user: alice, password: "pa55 w/rd@:%x" } ] }',
                 f"alice:{quote(PASSWORD, safe='')}@", "alice:wr0ng-pa55@", PASSWORD),
    "token": (f'authorization {{ token: "{TOKEN}" }}', f"{TOKEN}@", "wr0ng-t0ken@", TOKEN),
}  # fmt: skip


def _watch(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PEFT_NOTIFY_RESOURCES": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "peft_notify", "watch", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("kind", sorted(AUTH))
def test_a_server_requiring_credentials_publisher_desktop_and_watch_authenticate_and_never_show_them(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """nats-server started from a config file that requires a user/password (or a token): the
    publisher (a real training process) and the desktop source get in with the URL's credentials;
    with wrong ones each says so in one line, no traceback, and the secret (right or wrong, raw or
    percent-encoded) is in no log line, history entry, connection detail or ``watch`` output."""
    config, good, bad, secret = AUTH[kind]
    server = NatsServer(tmp_path / "js", config=config).start()
    plain = f"nats://127.0.0.1:{server.port}"
    url, wrong = f"nats://{good}127.0.0.1:{server.port}", f"nats://{bad}127.0.0.1:{server.port}"
    secrets = (secret, quote(secret, safe=""), good.rstrip("@"), bad.rstrip("@").split(":")[-1])
    shown: list[str] = []
    caplog.set_level(logging.DEBUG)
    try:

        async def scenario() -> None:
            rc, out, err = await finish(node(url, "guarded", steps=20))
            assert rc == 0, err
            shown.extend((out, err))
            key = f"guarded@127.0.0.1:{server.port}"
            async with Desk(url) as desk:
                await until(lambda: desk.job(key) is not None and desk.job(key).state.value == "completed")
                await until(lambda: len(desk.entries(key)) >= 1, what="the job's notifications in history")
                await desk.monitor.drain()
                shown.extend(f"{e.title} {e.message} {e.job_id}" for e in desk.entries(key))
                shown.extend(
                    f"{c.url if c.source else ''} {c.detail} {c.title}" for c in desk.monitor.connections.values()
                )
                assert any("plateau" in e.title + e.message for e in desk.entries(key))
            for refused in (wrong, plain):
                shown.append(await refused_by(refused, key))

        async def refused_by(refused: str, key: str) -> str:
            async with Desk(refused) as desk:
                conn = desk.monitor.connections[desk.url]
                await until(lambda: conn.state is ClientState.AUTH_REFUSED, 15, "auth refused")
                assert "authorization" in conn.detail.lower(), conn.detail
                assert desk.job(key) is None
                return conn.detail

        asyncio.run(scenario())

        # A job with wrong credentials trains to its end and says once why nothing is published.
        rc, out, err = asyncio.run(finish(node(wrong, "locked-out", steps=10)))
        assert rc == 0 and "done" in out, err
        refused_lines = [line for line in err.splitlines() if "NATS" in line and "uthorization" in line]
        assert len(refused_lines) == 1 and "refused the credentials" in refused_lines[0], err
        assert "Traceback" not in err
        shown.extend((out, err))

        # watch: follows with the right credentials; refused ones end it (exit 2) with one line.
        follow = _watch("--json", url)
        deadline = time.monotonic() + 30
        assert follow.stdout is not None
        lines: list[str] = []
        while not any('"guarded' in line and '"Record"' in line for line in lines):
            assert time.monotonic() < deadline and follow.poll() is None, lines
            lines.append(follow.stdout.readline())
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=20)
        shown.extend((*lines, out, err))
        denied = _watch(wrong)
        out, err = denied.communicate(timeout=60)
        assert denied.returncode == 2, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "refused the credentials" in err and "authorization" in err.lower() and out == "", (out, err)
        shown.extend((out, err))
    finally:
        server.stop()
    shown.extend(r.getMessage() for r in caplog.records)
    text = "\n".join(shown)
    for leaked in secrets:
        assert leaked not in text, leaked
