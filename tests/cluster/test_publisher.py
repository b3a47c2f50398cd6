"""The training side's publisher: never blocks training, catches up, says what was lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import nats.js.errors
import pytest

import peft_notify
from peft_notify import natsurl, wire
from peft_notify.emitter import JobServer
from peft_notify.emitter.nats_publisher import NatsPublisher
from peft_notify.emitter.startup import start_job
from tests.cluster.natsd import NatsServer


async def _stream(url: str) -> list[tuple[str, wire.Envelope]]:
    """Every message of the PEFT_JOBS stream, decoded, read with a bare nats-py consumer."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("PEFT_JOBS")
        sub = await js.pull_subscribe("peft.jobs.>", stream="PEFT_JOBS")
        out: list[tuple[str, wire.Envelope]] = []
        while len(out) < info.state.messages:
            for msg in await sub.fetch(500, timeout=2):
                out.append((msg.subject, wire.decode(msg.data)))
        return out
    finally:
        await nc.close()


async def _snapshot(url: str, job_id: str) -> wire.Envelope:
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value("peft-jobs")
        return wire.decode((await kv.get(natsurl.kv_key(job_id))).value or b"")
    finally:
        await nc.close()


def test_training_never_waits_for_an_unreachable_server_and_catches_up_when_it_comes(tmp_path: Path) -> None:
    """No NATS server at all while the job trains: every step returns at once; the server starts
    before the job ends and gets the whole run (hello first, the completion last), in order."""
    server = NatsServer(tmp_path / "js")  # not started yet: nothing listens on its port
    slowest = 0.0
    try:
        with peft_notify.job("offline", total_steps=300, job_id="offline", nats=server.url, linger=0) as job:
            for step in range(1, 301):
                t = time.perf_counter()
                job.progress(step, loss=1 / step)
                if step == 150:
                    job.warning("halfway, no server yet")
                slowest = max(slowest, time.perf_counter() - t)
                time.sleep(0.002)
            assert job.handle.finished is False
            server.start()  # the job ends now; close() publishes what waited
        assert slowest < 0.05  # a report never waited for the network (typically ~10 µs)
        frames = asyncio.run(_stream(server.url))
        kinds = [env.type for _, env in frames]
        assert kinds[0] == "hello" and kinds[-1] == "status"
        seqs = [env.seq for _, env in frames if env.type != "hello"]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, each once
        assert any(isinstance(env.data, wire.NotificationEvent) and "halfway" in env.data.message for _, env in frames)
        last = asyncio.run(_snapshot(server.url, "offline"))
        assert isinstance(last.data, wire.Hello)
        assert last.data.state is wire.JobState.COMPLETED
        assert last.data.progress is not None and last.data.progress.current_step == 300
    finally:
        server.stop()


def test_a_full_queue_drops_the_oldest_and_the_job_says_how_many_were_lost(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js")
    job_server = JobServer(discovery_files=False).start()
    publisher = NatsPublisher(natsurl.parse(server.url), queue_limit=20).start()
    try:
        handle = job_server.add_job("lossy", name="lossy")
        publisher.attach(job_server, handle)
        handle.error("CUDA out of memory (early)", "oom_error")
        for i in range(50):
            handle.notify(f"note {i}", "while the server is down")
        deadline = time.monotonic() + 10
        while publisher.lost < 32 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert publisher.lost == 32  # hello + the error + 50 notes, 20 kept: the hello and the error stay
        server.start()

        async def wait_for_warning() -> list[wire.Envelope]:
            while True:
                try:
                    envs = [env for _, env in await _stream(server.url)]
                except nats.js.errors.NotFoundError:  # the publisher has not created the stream yet
                    envs = []
                if any(
                    isinstance(e.data, wire.NotificationEvent) and "could not be published" in e.data.message
                    for e in envs
                ):
                    return envs
                await asyncio.sleep(0.2)

        envs = asyncio.run(asyncio.wait_for(wait_for_warning(), 20))
        titles = [e.data.title for e in envs if isinstance(e.data, wire.NotificationEvent)]
        assert envs[0].type == "hello"
        assert "note 49" in titles and "note 0" not in titles
        assert any(isinstance(e.data, wire.NotificationEvent) and "early" in e.data.message for e in envs)
        warning = next(
            e.data for e in envs if isinstance(e.data, wire.NotificationEvent) and e.data.title == "NATS: events lost"
        )
        assert warning.message.startswith("32 ")
    finally:
        publisher.close(2)
        job_server.stop()
        server.stop()


def test_only_rank_0_publishes(natsd: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank awareness is unchanged: a rank other than 0 neither serves nor publishes (its errors go
    to rank 0, which publishes them merged with its own)."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    started = start_job("ranked", 10, job_id="ranked", nats=natsd.url, print_url=False)
    try:
        assert started.server is None and started.publisher is None
        started.handle.progress(5)
    finally:
        started.handle.close()

    async def has_stream() -> bool:
        nc = await nats.connect(natsd.url)
        try:
            await nc.jetstream().stream_info("PEFT_JOBS")
            return True
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()

    assert asyncio.run(has_stream()) is False  # nothing was published, not even a stream created
