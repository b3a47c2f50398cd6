"""The app's brain without widgets: subscriptions → engine → dispatcher, and signals for the UI.

One :class:`Controller` per app. It owns a ``JobClient`` per subscription (each in its own
asyncio task on the qasync loop), feeds every envelope to the engine, queues the resulting
actions for the :class:`~peft_notify.desktop.dispatch.Dispatcher` (one worker task, so a slow notifier
never blocks a feed), drives ``engine.tick`` at ``next_tick_at``, polls the DND probe, watches
local training processes, and tells widgets what changed through Qt signals. Call
:meth:`start` once the loop runs and ``await`` :meth:`shutdown` before quitting. Nothing here
raises into Qt: bad URLs, dead servers and refused tokens become ``problem`` signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal

from peft_notify.app.jobs_model import JobRow, Link, job_id_from_url
from peft_notify.app.procwatch import is_local_host, process_alive
from peft_notify.desktop.dispatch import Dispatcher
from peft_notify.desktop.settings import Settings, Subscription
from peft_notify.engine.actions import Action, Notify, Record
from peft_notify.ports import DndProbe, DndState, HistoryStore, Notifier, TaskbarProgress
from peft_notify.wire import Action as WireAction
from peft_notify.wire import Envelope, Hello, NotificationType, Progress

__all__ = ["ClientFactory", "Controller", "EngineLike"]

log = logging.getLogger(__name__)

DND_POLL_S = 2.0
DISCOVER_S = 5.0
MAX_TICK_SLEEP_S = 1.0
UI_REFRESH_S = 0.1
SHUTDOWN_S = 3.0


class EngineLike(Protocol):
    """The part of ``peft_notify.engine.Engine`` the controller drives."""

    def feed(self, envelope: Envelope, *, now: float, dnd: DndState, job_id: str | None = None) -> list[Action]: ...

    def tick(self, *, now: float, dnd: DndState) -> list[Action]: ...

    def next_tick_at(self) -> float | None: ...

    def process_exited(self, job_id: str, *, now: float, detail: str = "") -> list[Action]: ...

    def set_user_pause(self, until: float | None, *, now: float) -> list[Action]: ...

    def acknowledge(self, *, now: float) -> list[Action]: ...

    def forget(self, job_id: str) -> list[Action]: ...

    def job(self, job_id: str) -> Any: ...


class ClientLike(Protocol):
    """The part of ``peft_notify.desktop.client.JobClient`` the controller uses."""

    async def run(self) -> object: ...

    def stop(self) -> None: ...

    async def send_action(self, action: WireAction) -> bool: ...

    @property
    def last_seq(self) -> int | None: ...


# (url, token, on_message, on_event, since) -> client
ClientFactory = Callable[[str, str | None, Callable[[Envelope], None], Callable[[Any], None], int | None], ClientLike]


class Controller(QObject):
    """See the module docstring. Signals carry subscription keys (URLs)."""

    job_updated = Signal(str)
    job_removed = Signal(str)
    history_changed = Signal()
    problem = Signal(str, str)  # (key or "", message) for the banner strip
    pause_changed = Signal(object)  # float | None
    dnd_changed = Signal(str)
    show_job = Signal(str, int)  # (key, history record id) — "View Details" from a notification
    settings_changed = Signal(object)

    def __init__(
        self,
        settings: Settings,
        *,
        engine: EngineLike,
        history: HistoryStore,
        notifiers: Sequence[Notifier],
        taskbar: TaskbarProgress,
        dnd_probe: DndProbe,
        client_factory: ClientFactory,
        clock: Callable[[], float] = time.time,
        save_settings: Callable[[Settings], object] | None = None,
        discover: Callable[[], Sequence[Any]] | None = None,
        sound_player: Callable[[str], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.engine = engine
        self.history = history
        self.clock = clock
        self.dnd_probe = dnd_probe
        self.dnd = DndState.UNKNOWN
        self.paused_until: float | None = None
        self.rows: dict[str, JobRow] = {}
        self._client_factory = client_factory
        self._save = save_settings
        self._discover = discover
        self._clients: dict[str, ClientLike] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._actions: set[asyncio.Task[bool]] = set()
        self._dirty: set[str] = set()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[list[Action]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self.dispatcher = Dispatcher(
            history,
            notifiers,
            taskbar,
            sound_player,
            muted=lambda: not self.settings.sounds,
            job_name=self._job_name,
            clock=clock,
            send_action=self.send_action,
            on_view=self._on_view,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background tasks and every saved subscription (needs a running loop)."""
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self._dispatch_worker()), loop.create_task(self._ticker())]
        self._background.append(loop.create_task(self._dnd_poller()))
        if self._discover is not None:
            self._background.append(loop.create_task(self._discoverer()))
        for sub in self.settings.subscriptions:
            self._add_row(sub.url, sub.token, paused=sub.paused)

    async def shutdown(self) -> None:
        """Stop every client and task; drain queued actions so history has everything."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.flush_updates()
        for client in self._clients.values():
            client.stop()
        for task in [*self._tasks.values(), *self._background]:
            task.cancel()
        tasks = [*self._tasks.values(), *self._background]
        if tasks:
            # Bounded: a connection that ignores cancellation must not keep the app from quitting.
            _done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_S)
            if pending:
                log.warning("%d tasks did not stop within %g s", len(pending), SHUTDOWN_S)
        while not self._queue.empty():
            await self.dispatcher.perform(self._queue.get_nowait())
        for notifier in self.dispatcher.notifiers:
            try:
                await asyncio.wait_for(notifier.close(), SHUTDOWN_S)
            except Exception:
                log.debug("closing notifier failed", exc_info=True)

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(self, url: str, token: str | None = None, *, persist: bool = True, local: bool = False) -> bool:
        """Follow the job at ``url``. Returns False (and emits ``problem``) for a bad URL."""
        url = url.strip()
        if not url.startswith(("ws://", "wss://", "http://", "https://")):
            self.problem.emit("", f"Not a job URL: {url!r} (expected ws://HOST:PORT/ws/notifications/JOB)")
            log.error("rejected subscription URL %r", url)
            return False
        if persist:
            self._update_settings(self.settings.with_subscription(Subscription(url, token or None)))
        if url in self.rows:
            if self.rows[url].link is not Link.CONNECTED:
                self._restart(url, token)
            return True
        self._add_row(url, token, local=local)
        return True

    def unsubscribe(self, key: str) -> None:
        """Stop following a job and forget its state (history stays)."""
        row = self.rows.pop(key, None)
        self._stop_client(key)
        if row is not None:
            self._enqueue(self.engine.forget(row.job_id))
        self._update_settings(self.settings.without_subscription(key))
        self.job_removed.emit(key)

    def set_job_paused(self, key: str, paused: bool) -> None:
        """Disconnect from (or reconnect to) one job without forgetting it."""
        row = self.rows.get(key)
        if row is None:
            return
        if paused:
            self._stop_client(key)
            row.link = Link.STOPPED
        else:
            self._start_client(key)
        sub = next((s for s in self.settings.subscriptions if s.url == key), None)
        if sub is not None:
            self._update_settings(self.settings.with_subscription(Subscription(key, sub.token, paused)))
        self.job_updated.emit(key)

    def _add_row(self, url: str, token: str | None, *, paused: bool = False, local: bool = False) -> None:
        row = JobRow(key=url, job_id=job_id_from_url(url), token=token, local=local)
        self.rows[url] = row
        if paused:
            row.link = Link.STOPPED
        else:
            self._start_client(url)
        self.job_updated.emit(url)

    def _start_client(self, key: str, since: int | None = None) -> None:
        row = self.rows[key]
        self._stop_client(key)
        try:
            client = self._client_factory(
                key, row.token, lambda env: self._on_message(key, env), lambda ev: self._on_event(key, ev), since
            )
        except Exception as exc:  # e.g. the client rejects the URL
            row.link, row.link_detail = Link.PROTOCOL_ERROR, str(exc)
            self.problem.emit(key, f"{row.title}: cannot connect: {exc}")
            log.error("cannot create a client for %s", key, exc_info=True)
            return
        row.link, row.link_detail = Link.CONNECTING, ""
        self._clients[key] = client
        self._tasks[key] = asyncio.get_running_loop().create_task(self._run_client(key, client))

    def _restart(self, key: str, token: str | None) -> None:
        self.rows[key].token = token
        self._start_client(key)

    def _stop_client(self, key: str) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            client.stop()
        task = self._tasks.pop(key, None)
        if task is not None and not task.done():
            task.cancel()

    async def _run_client(self, key: str, client: ClientLike) -> None:
        try:
            await client.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a client bug must not take the app down
            log.error("connection to %s crashed", key, exc_info=True)
            row = self.rows.get(key)
            if row is not None:
                row.link, row.link_detail = Link.PROTOCOL_ERROR, str(exc)
                self.problem.emit(key, f"{row.title}: connection failed: {exc}")
                self.job_updated.emit(key)

    # -- incoming ------------------------------------------------------------------------

    def _on_message(self, key: str, envelope: Envelope) -> None:
        row = self.rows.get(key)
        if row is None:
            return
        try:
            actions = self.engine.feed(envelope, now=self.clock(), dnd=self.dnd, job_id=row.job_id)
        except Exception:
            log.error("engine failed on a message from %s", key, exc_info=True)
            return
        body = envelope.data
        if envelope.job_id:
            row.job_id = envelope.job_id
        if isinstance(body, Hello):
            row.pid, row.host = body.pid, body.host
            if body.progress is not None and body.progress.loss is not None:
                row.add_loss(body.progress.current_step, body.progress.loss)
        elif isinstance(body, Progress) and body.loss is not None:
            row.add_loss(body.current_step, body.loss)
        self._enqueue(actions)
        self._wake.set()
        if isinstance(body, Progress):
            # A flood of progress refreshes the row (engine.job builds a view) and repaints
            # ~10 times a second in flush_updates, not per frame.
            self._mark_dirty(key)
        else:
            self._refresh_row(row)
            self.job_updated.emit(key)

    def _refresh_row(self, row: JobRow) -> None:
        view = self.engine.job(row.job_id)
        if view is not None:
            row.update_from_view(view)

    def _mark_dirty(self, key: str) -> None:
        self._dirty.add(key)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(UI_REFRESH_S, self.flush_updates)

    def flush_updates(self) -> None:
        """Refresh the row of every job whose progress changed since the last flush; emit ``job_updated``."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            row = self.rows.get(key)
            if row is not None:
                self._refresh_row(row)
                self.job_updated.emit(key)

    def _on_event(self, key: str, event: Any) -> None:
        row = self.rows.get(key)
        if row is None:
            return
        name = str(getattr(event.state, "name", event.state)).upper()
        link = Link[name] if name in Link.__members__ else Link.RECONNECTING
        previous, row.link = row.link, link
        row.link_detail = str(getattr(event, "detail", "") or "")
        row.retry_in = getattr(event, "retry_in", None)
        if link.is_problem and previous is not link:
            self.problem.emit(key, f"{row.title}: {link.value}" + (f" — {row.link_detail}" if row.link_detail else ""))
            log.error("job %s: %s %s", key, link.value, row.link_detail)
        if link is Link.RECONNECTING and previous is not Link.RECONNECTING:
            self._check_process(row)
        self.job_updated.emit(key)

    def _check_process(self, row: JobRow) -> None:
        """The socket dropped: if the job ran here and its process is gone, say so (OOM kills send nothing)."""
        if row.finished or row.pid is None or not (row.local or is_local_host(row.host, row.key)):
            return
        if process_alive(row.pid):
            return
        detail = f"process {row.pid} is gone and the connection dropped"
        self._enqueue(self.engine.process_exited(row.job_id, now=self.clock(), detail=detail))
        self._refresh_row(row)
        self.problem.emit(row.key, f"{row.title}: training process exited unexpectedly ({detail})")

    # -- outgoing ------------------------------------------------------------------------

    async def send_action(self, job_id: str, action: WireAction) -> bool:
        """Send ``action`` (retry, cancel) to the job's server; False when not connected."""
        key = self.key_for(job_id)
        client = self._clients.get(key) if key else None
        if client is None:
            self.problem.emit(key or "", f"Cannot send {action.action!r}: job {job_id} is not connected")
            return False
        sent = await client.send_action(action)
        if not sent:
            self.problem.emit(key or "", f"The job did not accept {action.action!r} (connection lost?)")
        return sent

    def request_action(self, key: str, action: str) -> None:
        """A Retry/Cancel button in the window was pressed."""
        row = self.rows.get(key)
        if row is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.problem.emit(key, f"Cannot send {action!r} right now (the app's event loop is not running)")
            return
        task = loop.create_task(self.send_action(row.job_id, WireAction(action)))
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    def handle_action(self, job_id: str, record_id: int, action: str) -> None:
        """The notifiers' ``ActionHandler``: a notification button or click."""
        self.dispatcher.handle_action(job_id, record_id, action)
        self.history_changed.emit()

    def _on_view(self, job_id: str, record_id: int) -> None:
        self.show_job.emit(self.key_for(job_id) or "", record_id)

    def key_for(self, job_id: str) -> str | None:
        return next((k for k, r in self.rows.items() if r.job_id == job_id), None)

    def _job_name(self, job_id: str) -> str:
        key = self.key_for(job_id)
        return self.rows[key].title if key else job_id or "peft-notify"

    # -- user controls -------------------------------------------------------------------

    def pause_notifications(self, until: float | None) -> None:
        """Tray "Pause notifications" (None resumes; the engine then summarises what was missed)."""
        self.paused_until = until
        self._enqueue(self.engine.set_user_pause(until, now=self.clock()))
        self.pause_changed.emit(until)

    def acknowledge(self) -> None:
        """The user opened the window: clear the attention badge."""
        self._enqueue(self.engine.acknowledge(now=self.clock()))

    def update_settings(self, settings: Settings) -> None:
        """Apply and save settings from the dialog (sounds/DND apply at once)."""
        self._update_settings(settings)

    def _update_settings(self, settings: Settings) -> None:
        self.settings = settings
        if self._save is not None:
            try:
                self._save(settings)
            except OSError as exc:
                self.problem.emit("", f"Could not save settings: {exc}")
                log.error("could not save settings", exc_info=True)
        self.settings_changed.emit(settings)

    # -- background tasks ----------------------------------------------------------------

    def _enqueue(self, actions: list[Action]) -> None:
        if not actions:
            return
        self._queue.put_nowait(actions)
        for action in actions:
            # Warnings (loss spike, stall, server "banner" warnings) stay visible in the banner strip.
            if isinstance(action, (Notify, Record)) and action.event.type is NotificationType.WARNING:
                key = self.key_for(action.job_id) or ""
                self.problem.emit(key, f"⚠ {action.event.title}: {action.event.message}".rstrip(": "))

    async def _dispatch_worker(self) -> None:
        while True:
            actions = await self._queue.get()
            try:
                await self.dispatcher.perform(actions)
            except Exception:
                log.error("dispatching %d actions failed", len(actions), exc_info=True)
            finally:
                self._queue.task_done()
            self.history_changed.emit()

    async def drain(self) -> None:
        """Wait until every queued action has been performed and the UI told (tests, shutdown)."""
        await self._queue.join()
        self.flush_updates()

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

    def tick(self) -> None:
        """Run the engine's timers now and refresh every job's row (stall flags, ETAs)."""
        try:
            self._enqueue(self.engine.tick(now=self.clock(), dnd=self.dnd))
        except Exception:
            log.error("engine tick failed", exc_info=True)
            return
        for key, row in self.rows.items():
            view = self.engine.job(row.job_id)
            if view is not None and (view.stalled != row.stalled or view.state != row.state):
                row.update_from_view(view)
                self.job_updated.emit(key)

    async def _dnd_poller(self) -> None:
        while True:
            await self.poll_dnd()
            await asyncio.sleep(DND_POLL_S)

    async def poll_dnd(self) -> DndState:
        """Read the DND probe once; a change runs the engine's timers (DND-ended summary)."""
        try:
            state = await self.dnd_probe.state()
        except Exception:
            log.warning("DND probe failed", exc_info=True)
            state = DndState.UNKNOWN
        if state is not self.dnd:
            self.dnd = state
            self.dnd_changed.emit(state.value)
            self.tick()
        return state

    async def _discoverer(self) -> None:
        assert self._discover is not None
        while True:
            if self.settings.auto_discover:  # the Settings dialog can switch it at any time
                self.discover_now()
            await asyncio.sleep(DISCOVER_S)

    def discover_now(self) -> int:
        """Subscribe to local jobs announced in the runtime dir; returns how many were new."""
        if self._discover is None:
            return 0
        try:
            found = list(self._discover())
        except Exception:
            log.warning("job discovery failed", exc_info=True)
            return 0
        new = 0
        for job in found:
            if job.url not in self.rows:
                new += self.subscribe(job.url, job.token, persist=False, local=True)
                if job.url in self.rows:
                    self.rows[job.url].pid = job.pid
                    self.rows[job.url].name = self.rows[job.url].name or job.name
        return new
