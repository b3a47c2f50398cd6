"""A desktop follows training jobs through a real NATS JetStream server (issue 15 part 2)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from tests.cluster.natsd import NatsServer
from tests.cluster.rig import Desk, Proxy, finish, node, stream_last_seq, until


def assert_each_once(desk: Desk, key: str) -> None:
    """Every notification of the job popped up exactly once: the warning, the completion, and each
    of 25/50/75 % — alone, or named by the next one ("passed 25 % too") when progress that waited
    during an outage or a catch-up was coalesced, exactly as on a WebSocket."""
    titles = Counter(desk.popups(key))
    assert titles and all(n == 1 for n in titles.values()), titles
    shown = " ".join(f"{r.event.title} {r.event.message}" for r in desk.notifier.requests if r.job_id == key)
    assert "plateau" in shown and "training complete" in shown, shown
    assert all(f"{m}%" in shown or f"{m} %" in shown for m in (25, 50, 75)), shown


def test_two_nodes_publish_and_one_desktop_follows_both_through_a_cut_connection(natsd: NatsServer) -> None:
    """Two training processes publish; the desktop's connection is cut twice mid-run: every
    milestone, warning and completion of both jobs pops up exactly once, none is missing."""

    async def scenario() -> None:
        proxy = await Proxy(natsd.port).start()
        async with Desk(f"nats://127.0.0.1:{proxy.port}") as desk:
            nodes = [node(natsd.url, "node-a", steps=150), node(natsd.url, "node-b", steps=150, sleep=0.03)]
            keys = [f"node-a@127.0.0.1:{proxy.port}", f"node-b@127.0.0.1:{proxy.port}"]
            await until(lambda: all(desk.job(k) is not None and desk.job(k).current_step > 20 for k in keys))
            proxy.cut()
            await asyncio.sleep(0.5)
            proxy.cut()
            for proc in nodes:
                rc, _out, err = await finish(proc)
                assert rc == 0, err
            await until(lambda: all(desk.job(k).state.value == "completed" for k in keys), what="both completed")
            await desk.monitor.drain()
            source = desk.monitor.connections[desk.url].client
            assert proxy.cuts == 2
            assert source.connects >= 2  # it really lost the connection and came back
            assert source.last_stream_seq == await stream_last_seq(natsd.url)  # read to the end, no gap
            for key in keys:
                assert_each_once(desk, key)
                assert desk.job(key).current_step == 150
        await proxy.close()

    asyncio.run(scenario())


def test_the_nats_server_killed_and_restarted_mid_run_loses_nothing(natsd: NatsServer) -> None:
    """kill -9 of nats-server (file storage) while two jobs train: the jobs keep training (their
    steps go on while the server is down), and once it is back the desktop sees every
    notification of both exactly once."""

    async def scenario() -> None:
        async with Desk(natsd.url) as desk:
            nodes = [node(natsd.url, "crash-a", steps=200), node(natsd.url, "crash-b", steps=200)]
            keys = [f"crash-a@127.0.0.1:{natsd.port}", f"crash-b@127.0.0.1:{natsd.port}"]
            await until(lambda: all(desk.job(k) is not None and desk.job(k).current_step >= 30 for k in keys))
            natsd.kill()
            down_at = max(desk.job(k).current_step for k in keys)
            await asyncio.sleep(2.0)  # the jobs train on meanwhile (at 20 ms a step: ~100 steps)
            natsd.start()
            results = [await finish(proc) for proc in nodes]
            for rc, out, err in results:
                assert rc == 0, err
                assert "step 200" in out and "done" in out
            await until(lambda: all(desk.job(k).state.value == "completed" for k in keys), 60, "both completed")
            await desk.monitor.drain()
            for key in keys:
                assert_each_once(desk, key)  # the warning was sent while the server was down
                assert desk.job(key).current_step == 200
            assert down_at < 100  # the server was down while training crossed the 50 % mark
            assert desk.monitor.connections[desk.url].client.connects >= 2

    asyncio.run(scenario())


def test_a_desktop_started_after_the_job_finished_shows_its_final_state_and_last_notifications(
    natsd: NatsServer,
) -> None:
    """The job ends before any desktop exists: a new desktop has its final state from the KV
    bucket at once and the job's notifications from the stream in its history, without popping
    up anything from the past."""

    async def scenario() -> None:
        rc, _out, err = await finish(node(natsd.url, "early", steps=60, extra=("--note", "checkpoint saved")))
        assert rc == 0, err
        key = f"early@127.0.0.1:{natsd.port}"
        async with Desk(natsd.url) as desk:
            await until(lambda: desk.job(key) is not None and desk.job(key).state.value == "completed")
            await until(lambda: len(desk.entries(key)) >= 2, what="past notifications in history")
            await desk.monitor.drain()
            view = desk.job(key)
            assert view.current_step == 60 and view.total_steps == 60
            assert view.name == "node early"
            texts = [f"{e.title} {e.message} {e.status.value}" for e in desk.entries(key)]
            assert any("plateau" in t and "filtered" in t for t in texts), texts  # recorded, not shown
            assert any("checkpoint saved" in t for t in texts), texts
            assert desk.popups() == []  # nothing from the past pops up

    asyncio.run(scenario())


def test_a_restarted_desktop_resumes_after_the_last_stream_message_it_processed(
    natsd: NatsServer, tmp_path: Path
) -> None:
    """The desktop quits mid-run and starts again with its cursor file: nothing it had shown pops
    up again, what came while it was away is in its history, and the rest pops up live."""
    cursors = tmp_path / "state" / "nats-cursors.json"

    async def scenario() -> None:
        release = tmp_path / "release"
        proc = node(natsd.url, "long", steps=240, sleep=0.03, extra=("--hold-at", "200", "--hold-file", str(release)))
        key = f"long@127.0.0.1:{natsd.port}"
        async with Desk(natsd.url, cursors=cursors) as first:
            await until(lambda: first.job(key) is not None and first.job(key).current_step >= 70)
            await first.monitor.drain()
            seen_first = first.popups(key)
            stopped_at = first.monitor.connections[first.url].client.last_stream_seq
        assert any("25%" in t for t in seen_first)
        assert json.loads(cursors.read_text()) and cursors.stat().st_mode & 0o777 == 0o600
        # Away while the job passes 50 % and warns; it then waits at step 200 until the desktop is back.
        await until(lambda: Path(f"{release}.holding").exists(), what="the job past its warning")
        async with Desk(natsd.url, cursors=cursors) as second:
            await until(lambda: second.monitor.connections[second.url].client.state.value == "connected")
            release.touch()
            rc, _out, err = await finish(proc)
            assert rc == 0, err
            await until(lambda: second.job(key) is not None and second.job(key).state.value == "completed")
            await second.monitor.drain()
            again = second.popups(key)
            assert not set(again) & set(seen_first), (seen_first, again)  # nothing shown twice
            assert any("complete" in t for t in again)
            history = [f"{e.title} {e.message} {e.status.value}" for e in second.entries(key)]
            assert any("plateau" in h and "filtered" in h for h in history), history  # came while away
            assert second.monitor.connections[second.url].client.last_stream_seq > stopped_at

    asyncio.run(scenario())
