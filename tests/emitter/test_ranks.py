"""Distributed jobs: rank detection, and real gloo processes whose errors all reach rank 0's server."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from peft_notify import wire
from peft_notify.desktop.client import JobClient
from peft_notify.emitter import JobServer
from peft_notify.emitter.ranks import RankForwarder, RankInfo, detect_rank, publish, rendezvous_path


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, RankInfo(0, 1, 0)),
        ({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}, RankInfo(3, 8, 1)),  # torchrun / accelerate / deepspeed
        ({"LOCAL_RANK": "2"}, RankInfo(2, 3, 2)),
        ({"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "6"}, RankInfo(5, 6, 5)),
        ({"RANK": "x", "WORLD_SIZE": ""}, RankInfo(0, 1, 0)),
    ],
)
def test_detect_rank_from_launcher_environment(env: dict[str, str], expected: RankInfo) -> None:
    assert detect_rank(env) == expected
    assert detect_rank(env).distributed is (expected.world_size > 1)


def test_rendezvous_path_depends_on_master_and_job(runtime_dir: Path) -> None:
    a = rendezvous_path("job", {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"})
    b = rendezvous_path("job", {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29501"})
    c = rendezvous_path("other", {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"})
    assert len({a, b, c}) == 3
    assert a.parent == runtime_dir / "ranks"


def test_forwarded_error_needs_the_rank_token(server: JobServer, monkeypatch: pytest.MonkeyPatch) -> None:
    handle = server.add_job("dist", name="dist")
    path = publish(server, handle, "dist")
    assert path is not None
    assert path.stat().st_mode & 0o777 == 0o600
    # A forwarder with the right file gets through; one reading a tampered token does not.
    good = RankForwarder(RankInfo(2, 4, 2), "dist", name="dist", wait=5)
    good.error("CUDA out of memory", "oom_error")
    good.close()
    assert good.sent == 1
    path.write_text(path.read_text().replace(server.rank_token, "wrong"))
    bad = RankForwarder(RankInfo(1, 4, 1), "dist", name="dist", wait=1)
    bad.error("CUDA out of memory", "oom_error")
    bad.close()
    assert bad.sent == 0
    server.stop()
    assert not path.exists()  # removed with the server
    assert [n.title for n in server.event_log("dist").notifications] == ["dist: oom error (rank 2)"]


RANK_SCRIPT = """
import sys, time
import torch.distributed as dist
rank, world = int(sys.argv[1]), int(sys.argv[2])
dist.init_process_group("gloo", rank=rank, world_size=world)
import peft_notify
with peft_notify.job("ddp-run", total_steps=10, job_id="ddp", linger=8) as job:
    dist.barrier()  # rank 0 serves (and published its rank endpoint) before anyone fails
    if rank == 0:
        print("READY", flush=True)
        sys.stdin.readline()  # the test's client is connected
    dist.barrier()
    for _ in job.track(range(5)):
        pass
    if rank == 0:
        time.sleep(0.3)
    if rank == 1:
        raise ValueError("batch 17 is empty")
    raise RuntimeError(f"CUDA out of memory. Tried to allocate 2.00 GiB (GPU {rank})")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.ml
@pytest.mark.slow
def test_errors_on_every_rank_reach_rank_zero_merged(tmp_path: Path, runtime_dir: Path) -> None:
    pytest.importorskip("torch.distributed")
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(RANK_SCRIPT))
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PEFT_NOTIFY_FD")},
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "PEFT_NOTIFY_RUNTIME_DIR": str(runtime_dir),
    }
    world = 3
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(world)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for rank in range(world)
    ]
    messages: list[wire.Envelope] = []
    try:
        rank0 = procs[0]
        assert rank0.stderr is not None
        assert rank0.stdout is not None
        url = None
        while url is None:
            line = rank0.stderr.readline().decode()
            assert line, "rank 0 exited before serving"
            found = re.search(r"(ws://\S+)", line)
            url = found.group(1) if found else None
        assert rank0.stdout.readline().strip() == b"READY"
        assert all(p.poll() is None for p in procs)
        assert [f.name.endswith(".job.json") for f in runtime_dir.iterdir() if f.is_file()] == [True]  # rank 0 only

        async def follow() -> None:
            client = JobClient(url, on_message=messages.append, since=0)
            task = asyncio.create_task(client.run())
            async with asyncio.timeout(90):
                while client.hello is None:
                    await asyncio.sleep(0.01)
                threading.Thread(target=lambda: rank0.communicate(b"go\n", timeout=90), daemon=True).start()
                await task

        asyncio.run(follow())
    finally:
        codes = [p.wait(60) for p in procs]
        for p in procs:
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None and not stream.closed:
                    stream.close()
    assert codes == [1, 1, 1]
    errors = {n.error_type: n for m in messages if isinstance(n := m.data, wire.NotificationEvent)}
    assert len([m for m in messages if isinstance(m.data, wire.NotificationEvent)]) == 2
    assert errors["oom_error"].title == "ddp-run: oom error (ranks 0, 2)"
    assert errors["oom_error"].urgency == "critical"
    assert "GPU 0" in errors["oom_error"].message
    assert errors["system_crash"].title == "ddp-run: system crash (rank 1)"
    assert "batch 17 is empty" in errors["system_crash"].message
    statuses = [m.data.state for m in messages if isinstance(m.data, wire.Status)]
    assert statuses == [wire.JobState.FAILED]
    progress = [m.data.current_step for m in messages if isinstance(m.data, wire.Progress)]
    assert progress and progress[-1] == 5  # rank 0's own progress only
