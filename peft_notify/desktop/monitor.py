"""The desktop side's core without widgets: job connections → engine → performer, as asyncio code.

One :class:`Monitor` per process: the app (through the thin Qt layer of
:mod:`peft_notify.app.controller`) and ``peft-notify watch`` (plain asyncio) both use it.
It keeps one client per :class:`Connection` and feeds every envelope to the engine under the
connection's job key: **a job's identity is its connection** (the URL, and the run id of
its hello; issue 10 item 3), never the ``job_id`` a frame claims, so a second server cannot
pose as another job and two jobs sharing an id on different ports stay two jobs. The
engine's actions go, in order, to the performer (the app's
:class:`~peft_notify.desktop.dispatch.Dispatcher`, watch's printer) from one worker task, so
a slow notifier never blocks a feed. It runs the engine's timers at ``next_tick_at``, polls
the DND probe, notices a local training process that died without a word, routes
notification buttons (:class:`ButtonPresses`) to the connection that produced the
notification, and frees a job's engine state when its connection is removed.

Every part comes in through the constructor; what changed goes out as :data:`MonitorEvent`
values to the one ``on_event`` callback (called on the loop, synchronously). Call
:meth:`Monitor.start` once the loop runs and ``await`` :meth:`Monitor.shutdown` before it
ends. Nothing raises into the loop: :meth:`Monitor.add` raises ``ValueError`` for a bad URL
(the caller says so), dead servers, refused tokens and failed sends become events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from peft_notify.desktop.curve import Curve
from peft_notify.desktop.dispatch import Route, SendToJob, ShowDetails
from peft_notify.desktop.frames import ClientState, ConnectionEvent, JobUrl, parse_job_url, shown_url
from peft_notify.desktop.nats_sources import NatsSources
from peft_notify.desktop.procwatch import is_local_host, process_alive
from peft_notify.engine.actions import Action, MergeRepeat, Notify, Record
from peft_notify.engine.config import EngineConfig
from peft_notify.ports import DeliveryStatus, DndProbe, DndState
from peft_notify.wire import (
    ActionRequest,
    Envelope,
    Group,
    Hello,
    JobState,
    NotificationEvent,
    NotificationType,
    Progress,
)

__all__ = [
    "ButtonPresses",
    "ClientFactory",
    "ClientLike",
    "Connection",
    "ConnectionAdded",
    "ConnectionRemoved",
    "Decided",
    "DndChanged",
    "EngineLike",
    "LinkChanged",
    "LossCurves",
    "MessageFed",
    "Monitor",
    "MonitorEvent",
    "PauseChanged",
    "Performed",
    "Performer",
    "Problem",
    "Router",
    "RunStarted",
    "ShowJob",
    "Ticked",
]

log = logging.getLogger(__name__)

DND_POLL_S = 2.0
DISCOVER_S = 5.0  # full rescan of the discovery directory (the fallback)
DIR_POLL_S = 0.2  # how often the directory itself is checked for a change (no Qt, no inotify needed)
REPLAY_WITHIN_S = 60.0  # a local job discovered this young is followed from its first message
MAX_TICK_SLEEP_S = 1.0
SHUTDOWN_S = 3.0
SEND_TIMEOUT_S = 5.0
PERFORMED_EVERY_S = 0.25  # during a flood of history writes, Performed at least this often
_HISTORY_ACTIONS = (Notify, Record, MergeRepeat)
MAX_LOSS_POINTS = 600


# ---------------------------------------------------------------- the parts it is built from


class EngineLike(Protocol):
    """The part of :class:`peft_notify.engine.Engine` the monitor drives."""

    def feed(self, envelope: Envelope, *, now: float, dnd: DndState, job_id: str | None = None) -> list[Action]: ...

    def tick(self, *, now: float, dnd: DndState) -> list[Action]: ...

    def next_tick_at(self) -> float | None: ...

    def process_exited(self, job_id: str, *, now: float, detail: str = "") -> list[Action]: ...

    def set_user_pause(self, until: float | None, *, now: float) -> list[Action]: ...

    def set_config(self, config: EngineConfig) -> None: ...

    def acknowledge(self, *, now: float) -> list[Action]: ...

    def forget(self, job_id: str) -> list[Action]: ...

    def job(self, job_id: str) -> Any: ...

    def job_flags(self, job_id: str) -> tuple[JobState, bool] | None: ...

    def resources(self, job_id: str) -> Any: ...

    def end_groups(self, *, now: float) -> list[Action]: ...

    def watch_all_jobs(self, on: bool, *, now: float) -> list[Action]: ...

    @property
    def all_jobs_watched(self) -> bool: ...


class ClientLike(Protocol):
    """The part of :class:`peft_notify.desktop.client.JobClient` the monitor uses."""

    async def run(self) -> object: ...

    def stop(self) -> None: ...

    async def send_action(self, action: ActionRequest) -> bool: ...


# (url, token, on_message, on_event, since) -> client
ClientFactory = Callable[
    [str, str | None, Callable[[Envelope], None], Callable[[ConnectionEvent], None], int | None], ClientLike
]


class Performer(Protocol):
    """Carries out the engine's actions, in order (the Dispatcher; watch's printer)."""

    async def perform(self, actions: Sequence[Action]) -> object: ...


class Router(Protocol):
    """Says where a notification's button press goes (the Dispatcher)."""

    def route_action(self, job_id: str, record_id: int, action: str) -> Route | None: ...


class ButtonPresses:
    """Notification button presses on their way to the monitor: the notifiers' ``ActionHandler``.

    Build it first and give it to the notifiers (``on_action=presses``) and to the monitor,
    which handles each press on its loop. Presses made before the monitor runs wait here;
    calling it from another thread is safe.
    """

    def __init__(self) -> None:
        self._pending: deque[tuple[str, int, str]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def __call__(self, job_id: str, record_id: int, action: str) -> None:
        self._pending.append((job_id, record_id, action))
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)

    async def get(self) -> tuple[str, int, str]:
        """The next press ``(job_id, record_id, action)``; waits for one."""
        if self._wake is None:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while not self._pending:
            self._wake.clear()
            await self._wake.wait()
        return self._pending.popleft()


class LossCurves:
    """Each job's recent ``(step, loss)`` points, by job key (charts, the completion attachment)."""

    def __init__(self, max_points: int = MAX_LOSS_POINTS) -> None:
        self.max_points = max_points
        self._curves: dict[str, Curve] = {}  # 16 bytes a point, not a deque of tuples (issue 17)

    def curve(self, job_key: str) -> Curve:
        """The live curve of ``job_key`` (created empty): one object for as long as the job is followed."""
        curve = self._curves.get(job_key)
        if curve is None:
            curve = self._curves[job_key] = Curve(self.max_points)
        return curve

    def add(self, job_key: str, step: int, loss: float) -> None:
        """Append a point; a repeated step replaces the last point, an older step is ignored."""
        if not math.isfinite(loss):
            return
        curve = self.curve(job_key)
        if curve and curve[-1][0] >= step:
            if curve[-1][0] == step:
                curve[-1] = (step, loss)
            return
        curve.append((step, loss))

    def losses(self, job_key: str) -> list[float]:
        curve = self._curves.get(job_key)
        return [loss for _step, loss in curve] if curve else []

    def forget(self, job_key: str) -> None:
        self._curves.pop(job_key, None)


# ---------------------------------------------------------------- connections and events


@dataclass(eq=False)
class Connection:
    """One followed job: its URL, client and link state. Read it; the monitor changes it."""

    url: str  # as the user gave it: the subscription key
    target: JobUrl
    token: str | None = None
    local: bool = False  # announced by this machine's discovery files
    since: int | None = None
    name: str = ""  # from the hello (or the discovery file until then)
    host: str = ""
    pid: int | None = None
    state: ClientState = ClientState.CONNECTING
    detail: str = ""
    retry_in: float | None = None
    paused: bool = False
    group: Group | None = None  # from the hello: the sweep this job is a trial of (docs/sweeps.md)
    source: str | None = None  # the nats:// source that found this job (docs/cluster.md)
    replay: bool = False  # follow from the job's first message (a young local job): its milestones are announced
    run_id: str = ""  # the run of the last hello: another one is a new run (fresh card, ETA, chart)
    run_started_at: float | None = None  # when that run started (the server's clock): its events are newer
    client: ClientLike | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    generation: int = 0  # callbacks of a replaced client are ignored

    @property
    def job_key(self) -> str:
        """The job's name in the engine and the history: ``JOB@HOST:PORT``."""
        return self.target.job_key

    @property
    def title(self) -> str:
        return self.name or self.target.label


@dataclass(frozen=True, slots=True)
class ConnectionAdded:
    connection: Connection


@dataclass(frozen=True, slots=True)
class ConnectionRemoved:
    connection: Connection


@dataclass(frozen=True, slots=True)
class RunStarted:
    """``connection``'s job started a new run (new ``run_id``): its card, ETA and chart start fresh."""

    connection: Connection
    previous_run_id: str


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """The client's state changed (``connection.state``, ``detail``, ``retry_in``)."""

    connection: Connection
    previous: ClientState


@dataclass(frozen=True, slots=True)
class MessageFed:
    """An envelope from ``connection`` went through the engine."""

    connection: Connection
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Decided:
    """The engine decided ``actions`` (queued for the performer)."""

    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Performed:
    """The performer changed history: ``count`` history actions (notify, record, merge) since the last one.

    Emitted once the queue is empty (or every ``PERFORMED_EVERY_S`` during a flood), and only for
    batches that wrote history: a listener refreshes its history views here, and that must not
    run per taskbar update or per batch of a burst, ahead of the next frame (docs/performance.md).
    ``count`` 0: an entry was marked read (a notification's button).
    """

    count: int


@dataclass(frozen=True, slots=True)
class Ticked:
    """The engine's timers ran (stall flags, states and ETAs may have changed)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the user should see: ``message`` about ``connection`` (``None``: the monitor)."""

    connection: Connection | None
    message: str


@dataclass(frozen=True, slots=True)
class ShowJob:
    """A notification was clicked / "View Details": show history entry ``record_id`` of the job."""

    connection: Connection | None
    record_id: int


@dataclass(frozen=True, slots=True)
class DndChanged:
    state: DndState


@dataclass(frozen=True, slots=True)
class PauseChanged:
    until: float | None


MonitorEvent: TypeAlias = (
    ConnectionAdded
    | ConnectionRemoved
    | LinkChanged
    | MessageFed
    | Decided
    | Performed
    | Ticked
    | Problem
    | ShowJob
    | DndChanged
    | PauseChanged
    | RunStarted
)


def _ignore(_event: MonitorEvent) -> None:
    return None


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# ---------------------------------------------------------------- the monitor


class Monitor:
    """See the module docstring."""

    def __init__(
        self,
        *,
        engine: EngineLike,
        performer: Performer,
        client_factory: ClientFactory,
        on_event: Callable[[MonitorEvent], None] = _ignore,
        router: Router | None = None,
        presses: ButtonPresses | None = None,
        dnd_probe: DndProbe | None = None,
        discover: Callable[[], Sequence[Any]] | None = None,
        discovering: bool = True,
        discovery_dir: Callable[[], Path] | None = None,
        curves: LossCurves | None = None,
        clock: Callable[[], float] = time.time,
        nats_insecure: bool = False,
        nats_cursors: Path | None = None,
    ) -> None:
        """``dnd_probe`` ``None``: Do-Not-Disturb counts as off and is never polled (``watch``).
        ``discover`` lists local job files (with ``url``, ``token``, ``name``, ``pid``);
        ``discovering`` says whether to follow them (:meth:`set_discovery` changes it);
        ``discovery_dir`` names their directory, checked every ``DIR_POLL_S`` for a change
        (a new job is seen within half a second) unless :meth:`use_external_dir_watch` says a
        file-system watcher reports changes; a full rescan runs every ``DISCOVER_S`` anyway.
        """
        self.engine = engine
        self.performer = performer
        self.router = router
        self.presses = presses
        self.dnd_probe = dnd_probe
        self.discover = discover
        self.discovering = discovering
        self.discovery_dir = discovery_dir
        self._dir_watched = False
        self._discover_wake = asyncio.Event()
        self.curves = curves if curves is not None else LossCurves()
        self.clock = clock
        self.dnd = DndState.UNKNOWN if dnd_probe is not None else DndState.OFF
        self.paused_until: float | None = None
        self.connections: dict[str, Connection] = {}  # by URL
        self._by_job: dict[str, Connection] = {}  # by job key
        self._client_factory = client_factory
        # nats:// sources (docs/cluster.md): clients and identities of their jobs; ``nats_cursors``
        # keeps the last stream sequence read across restarts.
        self.nats = NatsSources(insecure=nats_insecure, cursors=nats_cursors)
        self._emit = on_event
        self._queue: asyncio.Queue[list[Action]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[bool]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background tasks and the clients added so far (needs a running loop)."""
        loop = asyncio.get_running_loop()
        self._background = [
            loop.create_task(self._perform_worker(), name="perform"),
            loop.create_task(self._ticker(), name="ticker"),
        ]
        if self.dnd_probe is not None:
            self._background.append(loop.create_task(self._dnd_poller(), name="dnd probe"))
        if self.presses is not None:
            self._background.append(loop.create_task(self._press_worker(), name="button presses"))
        if self.discover is not None:
            self._background.append(loop.create_task(self._discoverer(), name="discovery"))
        for conn in self.connections.values():
            if conn.client is None and not conn.paused:
                self._start_client(conn)

    async def shutdown(self) -> None:
        """Stop every client and task; perform the queued actions so history has everything."""
        for conn in self.connections.values():
            if conn.client is not None:
                conn.client.stop()
        tasks = [t for t in (*(c.task for c in self.connections.values()), *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a connection that ignores cancellation must not keep the process from ending.
            _done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_S)
            if pending:
                names = ", ".join(sorted(t.get_name() for t in pending))
                log.warning("%d tasks did not stop within %g s: %s", len(pending), SHUTDOWN_S, names)
        while not self._queue.empty():
            await self._perform(self._queue.get_nowait())

    async def drain(self) -> None:
        """Wait until every queued action has been performed (tests, ``watch`` before exiting)."""
        await self._queue.join()

    async def wait_clients(self) -> None:
        """Wait until every connection's client has ended (finished, refused, stopped)."""
        while True:
            tasks = [c.task for c in self.connections.values() if c.task is not None and not c.task.done()]
            if not tasks:
                return
            await asyncio.wait(tasks)

    # -- connections ---------------------------------------------------------------------

    def find(self, url: str) -> Connection | None:
        """The connection following ``url`` (or the same job under another spelling of its URL)."""
        conn = self.connections.get(url.strip())
        if conn is not None:
            return conn
        try:
            return self._by_job.get(self._target(url).job_key)
        except ValueError:
            return None

    def _target(self, url: str) -> JobUrl:
        return self.nats.target(url) if self.nats.is_nats(url) else parse_job_url(url)

    def connection_for_job(self, job_key: str) -> Connection | None:
        """The connection whose job key is ``job_key`` (the ``job_id`` of actions and history)."""
        return self._by_job.get(job_key)

    def add(
        self,
        url: str,
        token: str | None = None,
        *,
        local: bool = False,
        paused: bool = False,
        since: int | None = None,
        name: str = "",
        pid: int | None = None,
        source: str | None = None,
    ) -> Connection:
        """Follow the job at ``url`` (connects at once when running). Returns its connection.

        A ``nats://`` / ``tls://`` URL is a source: every job published there is added as a
        connection of its own, with ``source`` set to the source's URL (docs/cluster.md).

        Raises ``ValueError`` (with a message for the user) for a bad URL or for a job that is
        already followed under another URL.
        """
        url = url.strip()
        target = self._target(url)
        existing = self._by_job.get(target.job_key)
        if existing is not None and existing.url != url:
            raise ValueError(
                f"{target.label} at {target.host}:{target.port} is already followed as {existing.target.address}"
            )
        if existing is not None:
            return existing
        conn = Connection(url, target, token or None, local=local, since=since, name=name, pid=pid, paused=paused)
        conn.source = source
        self.connections[url] = conn
        self._by_job[conn.job_key] = conn
        self.curves.curve(conn.job_key)
        if paused:
            conn.state = ClientState.STOPPED
        self._emit(ConnectionAdded(conn))
        if not paused and _loop_running():
            self._start_client(conn)  # else start() does
        return conn

    def reconnect(self, url: str, token: str | None = None) -> None:
        """Connect ``url`` again now (with ``token``), e.g. after "auth refused"."""
        conn = self.connections.get(url.strip())
        if conn is None:
            return
        conn.token, conn.paused = token or None, False
        if _loop_running():
            self._start_client(conn)

    def remove(self, url: str) -> Connection | None:
        """Stop following ``url`` and free the engine's state of its job (history stays)."""
        conn = self.connections.pop(url.strip(), None)
        if conn is None:
            return None
        for job in [c for c in self.connections.values() if c.source == conn.url]:
            self.remove(job.url)  # the jobs a NATS source found go with it
        self.nats.forget(conn.url)
        self._by_job.pop(conn.job_key, None)
        self._stop_client(conn)
        self.curves.forget(conn.job_key)
        self._enqueue(self.engine.forget(conn.job_key))
        self._emit(ConnectionRemoved(conn))
        return conn

    def set_paused(self, url: str, paused: bool) -> None:
        """Disconnect from (or reconnect to) one job without forgetting it."""
        conn = self.connections.get(url.strip())
        if conn is None:
            return
        conn.paused = paused
        if paused:
            self._stop_client(conn)
            previous, conn.state, conn.detail, conn.retry_in = conn.state, ClientState.STOPPED, "", None
            self._emit(LinkChanged(conn, previous))
        elif _loop_running():
            self._start_client(conn)

    def stop(self, url: str) -> None:
        """End the client of ``url`` (it reports ``stopped``); the connection stays listed."""
        conn = self.connections.get(url.strip())
        if conn is not None and conn.client is not None:
            conn.client.stop()

    def _start_client(self, conn: Connection) -> None:
        self._stop_client(conn)
        conn.generation += 1
        generation = conn.generation
        since, conn.since = conn.since, None  # asked once; reconnects resume from what came

        def on_message(envelope: Envelope) -> None:
            if conn.generation == generation:
                self._on_message(conn, envelope)

        def on_event(event: ConnectionEvent) -> None:
            if conn.generation == generation:
                self._on_link(conn, event)

        try:
            client: ClientLike | None = self.nats.client(conn, self, on_message, on_event)
            if client is None:
                client = self._client_factory(conn.url, conn.token, on_message, on_event, since)
        except Exception as exc:  # e.g. the client rejects the URL
            log.error("cannot create a client for %s", conn.target.address, exc_info=True)
            self._on_link(conn, ConnectionEvent(ClientState.PROTOCOL_ERROR, str(exc)))
            self._emit(Problem(conn, f"{conn.title}: cannot connect: {exc}"))
            return
        previous, conn.state, conn.detail, conn.retry_in = conn.state, ClientState.CONNECTING, "", None
        conn.client = client
        conn.task = asyncio.get_running_loop().create_task(
            self._run_client(conn, client), name=f"client {conn.target.address}"
        )
        if previous is not ClientState.CONNECTING:
            self._emit(LinkChanged(conn, previous))

    def found_job(self, source_url: str, job_id: str) -> None:
        """A NATS source found ``job_id``: follow it (again, when the source reconnected anew)."""
        source = self.connections.get(source_url)
        if source is None:
            return
        url = self.nats.job_url(source_url, job_id)
        conn = self.connections.get(url)
        if conn is None:
            try:
                self.add(url, source=source_url)
            except ValueError as exc:
                self._emit(Problem(source, f"{source.title}: cannot follow job {job_id!r}: {exc}"))
        elif not conn.paused:
            self._start_client(conn)

    def record_past(self, job_key: str, event: NotificationEvent, seq: int | None) -> None:
        """A notification a job sent before we followed it (a NATS stream's history): recorded, not shown."""
        from peft_notify.engine.actions import Record
        from peft_notify.ports import DeliveryStatus

        self._enqueue([Record(job_id=job_key, event=event, key=f"past:{seq}", reason=DeliveryStatus.FILTERED, seq=seq)])

    def _stop_client(self, conn: Connection) -> None:
        conn.generation += 1  # whatever the old client still reports is ignored
        client, conn.client = conn.client, None
        if client is not None:
            client.stop()
        task, conn.task = conn.task, None
        if task is not None and not task.done():
            task.cancel()

    async def _run_client(self, conn: Connection, client: ClientLike) -> None:
        try:
            await client.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a client bug must not take the monitor down
            log.error("connection to %s crashed", conn.target.address, exc_info=True)
            if conn.client is client:
                self._on_link(conn, ConnectionEvent(ClientState.PROTOCOL_ERROR, str(exc)))
                self._emit(Problem(conn, f"{conn.title}: connection failed: {exc}"))

    # -- incoming ------------------------------------------------------------------------

    def _on_message(self, conn: Connection, envelope: Envelope) -> None:
        body = envelope.data
        if isinstance(body, Hello):
            envelope = self._on_hello(conn, envelope, body)
        try:
            # The connection's job key, whatever job the frame names (the client refused others).
            actions = self.engine.feed(envelope, now=self.clock(), dnd=self.dnd, job_id=conn.job_key)
        except Exception:
            log.error("engine failed on a message from %s", conn.target.address, exc_info=True)
            return
        if isinstance(body, Hello):
            conn.pid, conn.host, conn.name = body.pid, body.host, body.name or conn.name
            conn.group = body.group
            if body.progress is not None and body.progress.loss is not None:
                self.curves.add(conn.job_key, body.progress.current_step, body.progress.loss)
        elif isinstance(body, Progress) and body.loss is not None:
            self.curves.add(conn.job_key, body.current_step, body.loss)
        self._enqueue(actions)
        self._wake.set()
        self._emit(MessageFed(conn, envelope))

    def _on_hello(self, conn: Connection, envelope: Envelope, hello: Hello) -> Envelope:
        """A new run starts fresh; a replayed young job starts from zero; an unseen end is recorded.

        Returns the envelope to feed the engine.
        """
        first = not conn.run_id
        if not first and hello.run_id != conn.run_id:
            # Issue 11 item 6: a new run id is a new run, not more of the old one's timeline.
            self.curves.curve(conn.job_key).clear()
            self._emit(RunStarted(conn, conn.run_id))
        conn.run_id, conn.run_started_at = hello.run_id, hello.started_at
        if first and conn.replay and not hello.replay_gap:
            # Followed from seq 0: the hello's snapshot is where the replay will end. Start the
            # engine at the beginning, so the replayed progress announces its milestones.
            start = replace(hello, progress=None, state=JobState.RUNNING)
            return replace(envelope, data=start)
        if first and conn.local and hello.state.finished:
            self._enqueue(self._unseen_end(conn, hello))
        return envelope

    def _unseen_end(self, conn: Connection, hello: Hello) -> list[Action]:
        """A local job that ended before we saw it: its final state goes to history (no popup)."""
        kind, what = {
            JobState.COMPLETED: (NotificationType.COMPLETION, "completed"),
            JobState.FAILED: (NotificationType.ERROR, "failed"),
        }.get(hello.state, (NotificationType.WARNING, hello.state.value))
        step = "" if hello.progress is None else f" at step {hello.progress.current_step}"
        event = NotificationEvent(
            type=kind,
            title=f"{hello.name or conn.title}: {what} before it was seen",
            message=f"The run {what}{step} before peft-notify followed it.",
            taskbar_progress=None,
        )
        return [
            Record(job_id=conn.job_key, event=event, key=f"unseen-end:{hello.run_id}", reason=DeliveryStatus.MISSED)
        ]

    def _on_link(self, conn: Connection, event: ConnectionEvent) -> None:
        previous = conn.state
        conn.state, conn.detail, conn.retry_in = event.state, event.detail, event.retry_in
        self._emit(LinkChanged(conn, previous))
        if event.state is ClientState.RECONNECTING and previous is not ClientState.RECONNECTING:
            self._check_process(conn)

    def _check_process(self, conn: Connection) -> None:
        """The socket dropped: if the job ran here and its process is gone, say so (OOM kills send nothing)."""
        view = self.engine.job(conn.job_key)
        finished = view is not None and getattr(view.state, "finished", False)
        if finished or conn.pid is None or not (conn.local or is_local_host(conn.host, conn.url)):
            return
        if process_alive(conn.pid):
            return
        detail = f"process {conn.pid} is gone and the connection dropped"
        self._enqueue(self.engine.process_exited(conn.job_key, now=self.clock(), detail=detail))
        self._emit(Problem(conn, f"{conn.title}: training process exited unexpectedly ({detail})"))

    # -- outgoing ------------------------------------------------------------------------

    async def send_action(self, job_key: str, action: ActionRequest) -> bool:
        """Send ``action`` (retry, cancel) to the job's own connection; False when not connected."""
        conn = self._by_job.get(job_key)
        client = conn.client if conn is not None else None
        if client is None:
            self._emit(Problem(conn, f"Cannot send {action.action!r}: job {job_key} is not connected"))
            return False
        try:
            sent = await asyncio.wait_for(client.send_action(action), SEND_TIMEOUT_S)
        except Exception:
            log.warning("sending %r to %s failed", action.action, job_key, exc_info=True)
            sent = False
        if not sent:
            self._emit(Problem(conn, f"The job did not accept {action.action!r} (connection lost?)"))
        return sent

    def request_action(self, url: str, action: str, ref_seq: int | None = None) -> asyncio.Task[bool] | None:
        """A Retry/Cancel button of the window: send ``action`` to the job at ``url``."""
        conn = self.connections.get(url)
        if conn is None:
            return None
        return self._send_soon(conn, ActionRequest(action, ref_seq=ref_seq))

    def press(self, job_key: str, record_id: int, action: str) -> None:
        """A notification's button or click (what :class:`ButtonPresses` delivers)."""
        if self.router is None:
            return
        try:
            route = self.router.route_action(job_key, record_id, action)
        except Exception:
            log.error("routing the %r press failed", action, exc_info=True)
            return
        if isinstance(route, SendToJob):
            conn = self._by_job.get(route.job_id)
            if route.action.action == "dismiss":
                self._send_dismiss(route.job_id, route.action)
            elif conn is None:
                self._emit(Problem(None, f"Cannot send {route.action.action!r}: job {route.job_id} is not followed"))
            elif route.action.action == "retry" and (refusal := self.retry_refusal(conn)):
                self._emit(Problem(conn, refusal))
            else:
                self._send_soon(conn, route.action)
        elif isinstance(route, ShowDetails):
            self._emit(ShowJob(self._by_job.get(route.job_id), route.record_id))
        self._emit(Performed(0))  # the entry was marked read

    def retry_refusal(self, conn: Connection) -> str:
        """Why Retry cannot work for ``conn``'s job any more ("" when it may): a popup's Retry can
        outlive the job (``peft-notify run`` past its retry window, a job that was removed or refused)."""
        if conn.state.terminal or conn.paused:
            return f"{conn.title} has ended or is no longer followed, so it cannot be relaunched from here"
        return ""

    def _send_dismiss(self, job_key: str, action: ActionRequest) -> None:
        """Tell a job that offers ``dismiss`` its failure was dismissed; quietly: nothing waits on it here."""
        conn, view = self._by_job.get(job_key), self.engine.job(job_key)
        if conn is None or conn.client is None or "dismiss" not in getattr(view, "capabilities", ()):
            return
        client = conn.client

        async def send() -> bool:
            try:
                return await asyncio.wait_for(client.send_action(action), SEND_TIMEOUT_S)
            except Exception:
                log.info("could not tell %s its failure was dismissed", job_key, exc_info=True)
                return False

        task = asyncio.get_running_loop().create_task(send())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _send_soon(self, conn: Connection, action: ActionRequest) -> asyncio.Task[bool] | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._emit(Problem(conn, f"Cannot send {action.action!r} right now (the event loop is not running)"))
            return None
        task = loop.create_task(self.send_action(conn.job_key, action))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return task

    # -- user controls -------------------------------------------------------------------

    def pause_notifications(self, until: float | None) -> None:
        """Pause notifications until ``until`` (None resumes; the engine then summarises what was missed)."""
        self.paused_until = until
        self._enqueue(self.engine.set_user_pause(until, now=self.clock()))
        self._emit(PauseChanged(until))

    def acknowledge(self) -> None:
        """The user looked: clear the attention badge."""
        self._enqueue(self.engine.acknowledge(now=self.clock()))

    def set_discovery(self, enabled: bool) -> None:
        """Follow (or stop following new) local jobs found by ``discover``."""
        self.discovering = enabled

    def discover_now(self) -> int:
        """Follow local jobs announced in the runtime dir; returns how many were new."""
        if self.discover is None:
            return 0
        try:
            found = list(self.discover())
        except Exception:
            log.warning("job discovery failed", exc_info=True)
            return 0
        new = 0
        for job in found:
            if self.find(job.url) is not None:
                continue
            young = 0 <= self.clock() - float(getattr(job, "started_at", 0.0) or 0.0) < REPLAY_WITHIN_S
            try:
                conn = self.add(
                    job.url, job.token, local=True, name=job.name or "", pid=job.pid, since=0 if young else None
                )
            except ValueError as exc:
                log.warning("skipping discovered job %s: %s", shown_url(job.url), exc)
                continue
            conn.replay = young
            new += 1
        return new

    # -- background tasks ----------------------------------------------------------------

    def _enqueue(self, actions: list[Action]) -> None:
        if not actions:
            return
        self._queue.put_nowait(actions)
        self._emit(Decided(tuple(actions)))

    async def _perform(self, actions: list[Action]) -> None:
        try:
            await self.performer.perform(actions)
        except Exception:
            log.error("performing %d actions failed", len(actions), exc_info=True)

    async def _perform_worker(self) -> None:
        written, since = 0, time.monotonic()
        while True:
            actions = await self._queue.get()
            try:
                await self._perform(actions)
            finally:
                self._queue.task_done()
            written += sum(isinstance(a, _HISTORY_ACTIONS) for a in actions)
            if written and (self._queue.empty() or time.monotonic() - since >= PERFORMED_EVERY_S):
                self._emit(Performed(written))
                written, since = 0, time.monotonic()
            elif not written:
                since = time.monotonic()

    async def _press_worker(self) -> None:
        assert self.presses is not None
        while True:
            self.press(*await self.presses.get())

    async def _ticker(self) -> None:
        while True:
            due = self.engine.next_tick_at()
            delay = MAX_TICK_SLEEP_S if due is None else min(max(due - self.clock(), 0.0), MAX_TICK_SLEEP_S)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            due = self.engine.next_tick_at()
            if due is not None and due <= self.clock():
                self.tick()

    def watch_all_jobs(self, on: bool) -> None:
        """Tray "tell me when all running jobs have finished": arm or disarm (see ``Engine.watch_all_jobs``)."""
        try:
            self._enqueue(self.engine.watch_all_jobs(on, now=self.clock()))
        except Exception:
            log.error("engine watch_all_jobs failed", exc_info=True)

    def end_groups(self) -> None:
        """No more jobs will be followed (``watch`` ends): every group with nothing running gets its summary."""
        try:
            self._enqueue(self.engine.end_groups(now=self.clock()))
        except Exception:
            log.error("engine end_groups failed", exc_info=True)

    def tick(self) -> None:
        """Run the engine's timers now (stall detection, summaries, the taskbar's trailing edge)."""
        try:
            self._enqueue(self.engine.tick(now=self.clock(), dnd=self.dnd))
        except Exception:
            log.error("engine tick failed", exc_info=True)
            return
        self._emit(Ticked())

    async def _dnd_poller(self) -> None:
        while True:
            await self.poll_dnd()
            await asyncio.sleep(DND_POLL_S)

    async def poll_dnd(self) -> DndState:
        """Read the DND probe once; a change runs the engine's timers (DND-ended summary)."""
        if self.dnd_probe is None:
            return self.dnd
        try:
            state = await self.dnd_probe.state()
        except Exception:
            log.warning("DND probe failed", exc_info=True)
            state = DndState.UNKNOWN
        if state is not self.dnd:
            self.dnd = state
            self._emit(DndChanged(state))
            self.tick()
        return state

    def set_engine_config(self, config: EngineConfig) -> None:
        """The user changed a setting: the engine decides by ``config`` from now on (no restart), and its
        timers run at once (turning "respect DND" off during DND brings the summary now)."""
        self.engine.set_config(config)
        self.tick()

    def discovery_changed(self) -> None:
        """The discovery directory changed (a file-system watcher says so): look for new jobs now."""
        self._discover_wake.set()

    def use_external_dir_watch(self) -> None:
        """A file-system watcher (the app's QFileSystemWatcher) calls :meth:`discovery_changed`:
        stop checking the directory and keep only the full rescan as the fallback."""
        self._dir_watched = True

    @property
    def polls_dir(self) -> bool:
        """Whether the monitor checks the discovery directory itself (no file-system watcher attached)."""
        return self.discovery_dir is not None and not self._dir_watched

    def _dir_signature(self) -> tuple[int, int] | None:
        """The discovery directory's (inode, mtime): a file added, renamed or removed changes it."""
        if self.discovery_dir is None:
            return None
        try:
            info = os.stat(self.discovery_dir())
        except Exception:  # not created yet, unsafe (runtime_dir raises), gone
            return None
        return info.st_ino, info.st_mtime_ns

    async def _discoverer(self) -> None:
        """Rescan when the directory changes (checked every DIR_POLL_S, or told by a watcher), and every DISCOVER_S."""
        last_scan, signature = -math.inf, self._dir_signature()
        while True:
            polling = self.polls_dir
            timeout = DIR_POLL_S if polling else DISCOVER_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._discover_wake.wait(), timeout)
            woken = self._discover_wake.is_set()
            self._discover_wake.clear()
            if not self.discovering:
                continue
            now = time.monotonic()
            current = self._dir_signature() if polling else signature
            if woken or current != signature or now - last_scan >= DISCOVER_S:
                signature, last_scan = current, now
                self.discover_now()
