"""``peft_notify.job(...)``: a context manager that serves one job for the length of a block.

``with peft_notify.job("llama-lora", total_steps=1000) as job:`` starts a
:class:`JobServer` (or reuses one you pass), yields a :class:`JobContext`, reports
``completed`` on a clean exit, and on an exception reports a classified error plus
``failed`` (``KeyboardInterrupt`` → ``cancelled``) and re-raises. The server lingers up
to ``linger`` seconds so a connected app receives the last events before the process exits.

Inside ``peft-notify run`` (``PEFT_NOTIFY_FD`` set) no server is started: reports go to
the wrapper over an inherited pipe, so the job is reported once, not twice.

In a distributed job only global rank 0 serves; the other ranks get a
:class:`~peft_notify.emitter.ranks.RankForwarder` that sends only errors, to rank 0
(see :mod:`peft_notify.emitter.ranks`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from peft_notify import wire
from peft_notify.emitter.classify import classify_exception, summarize_exception
from peft_notify.emitter.handle import ActionCallback, JobHandle
from peft_notify.emitter.server import JobServer

__all__ = ["JobContext", "job"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class JobContext:
    """The object bound by ``with peft_notify.job(...) as job``; forwards to a JobHandle."""

    def __init__(self, handle: JobHandle | Any, server: JobServer | None, *, owns_server: bool, linger: float) -> None:
        self.handle = handle
        self.server = server
        self._owns_server = owns_server
        self._linger = linger
        self._step = 0

    @property
    def url(self) -> str:
        return str(self.handle.url)

    @property
    def job_id(self) -> str:
        return str(self.handle.job_id)

    def progress(self, step: int, total: int | None = None, **fields: Any) -> None:
        """Report progress (see :meth:`JobHandle.progress`)."""
        self._step = step
        self.handle.progress(step, total, **fields)

    def notify(self, title: str, message: str = "", **fields: Any) -> None:
        self.handle.notify(title, message, **fields)

    def error(self, message: str, error_type: str = "system_crash", **fields: Any) -> None:
        self.handle.error(message, error_type, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.handle.warning(message, **fields)

    def status(self, state: wire.JobState | str, reason: str | None = None) -> None:
        self.handle.status(state, reason)

    def on_action(self, callback: ActionCallback) -> ActionCallback:
        self.handle.on_action(callback)
        return callback

    def track(self, iterable: Iterable[T], total: int | None = None, start: int = 0) -> Iterator[T]:
        """Yield from ``iterable``, reporting one step per item (``total`` from ``len()`` if known)."""
        if total is None:
            try:
                total = start + len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = self.handle.total_steps
        step = start
        for item in iterable:
            yield item
            step += 1
            self.progress(step, total)

    def __enter__(self) -> JobContext:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is None:
                if not self.handle.finished:
                    self.handle.status(wire.JobState.COMPLETED)
            elif isinstance(exc, KeyboardInterrupt):
                self.handle.status(wire.JobState.CANCELLED, "interrupted (Ctrl+C)")
            elif isinstance(exc, GeneratorExit):
                pass
            else:
                error_type = classify_exception(exc)
                summary = summarize_exception(exc)
                self.handle.error(f"at step {self._step}: {summary}", error_type)
                self.handle.status(wire.JobState.FAILED, summary)
        except Exception:  # reporting must never mask the user's exception
            log.exception("could not report the end of job %s", self.job_id)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the server if this context started it (after the linger period)."""
        if self._owns_server and self.server is not None:
            self.server.stop(linger=self._linger)
        elif self.server is not None:
            self.server.remove_job(self.job_id)
        closer = getattr(self.handle, "close", None)
        if callable(closer):
            closer()


def job(
    name: str,
    total_steps: int | None = None,
    *,
    job_id: str | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str | None = None,
    allowed_origins: Sequence[str] = (),
    capabilities: Sequence[str] = (),
    server: JobServer | None = None,
    linger: float = 3.0,
    print_url: bool = True,
) -> JobContext:
    """Serve one training job for the length of a ``with`` block; see the module docstring.

    Raises ``PortInUseError`` when ``port`` is taken (``port=0`` picks a free one).
    """
    from peft_notify.emitter import attach, ranks

    piped = attach.from_environment(name=name, total_steps=total_steps)
    if piped is not None:
        return JobContext(piped, None, owns_server=False, linger=0.0)
    info = ranks.detect_rank()
    key = job_id or name
    if info.rank != 0:
        forwarder = ranks.RankForwarder(info, key, name=name, total_steps=total_steps)
        return JobContext(forwarder, None, owns_server=False, linger=0.0)
    owns = server is None
    if server is None:
        server = JobServer(host=host, port=port, token=token, allowed_origins=allowed_origins).start()
    handle = server.add_job(job_id, name=name, total_steps=total_steps, capabilities=capabilities)
    if info.distributed:
        ranks.publish(server, handle, key)
    if print_url:
        print(f"peft-notify: job {name!r} at {handle.url}", file=sys.stderr, flush=True)
    return JobContext(handle, server, owns_server=owns, linger=linger)
