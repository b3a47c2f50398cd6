"""The app's thin layer over the Qt-free monitor: monitor events in, Qt signals and job rows out.

:class:`Controller` builds the :class:`~peft_notify.desktop.dispatch.Dispatcher` and the
:class:`~peft_notify.desktop.monitor.Monitor` from the parts it is given (engine, history,
notifiers, taskbar, DND probe, client factory, button presses, loss curves), keeps one
:class:`~peft_notify.app.jobs_model.JobRow` per followed job (keyed by URL) for the widgets,
persists subscriptions in the settings, and turns every monitor event into a signal. Progress
repaints are coalesced to ~10 per second. Call :meth:`start` once the loop runs and ``await``
:meth:`shutdown` before quitting. Nothing here raises into Qt: bad URLs, dead servers and
refused tokens become ``problem`` signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QFileSystemWatcher, QObject, Signal

from peft_notify.app.jobs_model import JobRow, Link
from peft_notify.desktop.dispatch import Dispatcher
from peft_notify.desktop.frames import ClientState
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.desktop.monitor import (
    DIR_POLL_S,
    ButtonPresses,
    ClientFactory,
    Connection,
    ConnectionAdded,
    ConnectionRemoved,
    Decided,
    DndChanged,
    EngineLike,
    LinkChanged,
    LossCurves,
    MessageFed,
    Monitor,
    MonitorEvent,
    PauseChanged,
    Performed,
    Problem,
    RunStarted,
    ShowJob,
    Ticked,
)
from peft_notify.desktop.quiet_hours import QuietHours, QuietHoursProbe, parse_quiet_hours
from peft_notify.desktop.settings import Settings, Subscription
from peft_notify.engine.actions import Notify, Record
from peft_notify.engine.config import EngineConfig
from peft_notify.engine.groups import ALL_JOBS_KEY
from peft_notify.ports import DndProbe, DndState, HistoryStore, Notifier, TaskbarProgress
from peft_notify.wire import Hello, NotificationEvent, NotificationType, Progress, Resource

__all__ = ["Controller"]

if TYPE_CHECKING:  # the channel layer (apprise glue, statistics/decimal) loads only when a channel is on
    from peft_notify.desktop.channels import DesktopChannels

log = logging.getLogger(__name__)

UI_REFRESH_S = 0.1
# Settings are written at most this often: the first change at once, the ones after it together
# (1,000 URLs on the command line were 1,000 writes of a growing file: quadratic, issue 17).
SAVE_INTERVAL_S = 0.5
FLUSH_BATCH = 100  # rows refreshed in one go of the UI flush (then the loop runs other work)
BACKGROUND_REFRESH_S = 1.0  # a job the window does not show in full is refreshed at most this often

AttachmentFor = Callable[[str, NotificationEvent], Path | None]


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
    all_jobs_watch_changed = Signal(bool)  # "tell me when all running jobs have finished" armed / fired

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
        discovery_dir: Callable[[], Path] | None = None,
        sound_player: Callable[[str], None] | None = None,
        presses: ButtonPresses | None = None,
        curves: LossCurves | None = None,
        attachment_for: AttachmentFor | None = None,
        nats_cursors: Path | None = None,
        engine_config: Callable[[Settings], EngineConfig] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        # Settings apply at once (issue 16): the engine's config is rebuilt from them on every change.
        self._engine_config = engine_config
        self.quiet_hours = _quiet_hours(settings)
        # Quiet hours act like Do Not Disturb: the probe the monitor polls says ON during them.
        self.quiet_probe = QuietHoursProbe(dnd_probe, lambda: self.quiet_hours)
        self.engine = engine
        self.history = history
        self.clock = clock
        self.rows: dict[str, JobRow] = {}
        self.dir_watcher: QFileSystemWatcher | None = None
        self._save = save_settings
        self._saved_at = -SAVE_INTERVAL_S  # time.monotonic() of the last write
        self._save_handle: asyncio.TimerHandle | None = None  # a write is due (the latest settings)
        self._dirty: dict[str, None] = {}  # keys whose progress changed since they were shown (in order)
        self._shown: frozenset[str] | None = None  # what the window shows in full (None: everything)
        self._refreshed_at: dict[str, float] = {}  # time.monotonic() of each key's last refresh
        self._flush_handle: asyncio.Handle | None = None
        self.dispatcher = Dispatcher(
            history,
            notifiers,
            taskbar,
            sound_player,
            muted=lambda: not self.settings.sounds,
            job_name=_history_name(engine),
            clock=clock,
            attachment_for=attachment_for,
        )
        self.monitor = Monitor(
            engine=engine,
            performer=self.dispatcher,
            router=self.dispatcher,
            presses=presses,
            client_factory=client_factory,
            on_event=self._on_monitor_event,
            dnd_probe=self.quiet_probe,
            discover=discover,
            discovering=settings.auto_discover,
            discovery_dir=discovery_dir,
            curves=curves,
            clock=clock,
            nats_cursors=nats_cursors,  # where NATS sources resume after a restart (docs/cluster.md)
        )
        self.channels: DesktopChannels | None = None  # notification channels (issue 13), from start()

    @property
    def dnd(self) -> DndState:
        return self.monitor.dnd

    @property
    def paused_until(self) -> float | None:
        return self.monitor.paused_until

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the monitor and every saved subscription (needs a running loop)."""
        self.monitor.start()
        self._watch_discovery_dir()
        self._start_channels()
        for sub in self.settings.subscriptions:
            try:
                self.monitor.add(sub.url, sub.token, paused=sub.paused)
            except ValueError as exc:
                # A URL saved by an older version that cannot work: say so once, never again.
                self._update_settings(self.settings.without_subscription(sub.url))
                self.problem.emit("", _sentence(f"{exc}; it was removed from the saved jobs"))

    def _watch_discovery_dir(self) -> None:
        """New local jobs are seen at once: a QFileSystemWatcher on the discovery directory wakes the
        monitor (it checks the directory itself when no watcher can be set up)."""
        directory = self.monitor.discovery_dir
        if directory is None:
            return
        try:
            path = str(directory())
        except OSError as exc:
            log.info("not watching the discovery directory: %s", exc)
            return
        watcher = QFileSystemWatcher(self)
        if not watcher.addPath(path):
            log.info("cannot watch %s; checking it every %.1f s instead", path, DIR_POLL_S)
            return
        watcher.directoryChanged.connect(lambda _path: self.monitor.discovery_changed())
        self.dir_watcher = watcher
        self.monitor.use_external_dir_watch()

    async def shutdown(self) -> None:
        """Stop the monitor (performing what is queued), write pending settings, close the notifiers."""
        self.flush_updates()
        self.flush_settings()
        await self.monitor.shutdown()
        if self.channels is not None:  # pending channel sends get a few seconds, off the loop
            await asyncio.to_thread(self.channels.close, 5.0)
        for notifier in self.dispatcher.notifiers:
            try:
                await asyncio.wait_for(notifier.close(), 3.0)
            except Exception:
                log.debug("closing notifier failed", exc_info=True)

    async def drain(self) -> None:
        """Wait until every queued action has been performed and the UI told (tests, shutdown)."""
        await self.monitor.drain()
        self.flush_updates()

    # -- user commands -------------------------------------------------------------------

    def subscribe(self, url: str, token: str | None = None, *, persist: bool = True, local: bool = False) -> bool:
        """Follow the job at ``url``. Returns False (and emits ``problem``) for a bad URL."""
        url = url.strip()
        existing = self.monitor.connections.get(url)
        try:
            if existing is None:
                self.monitor.add(url, token, local=local)
        except ValueError as exc:
            self.problem.emit("", _sentence(str(exc)))
            log.error("rejected a subscription URL: %s", exc)
            return False
        if persist:
            self._update_settings(self.settings.with_subscription(Subscription(url, token or None)))
        if existing is not None and self.rows[url].link is not Link.CONNECTED:
            self.rows[url].token = token
            self.monitor.reconnect(url, token)
        return True

    def unsubscribe(self, key: str) -> None:
        """Stop following a job and forget its state (history stays)."""
        self.monitor.remove(key)
        self._update_settings(self.settings.without_subscription(key))

    def set_job_paused(self, key: str, paused: bool) -> None:
        """Disconnect from (or reconnect to) one job without forgetting it."""
        if key not in self.rows:
            return
        self.monitor.set_paused(key, paused)
        sub = next((s for s in self.settings.subscriptions if s.url == key), None)
        if sub is not None:
            self._update_settings(self.settings.with_subscription(Subscription(key, sub.token, paused)))
        self.job_updated.emit(key)

    def request_action(self, key: str, action: str) -> None:
        """A Retry/Cancel button in the window was pressed."""
        self.monitor.request_action(key, action)

    def handle_action(self, job_id: str, record_id: int, action: str) -> None:
        """A notification button or click (an ``ActionHandler``; the app passes ButtonPresses)."""
        self.monitor.press(job_id, record_id, action)

    def key_for(self, job_id: str) -> str | None:
        """The subscription key (URL) of the job whose key in history/actions is ``job_id``."""
        conn = self.monitor.connection_for_job(job_id)
        return conn.url if conn is not None else None

    def pause_notifications(self, until: float | None) -> None:
        """Tray "Pause notifications" (None resumes; the engine then summarises what was missed)."""
        self.monitor.pause_notifications(until)

    def watch_all_jobs(self, on: bool) -> None:
        """Tray "tell me when all running jobs have finished" (one notification, then it disarms)."""
        self.monitor.watch_all_jobs(on)
        self.all_jobs_watch_changed.emit(self.engine.all_jobs_watched)

    def acknowledge(self) -> None:
        """The user opened the window: clear the attention badge."""
        self.monitor.acknowledge()

    def discover_now(self) -> int:
        """Follow local jobs announced in the runtime dir; returns how many were new."""
        return self.monitor.discover_now()

    def tick(self) -> None:
        self.monitor.tick()

    async def poll_dnd(self) -> DndState:
        return await self.monitor.poll_dnd()

    def update_settings(self, settings: Settings) -> None:
        """Apply and save settings from the dialog (sounds/DND/discovery apply at once)."""
        self._update_settings(settings)

    def _update_settings(self, settings: Settings) -> None:
        channels_changed = settings.channels != self.settings.channels
        before, self.settings = self.settings, settings
        self.monitor.set_discovery(settings.auto_discover)
        if dataclasses.replace(before, subscriptions=()) != dataclasses.replace(settings, subscriptions=()):
            self._apply_live(before, settings)  # (not for a followed URL more or less: 1,000 of them at start)
        if channels_changed:
            self._restart_channels()
        self._save_soon()
        self.settings_changed.emit(settings)

    def _save_soon(self) -> None:
        """Write the settings now, or (within SAVE_INTERVAL_S of the last write) once that interval is over."""
        if self._save is None or self._save_handle is not None:
            return  # nothing saves, or the write that is due will write the latest settings
        wait = self._saved_at + SAVE_INTERVAL_S - time.monotonic()
        if wait > 0:
            with contextlib.suppress(RuntimeError):  # no loop (tests, before start): write now
                self._save_handle = asyncio.get_running_loop().call_later(wait, self.flush_settings)
                return
        self._write_settings()

    def flush_settings(self) -> None:
        """Write the settings now if a write is due (quitting; the timer of :meth:`_save_soon`)."""
        if self._save_handle is None:
            return
        self._save_handle.cancel()
        self._save_handle = None
        self._write_settings()

    def _write_settings(self) -> None:
        if self._save is None:
            return
        self._saved_at = time.monotonic()
        try:
            self._save(self.settings)
        except OSError as exc:
            self.problem.emit("", f"Could not save settings: {exc}")
            log.error("could not save settings", exc_info=True)

    def _apply_live(self, before: Settings, after: Settings) -> None:
        """Milestones, templates, pop-up kinds, DND, sounds, quiet hours and retention: at once, no restart."""
        if self._engine_config is not None:
            config = self._engine_config(after)
            if config != self._engine_config(before):
                self.monitor.set_engine_config(config)
        if after.quiet_hours != before.quiet_hours:
            self.quiet_hours = _quiet_hours(after)
            with contextlib.suppress(RuntimeError):  # no loop (tests, before start): the next poll sees it
                asyncio.get_running_loop().create_task(self.monitor.poll_dnd())
        if after.retention_days != before.retention_days and isinstance(self.history, SqliteHistoryStore):
            self.history.retention_days = after.retention_days
            try:
                self.history.prune()
            except Exception:
                log.warning("could not apply the new history retention now", exc_info=True)

    def quiet_until(self) -> dt.datetime | None:
        """When the current quiet hours end (local time), or ``None`` outside quiet hours."""
        return self.quiet_probe.quiet_until()

    def _start_channels(self) -> None:
        """The notification channels of the settings (issue 13); a left-out channel is said in the banner."""
        if not any(c.enabled for c in self.settings.channels):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet: start() builds them
            return
        from peft_notify.desktop.channels import ChannelHistory, DesktopChannels

        history = self.history if isinstance(self.history, ChannelHistory) else None

        def post(write: Callable[[], None]) -> None:  # from channel threads: write on the loop, then refresh
            loop.call_soon_threadsafe(self._channel_write, write)

        self.channels = DesktopChannels.from_settings(
            self.settings.channels, history=history, post=post, on_problem=lambda line: self.problem.emit("", line)
        )
        for line in self.channels.problems:
            self.problem.emit("", f"Channel left out: {line}")

    def _restart_channels(self) -> None:
        old, self.channels = self.channels, None
        if old is not None:  # never block the UI on a hanging channel
            threading.Thread(target=old.close, args=(5.0,), name="peft-notify-channels-close", daemon=True).start()
        self._start_channels()

    def _channel_write(self, write: Callable[[], None]) -> None:
        write()
        self.history_changed.emit()

    # -- monitor events → rows and signals -----------------------------------------------

    def _on_monitor_event(self, event: MonitorEvent) -> None:
        if self.channels is not None:
            if isinstance(event, MessageFed):
                self.channels.observe(event.envelope, event.connection.job_key)
            elif isinstance(event, Decided):
                self.channels.decided(event.actions, self.engine.job)
        if isinstance(event, Decided) and any(getattr(a, "job_id", "") == ALL_JOBS_KEY for a in event.actions):
            self.all_jobs_watch_changed.emit(False)  # it fired, and disarmed
        if isinstance(event, MessageFed):
            self._on_message(event)
        elif isinstance(event, LinkChanged):
            self._on_link(event.connection, event.previous)
        elif isinstance(event, Decided):
            self._on_decided(event)
        elif isinstance(event, Performed):
            self.history_changed.emit()
        elif isinstance(event, ConnectionAdded):
            self._add_row(event.connection)
        elif isinstance(event, ConnectionRemoved):
            self.rows.pop(event.connection.url, None)
            self._dirty.pop(event.connection.url, None)
            self._refreshed_at.pop(event.connection.url, None)
            self.job_removed.emit(event.connection.url)
        elif isinstance(event, Ticked):
            self._on_ticked()
        elif isinstance(event, Problem):
            key = event.connection.url if event.connection is not None else ""
            self._refresh_key(key)
            self.problem.emit(key, event.message)
        elif isinstance(event, ShowJob):
            self.show_job.emit(event.connection.url if event.connection is not None else "", event.record_id)
        elif isinstance(event, DndChanged):
            self.dnd_changed.emit(event.state.value)
        elif isinstance(event, PauseChanged):
            self.pause_changed.emit(event.until)
        elif isinstance(event, RunStarted):
            row = self.rows.get(event.connection.url)
            if row is not None:  # issue 11 item 6: the card, ETA, chart and timeline start fresh
                row.new_run(event.connection.run_started_at)

    def _add_row(self, conn: Connection) -> None:
        row = JobRow(
            key=conn.url,
            job_id=conn.job_key,
            label=conn.target.label,
            name=conn.name,
            pid=conn.pid,
            token=conn.token,
            local=conn.local,
            losses=self.monitor.curves.curve(conn.job_key),
        )
        row.link = _link(conn.state, conn.paused)
        self.rows[conn.url] = row
        self.job_updated.emit(conn.url)

    def _on_message(self, event: MessageFed) -> None:
        conn, row = event.connection, self.rows.get(event.connection.url)
        if row is None:
            return
        row.pid, row.host, row.name = conn.pid, conn.host, conn.name or row.name
        if isinstance(event.envelope.data, Resource):
            # A sample a second: the card's resource line and the detail pane's charts, repainted
            # at the UI flush like progress (docs/resources.md).
            row.resources = self.engine.resources(conn.job_key)
            row.resource_history.add(self.clock(), event.envelope.data)
            self._mark_dirty(conn.url)
            return
        if isinstance(event.envelope.data, Hello):
            row.run_started_at = conn.run_started_at
            row.resources = self.engine.resources(conn.job_key)  # what the job watches, and why not
        if isinstance(event.envelope.data, Progress):
            # A flood of progress refreshes the row (engine.job builds a view) and repaints
            # ~10 times a second in flush_updates, not per frame.
            self._mark_dirty(conn.url)
        else:
            self._refresh_row(row)
            self.job_updated.emit(conn.url)

    def _on_link(self, conn: Connection, previous: ClientState) -> None:
        row = self.rows.get(conn.url)
        if row is None:
            return
        link, before = _link(conn.state, conn.paused), row.link
        row.link, row.link_detail, row.retry_in = link, conn.detail, conn.retry_in
        if link.is_problem and before is not link:
            self.problem.emit(conn.url, f"{row.title}: {row.status_text}")  # the real cause (issue 11 item 8)
            log.error("job %s: %s %s", conn.target.address, link.value, conn.detail)
        if link is Link.FINISHED or "HTTP 404" in conn.detail:
            self._forget_ended(conn.url)
        self.job_updated.emit(conn.url)

    def _forget_ended(self, url: str) -> None:
        """A job that ended (or that its server no longer has) is not reconnected on the next start.

        Its card stays until removed and its notifications stay in history.
        """
        if any(sub.url == url for sub in self.settings.subscriptions):
            self._update_settings(self.settings.without_subscription(url))
            log.info("job %s has ended: not reconnected on the next start", url)

    def _on_decided(self, event: Decided) -> None:
        for action in event.actions:
            # Warnings (loss spike, stall, server "banner" warnings) stay visible in the banner strip.
            if isinstance(action, (Notify, Record)) and action.event.type is NotificationType.WARNING:
                key = self.key_for(action.job_id) or ""
                self.problem.emit(key, f"⚠ {action.event.title}: {action.event.message}".rstrip(": "))

    def _on_ticked(self) -> None:
        # A timer pass changes at most a job's state or stall flag: compare those (cheap) and build
        # a full snapshot only for the rows that changed (a JobView of every job was ~7 ms at 1,000).
        engine = self.engine
        for key, row in self.rows.items():
            flags = engine.job_flags(row.job_id)
            if flags is not None and (flags[1] != row.stalled or flags[0] != row.state):
                view = engine.job(row.job_id)
                row.update_from_view(view)
                self.job_updated.emit(key)

    def _refresh_key(self, key: str) -> None:
        row = self.rows.get(key)
        if row is not None:
            self._refresh_row(row)

    def _refresh_row(self, row: JobRow) -> None:
        view = self.engine.job(row.job_id)
        if view is not None:
            row.update_from_view(view)

    def _mark_dirty(self, key: str) -> None:
        self._dirty[key] = None
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(UI_REFRESH_S, self._flush_some)

    def _flush_some(self) -> None:
        """The UI refresh: :data:`FLUSH_BATCH` rows now, the rest on the next turns of the loop.

        With 1,000 jobs reporting, one flush of every changed row took ~20 ms (more on a busy
        machine) in one piece; in slices, timers, input and repaints run between them (issue 17).
        """
        self._flush_handle = None
        loop = asyncio.get_running_loop()
        if self._flush(FLUSH_BATCH, due_only=True):
            self._flush_handle = loop.call_soon(self._flush_some)
        elif self._dirty:  # jobs out of view whose refresh is not due yet
            self._flush_handle = loop.call_later(UI_REFRESH_S, self._flush_some)

    def flush_updates(self) -> None:
        """Refresh the row of every job whose progress changed since the last flush; emit ``job_updated``."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._flush(len(self._dirty), due_only=False)

    def set_shown(self, keys: Iterable[str]) -> None:
        """The jobs the window shows in full now (cards in view, the detail pane): refreshed at every
        UI flush; the others (list entries out of view, the tray) at most every BACKGROUND_REFRESH_S.

        With 1,000 jobs reporting, refreshing every row ~5 times a second was most of the UI's work
        for rows nobody sees (issue 17). Never called: every job is refreshed at every flush.
        """
        self._shown = frozenset(keys)

    def _flush(self, count: int, *, due_only: bool) -> bool:
        """Refresh up to ``count`` dirty rows (``due_only``: skip hidden ones refreshed lately);
        True when rows that are due remain."""
        now, shown, done = time.monotonic(), self._shown, 0
        for key in list(self._dirty):
            if (
                due_only
                and shown is not None
                and key not in shown
                and now - self._refreshed_at.get(key, -BACKGROUND_REFRESH_S) < BACKGROUND_REFRESH_S
            ):
                continue
            if done == count:
                return True
            done += 1
            del self._dirty[key]
            self._refreshed_at[key] = now
            row = self.rows.get(key)
            if row is not None:
                self._refresh_row(row)
                self.job_updated.emit(key)
        return False


def _quiet_hours(settings: Settings) -> QuietHours:
    try:
        return parse_quiet_hours(settings.quiet_hours)
    except ValueError:  # load_settings already refused it with one line; never quiet on a bad value
        return QuietHours()


def _link(state: ClientState, paused: bool) -> Link:
    if paused:
        return Link.STOPPED
    return Link[state.name] if state.name in Link.__members__ else Link.RECONNECTING


def _history_name(engine: EngineLike) -> Callable[[str], str]:
    """The name history records for a job key: what the job's hello called it (the engine knows)."""

    def name(job_key: str) -> str:
        if job_key.startswith("group:"):
            return ""  # a sweep's summary (engine/groups.py) names its group in its title already
        view = engine.job(job_key)
        if view is not None and view.name and view.name != job_key:
            return str(view.name)
        return job_key.rsplit("@", 1)[0] if job_key else "peft-notify"  # JOB@HOST:PORT before its hello

    return name


def _sentence(text: str) -> str:
    """A message as the start of a banner line."""
    return text[:1].upper() + text[1:]
