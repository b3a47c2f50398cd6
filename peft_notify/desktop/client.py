"""JobClient: subscribes to one job over WebSocket, reconnecting with backoff and ``since=``.

``await JobClient(url, on_message=...).run()`` connects, calls ``on_message`` for every
new envelope (the ``hello`` first), and on a lost connection reconnects after a delay from
:func:`backoff`, asking for ``?since=last_seq`` so nothing is lost or repeated. It returns
when :meth:`JobClient.stop` is called, when the job has finished (terminal status received
and the server closed), or when the server refuses the token / does not know the job.
No Qt: the desktop app and ``peft-notify watch`` both use it.

Progress frames may be coalesced: when several progress frames of one job are already
buffered, only the last one is decoded and delivered (the skipped ones are counted in
``JobClient.coalesced``). Progress is a snapshot, so nothing is lost: the engine detects
milestone crossings between the previous and the latest step. Every other frame (hello,
notification, status, unknown types) is always decoded and delivered, in order. While
frames are buffered the receive loop still lets the event loop run every
``JobClient.yield_every`` frames, so a flood cannot starve Qt timers and repaints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Origin

from peft_notify import wire

__all__ = ["ClientState", "ConnectionEvent", "JobClient", "backoff", "normalize_url"]

log = logging.getLogger(__name__)

# Larger than the protocol limit on purpose: an oversized frame is decoded, rejected and
# skipped (logged and counted) instead of killing the connection and reconnecting forever.
_RECV_LIMIT = 4 * wire.MAX_FRAME_BYTES

# How wire.encode (our JobServer) starts a progress frame: keys in this order, no spaces.
# Only frames that start like this are coalesced; any other frame is decoded as usual.
_PROGRESS_HEAD = re.compile(r'\{"v":1,"seq":\d+,"type":"progress","job_id":"([^"\\]+)"')


class ClientState(Enum):
    """Where a JobClient is in its life."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    AUTH_REFUSED = "auth_refused"
    PROTOCOL_ERROR = "protocol_error"
    FINISHED = "finished"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self in (ClientState.AUTH_REFUSED, ClientState.PROTOCOL_ERROR, ClientState.FINISHED, ClientState.STOPPED)


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A state change; ``retry_in`` is the delay before the next attempt when reconnecting."""

    state: ClientState
    detail: str = ""
    retry_in: float | None = None


def backoff(base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random) -> Iterator[float]:
    """Delays for successive retries: exponential growth capped at ``cap``, with full jitter."""
    attempt = 0
    while True:
        yield rng() * min(cap, base * 2.0**attempt)
        attempt = min(attempt + 1, 62)


def normalize_url(url: str) -> str:
    """Accept ws://, wss://, http:// and https:// job URLs; returns the ws(s) form.

    Raises ``ValueError`` for any other scheme.
    """
    parts = urlsplit(url)
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a job URL: {url!r} (expected ws://HOST:PORT/ws/notifications/JOB)")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _with_since(url: str, since: int | None, run_id: str | None = None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("since", "run_id")]
    if since is not None:
        query.append(("since", str(since)))
        if run_id is not None:
            query.append(("run_id", run_id))  # a restarted job replays from its start
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


class JobClient:
    """Subscriber for one job URL (see the module docstring)."""

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
        self.url = normalize_url(url)
        self.token = token
        self.on_message = on_message
        self.on_event = on_event
        self.origin = origin
        self.max_delay = max_delay
        self.base_delay = base_delay
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        if since is None:  # ``?since=N`` in the URL counts too
            raw = dict(parse_qsl(urlsplit(self.url).query)).get("since", "")
            since = int(raw) if raw.isdigit() else None
        self.last_seq: int | None = since
        self.hello: wire.Hello | None = None
        self.state = ClientState.CONNECTING
        self.bad_frames = 0
        self.duplicates = 0
        self.connects = 0
        self.coalesced = 0  # progress frames skipped because a later one of the same job was buffered
        self._rng = rng
        self._finished_seen = False
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Future[None] | None = None
        self._attempt: asyncio.Future[tuple[ClientState | None, str, bool]] | None = None
        self._parked: str | None = None  # the latest progress frame of a burst, not decoded yet
        self._parked_job = ""
        self._flush_handle: asyncio.Handle | None = None

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
            if self._finished_seen:
                return self._set(ClientState.FINISHED, "job finished")
            delay = next(delays)
            self._set(ClientState.RECONNECTING, detail or "connection lost", retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
        return self._set(ClientState.STOPPED)

    async def _connect_once(self) -> tuple[ClientState | None, str, bool]:
        """One connection: ``(terminal state or None, detail, whether a hello came)``."""
        healthy = False
        try:
            async with connect(
                _with_since(self.url, self.last_seq, self.hello.run_id if self.hello else None),
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

    async def send_action(self, action: wire.Action) -> bool:
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
        match = _PROGRESS_HEAD.match(frame) if isinstance(frame, str) else None
        if match is None or not isinstance(frame, str) or '"metrics":' in frame:  # evaluations are kept
            self._flush()
            return self._receive(frame)
        job = match.group(1)
        if self._parked is not None and job == self._parked_job:
            self.coalesced += 1
            self._parked = frame
            return False
        self._flush()
        self._parked, self._parked_job = frame, job
        self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        return False

    def _flush(self) -> None:
        """Decode and deliver the parked progress frame, if any."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        frame, self._parked = self._parked, None
        if frame is not None:
            self._receive(frame)

    def _receive(self, frame: str | bytes) -> bool:
        """Handle one frame; True when it was a hello (the connection is healthy)."""
        try:
            env = wire.decode(frame)
        except wire.ProtocolError as exc:
            self.bad_frames += 1
            log.warning("skipping a bad frame from %s: %s", self.url, exc)
            return False
        if isinstance(env.data, wire.Hello):
            if self.hello is not None and self.hello.run_id != env.data.run_id:
                log.info("%s: new run %s; replaying it from the start", self.url, env.data.run_id)
                self.last_seq = 0
            self.hello = env.data
            if self.last_seq is None:
                self.last_seq = env.data.last_seq
            self._finished_seen = env.data.state.finished
            self._deliver(env)
            self._set(ClientState.CONNECTED, env.data.name)
            return True
        if env.seq is not None:
            if self.last_seq is not None and env.seq <= self.last_seq:
                self.duplicates += 1
                return False
            self.last_seq = env.seq
        if isinstance(env.data, wire.Status):
            self._finished_seen = env.data.state.finished
        self._deliver(env)
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
