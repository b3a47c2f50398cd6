"""NatsSource: follows every job published on a NATS JetStream server (issue 15 part 2; docs/cluster.md).

A source is one ``nats://HOST:PORT[/SUBJECT-FILTER]`` (or ``tls://``) connection of the
:class:`~peft_notify.desktop.monitor.Monitor`. It reads the ``peft-jobs`` key-value bucket once
(each job's current ``hello``: the state at once), then pulls the ``PEFT_JOBS`` stream in order.
Each job it finds becomes a connection of its own in the monitor (``JOB@HOST:PORT``), whose client
is a :class:`NatsJobClient` fed by the source through the same Sans-I/O
:class:`~peft_notify.desktop.frames.FrameTracker` as a WebSocket job (new or replayed frame,
this subject's job or another's, run change). So the engine sees exactly what it would see over
a WebSocket.

Resuming: the source remembers the last stream sequence it processed (and, with a cursor file,
across restarts) and asks for the next one after a disconnect, so nothing is missed or shown
twice. What a job had sent before this desktop followed it (stream messages older than the
bucket's snapshot) goes to the history without a popup (``Record``), never as live news.

Actions (retry, cancel, dismiss) go as NATS requests to ``peft.actions.<job_id>`` and only to a
job whose hello offers them; the job answers whether it took the action.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from peft_notify import natsurl, wire
from peft_notify.desktop.frames import ClientState, ConnectionEvent, FrameTracker, backoff

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["Cursors", "NatsJobClient", "NatsSource", "SourceSink"]


class Cursors(Protocol):
    """Where a source keeps the last stream sequence it processed (``nats_sources.CursorStore``)."""

    def get(self, key: str) -> int | None: ...

    def set(self, key: str, seq: int, *, now: float) -> None: ...

    def save(self, now: float | None = None) -> None: ...

log = logging.getLogger(__name__)

PENDING_MSGS = 1_000_000  # what nats-py may hold for us before it reports a slow consumer
PENDING_BYTES = 512 * 1024 * 1024
FRESH_WINDOW_S = 24 * 3600.0  # a desktop without a cursor replays this much of the stream
MAX_JOBS = 5000  # jobs one source follows (a publisher rotating job ids cannot grow this without bound)
ACTION_TIMEOUT_S = 5.0


class SourceSink(Protocol):
    """What a source needs from the monitor."""

    def found_job(self, source_url: str, job_id: str) -> None:
        """A job appeared on the source: follow it (its client comes from :meth:`NatsSource.job_client`)."""

    def record_past(self, job_key: str, event: wire.NotificationEvent, seq: int | None) -> None:
        """A notification the job sent before we followed it: history only."""


@dataclass
class _Baseline:
    """A job's snapshot from the bucket: frames it already counts are history, not news."""

    run_id: str
    last_seq: int
    stream_run: str | None = None  # the run of the latest hello replayed from the stream


class NatsJobClient:
    """The monitor's client for one job found on a source: fed by the source, never dials itself."""

    def __init__(
        self,
        source: NatsSource,
        job_id: str,
        on_message: Callable[[wire.Envelope], None],
        on_event: Callable[[ConnectionEvent], None],
    ) -> None:
        self.source = source
        self.job_id = job_id
        self.tracker = FrameTracker(job_id, label=f"{job_id} on {source.target.address}")
        self.on_message = on_message
        self.on_event = on_event
        self.state = ClientState.CONNECTING
        self._stop = asyncio.Event()

    async def run(self) -> ClientState:
        """Wait until stopped (the source feeds this client); returns ``stopped``."""
        self.link(self.source.state, self.source.detail)
        await self._stop.wait()
        self.source.forget(self)
        return self.link(ClientState.STOPPED)

    def stop(self) -> None:
        self._stop.set()

    async def send_action(self, action: wire.ActionRequest) -> bool:
        """Send ``action`` if the job offers it; True when the job took it."""
        hello = self.tracker.hello
        if hello is None or action.action not in hello.capabilities:
            log.warning("not sending %r to %s: the job does not offer it", action.action[:40], self.job_id)
            return False
        return await self.source.request_action(self.job_id, action)

    def link(self, state: ClientState, detail: str = "", retry_in: float | None = None) -> ClientState:
        if state is self.state and state is not ClientState.RECONNECTING:
            return state
        self.state = state
        try:
            self.on_event(ConnectionEvent(state, detail, retry_in))
        except Exception:
            log.exception("on_event callback failed")
        return state

    def feed(self, env: wire.Envelope) -> None:
        """Deliver a decoded envelope if the tracker lets it through (this job, new seq)."""
        taken = self.tracker.receive_envelope(env)
        if taken is None:
            return
        try:
            self.on_message(taken)
        except Exception:
            log.exception("on_message callback failed for %s", taken.type)


class NatsSource:
    """The client of a source connection (see the module docstring)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        sink: SourceSink,
        on_event: Callable[[ConnectionEvent], None],
        job_key: Callable[[str], str],
        insecure: bool = False,
        cursors: Cursors,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.url = url
        self.target = natsurl.parse(url, insecure=insecure)
        if token and not self.target.token:
            self.target = dataclasses.replace(self.target, token=token)
        self.sink = sink
        self.on_event = on_event
        self.job_key = job_key
        self.cursors = cursors
        self.cursor_key = f"{self.target.address}|{natsurl.STREAM}"
        self.state = ClientState.CONNECTING
        self.detail = ""
        self.last_stream_seq: int | None = cursors.get(self.cursor_key)
        self.processed = 0
        self.past = 0
        self.foreign = 0
        self.bad_frames = 0  # malformed stream messages (logged once, then one line per thousand)
        self.coalesced = 0  # progress frames skipped because a later one of the same job came in the same batch
        self.connects = 0
        self._jobs: dict[str, NatsJobClient] = {}
        self._baselines: dict[str, _Baseline] = {}
        self._catch_up_to = 0  # stream messages up to here were published before we read the bucket
        self._kv_read = False
        self._rng = rng
        self._stop = asyncio.Event()
        self._nc: Client | None = None
        self._too_many_said = False

    # -- ClientLike -----------------------------------------------------------------------

    async def run(self) -> ClientState:
        """Connect, catch up, follow; reconnect with backoff and resume after the last sequence."""
        try:
            return await self._follow()
        finally:
            self.cursors.save()  # also when cancelled (the monitor's shutdown, Ctrl-C in watch)

    async def _follow(self) -> ClientState:
        delays = backoff(0.5, 15.0, self._rng)
        while not self._stop.is_set():
            detail, connects = "connection lost", self.connects
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = _describe(exc)
                if "authorization" in detail.lower():  # the server never echoes the secret back
                    return self._set(ClientState.AUTH_REFUSED, f"the NATS server refused the credentials ({exc})")
            if self._stop.is_set():
                break
            if self.connects > connects and self.state is ClientState.CONNECTED:
                delays = backoff(0.5, 15.0, self._rng)  # it worked for a while: retry soon
            delay = next(delays)
            self._set(ClientState.RECONNECTING, detail, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        return self._set(ClientState.STOPPED)

    def stop(self) -> None:
        self._stop.set()

    async def send_action(self, action: wire.ActionRequest) -> bool:
        """A source is no job: it takes no actions."""
        return False

    def job_client(
        self, job_id: str, on_message: Callable[[wire.Envelope], None], on_event: Callable[[ConnectionEvent], None]
    ) -> NatsJobClient:
        """The client the monitor runs for ``job_id`` (the source feeds it)."""
        client = NatsJobClient(self, job_id, on_message, on_event)
        self._jobs[job_id] = client
        return client

    def forget(self, client: NatsJobClient) -> None:
        if self._jobs.get(client.job_id) is client:
            del self._jobs[client.job_id]

    async def request_action(self, job_id: str, action: wire.ActionRequest) -> bool:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return False
        try:
            reply = await nc.request(
                natsurl.action_subject(job_id), wire.encode_action(action).encode(), timeout=ACTION_TIMEOUT_S
            )
            answer = json.loads(reply.data)
        except Exception as exc:
            log.warning("sending %r to %s over NATS failed: %s", action.action, job_id, _describe(exc))
            return False
        ok = isinstance(answer, dict) and answer.get("ok") is True
        if not ok:
            log.warning("%s refused %r: %s", job_id, action.action, str(answer)[:200])
        return ok

    # -- one connection ------------------------------------------------------------------

    async def _session(self) -> None:
        import nats
        import nats.aio.client
        from nats.js.api import ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        async def on_error(exc: Exception) -> None:
            log.debug("NATS: %s", exc)

        options = _connect_options(self.target)
        nc = nats.aio.client.Client()
        try:
            await nc.connect(**options, allow_reconnect=False, closed_cb=on_closed, error_cb=on_error)
        except BaseException:
            # nats-py leaves the socket open when the server refuses the credentials; its close()
            # can hang after a failed TLS handshake, hence the bound.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2.0)
            raise
        self._nc = nc
        self.connects += 1
        try:
            js = nc.jetstream(timeout=5.0)
            if not self._kv_read:
                await self._read_bucket(js)
            while True:
                try:
                    info = await js.stream_info(natsurl.STREAM)
                    break
                except NotFoundError:
                    self._set(ClientState.CONNECTED, "no job has published here yet")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), 2.0)
                    if self._stop.is_set():
                        return
            first, last = info.state.first_seq, info.state.last_seq
            if not self._catch_up_to:
                self._catch_up_to = last
            config = ConsumerConfig()
            start = self.last_stream_seq
            if start is not None and start > last:
                log.warning("%s: the stream is new (we had read up to %d, it ends at %d)", self.url, start, last)
                start = None
            if start is None:
                config.deliver_policy = DeliverPolicy.BY_START_TIME
                config.opt_start_time = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=FRESH_WINDOW_S)
            else:
                if start + 1 < first:
                    log.warning("%s: %d stream messages aged out before we read them", self.url, first - start - 1)
                config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
                config.opt_start_seq = max(start + 1, first, 1)
            # An ordered push consumer: nats-py hands messages over as they come (flow-controlled,
            # heartbeats, in order); this loop takes whatever has piled up in one go, so a burst of
            # one job's progress is coalesced like on a WebSocket. (A pull fetch per message
            # cost a request round trip each: ~5,000 msg/s at best.)
            arrived: list[Msg] = []
            wake = asyncio.Event()

            async def on_msg(msg: Msg) -> None:
                arrived.append(msg)
                wake.set()

            await js.subscribe(
                self.target.subject,
                stream=natsurl.STREAM,
                cb=on_msg,
                ordered_consumer=True,
                config=config,
                pending_msgs_limit=PENDING_MSGS,
                pending_bytes_limit=PENDING_BYTES,
            )
            self._set(ClientState.CONNECTED, self.target.address)
            while not self._stop.is_set() and not closed.is_set():
                if not arrived:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), 1.0)
                    continue
                msgs, arrived[:] = arrived[:], []
                superseded = _superseded(msgs)
                for i, msg in enumerate(msgs):
                    found = len(self._jobs)
                    self._take(msg, skip=i in superseded)
                    if i % 64 == 63 or len(self._jobs) != found:
                        # Let timers and repaints run during a catch-up, and after each new job: the
                        # app builds a card per job, and 1,000 jobs appearing at once must not freeze it.
                        await asyncio.sleep(0)
                if self.last_stream_seq is not None:
                    self.cursors.set(self.cursor_key, self.last_stream_seq, now=time.monotonic())
            if closed.is_set():
                raise ConnectionError("the NATS server closed the connection")
        finally:
            self._nc = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 3.0)

    async def _read_bucket(self, js: Any) -> None:
        """Each job's current hello from the bucket: the engine has every job's state at once."""
        from nats.js.errors import BucketNotFoundError, NoKeysError

        try:
            kv = await js.key_value(natsurl.KV_BUCKET)
            keys = await kv.keys()
        except (BucketNotFoundError, NoKeysError):
            keys = []
        for key in keys[:MAX_JOBS]:
            job_id = key.replace("=", ":")
            if not natsurl.subject_matches(self.target.subject, natsurl.SUBJECT_PREFIX + job_id):
                continue
            try:
                entry = await kv.get(key)
                env = wire.decode(entry.value or b"")
            except Exception as exc:
                log.warning("%s: skipping the snapshot of %s: %s", self.url, key[:80], _describe(exc))
                continue
            client = self._client_for(job_id)
            if client is None or not isinstance(env.data, wire.Hello) or env.job_id != job_id:
                continue
            self._baselines[job_id] = _Baseline(env.data.run_id, env.data.last_seq)
            client.feed(env)
        self._kv_read = True

    # -- messages ------------------------------------------------------------------------

    def _take(self, msg: Msg, *, skip: bool = False) -> None:
        """One stream message; ``skip``: a progress frame a later one of the same job in this batch supersedes."""
        seq = _stream_seq(msg)
        if self.last_stream_seq is not None and seq <= self.last_stream_seq:
            return
        self.last_stream_seq = seq
        self.processed += 1
        if skip:
            self.coalesced += 1
            return
        job_id = natsurl.job_id_of(msg.subject)
        if job_id is None:
            self.foreign += 1
            return
        try:
            env = wire.decode(msg.data)
        except wire.ProtocolError as exc:
            self.bad_frames += 1
            if self.bad_frames == 1 or self.bad_frames % 1000 == 0:  # one line, not one per frame (item 8)
                log.warning(
                    "%s: skipping a bad frame on %s (%d so far): %s", self.url, msg.subject[:80], self.bad_frames, exc
                )
            return
        client = self._client_for(job_id)
        if client is None:
            return
        if seq <= self._catch_up_to and self._is_past(job_id, env):
            return
        client.feed(env)

    def _is_past(self, job_id: str, env: wire.Envelope) -> bool:
        """Whether a caught-up frame was sent before the bucket's snapshot (history only, never news)."""
        base = self._baselines.get(job_id)
        if base is None or env.job_id != job_id:
            return False
        if isinstance(env.data, wire.Hello):
            base.stream_run = env.data.run_id
            return True
        older_run = base.stream_run is not None and base.stream_run != base.run_id
        if not older_run and (env.seq is None or env.seq > base.last_seq):
            return False
        if isinstance(env.data, wire.NotificationEvent):
            self.past += 1
            self.sink.record_past(self.job_key(job_id), env.data, env.seq)
        return True

    def _client_for(self, job_id: str) -> NatsJobClient | None:
        client = self._jobs.get(job_id)
        if client is not None:
            return client
        if len(self._jobs) >= MAX_JOBS:
            if not self._too_many_said:
                self._too_many_said = True
                log.warning("%s: following %d jobs already; ignoring new ones", self.url, MAX_JOBS)
            return None
        self.sink.found_job(self.url, job_id)
        return self._jobs.get(job_id)

    def _set(self, state: ClientState, detail: str = "", retry_in: float | None = None) -> ClientState:
        self.state, self.detail = state, detail
        for client in list(self._jobs.values()):
            client.link(state, detail, retry_in)
        try:
            self.on_event(ConnectionEvent(state, detail, retry_in))
        except Exception:
            log.exception("on_event callback failed")
        return state


def _stream_seq(msg: Msg) -> int:
    """The message's stream sequence from its reply subject (``$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>...``, or with domain and account hash); ``msg.metadata`` parses all of it (~5 µs)."""
    tokens = msg.reply.split(".")
    if len(tokens) == 9 and tokens[0] == "$JS":
        return int(tokens[5])
    if len(tokens) >= 11 and tokens[0] == "$JS":
        return int(tokens[7])
    return int(msg.metadata.sequence.stream)


def _superseded(msgs: list[Msg]) -> set[int]:
    """Indexes of progress frames whose job's next frame in ``msgs`` is progress too (the WebSocket
    client's rule: progress is a snapshot, the engine sees the crossing from the latest one)."""
    out: set[int] = set()
    next_is_progress: dict[str, bool] = {}
    for i in range(len(msgs) - 1, -1, -1):
        msg = msgs[i]
        try:
            plain = wire.peek_progress_job(msg.data.decode("utf-8", "replace")) is not None
        except Exception:
            plain = False
        if plain and next_is_progress.get(msg.subject, False):
            out.add(i)
        next_is_progress[msg.subject] = plain
    return out


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _connect_options(target: natsurl.NatsTarget) -> dict[str, Any]:
    options: dict[str, Any] = {"servers": [target.server], "connect_timeout": 3, "name": "peft-notify desktop"}
    if target.token:
        options["token"] = target.token
    if target.user is not None:
        options["user"], options["password"] = target.user, target.password
    if target.creds:
        options["user_credentials"] = target.creds
    tls = target.tls_context()
    if tls is not None:
        options["tls"], options["tls_hostname"] = tls, target.host
    return options
