"""JobClient: follows one job over WebSocket, reconnecting with backoff and ``since=``.

The I/O loop around a :class:`~peft_notify.desktop.frames.FrameTracker`, which does the
Sans-I/O bookkeeping (new or replayed frame, this connection's job or another's, run change).
``await JobClient(url, on_message=...).run()`` connects, calls ``on_message`` for every
envelope the tracker lets through (the ``hello`` first), and on a lost connection reconnects
after a delay from :func:`~peft_notify.desktop.frames.backoff`, asking for ``?since=last_seq``
so nothing is lost or repeated. It returns when :meth:`JobClient.stop` is called, when the job
has finished (terminal status received and the server closed), or when the server refuses the
token / does not know the job. No Qt: the desktop app and ``peft-notify watch`` both use it
(through :class:`peft_notify.desktop.monitor.Monitor`).

Progress frames may be coalesced: when several progress frames of one job are already
buffered, only the last one is decoded and delivered (the skipped ones are counted in
``JobClient.coalesced``); :func:`peft_notify.wire.peek_progress_job` recognises them without
decoding. Progress is a snapshot, so nothing is lost: the engine detects milestone crossings
between the previous and the latest step. Every other frame (hello, notification, status,
unknown types) is always decoded and delivered, in order. While frames are buffered the
receive loop still lets the event loop run every ``JobClient.yield_every`` frames, so a
flood cannot starve Qt timers and repaints.

Parked frames are delivered by one loop callback per event-loop turn for all the clients of
that loop (:class:`_Flusher`), not one per frame: with 1,000 jobs each sending a few frames a
second nearly every read is one frame, and under qasync every ready callback is a Qt timer of
its own (issue 17: the loop's plumbing was a quarter of the app's time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Origin

from peft_notify import wire
from peft_notify.desktop.frames import (
    ClientState,
    ConnectionEvent,
    FrameTracker,
    backoff,
    normalize_url,
    parse_job_url,
)
from peft_notify.desktop.portowner import TurnSnapshot, is_loopback_host

# The Sans-I/O names are re-exported: callers that start a client use them with it.
__all__ = ["ClientState", "ConnectionEvent", "JobClient", "backoff", "normalize_url", "parse_job_url"]

log = logging.getLogger(__name__)

# Larger than the protocol limit on purpose: an oversized frame is decoded, rejected and
# skipped (logged and counted) instead of killing the connection and reconnecting forever.
_RECV_LIMIT = 4 * wire.MAX_FRAME_BYTES


class JobClient:
    """Subscriber for one job URL: the I/O loop around a :class:`FrameTracker` (module docstring)."""

    yield_every = 64  # frames handled back to back before the receive loop yields to the event loop

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        on_message: Callable[[wire.Envelope], None] | None = None,
        on_event: Callable[[ConnectionEvent], None] | None = None,
        since: int | None = None,
        origin: str | None = None,
        max_delay: float = 30.0,
        base_delay: float = 0.5,
        rng: Callable[[], float] = random.random,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        job_url = parse_job_url(url)
        self.url = job_url.url
        self.token = token
        self.on_message = on_message
        self.on_event = on_event
        self.origin = origin
        self.max_delay = max_delay
        self.base_delay = base_delay
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        # ``?since=N`` in the URL counts too
        self.tracker = FrameTracker(job_url.job_id, job_url.since if since is None else since, label=job_url.address)
        self.state = ClientState.CONNECTING
        self.connects = 0
        self.coalesced = 0  # progress frames skipped because a later one of the same job was buffered
        self._rng = rng
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Future[None] | None = None
        self._attempt: asyncio.Future[tuple[ClientState | None, str, bool]] | None = None
        self._parked: str | None = None  # the latest progress frame of a burst, not decoded yet
        self._parked_job = ""
        self._owners: frozenset[int] | None = None  # uids listening on a loopback job's port when first seen

    # The tracker's bookkeeping, read by the app, watch and tests.

    @property
    def last_seq(self) -> int | None:
        return self.tracker.last_seq

    @property
    def hello(self) -> wire.Hello | None:
        return self.tracker.hello

    @property
    def bad_frames(self) -> int:
        return self.tracker.bad_frames

    @property
    def duplicates(self) -> int:
        return self.tracker.duplicates

    @property
    def foreign(self) -> int:
        return self.tracker.foreign

    async def run(self) -> ClientState:
        """Connect and keep the subscription alive until a terminal state; returns it."""
        self._loop = asyncio.get_running_loop()
        delays = backoff(self.base_delay, self.max_delay, self._rng)
        first = True
        while not self._stop.is_set():
            if first:
                self._set(ClientState.CONNECTING)
            first = False
            # A task, so that stop() also ends an attempt stuck in a handshake nobody answers.
            self._attempt = asyncio.ensure_future(self._connect_once())
            try:
                terminal, detail, healthy = await self._attempt
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    self._attempt.cancel()
                    raise
                break  # stop() cancelled the attempt
            finally:
                self._attempt = None
            if terminal is not None:
                return self._set(terminal, detail)
            if healthy:
                delays = backoff(self.base_delay, self.max_delay, self._rng)
            if self._stop.is_set():
                break
            if self.tracker.finished:
                return self._set(ClientState.FINISHED, "job finished")
            delay = next(delays)
            self._set(ClientState.RECONNECTING, detail or "connection lost", retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
        return self._set(ClientState.STOPPED)

    async def _connect_once(self) -> tuple[ClientState | None, str, bool]:
        """One connection: ``(terminal state or None, detail, whether a hello came)``."""
        healthy = False
        taken = self._port_taken_over()
        if taken is not None:
            return ClientState.AUTH_REFUSED, taken, healthy
        try:
            async with connect(
                self.tracker.resume_url(self.url),
                additional_headers={"Authorization": f"Bearer {self.token}"} if self.token else None,
                origin=Origin(self.origin) if self.origin else None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                max_size=_RECV_LIMIT,
            ) as ws:
                self._ws = ws
                self.connects += 1
                burst = 0
                async for frame in ws:
                    healthy = self._take(frame) or healthy
                    burst += 1
                    if burst >= self.yield_every:
                        # recv() does not suspend while frames are buffered: let timers, repaints
                        # and the parked frame's flush run.
                        burst = 0
                        await asyncio.sleep(0)
                return None, _close_detail(ws), healthy
        except InvalidStatus as exc:
            status = exc.response.status_code
            reason = _response_reason(exc)
            if status in (401, 403):
                return ClientState.AUTH_REFUSED, f"HTTP {status}: {reason}", healthy
            if status == 404:
                return ClientState.PROTOCOL_ERROR, f"HTTP 404: {reason}", healthy
            return None, f"HTTP {status}: {reason}", healthy
        except InvalidURI as exc:
            return ClientState.PROTOCOL_ERROR, str(exc), healthy
        except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}", healthy
        finally:
            self._flush()  # a progress frame parked when the connection ended is still delivered
            self._ws = None

    def _port_taken_over(self) -> str | None:
        """Why not to connect: another local user now listens on this loopback job's port.

        The uids listening when the port was first seen are the job's; a job that died leaves
        its port free, and whoever binds it next must not get the token nor pose as the job
        (issue 10 items 1 and 3). ``None``: connect (not loopback, not Linux, nobody listening).
        """
        parts = urlsplit(self.url)
        if not is_loopback_host(parts.hostname or ""):
            return None
        port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
        uids = _LISTENERS.uids(port)  # one read for the jobs (re)connecting in this loop turn
        if not uids:
            return None
        if self._owners is None:
            self._owners = uids
            return None
        if uids <= self._owners:
            return None
        others = ", ".join(str(uid) for uid in sorted(uids - self._owners))
        return f"port {port} is now served by another user (uid {others}): not sending the token to it"

    def stop(self) -> None:
        """Ask :meth:`run` to return (closes the connection). Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop.set()
            return
        try:
            loop.call_soon_threadsafe(self._stop_now)
        except RuntimeError:  # the loop closed meanwhile: run() has returned already
            self._stop.set()

    def _stop_now(self) -> None:
        self._stop.set()
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close(1000, "client stopped"))
        elif self._attempt is not None:
            self._attempt.cancel()  # still connecting: don't wait for the handshake timeout

    async def send_action(self, action: wire.ActionRequest) -> bool:
        """Send an action (``retry``, ``cancel``...) to the job; False when not connected."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(wire.encode_action(action))
        except ConnectionClosed:
            return False
        return True

    def _take(self, frame: str | bytes) -> bool:
        """Park a progress frame until the loop is free; handle any other frame now (in order).

        A parked frame is replaced (and counted in :attr:`coalesced`) by a later progress frame
        of the same job that arrives before the event loop got control, i.e. one that was
        already buffered. Progress carrying ``metrics`` (an evaluation) is never parked.
        Returns what :meth:`_receive` returns.
        """
        job = wire.peek_progress_job(frame) if isinstance(frame, str) else None
        if job is None or not isinstance(frame, str):  # evaluations and other frames are kept
            self._flush()
            return self._receive(frame)
        if self._parked is not None and job == self._parked_job:
            self.coalesced += 1
            self._parked = frame
            return False
        self._flush()
        self._parked, self._parked_job = frame, job
        _Flusher.of(asyncio.get_running_loop()).add(self)
        return False

    def _flush(self) -> None:
        """Decode and deliver the parked progress frame, if any."""
        frame, self._parked = self._parked, None
        if frame is not None:
            self._receive(frame)

    def _receive(self, frame: str | bytes) -> bool:
        """Handle one frame; True when it was a hello (the connection is healthy)."""
        env = self.tracker.receive(frame)
        if env is None:
            return False
        self._deliver(env)
        if isinstance(env.data, wire.Hello):
            self._set(ClientState.CONNECTED, env.data.name)
            return True
        return False

    def _deliver(self, env: wire.Envelope) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(env)
        except Exception:
            log.exception("on_message callback failed for %s", env.type)

    def _set(self, state: ClientState, detail: str = "", retry_in: float | None = None) -> ClientState:
        self.state = state
        if self.on_event is not None:
            try:
                self.on_event(ConnectionEvent(state, detail, retry_in))
            except Exception:
                log.exception("on_event callback failed")
        return state


class _Flusher:
    """Delivers the parked frames of every client of one event loop in one callback per loop turn.

    The first client that parks a frame schedules :meth:`run`; clients parking before it runs
    join the batch. A client that flushed itself meanwhile (another frame came) has nothing
    parked and is skipped, as its cancelled callback was before. Each client is flushed in the
    order it parked, and one client's failure does not keep the others' frames back.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._clients: list[JobClient] = []
        self._scheduled = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Flusher:
        flusher = _FLUSHERS.get(loop)
        if flusher is None:
            flusher = _FLUSHERS[loop] = cls(loop)
        return flusher

    def add(self, client: JobClient) -> None:
        self._clients.append(client)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.run)

    def run(self) -> None:
        self._scheduled = False
        clients, self._clients = self._clients, []
        for client in clients:
            try:
                client._flush()
            except Exception:
                log.exception("delivering a progress frame failed for %s", client.url)


_LISTENERS = TurnSnapshot()
_FLUSHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = weakref.WeakKeyDictionary()


def _response_reason(exc: InvalidStatus) -> str:
    body: Any = exc.response.body or b""
    try:
        import json

        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return exc.response.reason_phrase


def _close_detail(ws: ClientConnection) -> str:
    if ws.close_code is None:
        return "connection closed"
    return f"connection closed ({ws.close_code} {ws.close_reason or ''})".strip()
