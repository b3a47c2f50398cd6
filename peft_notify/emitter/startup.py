"""One way to obtain a handle: what ``peft_notify.job()`` and the framework callbacks both call.

:func:`start_job` returns a :class:`Started` whose ``handle`` is a
:class:`~peft_notify.emitter.handle.TrainingHandle`: inside ``peft-notify run`` the pipe
to the wrapper (:mod:`peft_notify.emitter.attach`); on a rank other than 0 of a
distributed job the forwarder of errors to rank 0 (:mod:`peft_notify.emitter.ranks`);
otherwise a job on the server given, or on a new one (which the caller then owns and
stops). The URL printed at start carries the job's token: the one place it is shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peft_notify.emitter import attach, ranks
from peft_notify.emitter.grouping import GroupSpec, resolve_group
from peft_notify.emitter.handle import TrainingHandle
from peft_notify.emitter.server import JobServer

if TYPE_CHECKING:
    from peft_notify.channels import ChannelSpec, TrainingRelay
    from peft_notify.emitter.nats_publisher import NatsPublisher
    from peft_notify.natsurl import NatsTarget

__all__ = ["Started", "start_job"]


@dataclass(frozen=True)
class Started:
    """A handle, the server serving it (``None`` for the pipe and the rank forwarder), and who stops it.

    ``relay``: the job's notification channels (issue 13), or ``None``; close it when the job ends.
    ``publisher``: the job's NATS publisher (issue 15, docs/cluster.md), or ``None``; close it last.
    """

    handle: TrainingHandle
    server: JobServer | None
    owns_server: bool
    relay: TrainingRelay | None = None
    publisher: NatsPublisher | None = None


def start_job(
    name: str,
    total_steps: int | None = None,
    *,
    job_id: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    allowed_origins: Sequence[str] = (),
    capabilities: Sequence[str] = (),
    server: JobServer | None = None,
    start_step: int | None = None,
    rank: int | None = None,
    print_url: bool = True,
    group: GroupSpec | None = None,
    notify: Sequence[str] | None = None,
    notify_level: str | None = None,
    nats: str | None = None,
    nats_insecure: bool = False,
) -> Started:
    """Start reporting job ``name`` (see the module docstring).

    ``rank``: the framework's global rank when it knows it (else detected from the
    environment). ``group``: the sweep this job is a trial of (else ``PEFT_NOTIFY_GROUP``; see
    :mod:`peft_notify.emitter.grouping`). ``notify`` / ``notify_level``: notification channels
    (apprise URLs, plus ``PEFT_NOTIFY_CHANNELS``; docs/channels.md) this job delivers to itself.
    ``nats``: also publish to this NATS JetStream server (``nats://[token@]HOST:PORT`` or ``tls://``;
    else ``PEFT_NOTIFY_NATS``; docs/cluster.md); ``nats_insecure`` allows ``nats://`` to another host.
    Raises ``PortInUseError`` when ``port`` is taken, ``ValueError`` for a bad ``job_id``,
    ``group`` or ``notify_level``.
    """
    resolved = resolve_group(group)
    specs = _channel_specs(notify, notify_level)
    nats_target = _nats_target(nats, nats_insecure)  # a bad URL fails here, before anything starts
    if nats_target is not None and job_id:
        from peft_notify.natsurl import subject_for

        subject_for(job_id)  # ValueError now for a job id that cannot be a NATS subject (a..b)
    piped = attach.from_environment(name=name, total_steps=total_steps)
    if piped is not None:
        if notify:  # the wrapping `peft-notify run` serves the job and delivers with its own --notify
            print("peft-notify: inside `peft-notify run`, pass --notify to run instead", file=sys.stderr, flush=True)
        if nats:  # likewise the wrapper publishes (it reads PEFT_NOTIFY_NATS itself)
            print("peft-notify: inside `peft-notify run`, pass --nats to run instead", file=sys.stderr, flush=True)
        return Started(piped, None, owns_server=False)
    info = ranks.detect_rank()
    if rank is not None and rank != info.rank:
        info = ranks.RankInfo(rank, max(info.world_size, rank + 1), info.local_rank)
    key = job_id or name
    if info.rank != 0:
        return Started(ranks.RankForwarder(info, key, name=name, total_steps=total_steps), None, owns_server=False)
    owns = server is None
    if server is None:
        server = JobServer(host=host, port=port, token=token, allowed_origins=allowed_origins).start()
    if specs:
        from peft_notify.emitter import channels

        capabilities = channels.with_capability(capabilities, specs)
    handle = server.add_job(
        job_id, name=name, total_steps=total_steps, capabilities=capabilities, start_step=start_step, group=resolved
    )
    relay = channels.attach(server, handle, specs) if specs else None
    if info.distributed:
        ranks.publish(server, handle, key)
    if print_url:
        print(f"peft-notify: job {handle.name!r} at {handle.url}", file=sys.stderr, flush=True)
    publisher = publish_to_nats(server, handle, nats_target) if nats_target is not None else None
    return Started(handle, server, owns_server=owns, relay=relay, publisher=publisher)


def _nats_target(url: str | None, insecure: bool) -> NatsTarget | None:
    """The NATS server named by ``url`` or ``PEFT_NOTIFY_NATS`` (``None``: none; the NATS layer is
    imported only then). Raises ``ValueError`` (bad URL, ``nats://`` to another host without
    ``insecure``) or ``ImportError`` (nats-py missing)."""
    if not url and not os.environ.get("PEFT_NOTIFY_NATS", "").strip():
        return None
    from peft_notify.emitter import nats_publisher

    target = nats_publisher.target_from(url, insecure=insecure)
    if target is not None:
        nats_publisher.require_client()
    return target


def publish_to_nats(server: JobServer, handle: TrainingHandle, target: NatsTarget) -> NatsPublisher | None:
    """Publish ``handle``'s job (served by ``server``) to ``target``; the started publisher (close it last)."""
    from peft_notify.emitter import nats_publisher
    from peft_notify.emitter.handle import JobHandle

    if not isinstance(handle, JobHandle):
        return None
    publisher = nats_publisher.start(target)
    publisher.attach(server, handle)
    print(f"peft-notify: job {handle.name!r} publishes to {target.address}", file=sys.stderr, flush=True)
    return publisher


def _channel_specs(notify: Sequence[str] | None, level: str | None) -> list[ChannelSpec]:
    """The job's channels; imports the channel layer only when some are asked for."""
    if not notify and not os.environ.get("PEFT_NOTIFY_CHANNELS", "").strip():
        return []
    from peft_notify.emitter.channels import channel_specs

    return channel_specs(notify, level)
