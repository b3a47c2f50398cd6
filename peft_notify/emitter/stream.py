"""The WebSocket handlers of a job server: subscribers, their actions, and errors forwarded by ranks.

:func:`serve` routes an accepted connection; :func:`serve_subscriber` sends ``hello``
first, the replay after ``since`` and then live events (a new run of the job gets a fresh
``hello`` in the same connection), and evicts a client whose send buffer stays full for
``Hub.send_timeout`` seconds; :func:`read_actions` hands the actions a job advertises to
its callbacks; :func:`serve_rank` takes errors that other ranks of a distributed job
forward to rank 0. All run on the server's event loop and know the server only as a
:class:`Hub`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from peft_notify import wire
from peft_notify.emitter import httpgate, reports
from peft_notify.emitter.jobs import ServedJob, Subscriber, hello_frame

__all__ = ["Hub", "action_refusal", "parse_forwarded", "serve", "serve_rank", "serve_subscriber"]

log = logging.getLogger(__name__)


class Hub(Protocol):
    """What the handlers need from the server."""

    @property
    def send_timeout(self) -> float:
        """Seconds a client's send buffer may stay full before the client is evicted."""

    @property
    def stopping(self) -> bool: ...

    def served(self, job_id: str) -> ServedJob | None:
        """The job served under ``job_id`` now, if any."""

    def perform(self, job: ServedJob, action: wire.ActionRequest) -> None:
        """Hand an accepted action to the job's callbacks (off the loop)."""

    def add_ranked(self, job: ServedJob, ranked: reports.Ranked) -> None:
        """An error forwarded by another rank."""

    def catch_up(self, job: ServedJob) -> None:
        """Log what the job's mailbox kept while nobody listened (a subscriber was just added)."""

    def bad_frame(self, job_id: str, reason: str) -> None:
        """Count (and, throttled, log) a bad frame from a client."""

    def refused_action(self, job_id: str, reason: str) -> None:
        """Count (and, throttled, log) an action the job does not take now."""


async def serve(hub: Hub, ws: ServerConnection) -> None:
    """Entry point for every accepted WebSocket: route to subscriber or rank handling."""
    route = httpgate.parse_route(ws.request.path if ws.request else "")
    job = hub.served(route.job_id or "")
    if job is None:  # removed between the gate and here
        await ws.close(4404, "unknown job")
        return
    if route.path.startswith(httpgate.RANK_PREFIX):
        await serve_rank(hub, ws, job)
    else:
        await serve_subscriber(hub, ws, job, route)


async def serve_subscriber(hub: Hub, ws: ServerConnection, job: ServedJob, route: httpgate.Route) -> None:
    """Stream one job to one client until either side closes (or the client stops reading)."""
    log_ = job.log
    # Listen first, then catch up: a progress reported after this is woken for as usual, and
    # the one kept while nobody listened is logged now, before the hello takes its snapshot.
    sub = Subscriber(cursor=log_.last_seq, run_id=job.run.run_id)
    job.subscribers.add(sub)
    hub.catch_up(job)
    since = route.since
    if since is not None and (since > log_.last_seq or route.run_id not in (None, job.run.run_id)):
        since = 0  # the client saw another run of this job (a restart): send this run from its start
    if since is not None:
        since = max(since, log_.run_start_seq)  # never replay an earlier run's events
    gap = since is not None and log_.after(since).gap
    sub.cursor = log_.last_seq if since is None else since
    reader = asyncio.create_task(read_actions(hub, ws, job))
    try:
        async with asyncio.timeout(hub.send_timeout):
            await ws.send(hello_frame(job, gap))
        while not reader.done():
            frames = job.log.frames_after(sub.cursor)
            if sub.run_id != job.run.run_id:  # relaunched: finish the old run, then a new hello
                async with asyncio.timeout(hub.send_timeout):
                    for seq, frame in [f for f in frames if f[0] <= job.log.run_start_seq]:
                        await ws.send(frame)
                        sub.cursor = seq
                    sub.cursor = max(sub.cursor, job.log.run_start_seq)
                    sub.run_id = job.run.run_id
                    await ws.send(hello_frame(job, False))
                continue
            if not frames:
                sub.wake.clear()
                waiter = asyncio.create_task(sub.wake.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                continue
            # One deadline per batch: a client whose buffer stays full this long is not reading.
            async with asyncio.timeout(hub.send_timeout):
                for seq, frame in frames:
                    await ws.send(frame)
                    sub.cursor = seq
    except ConnectionClosed:
        pass
    except TimeoutError:
        # Its buffer stayed full: the client stopped reading. Drop it (the keepalive ping would
        # wait behind the same buffer forever) so its slot is free for a live client.
        log.info("job %s: evicting a client that read nothing for %.0f s", job.job_id, hub.send_timeout)
        ws.transport.abort()
    finally:
        job.subscribers.discard(sub)
        reader.cancel()


def action_refusal(job: ServedJob, action: wire.ActionRequest) -> str | None:
    """Why ``action`` is refused for ``job`` now, or ``None`` when it may run.

    A job only takes the actions it advertises (``capabilities``), and ``retry`` only
    once its run has ended: a stray or forged click never relaunches a running job.
    """
    if action.action not in job.handle.capabilities:
        return f"the job does not offer {action.action[:40]!r}"
    if action.action == "retry" and not job.log.state.finished:
        return "retry is accepted only after the run has ended"
    return None


async def read_actions(hub: Hub, ws: ServerConnection, job: ServedJob) -> None:
    """Decode action frames from a subscriber; bad or refused ones are counted and skipped."""
    try:
        async for message in ws:
            try:
                action = wire.decode_action(message)
            except wire.ProtocolError as exc:
                hub.bad_frame(job.job_id, str(exc))
                continue
            refused = action_refusal(job, action)
            if refused is not None:
                hub.refused_action(job.job_id, f"refused client action {action.action[:40]!r}: {refused}")
                continue
            log.info("job %s: client action %r", job.job_id, action.action)
            if not hub.stopping:
                hub.perform(job, action)
    except ConnectionClosed as exc:
        codes = {frame.code for frame in (exc.rcvd, exc.sent) if frame is not None}
        if 1009 in codes:  # message too big
            hub.bad_frame(job.job_id, f"frame over {wire.MAX_FRAME_BYTES} bytes; connection closed")


async def serve_rank(hub: Hub, ws: ServerConnection, job: ServedJob) -> None:
    """Accept ``{"rank", "message", "error_type", "title"}`` frames; answer ``{"ok": ...}`` to each."""
    try:
        async for message in ws:
            try:
                ranked = parse_forwarded(message, job.handle.name)
            except ValueError as exc:
                hub.bad_frame(job.job_id, f"bad forwarded error: {exc}")
                await ws.send(json.dumps({"ok": False, "error": str(exc)}))
                continue
            log.info("job %s: error forwarded by rank %d: %s", job.job_id, ranked.rank, ranked.event.error_type)
            hub.add_ranked(job, ranked)
            await ws.send(json.dumps({"ok": True}))
    except ConnectionClosed:
        pass


def parse_forwarded(message: str | bytes, job_name: str) -> reports.Ranked:
    """Validate a forwarded error frame into a rank-tagged error. Raises ``ValueError``."""
    raw: Any = json.loads(message)
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    rank, text, error_type = raw.get("rank"), raw.get("message"), raw.get("error_type") or "system_crash"
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < 1 << 20:
        raise ValueError(f"bad rank {rank!r}")
    if not isinstance(text, str) or not isinstance(error_type, str) or len(error_type) > wire.MAX_SHORT:
        raise ValueError("message and error_type must be strings")
    title = raw.get("title")
    return reports.Ranked(rank, reports.error(job_name, text, error_type, title if isinstance(title, str) else None))
