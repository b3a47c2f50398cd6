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
import os
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from peft_notify import wire
from peft_notify.emitter.classify import classify_exception, summarize_exception
from peft_notify.emitter.grouping import GroupSpec
from peft_notify.emitter.handle import ActionCallback, TrainingHandle
from peft_notify.emitter.resources import ResourceSampler, start_sampler
from peft_notify.emitter.server import JobServer
from peft_notify.emitter.startup import start_job

if TYPE_CHECKING:
    from peft_notify.channels import TrainingRelay
    from peft_notify.emitter.nats_publisher import NatsPublisher

__all__ = ["JobContext", "job"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class JobContext:
    """The object bound by ``with peft_notify.job(...) as job``; forwards to its handle."""

    def __init__(
        self,
        handle: TrainingHandle,
        server: JobServer | None,
        *,
        owns_server: bool,
        linger: float,
        relay: TrainingRelay | None = None,
        sampler: ResourceSampler | None = None,
        publisher: NatsPublisher | None = None,
    ) -> None:
        self.handle = handle
        self._publisher = publisher  # NATS JetStream (issue 15, docs/cluster.md)
        self.server = server
        self._owns_server = owns_server
        self._linger = linger
        self._relay = relay  # notification channels (issue 13)
        self.sampler = sampler  # the resource sampler (docs/resources.md); None inside run / on other ranks
        self._step = 0

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def job_id(self) -> str:
        return self.handle.job_id

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
        """Stop the server if this context started it (after the linger period); the channels send
        what is pending (at most ~15 s, so the completion or the error goes out before exit)."""
        if self.sampler is not None:
            self.sampler.stop(wait=False)  # it winds down while the server does
        if self._owns_server and self.server is not None:
            self.server.stop(linger=self._linger)
        elif self.server is not None:
            self.server.remove_job(self.job_id)
        if self.sampler is not None:
            self.sampler.stop()
        self.handle.close()
        if self._relay is not None:
            self._relay.close()
        if self._publisher is not None:  # the server's last frames are queued by now
            self._publisher.close()


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
    group: GroupSpec | None = None,
    notify: Sequence[str] | None = None,
    notify_level: str | None = None,
    nats: str | None = None,
    nats_insecure: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    param_bytes: int | None = None,
) -> JobContext:
    """Serve one training job for the length of a ``with`` block; see the module docstring.

    ``group``: a name (``"lr-sweep"``), a :class:`~peft_notify.wire.Group` or its fields — the
    sweep this job is one trial of (docs/sweeps.md); default ``PEFT_NOTIFY_GROUP``.
    ``notify``: notification channels (apprise URLs: ntfy, Slack, Discord, mail, webhooks; plus
    ``PEFT_NOTIFY_CHANNELS``) and ``notify_level`` (``progress``, ``completion`` — the default —,
    ``warning``, ``error``) — see docs/channels.md.
    ``nats``: also publish to a NATS JetStream server, ``nats://[token@]HOST:PORT`` or ``tls://…``
    (default ``PEFT_NOTIFY_NATS``; ``nats_insecure`` allows ``nats://`` to another host) — docs/cluster.md.
    ``output_dir``: where checkpoints go; its free space is watched against the next
    checkpoint's estimated size (the newest one on disk, else ``param_bytes``). Host memory,
    this process and its GPUs are watched in any case (docs/resources.md;
    ``PEFT_NOTIFY_RESOURCES=0`` turns the sampler off).
    Raises ``PortInUseError`` when ``port`` is taken (``port=0`` picks a free one), ``ValueError``
    for an unknown ``notify_level``.
    """
    started = start_job(
        name,
        total_steps,
        job_id=job_id,
        host=host,
        port=port,
        token=token,
        allowed_origins=allowed_origins,
        capabilities=capabilities,
        server=server,
        print_url=print_url,
        group=group,
        notify=notify,
        notify_level=notify_level,
        nats=nats,
        nats_insecure=nats_insecure,
    )
    return JobContext(
        started.handle,
        started.server,
        owns_server=started.owns_server,
        linger=linger if started.server is not None else 0.0,
        relay=started.relay,
        sampler=start_sampler(started.handle, output_dir=output_dir, param_bytes=param_bytes),
        publisher=started.publisher,
    )
