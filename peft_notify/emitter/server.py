"""JobServer: serves protocol v1 for one or more jobs from a daemon thread with its own loop.

Call :meth:`JobServer.start` once, :meth:`JobServer.add_job` per job, and
:meth:`JobServer.stop` at the end. ``start`` raises :class:`PortInUseError` when the
port is taken (unless ``fallback_to_free_port``). Training-side calls go through
:class:`~peft_notify.emitter.handle.JobHandle` and never block on clients.

Every server has a token (given, or generated: the Jupyter model): it is written only to
the 0600 discovery file and shown once, in the URL printed at start; every endpoint but
``/healthz`` needs it. The server holds an :class:`~peft_notify.emitter.pump.EventPump`
(the loop side of the handles' mailboxes) and hands the WebSocket handlers a small hub.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import errno
import logging
import os
import secrets
import socket
import ssl as ssl_module
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.asyncio.server import Server, ServerConnection, serve

from peft_notify import discovery, wire
from peft_notify.emitter import httpgate, reports, signals, stream
from peft_notify.emitter.admission import Admission
from peft_notify.emitter.buffer import EventLog
from peft_notify.emitter.core import JobCore
from peft_notify.emitter.handle import JobHandle
from peft_notify.emitter.jobs import ServedJob, describe, is_loopback, start_snapshot
from peft_notify.emitter.mailbox import ActionRegistry, Mailbox, RunState
from peft_notify.emitter.merge import ErrorMerger
from peft_notify.emitter.pump import EventPump
from peft_notify.emitter.throttle import LogThrottle
from peft_notify.redact import redact

__all__ = ["ENV_ALLOWED_HOSTS", "JobServer", "PortInUseError", "is_loopback"]

log = logging.getLogger(__name__)

MAX_CLIENT_FRAME = wire.MAX_FRAME_BYTES
ENV_ALLOWED_HOSTS = "PEFT_NOTIFY_ALLOWED_HOSTS"


class PortInUseError(OSError):
    """The requested port is taken by another process."""


class JobServer:
    """WebSocket + small HTTP API server for training jobs (see module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        allowed_origins: Sequence[str] = (),
        ssl: ssl_module.SSLContext | None = None,
        *,
        allowed_hosts: Sequence[str] = (),
        max_clients_per_job: int = 16,
        progress_hz: float = 20.0,
        ping_interval: float | None = 20.0,
        handshake_timeout: float = 10.0,
        send_timeout: float = 30.0,
        discovery_files: bool = True,
        fallback_to_free_port: bool = False,
        merge_window: float = 2.0,
        api_rate: float = httpgate.API_RATE,
    ) -> None:
        self.host = host
        # Always a token, also on loopback: another local user can reach any loopback port.
        self.token = token or secrets.token_urlsafe(24)
        # Forwarded rank errors use a secret of their own (only our ranks read the rendezvous file).
        self.rank_token = secrets.token_urlsafe(24)
        self.merge_window = merge_window
        self.allowed_origins = frozenset(allowed_origins)
        # Host names a request may carry besides loopback names and IP addresses (DNS rebinding):
        # the bind name, the ones given, and $PEFT_NOTIFY_ALLOWED_HOSTS (comma-separated, for the CLI).
        names = {host, *allowed_hosts, *os.environ.get(ENV_ALLOWED_HOSTS, "").split(",")}
        if host in ("0.0.0.0", "::", ""):  # reachable by this machine's own name too
            names.add(socket.gethostname())
        self.allowed_hosts = frozenset(n.strip() for n in names if n.strip())
        self.ssl = ssl
        self.max_clients_per_job = max_clients_per_job
        self.progress_interval = 1.0 / progress_hz if progress_hz > 0 else 0.0
        self.ping_interval = ping_interval
        self.handshake_timeout = handshake_timeout
        self.send_timeout = send_timeout
        self.discovery_files = discovery_files
        self.fallback_to_free_port = fallback_to_free_port
        self._requested_port = port
        self.port = 0
        self.bad_frames = 0
        self.refused_actions = 0
        self.pump = EventPump()
        self._extra_files: list[Path] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._actions = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peft-notify-action")
        self._hub = _Hub(self)
        self._discovery_warned = False
        self.admission = Admission()  # connections waiting for their handshake: bounded (issue 10 item 5)
        self.api_pacer = httpgate.Pacer(api_rate)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> JobServer:
        """Bind and start serving on a daemon thread; returns self.

        Raises :class:`PortInUseError` (port taken) or ``OSError`` (cannot bind).
        """
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(loop, opened), name="peft-notify-server", daemon=True)
        self._thread.start()
        try:
            opened.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        self._loop = loop
        self.pump.attach(loop)
        atexit.register(self.stop)
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, opened: concurrent.futures.Future[None]) -> None:
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(self._open())
        except BaseException as exc:
            opened.set_exception(exc)
            loop.close()
            return
        opened.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _open(self) -> Server:
        try:
            server = await self._serve(self._requested_port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            if not self.fallback_to_free_port:
                raise PortInUseError(
                    errno.EADDRINUSE,
                    f"port {self._requested_port} on {self.host} is already in use: stop the other process, "
                    "choose another --port, or use port 0 to pick a free one",
                ) from exc
            log.warning("port %d is in use; serving on a free port instead", self._requested_port)
            server = await self._serve(0)
        self.port = int(server.sockets[0].getsockname()[1])
        return server

    async def _serve(self, port: int) -> Server:
        admission = self.admission

        class _Admitted(ServerConnection):
            """Counts itself in :attr:`JobServer.admission` until its handshake ends (or it closes)."""

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                admission.arrived(self, self.transport.abort)

            def connection_lost(self, exc: Exception | None) -> None:
                admission.settled(self)
                super().connection_lost(exc)

        return await serve(
            self._client,
            self.host,
            port,
            create_connection=_Admitted,
            process_request=self._gate,
            ssl=self.ssl,
            max_size=MAX_CLIENT_FRAME,
            ping_interval=self.ping_interval,
            open_timeout=self.handshake_timeout,
            max_queue=4,
            write_limit=64 * 1024,
            server_header=None,
        )

    def stop(self, linger: float = 0.0) -> None:
        """Send what is queued, wait up to ``linger`` s for clients to catch up, then close.

        Idempotent; removes this server's discovery files.
        """
        if self.pump.stopped:
            return
        self.pump.stop()
        atexit.unregister(self.stop)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            # The loop shuts down and stops itself; this thread only waits for it to end (one
            # hand-off, not three: the training thread waits less at the end of a run).
            with contextlib.suppress(RuntimeError):  # the loop closed already (interpreter exit)
                loop.call_soon_threadsafe(self._begin_shutdown, linger)
            thread.join(timeout=linger + 10)
            if thread.is_alive():
                log.warning("job server did not shut down within %.0f s", linger + 10)
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=5)
        for job in self.pump.jobs():
            if job.job_file is not None:
                self._remove_file(job.job_file)
                job.job_file = None
        for path in self._extra_files:
            self._remove_file(path)
        self._extra_files.clear()
        self._actions.shutdown(wait=False)

    def track_file(self, path: Path) -> None:
        """Remove ``path`` when this server stops (also at exit and on SIGTERM)."""
        self._extra_files.append(path)
        signals.track_file(path)

    @staticmethod
    def _remove_file(path: Path) -> None:
        discovery.remove_job_file(path)
        signals.forget_file(path)

    def _begin_shutdown(self, linger: float) -> None:
        """On the loop: run :meth:`_shutdown`, then stop the loop (which ends the thread)."""
        loop = asyncio.get_running_loop()

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.warning("job server did not shut down cleanly", exc_info=task.exception())
            loop.stop()

        loop.create_task(self._shutdown(linger)).add_done_callback(done)

    async def _shutdown(self, linger: float) -> None:
        await self.pump.drain(linger)
        self._hub.flush_bad_frame_count()
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()

    def __enter__(self) -> JobServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ jobs

    def url_for(
        self, job_id: str, host: str | None = None, *, prefix: str = httpgate.WS_PREFIX, with_token: bool = True
    ) -> str:
        """``ws[s]://host:port/ws/notifications/job_id?token=…`` (a wildcard bind shows 127.0.0.1).

        With the token (the default) this is the URL to paste into the app: treat it as a
        secret. ``with_token=False`` gives the address alone (for listings and logs).
        """
        shown = host or (self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1")
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        scheme = "wss" if self.ssl is not None else "ws"
        url = f"{scheme}://{shown}:{self.port}{prefix}{job_id}"
        return f"{url}?token={quote(self.token, safe='')}" if with_token else url

    def add_job(
        self,
        job_id: str | None = None,
        *,
        name: str | None = None,
        total_steps: int | None = None,
        capabilities: Sequence[str] = (),
        run_id: str | None = None,
        start_step: int | None = None,
        rank: int | None = None,
        group: wire.Group | None = None,
    ) -> JobHandle:
        """Register a job and return its handle. Raises ``ValueError`` for a bad or duplicate id.

        ``start_step`` (a resumed run) is in the first ``hello``'s progress snapshot, so no
        milestone before it fires. ``rank`` marks rank 0 of a distributed job: its errors
        merge with the ones other ranks forward (see :mod:`peft_notify.emitter.ranks`).
        A discovery file that cannot be written is logged (once) and the job is served without it.
        """
        job_id = job_id or uuid.uuid4().hex[:12]
        if not wire.is_valid_job_id(job_id):
            raise ValueError(f"invalid job id {job_id!r}: use 1-128 of A-Z a-z 0-9 . _ : -")
        if self.pump.get(job_id) is not None:
            raise ValueError(f"job {job_id!r} already exists on this server")
        if total_steps is not None and total_steps <= 0:
            total_steps = None
        run = RunState(run_id=run_id or uuid.uuid4().hex, started_at=time.time(), total_steps=total_steps)
        mailbox, actions = Mailbox(), ActionRegistry(job_id)
        handle = JobHandle(
            job_id,
            name=reports.clip(redact(name or job_id), wire.MAX_NAME),
            url=self.url_for(job_id),
            capabilities=capabilities,
            run=run,
            mailbox=mailbox,
            actions=actions,
            waker=self.pump,
        )
        handle.rank = rank
        handle.group = group  # announced in every hello (docs/sweeps.md)
        core = JobCore(EventLog(job_id), ErrorMerger(self.merge_window), progress_interval=self.progress_interval)
        core.log.snapshot = start_snapshot(start_step, total_steps)
        job = ServedJob(handle=handle, run=run, mailbox=mailbox, actions=actions, core=core)
        self.pump.add(job)
        if self.discovery_files and self.port:
            self._write_discovery(job)
        return handle

    def _write_discovery(self, job: ServedJob) -> None:
        try:
            job.job_file = discovery.write_job_file(
                url=self.url_for(job.job_id, with_token=False),
                job_id=job.job_id,
                name=job.handle.name,
                token=self.token,
            )
        except (OSError, discovery.DiscoveryError) as exc:
            # Training must never fail because discovery cannot be written: serve without it.
            level = logging.DEBUG if self._discovery_warned else logging.WARNING
            log.log(
                level, "job %s is served without a discovery file (watch --local will not see it): %s", job.job_id, exc
            )
            self._discovery_warned = True
            return
        signals.track_file(job.job_file)

    def remove_job(self, job_id: str) -> None:
        """Forget a job and remove its discovery file (connected clients keep their socket)."""
        job = self.pump.remove(job_id)
        if job is not None and job.job_file is not None:
            self._remove_file(job.job_file)

    def jobs(self) -> list[JobHandle]:
        """The handles of every job served."""
        return [job.handle for job in self.pump.jobs()]

    def new_run(self, job_id: str, *, total_steps: int | None = None, start_step: int | None = None) -> str:
        """Start a new run of ``job_id`` (a relaunch): new ``run_id``, and a fresh ``hello`` to clients.

        Events already reported are sent first; clients then reset the job (milestones start
        over). Returns the new run id. Raises ``KeyError`` for an unknown job.
        """
        return self.pump.new_run(job_id, total_steps=total_steps, start_step=start_step)

    def subscriber_count(self, job_id: str) -> int:
        """How many clients are connected to ``job_id`` right now."""
        job = self.pump.get(job_id)
        return 0 if job is None else len(job.subscribers)

    def event_log(self, job_id: str) -> EventLog:
        """The event log of ``job_id`` (read it on the loop, or once stopped). Raises ``KeyError``."""
        job = self.pump.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job.log

    async def _gate(self, connection: ServerConnection, request: Any) -> Any:
        response = self._decide(connection, request)
        if response is None or response.status_code != 200 or not request.path.startswith("/api/"):
            return response
        # Pace the API (issue 10 item 6): every request costs this process CPU under the training
        # loop's GIL, and a client polling in a tight loop waits for each answer, so spacing the
        # answers bounds what any number of pollers can take from training. Waiting costs no CPU.
        wait = self.api_pacer.delay(asyncio.get_running_loop().time())
        if wait is None:
            return httpgate.too_many(connection, self.api_pacer.max_wait)
        if wait > 0:
            await asyncio.sleep(wait)
        return response

    def _decide(self, connection: ServerConnection, request: Any) -> Any:
        return httpgate.gate(
            connection,
            request,
            token=self.token,
            allowed_origins=self.allowed_origins,
            allowed_hosts=self.allowed_hosts,
            rank_token=self.rank_token,
            job_exists=lambda job_id: self.pump.get(job_id) is not None,
            job_full=self._job_full,
            jobs=self._describe_jobs,
            notifications=self._notifications,
        )

    def _job_full(self, job_id: str) -> bool:
        job = self.pump.get(job_id)
        return job is not None and len(job.subscribers) >= self.max_clients_per_job

    def _describe_jobs(self) -> list[dict[str, object]]:
        jobs = self.pump.jobs()
        for job in jobs:  # the step a job nobody listens to kept in its mailbox (loop thread)
            self.pump.catch_up(job)
        return [describe(job, self.url_for(job.job_id, with_token=False)) for job in jobs]

    def _notifications(self, page: httpgate.Page) -> httpgate.RawJson:
        job = self.pump.get(page.job_id)
        return httpgate.RawJson("[]" if job is None else job.core.notifications_page(page.since, page.limit))

    async def _client(self, ws: ServerConnection) -> None:
        self.admission.settled(ws)  # handshake done: bounded by the token and the client slots from here
        await stream.serve(self._hub, ws)


class _Hub:
    """What the WebSocket handlers see of a JobServer (:class:`~peft_notify.emitter.stream.Hub`)."""

    def __init__(self, server: JobServer) -> None:
        self._server = server
        self._bad = LogThrottle(60.0)
        self._summary_timer: asyncio.TimerHandle | None = None

    @property
    def send_timeout(self) -> float:
        return self._server.send_timeout

    @property
    def stopping(self) -> bool:
        return self._server.pump.stopped

    def served(self, job_id: str) -> ServedJob | None:
        return self._server.pump.get(job_id)

    def perform(self, job: ServedJob, action: wire.ActionRequest) -> None:
        self._server._actions.submit(job.actions.dispatch, action)

    def add_ranked(self, job: ServedJob, ranked: reports.Ranked) -> None:
        self._server.pump.add_ranked(job, ranked)

    def catch_up(self, job: ServedJob) -> None:
        self._server.pump.catch_up(job)

    def bad_frame(self, job_id: str, reason: str) -> None:
        self._server.bad_frames += 1
        self._log_throttled(job_id, f"ignoring a bad frame from a client: {reason}")

    def refused_action(self, job_id: str, reason: str) -> None:
        self._server.refused_actions += 1
        self._log_throttled(job_id, reason)

    def _log_throttled(self, job_id: str, text: str) -> None:
        """Log the first of each minute, then how many more came (issue 10, item 8)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.flush_bad_frame_count(now)
        if self._bad.note(now):
            log.warning("job %s: %s", job_id, text[:300])
        elif self._summary_timer is None:
            end = self._bad.window_end()
            self._summary_timer = loop.call_at(end if end is not None else now, self._on_summary_timer)

    def _on_summary_timer(self) -> None:
        self._summary_timer = None
        self.flush_bad_frame_count()

    def flush_bad_frame_count(self, now: float | None = None) -> None:
        """Log how many bad frames were not logged in a window that ended (all, when ``now`` is None)."""
        count = self._bad.take_summary(0.0 if now is None else now, force=now is None)
        if count:
            log.warning("%d more bad or refused client frames in the last minute (not logged one by one)", count)
