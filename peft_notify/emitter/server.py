"""JobServer: serves protocol v1 for one or more jobs from a daemon thread with its own loop.

Call :meth:`JobServer.start` once, :meth:`JobServer.add_job` per job, and
:meth:`JobServer.stop` at the end. ``start`` raises :class:`PortInUseError` when the
port is taken (unless ``fallback_to_free_port``). Training-side calls go through
:class:`~peft_notify.emitter.handle.JobHandle` and never block on clients.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import errno
import logging
import secrets
import ssl as ssl_module
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from peft_notify import discovery, wire
from peft_notify.emitter import httpgate, signals, stream
from peft_notify.emitter.buffer import EventLog
from peft_notify.emitter.handle import JobHandle
from peft_notify.emitter.jobs import ServedJob, describe, is_loopback, start_snapshot
from peft_notify.emitter.merge import ErrorMerger
from peft_notify.emitter.pump import EventPump

__all__ = ["JobServer", "PortInUseError", "is_loopback"]

log = logging.getLogger(__name__)

MAX_CLIENT_FRAME = wire.MAX_FRAME_BYTES


class PortInUseError(OSError):
    """The requested port is taken by another process."""


class JobServer(EventPump):
    """WebSocket + small HTTP API server for training jobs (see module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        allowed_origins: Sequence[str] = (),
        ssl: ssl_module.SSLContext | None = None,
        *,
        max_clients_per_job: int = 16,
        progress_hz: float = 20.0,
        ping_interval: float | None = 20.0,
        handshake_timeout: float = 10.0,
        discovery_files: bool = True,
        fallback_to_free_port: bool = False,
        merge_window: float = 2.0,
    ) -> None:
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(24)  # never serve a job to the network without a token
            log.warning("binding %s: generated an access token (see the job file or JobServer.token)", host)
        self.host = host
        self.token = token
        # Forwarded rank errors are always authenticated: the job token, else a secret of our own.
        self.rank_token = token or secrets.token_urlsafe(24)
        self.merge_window = merge_window
        self.allowed_origins = frozenset(allowed_origins)
        self.ssl = ssl
        self.max_clients_per_job = max_clients_per_job
        self.progress_interval = 1.0 / progress_hz if progress_hz > 0 else 0.0
        self.ping_interval = ping_interval
        self.handshake_timeout = handshake_timeout
        self.discovery_files = discovery_files
        self.fallback_to_free_port = fallback_to_free_port
        self._requested_port = port
        self.port = 0
        self.bad_frames = 0
        self._jobs: dict[str, ServedJob] = {}
        self._extra_files: list[Path] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._actions = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peft-notify-action")
        self._stopped = False

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
        return await serve(
            self._client,
            self.host,
            port,
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
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(linger), loop)
            try:
                future.result(timeout=linger + 10)
            except Exception:
                log.warning("job server did not shut down cleanly", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        for job in list(self._jobs.values()):
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

    async def _shutdown(self, linger: float) -> None:
        await self._drain(linger)
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()

    def __enter__(self) -> JobServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ jobs

    def url_for(self, job_id: str, host: str | None = None, *, prefix: str = httpgate.WS_PREFIX) -> str:
        """``ws[s]://host:port/ws/notifications/job_id`` (a wildcard bind shows 127.0.0.1)."""
        shown = host or (self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1")
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        scheme = "wss" if self.ssl is not None else "ws"
        return f"{scheme}://{shown}:{self.port}{prefix}{job_id}"

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
    ) -> JobHandle:
        """Register a job and return its handle. Raises ``ValueError`` for a bad or duplicate id.

        ``start_step`` (a resumed run) is in the first ``hello``'s progress snapshot, so no
        milestone before it fires. ``rank`` marks rank 0 of a distributed job: its errors
        merge with the ones other ranks forward (see :mod:`peft_notify.emitter.ranks`).
        """
        job_id = job_id or uuid.uuid4().hex[:12]
        if not wire.is_valid_job_id(job_id):
            raise ValueError(f"invalid job id {job_id!r}: use 1-128 of A-Z a-z 0-9 . _ : -")
        if job_id in self._jobs:
            raise ValueError(f"job {job_id!r} already exists on this server")
        if total_steps is not None and total_steps <= 0:
            total_steps = None
        handle = JobHandle(
            self,
            job_id,
            name=(name or job_id)[: wire.MAX_NAME],
            run_id=run_id or uuid.uuid4().hex,
            total_steps=total_steps,
            capabilities=capabilities,
            started_at=time.time(),
        )
        handle.rank = rank
        job = ServedJob(handle=handle, log=EventLog(job_id), merger=ErrorMerger(self.merge_window))
        job.log.snapshot = start_snapshot(start_step, total_steps)
        self._jobs[job_id] = job
        if self.discovery_files and self.port:
            try:
                job.job_file = discovery.write_job_file(
                    url=self.url_for(job_id), job_id=job_id, name=handle.name, token=self.token
                )
                signals.track_file(job.job_file)
            except OSError:
                log.warning("could not write the discovery file for job %s", job_id, exc_info=True)
        return handle

    def remove_job(self, job_id: str) -> None:
        """Forget a job and remove its discovery file (connected clients keep their socket)."""
        job = self._jobs.pop(job_id, None)
        if job is not None and job.job_file is not None:
            self._remove_file(job.job_file)

    def jobs(self) -> list[JobHandle]:
        """The handles of every job served."""
        return [job.handle for job in self._jobs.values()]

    def subscriber_count(self, job_id: str) -> int:
        """How many clients are connected to ``job_id`` right now."""
        job = self._jobs.get(job_id)
        return 0 if job is None else len(job.subscribers)

    def _gate(self, connection: ServerConnection, request: Any) -> Any:
        return httpgate.gate(
            connection,
            request,
            token=self.token,
            allowed_origins=self.allowed_origins,
            rank_token=self.rank_token,
            job_exists=lambda job_id: job_id in self._jobs,
            job_full=lambda job_id: len(self._jobs[job_id].subscribers) >= self.max_clients_per_job,
            api=self._api,
        )

    def _api(self, route: httpgate.Route) -> Any:
        if route.job_id is None:
            return [describe(job, self.url_for(job.handle.job_id)) for job in self._jobs.values()]
        job = self._jobs[route.job_id]
        return [
            wire.to_dict(wire.Envelope(type="notification", data=event, v=None))["data"]
            for event in job.log.notifications
        ]

    async def _client(self, ws: ServerConnection) -> None:
        await stream.serve(self, ws)
