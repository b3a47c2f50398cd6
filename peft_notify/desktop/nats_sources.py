"""The monitor's NATS part (docs/cluster.md): which client a ``nats://`` connection gets, and where it resumes.

:class:`NatsSources` (one per :class:`~peft_notify.desktop.monitor.Monitor`) says what a NATS URL
is — a source, or a job a source found (``nats://HOST:PORT/peft.jobs.JOB#job``) — and builds its
client: a :class:`~peft_notify.desktop.nats_source.NatsSource` or that source's
:class:`~peft_notify.desktop.nats_source.NatsJobClient`. :class:`CursorStore` keeps each source's
last processed stream sequence (in memory, or in a 0600 JSON file so a restarted app resumes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from peft_notify import natsurl, wire
from peft_notify.desktop.frames import ConnectionEvent, JobUrl
from peft_notify.desktop.nats_source import NatsJobClient, NatsSource, SourceSink

__all__ = ["JOB_FRAGMENT", "CursorStore", "NatsSources", "SourceConnection"]

log = logging.getLogger(__name__)


class CursorStore:
    """The last processed stream sequence per source, in a small JSON file (0600), written at most every second."""

    def __init__(self, path: Path | None) -> None:
        """``path`` ``None``: kept in memory (a source that reconnects anew still resumes)."""
        self.path = path
        self._values: dict[str, int] = {}
        self._dirty = False
        self._saved_at = 0.0
        if path is None:
            return
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(raw, dict):
                self._values = {str(k): int(v) for k, v in raw.items() if isinstance(v, int) and v >= 0}
        except (OSError, ValueError):
            pass

    def get(self, key: str) -> int | None:
        return self._values.get(key)

    def set(self, key: str, seq: int, *, now: float) -> None:
        self._values[key] = seq
        self._dirty = True
        if now - self._saved_at >= 1.0:
            self.save(now)

    def save(self, now: float | None = None) -> None:
        if not self._dirty or self.path is None:
            return
        self._saved_at = time.monotonic() if now is None else now
        tmp: str | None = None
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # A new file of our own (mkstemp: O_EXCL, 0600, a fresh name: a planted or a concurrent
            # writer's ".tmp" is never opened), then an atomic replace.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._values, out)
            os.replace(tmp, self.path)
            tmp = None
            self._dirty = False
        except OSError as exc:
            log.warning("cannot save the NATS stream position to %s: %s", self.path, exc)
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


JOB_FRAGMENT = "job"  # nats://HOST:PORT/peft.jobs.JOB#job: a job a source found (not typed by users)


class SourceConnection(Protocol):
    """The part of a monitor connection :class:`NatsSources` reads."""

    url: str
    token: str | None
    source: str | None


class NatsSources:
    """The monitor's NATS part: what a ``nats://`` connection is and which client it gets."""

    def __init__(self, *, insecure: bool = False, cursors: Path | None = None) -> None:
        self.insecure = insecure
        self.cursors = CursorStore(cursors)
        self._sources: dict[str, NatsSource] = {}

    @staticmethod
    def is_nats(url: str) -> bool:
        return natsurl.is_nats_url(url)

    def target(self, url: str) -> JobUrl:
        """The connection identity of a NATS URL: a source (``job_id`` ``None``) or a job it found.

        Raises ``ValueError`` (one line) for a bad URL or ``nats://`` to another host without ``insecure``.
        """
        target = natsurl.parse(url.split("#", 1)[0], insecure=self.insecure)
        job = target.job_id if url.strip().endswith("#" + JOB_FRAGMENT) else None
        address = target.address + ("#" + JOB_FRAGMENT if job else "")
        return JobUrl(url=address, job_id=job, host=target.host, port=target.port, since=None)

    def job_url(self, source_url: str, job_id: str) -> str:
        """The URL of job ``job_id`` found on ``source_url`` (no credentials: the source holds them)."""
        target = natsurl.parse(source_url, insecure=self.insecure)
        return f"{target.server}/{natsurl.subject_for(job_id)}#{JOB_FRAGMENT}"

    def client(
        self,
        conn: SourceConnection,
        sink: SourceSink,
        on_message: Callable[[wire.Envelope], None],
        on_event: Callable[[ConnectionEvent], None],
    ) -> NatsSource | NatsJobClient | None:
        """The client of a NATS connection (``None``: not a NATS URL). Raises ``ValueError``."""
        if not natsurl.is_nats_url(conn.url):
            return None
        if conn.source is None:
            source = NatsSource(
                conn.url,
                conn.token,
                sink=sink,
                on_event=on_event,
                job_key=lambda job_id: self.target(self.job_url(conn.url, job_id)).job_key,
                insecure=self.insecure,
                cursors=self.cursors,
            )
            self._sources[conn.url] = source
            return source
        owner = self._sources.get(conn.source)
        job_id = self.target(conn.url).job_id
        if owner is None or job_id is None:
            raise ValueError(f"{natsurl.shown(conn.url)} is a job of a NATS source that is not followed")
        return owner.job_client(job_id, on_message, on_event)

    def forget(self, url: str) -> None:
        """The source connection ``url`` was removed."""
        self._sources.pop(url, None)
