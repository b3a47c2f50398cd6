"""NatsPublisher: a served job's protocol-v1 frames to NATS JetStream (issue 15 part 2; docs/cluster.md).

Call :func:`start` with a checked :class:`~peft_notify.natsurl.NatsTarget`, :meth:`NatsPublisher.attach`
each job right after ``JobServer.add_job``, and :meth:`NatsPublisher.close` when the job ends
(it sends what is queued, bounded wait).

The publisher taps the job's event log (like the notification channels): every frame the
WebSocket clients get is also published to ``peft.jobs.<job_id>`` in the ``PEFT_JOBS`` stream
(created with age and size limits if missing), preceded by a ``hello`` at start and at every new
run; the job's current ``hello`` is kept in the ``peft-jobs`` key-value bucket, so a desktop that
starts later has the state at once. Actions (retry, cancel) come back as requests on
``peft.actions.<job_id>`` and are taken by the same rules as on the WebSocket
(:func:`peft_notify.emitter.stream.action_refusal`).

It never blocks training: the tap only appends to a bounded outbox (O(1), on the server's loop);
a thread with its own event loop does all NATS I/O. Progress and resource samples are coalesced
(latest wins per job) while they wait; nothing else is dropped unless more than ``queue_limit``
frames wait (the server is down for long): then the oldest go, are counted, and the job says so
in a warning once NATS is back. Each frame carries ``Nats-Msg-Id`` (job, run, seq), so a frame
re-sent after a lost acknowledgement is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from peft_notify import natsurl, wire
from peft_notify.emitter.jobs import ServedJob, hello_frame
from peft_notify.emitter.stream import action_refusal

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.kv import KeyValue

    from peft_notify.emitter.handle import JobHandle
    from peft_notify.emitter.server import JobServer

__all__ = ["NatsPublisher", "from_environment", "require_client", "start", "target_from"]

log = logging.getLogger(__name__)

KV_INTERVAL_S = 1.0  # the KV snapshot follows progress at most this often (other frames at once)
STREAM_MAX_AGE_S = 7 * 86400.0
STREAM_MAX_BYTES = 1 << 30
STREAM_MAX_PER_JOB = 100_000
DUPLICATE_WINDOW_S = 120.0
_COALESCED = ("progress", "resource")
_KEPT = ("hello", "status", "error")  # what a full outbox drops last


@dataclass(eq=False, slots=True)
class _Item:
    job_id: str
    kind: str
    data: bytes
    msg_id: str
    seq: int
    dead: bool = False  # replaced by a later progress/resource frame of the same job


@dataclass(eq=False)
class _Job:
    served: ServedJob
    subject: str
    run_id: str
    kv_frame: bytes | None = None
    kv_seq: int = 0
    kv_at: float = float("-inf")
    kv_sent: bytes | None = None
    published_seq: int = 0
    lost: int = 0
    lost_said: int = 0
    latest: dict[str, _Item] = field(default_factory=dict)  # kind -> the waiting coalescable frame
    subscribed: object = None  # the connection its action subscription lives on


class NatsPublisher:
    """Publishes served jobs to NATS JetStream from a thread of its own (see the module docstring)."""

    def __init__(
        self,
        target: natsurl.NatsTarget,
        *,
        queue_limit: int = 10_000,
        publish_timeout: float = 5.0,
        stream_max_age: float = STREAM_MAX_AGE_S,
        stream_max_bytes: int = STREAM_MAX_BYTES,
    ) -> None:
        self.target = target
        self.queue_limit = queue_limit
        self.publish_timeout = publish_timeout
        self.stream_max_age = stream_max_age
        self.stream_max_bytes = stream_max_bytes
        self.published = 0
        self.lost = 0
        self.connected = False
        self._jobs: dict[str, _Job] = {}
        self._outbox: deque[_Item] = deque()
        self._alive = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._said_down = False
        self._nc: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle (training thread)

    def start(self) -> NatsPublisher:
        """Start the publishing thread (it connects, and keeps reconnecting, on its own)."""
        if self._thread is None:
            started = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(started,), name="peft-notify-nats", daemon=True)
            self._thread.start()
            started.wait(10)
        return self

    def attach(self, server: JobServer, handle: JobHandle) -> None:
        """Publish ``handle``'s job: its hello now, then every frame its log gets. Raises ``ValueError``
        for a job id that cannot be a NATS subject."""
        subject = natsurl.subject_for(handle.job_id)
        served = server.pump.get(handle.job_id)
        if served is None:
            raise ValueError(f"job {handle.job_id!r} is not served by this server")
        job = _Job(served=served, subject=subject, run_id=served.run.run_id)
        self._jobs[handle.job_id] = job
        hello = hello_frame(served, False).encode()
        job.kv_frame, job.kv_seq = hello, served.log.last_seq
        self._put(_Item(handle.job_id, "hello", hello, f"{handle.job_id}:{job.run_id}:h{served.log.last_seq}", 0))
        served.log.taps.append(lambda env: self._observe(job, env))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._subscribe_later, handle.job_id)

    def close(self, timeout: float = 10.0) -> None:
        """Publish what waits (up to ``timeout`` s), then disconnect. Idempotent."""
        if self._thread is None or self._closing:
            return
        if not self._idle.wait(timeout):
            with self._lock:
                waiting = self._alive
            log.warning("NATS: %d frames were not published before the job ended (server unreachable?)", waiting)
        self._closing = True
        self._poke()
        self._thread.join(timeout=5)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued frame and snapshot is published; False on timeout."""
        return self._idle.wait(timeout)

    @property
    def pending(self) -> int:
        """Frames waiting to be published."""
        with self._lock:
            return self._alive

    # ------------------------------------------------------------------ the tap (server loop thread)

    def _observe(self, job: _Job, env: wire.Envelope) -> None:
        """Every envelope the job's log appends: O(1), never blocks, never raises."""
        served, seq = job.served, env.seq or 0
        job_id = served.job_id
        if served.run.run_id != job.run_id:  # a relaunch (Retry): a fresh hello announces the new run
            job.run_id = served.run.run_id
            self._put(_Item(job_id, "hello", self._hello(served, seq - 1), f"{job_id}:{job.run_id}:h{seq}", seq - 1))
        kind = env.type
        if kind == "progress" and isinstance(env.data, wire.Progress) and env.data.metrics:
            kind = "evaluation"  # an evaluation is never coalesced away
        elif isinstance(env.data, wire.NotificationEvent) and env.data.type is wire.NotificationType.ERROR:
            kind = "error"  # dropped last (see _drop_oldest)
        self._put(_Item(job_id, kind, wire.encode(env).encode(), f"{job_id}:{job.run_id}:{seq}", seq))
        now = time.monotonic()
        if kind not in _COALESCED or now - job.kv_at >= KV_INTERVAL_S:
            job.kv_at = now
            frame = hello_frame(served, False).encode()
            with self._lock:
                job.kv_frame, job.kv_seq = frame, seq
        self._poke()

    @staticmethod
    def _hello(served: ServedJob, last_seq: int) -> bytes:
        """The job's hello as of ``last_seq`` (a new run's hello precedes the frame that revealed it)."""
        env = wire.decode(hello_frame(served, False))
        assert isinstance(env.data, wire.Hello)
        env = dataclasses.replace(env, seq=last_seq, data=dataclasses.replace(env.data, last_seq=last_seq))
        return wire.encode(env).encode()

    def _put(self, item: _Item) -> None:
        job = self._jobs.get(item.job_id)
        with self._lock:
            if job is not None and item.kind in _COALESCED:
                old = job.latest.get(item.kind)
                if old is not None and not old.dead:
                    old.dead = True  # latest wins while it waits
                    self._alive -= 1
                job.latest[item.kind] = item
            self._outbox.append(item)
            self._alive += 1
            self._idle.clear()
            while self._alive > self.queue_limit:
                self._drop_oldest()
            if len(self._outbox) > 2 * self.queue_limit:
                self._outbox = deque(i for i in self._outbox if not i.dead)

    def _drop_oldest(self) -> None:
        """Over the limit (the server is down for long): the oldest waiting frame goes, counted.

        Errors, state changes and a run's hello are kept as long as anything else waits.
        """
        kept: list[_Item] = []  # leading kept frames step aside; dead ones at the head go
        while self._outbox and (self._outbox[0].dead or self._outbox[0].kind in _KEPT):
            item = self._outbox.popleft()
            if not item.dead:
                kept.append(item)
        victim = next((i for i in self._outbox if not i.dead and i.kind not in _KEPT), None)
        self._outbox.extendleft(reversed(kept))
        if victim is None:
            victim = next((i for i in self._outbox if not i.dead and i.kind != "hello"), None)
        if victim is None:
            return
        victim.dead = True
        self._alive -= 1
        job = self._jobs.get(victim.job_id)
        if job is not None:
            job.lost += 1
            if job.latest.get(victim.kind) is victim:
                del job.latest[victim.kind]
        self.lost += 1

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed at exit
                loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------------ the publishing thread

    def _run(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop, self._wake = loop, asyncio.Event()
        started.set()
        try:
            loop.run_until_complete(self._main())
        except Exception:
            log.exception("NATS publisher stopped")
        finally:
            self._idle.set()
            loop.close()

    async def _main(self) -> None:
        import nats.aio.client

        delay = 0.5
        while not self._closing:
            nc = nats.aio.client.Client()
            try:
                await nc.connect(**connect_options(self.target, self._on_down, self._on_up, self._on_error))
            except Exception as exc:
                with contextlib.suppress(Exception):  # nats-py leaves the socket open on refused credentials
                    await asyncio.wait_for(nc.close(), 2.0)  # (and its close() can hang after a failed TLS handshake)
                self._say_down(f"cannot reach {self.target.address}: {type(exc).__name__}: {exc}")
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            try:
                await self._serve(nc)
            except Exception as exc:
                self._say_down(f"{self.target.address}: {type(exc).__name__}: {exc}")
                await self._sleep(1.0)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), 5)

    async def _serve(self, nc: Client) -> None:
        js = nc.jetstream(timeout=self.publish_timeout)
        await self._ensure_stream(js)
        kv = await self._ensure_bucket(js)
        self._nc = nc
        for job_id in list(self._jobs):
            await self._subscribe(nc, job_id)
        self._on_up_now()
        assert self._wake is not None
        while not self._closing or self.pending:
            if nc.is_closed:
                raise ConnectionError("connection closed")
            item = self._head()
            if item is not None:
                await self._publish(js, item)
                continue
            await self._put_snapshots(kv)
            self._say_lost()
            if self._head() is None and not self._snapshots_due():
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)

    def _head(self) -> _Item | None:
        with self._lock:
            while self._outbox and self._outbox[0].dead:
                self._outbox.popleft()
            return self._outbox[0] if self._outbox else None

    async def _publish(self, js: Any, item: _Item) -> None:
        job = self._jobs.get(item.job_id)
        subject = job.subject if job is not None else natsurl.subject_for(item.job_id)
        try:
            await js.publish(subject, item.data, headers={"Nats-Msg-Id": item.msg_id})
        except Exception as exc:  # timeouts while the server restarts: send the same frame again
            self._say_down(f"publishing to {self.target.address} failed: {type(exc).__name__}: {exc}")
            await self._sleep(0.5)
            if type(exc).__name__ in ("ConnectionClosedError",):
                raise
            return
        self._say_up()
        with self._lock:
            if self._outbox and self._outbox[0] is item:
                self._outbox.popleft()
                if not item.dead:
                    self._alive -= 1
                    item.dead = True
            if job is not None:
                job.published_seq = max(job.published_seq, item.seq)
                if job.latest.get(item.kind) is item:
                    del job.latest[item.kind]
        self.published += 1

    def _snapshots_due(self) -> bool:
        with self._lock:
            return any(j.kv_frame is not None and j.kv_frame != j.kv_sent for j in self._jobs.values())

    async def _put_snapshots(self, kv: KeyValue) -> None:
        """The KV snapshot of each job, once the stream has every frame it counts (it never runs ahead)."""
        for job_id, job in list(self._jobs.items()):
            with self._lock:
                frame, seq = job.kv_frame, job.kv_seq
            if frame is None or frame == job.kv_sent or seq > job.published_seq:
                continue
            try:
                await kv.put(natsurl.kv_key(job_id), frame)
            except Exception as exc:  # e.g. a timeout while the server restarts: the next round tries again
                log.debug("NATS: the snapshot of %s is not stored yet: %s", job_id, exc)
                return
            job.kv_sent = frame

    def _say_lost(self) -> None:
        for job in self._jobs.values():
            missing = job.lost - job.lost_said
            if missing > 0:
                job.lost_said = job.lost
                log.warning(
                    "NATS: %d frames of job %s were dropped while the server was unreachable",
                    missing,
                    job.served.job_id,
                )
                job.served.handle.warning(
                    f"{missing} progress or notification frames could not be published to NATS while the "
                    "server was unreachable (the queue was full); the job kept training",
                    title="NATS: events lost",
                )

    # ------------------------------------------------------------------ actions (publishing thread)

    def _subscribe_later(self, job_id: str) -> None:
        nc = self._nc
        if nc is not None and not nc.is_closed:
            task = asyncio.ensure_future(self._subscribe(nc, job_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, nc: Client, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.subscribed is nc:
            return
        job.subscribed = nc

        async def on_request(msg: Msg) -> None:
            await self._on_action(job, msg)

        await nc.subscribe(natsurl.action_subject(job_id), cb=on_request)

    async def _on_action(self, job: _Job, msg: Msg) -> None:
        """An action request: the WebSocket path's rules (advertised, retry only after the run ended)."""
        served = job.served
        try:
            action = wire.decode_action(msg.data)
        except wire.ProtocolError as exc:
            log.warning("job %s: ignoring a bad action from NATS: %s", served.job_id, str(exc)[:200])
            await _respond(msg, ok=False, error="bad action frame")
            return
        refused = action_refusal(served, action)
        if refused is not None:
            log.warning("job %s: refused NATS action %r: %s", served.job_id, action.action[:40], refused)
            await _respond(msg, ok=False, error=refused)
            return
        log.info("job %s: action %r from NATS", served.job_id, action.action)
        await _respond(msg, ok=True)
        await asyncio.get_running_loop().run_in_executor(None, served.actions.dispatch, action)

    # ------------------------------------------------------------------ setup and state

    async def _ensure_stream(self, js: Any) -> None:
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(natsurl.STREAM)
        except NotFoundError:
            config = StreamConfig(
                name=natsurl.STREAM,
                subjects=[natsurl.SUBJECT_PREFIX + ">"],
                storage=StorageType.FILE,
                max_age=self.stream_max_age,
                max_bytes=self.stream_max_bytes,
                max_msgs_per_subject=STREAM_MAX_PER_JOB,
                discard=DiscardPolicy.OLD,
                duplicate_window=DUPLICATE_WINDOW_S,
            )
            with contextlib.suppress(Exception):  # another job created it meanwhile
                await js.add_stream(config)
            log.info(
                "NATS: created stream %s (max age %g s, max %d bytes)",
                natsurl.STREAM,
                self.stream_max_age,
                self.stream_max_bytes,
            )

    async def _ensure_bucket(self, js: Any) -> KeyValue:
        from nats.js.api import KeyValueConfig, StorageType
        from nats.js.errors import BucketNotFoundError

        try:
            kv: KeyValue = await js.key_value(natsurl.KV_BUCKET)
        except BucketNotFoundError:
            config = KeyValueConfig(
                bucket=natsurl.KV_BUCKET, history=1, storage=StorageType.FILE, ttl=self.stream_max_age
            )
            kv = await js.create_key_value(config)
        return kv

    async def _sleep(self, delay: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _on_down(self) -> None:
        self.connected = False
        if self._closing:  # our own close
            return
        self._say_down(f"lost the connection to {self.target.address}; training goes on, frames wait")

    async def _on_up(self) -> None:
        self._on_up_now()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client error: %s", exc)
        # nats-py retries refused credentials inside connect() and reports each try only here: say it
        # once (the server never echoes the secret back), or the job would be silent about it.
        if "authorization" in str(exc).lower():
            self._say_down(
                f"{self.target.address} refused the credentials ({exc}); training goes on, nothing is "
                "published until they are right"
            )

    def _on_up_now(self) -> None:
        self.connected = True
        self._say_up()

    def _say_down(self, text: str) -> None:
        if not self._said_down:
            self._said_down = True
            log.warning("NATS: %s", text)

    def _say_up(self) -> None:
        if self._said_down:
            self._said_down = False
            log.warning("NATS: connected to %s again; publishing what waited", self.target.address)


async def _respond(msg: Msg, *, ok: bool, error: str = "") -> None:
    if not msg.reply:
        return
    body = {"ok": ok} if ok else {"ok": False, "error": error[:200]}
    with contextlib.suppress(Exception):
        await msg.respond(json.dumps(body).encode())


def connect_options(target: natsurl.NatsTarget, down: Any, up: Any, error: Any) -> dict[str, Any]:
    """``nats.connect`` keyword arguments for ``target`` (credentials, TLS, reconnect forever)."""
    options: dict[str, Any] = {
        "servers": [target.server],
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 3,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        "disconnected_cb": down,
        "reconnected_cb": up,
        "error_cb": error,
        "name": "peft-notify",
    }
    if target.token:
        options["token"] = target.token
    if target.user is not None:
        options["user"], options["password"] = target.user, target.password
    if target.creds:
        options["user_credentials"] = target.creds
    tls = target.tls_context()
    if tls is not None:
        options["tls"] = tls
        options["tls_hostname"] = target.host
    return options


def target_from(url: str | None, *, insecure: bool = False) -> natsurl.NatsTarget | None:
    """The NATS server to publish to: ``url``, else ``$PEFT_NOTIFY_NATS`` (``None``: none).

    ``$PEFT_NOTIFY_NATS_INSECURE=1`` allows ``nats://`` to another host like ``insecure``.
    Raises ``ValueError`` (one line) for a bad URL.
    """
    text = (url or os.environ.get("PEFT_NOTIFY_NATS", "")).strip()
    if not text:
        return None
    insecure = insecure or os.environ.get("PEFT_NOTIFY_NATS_INSECURE", "") in ("1", "true", "yes")
    return natsurl.parse(text, insecure=insecure)


def require_client() -> None:
    """Raise ``ImportError`` with the install hint when nats-py is missing."""
    try:
        import nats  # noqa: F401
    except ImportError as exc:
        raise ImportError("publishing to NATS needs nats-py: pip install 'peft-notify[cluster]'") from exc


def start(target: natsurl.NatsTarget, **options: Any) -> NatsPublisher:
    """A started :class:`NatsPublisher`. Raises ``ImportError`` (with the install hint) without nats-py."""
    require_client()
    return NatsPublisher(target, **options).start()


def from_environment() -> NatsPublisher | None:
    """A started publisher for ``$PEFT_NOTIFY_NATS`` (``None`` when unset, or unusable: logged).

    For integrations that serve several jobs from one server (a sweep's trials): attach each.
    """
    try:
        target = target_from(None)
        if target is None:
            return None
        return start(target)
    except (ValueError, ImportError) as exc:
        log.warning("not publishing to NATS: %s", exc)
        return None
