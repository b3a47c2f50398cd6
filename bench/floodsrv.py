"""A raw websockets server that floods clients with pre-encoded, valid protocol-v1 frames (child).

The real :class:`~peft_notify.emitter.JobServer` coalesces progress (20 frames/s per job), so it
cannot flood a client; this server stands in for a misbehaving or very fast job. It serves
``/ws/notifications/j0`` .. ``j{N-1}``: a ``hello`` on connect, then progress frames on command.

stdin, one JSON object per line::

    {"cmd": "flood", "id": "x", "jobs": [0, 1] | "all", "count": 100000, "rate": 0, "marker": true}

``rate`` is messages/s over all jobs (0: as fast as possible). After the progress frames each job
gets a marker ``warning`` notification titled ``bench-marker <id> j<i>`` (``"duration": S`` stops
sending after S seconds). stdout, one JSON object
per line: ``listening`` (port), ``connected`` (clients), ``done`` (``t0``/``t1`` perf_counter_ns,
``sent``, ``last_fraction`` per job).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from peft_notify import wire

TOTAL_STEPS = 10_000_000
TS = "2026-01-01T00:00:00.000Z"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Flood:
    def __init__(self, jobs: int, total: int = TOTAL_STEPS) -> None:
        self.jobs = jobs
        self.total = total
        self.conns: dict[int, ServerConnection] = {}
        self.seq = [0] * jobs
        self.step = [0] * jobs

    def hello(self, index: int) -> str:
        body = wire.Hello(name=f"flood-{index}", run_id=f"flood-run-{index}", host="bench", total_steps=self.total)
        env = wire.Envelope(type="hello", data=body, seq=self.seq[index], job_id=f"j{index}", ts=time.time())
        return wire.encode(env)

    def progress_frames(self, index: int, count: int) -> list[str]:
        """Pre-encoded frames (formatted by hand: ``wire.encode`` would dominate the flood's cost).

        Does not advance the job's seq/step: :meth:`flood` does, by what it actually sent.
        """
        seq0, step0 = self.seq[index], self.step[index]
        template = (
            '{"v":1,"seq":%d,"type":"progress","job_id":"j%d","ts":"' + TS + '",'
            '"data":{"current_step":%d,"total_steps":%d,"loss":%.5f}}'
        )
        return [
            template % (seq0 + k, index, min(step0 + k, self.total), self.total, 2.0 / (1 + (step0 + k) * 1e-4))
            for k in range(1, count + 1)
        ]

    def marker(self, index: int, cmd_id: str) -> str:
        self.seq[index] += 1
        event = wire.NotificationEvent(
            type=wire.NotificationType.WARNING,
            title=f"bench-marker {cmd_id} j{index}",
            message="end of flood",
            respect_dnd=False,
        )
        env = wire.Envelope(type="notification", data=event, seq=self.seq[index], job_id=f"j{index}", ts=time.time())
        return wire.encode(env)

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        try:
            index = int(path.rsplit("/", 1)[-1].split("?")[0].lstrip("j"))
        except ValueError:
            await ws.close(4404, "unknown job")
            return
        if not 0 <= index < self.jobs:
            await ws.close(4404, "unknown job")
            return
        await ws.send(self.hello(index))
        self.conns[index] = ws
        emit({"ev": "connected", "clients": len(self.conns), "job": index})
        try:
            async for _ in ws:  # actions from the app: ignored
                pass
        finally:
            if self.conns.get(index) is ws:
                del self.conns[index]

    async def flood(self, cmd: dict[str, Any]) -> None:
        targets = list(range(self.jobs)) if cmd.get("jobs", "all") == "all" else [int(j) for j in cmd["jobs"]]
        count = int(cmd["count"])
        rate = float(cmd.get("rate", 0))
        deadline_ns = int(float(cmd.get("duration", 0)) * 1e9)  # 0: no time limit
        frames = {j: self.progress_frames(j, count) for j in targets}
        conns = {j: self.conns[j] for j in targets if j in self.conns}
        sent = rounds = 0
        t0 = time.perf_counter_ns()
        for k in range(count):
            for j, ws in conns.items():
                await ws.send(frames[j][k])
                sent += 1
            rounds = k + 1
            if rate > 0:
                while sent > (time.perf_counter_ns() - t0) * rate / 1e9:
                    await asyncio.sleep(0.0005)
            if deadline_ns and time.perf_counter_ns() - t0 >= deadline_ns:
                break
        for j in conns:
            self.seq[j] += rounds
            self.step[j] += rounds
        if cmd.get("marker", True):
            for j, ws in conns.items():
                await ws.send(self.marker(j, str(cmd["id"])))
        t1 = time.perf_counter_ns()
        last = {str(j): min(1.0, self.step[j] / self.total) for j in conns}
        emit({"ev": "done", "id": cmd["id"], "t0": t0, "t1": t1, "sent": sent, "last_fraction": last})


async def main(jobs: int, total: int) -> None:
    flood = Flood(jobs, total)
    async with serve(flood.handler, "127.0.0.1", 0, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        emit({"ev": "listening", "port": port})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd.get("cmd") == "flood":
                await flood.flood(cmd)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--total", type=int, default=TOTAL_STEPS, help="total_steps of every job")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.total))
