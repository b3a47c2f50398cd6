"""The WebSocket handlers of a JobServer: subscribers, their actions, and errors forwarded by ranks.

:func:`serve_subscriber` sends ``hello`` first, the replay after ``since`` and then live
events (a new run of the job gets a fresh ``hello`` in the same connection);
:func:`read_actions` hands client actions to the job's callbacks on a worker thread;
:func:`serve_rank` takes errors that other ranks of a distributed job forward to rank 0.
All run on the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from peft_notify import wire
from peft_notify.emitter import httpgate
from peft_notify.emitter.jobs import ServedJob, Subscriber, hello_frame

if TYPE_CHECKING:
    from peft_notify.emitter.server import JobServer

__all__ = ["serve", "serve_rank", "serve_subscriber"]

log = logging.getLogger(__name__)


async def serve(server: JobServer, ws: ServerConnection) -> None:
    """Entry point for every accepted WebSocket: route to subscriber or rank handling."""
    route = httpgate.parse_route(ws.request.path if ws.request else "")
    job = server._jobs.get(route.job_id or "")
    if job is None:  # removed between the gate and here
        await ws.close(4404, "unknown job")
        return
    if route.path.startswith(httpgate.RANK_PREFIX):
        await serve_rank(server, ws, job)
    else:
        await serve_subscriber(server, ws, job, route)


async def serve_subscriber(server: JobServer, ws: ServerConnection, job: ServedJob, route: httpgate.Route) -> None:
    """Stream one job to one client until either side closes."""
    log_ = job.log
    since = route.since
    if since is not None and (since > log_.last_seq or route.run_id not in (None, job.handle.run_id)):
        since = 0  # the client saw another run of this job (a restart): send this run from its start
    if since is not None:
        since = max(since, log_.run_start_seq)  # never replay an earlier run's events
    gap = since is not None and log_.after(since).gap
    sub = Subscriber(cursor=log_.last_seq if since is None else since, run_id=job.handle.run_id)
    job.subscribers.add(sub)
    reader = asyncio.create_task(read_actions(server, ws, job))
    try:
        await ws.send(hello_frame(job, gap))
        while not reader.done():
            frames = job.log.frames_after(sub.cursor)
            if sub.run_id != job.handle.run_id:  # relaunched: finish the old run, then a new hello
                for seq, frame in [f for f in frames if f[0] <= job.log.run_start_seq]:
                    await ws.send(frame)
                    sub.cursor = seq
                sub.cursor = max(sub.cursor, job.log.run_start_seq)
                sub.run_id = job.handle.run_id
                await ws.send(hello_frame(job, False))
                continue
            if not frames:
                sub.wake.clear()
                waiter = asyncio.create_task(sub.wake.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                continue
            for seq, frame in frames:
                await ws.send(frame)
                sub.cursor = seq
    except ConnectionClosed:
        pass
    finally:
        job.subscribers.discard(sub)
        reader.cancel()


async def read_actions(server: JobServer, ws: ServerConnection, job: ServedJob) -> None:
    """Decode action frames from a subscriber; bad frames are logged, counted and skipped."""
    try:
        async for message in ws:
            try:
                action = wire.decode_action(message)
            except wire.ProtocolError as exc:
                server.bad_frames += 1
                log.warning("job %s: ignoring a bad frame from a client: %s", job.handle.job_id, exc)
                continue
            log.info("job %s: client action %r", job.handle.job_id, action.action)
            if not server._stopped:
                server._actions.submit(job.handle._dispatch, action)
    except ConnectionClosed as exc:
        codes = {frame.code for frame in (exc.rcvd, exc.sent) if frame is not None}
        if 1009 in codes:  # message too big
            server.bad_frames += 1
            log.warning("job %s: closed a client: frame over %d bytes", job.handle.job_id, wire.MAX_FRAME_BYTES)


async def serve_rank(server: JobServer, ws: ServerConnection, job: ServedJob) -> None:
    """Accept ``{"rank", "message", "error_type", "title"}`` frames; answer ``{"ok": ...}`` to each."""
    try:
        async for message in ws:
            try:
                rank, item = parse_forwarded(message, job.handle.name)
            except ValueError as exc:
                server.bad_frames += 1
                log.warning("job %s: ignoring a bad forwarded error: %s", job.handle.job_id, exc)
                await ws.send(json.dumps({"ok": False, "error": str(exc)}))
                continue
            log.info("job %s: error forwarded by rank %d: %s", job.handle.job_id, rank, item["error_type"])
            server._add_ranked(job, rank, item)
            await ws.send(json.dumps({"ok": True}))
    except ConnectionClosed:
        pass


def parse_forwarded(message: str | bytes, job_name: str) -> tuple[int, dict[str, Any]]:
    """Validate a forwarded error frame into ``(rank, notification dict)``. Raises ``ValueError``."""
    raw = json.loads(message)
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    rank, text, error_type = raw.get("rank"), raw.get("message"), raw.get("error_type") or "system_crash"
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < 1 << 20:
        raise ValueError(f"bad rank {rank!r}")
    if not isinstance(text, str) or not isinstance(error_type, str) or len(error_type) > wire.MAX_SHORT:
        raise ValueError("message and error_type must be strings")
    from peft_notify.emitter.handle import error_item

    title = raw.get("title")
    return rank, error_item(job_name, text, error_type, title if isinstance(title, str) else None)
