"""``--nats URL`` / ``--insecure`` for ``run`` and ``simulate`` (issue 15 part 2; docs/cluster.md).

:func:`add_arguments` adds both flags; :func:`target` checks them (plus ``$PEFT_NOTIFY_NATS``)
before anything is served, raising :class:`UsageError` (one line, exit 2); :func:`publish`
starts publishing a served job and :func:`close` sends what waits at the end. Imports only the
stdlib at module level, like the sub-commands: the NATS layer loads only when asked for.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from peft_notify.cli.args import UsageError

if TYPE_CHECKING:
    from peft_notify.emitter import JobServer
    from peft_notify.emitter.handle import JobHandle
    from peft_notify.emitter.nats_publisher import NatsPublisher
    from peft_notify.natsurl import NatsTarget

__all__ = ["add_arguments", "close", "publish", "target"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--nats`` and ``--insecure``."""
    parser.add_argument(
        "--nats",
        metavar="URL",
        help="also publish to this NATS JetStream server: nats://[TOKEN@]HOST:PORT or tls://HOST:PORT "
        "(?creds=FILE for a credentials file; default $PEFT_NOTIFY_NATS); see docs/cluster.md",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow nats:// (clear text) to a host that is not this machine",
    )


def target(args: argparse.Namespace | Any) -> NatsTarget | None:
    """The NATS server to publish to, or ``None``. Raises :class:`UsageError` for a bad URL."""
    import os

    url = getattr(args, "nats", None)
    if not url and not os.environ.get("PEFT_NOTIFY_NATS", "").strip():
        return None
    from peft_notify.emitter import nats_publisher

    try:
        found = nats_publisher.target_from(url, insecure=bool(getattr(args, "insecure", False)))
        if found is not None:
            nats_publisher.require_client()
            if getattr(args, "job_id", None):  # it names the job's subject: a.b is fine, a..b is not
                from peft_notify import natsurl

                natsurl.subject_for(args.job_id)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"--nats: {exc}") from None
    return found


def publish(server: JobServer, handle: JobHandle, found: NatsTarget | None) -> NatsPublisher | None:
    """Start publishing ``handle``'s job to ``found`` (``None``: nothing to do)."""
    if found is None:
        return None
    import sys

    from peft_notify.emitter import nats_publisher

    publisher = nats_publisher.start(found)
    publisher.attach(server, handle)
    print(f"peft-notify: publishing {handle.name!r} to {found.address}", file=sys.stderr, flush=True)
    return publisher


def close(publisher: NatsPublisher | None) -> None:
    """Publish what waits (bounded), then disconnect."""
    if publisher is not None:
        publisher.close()


def checked_url(url: str, *, insecure: bool = False) -> str:
    """A job URL (:func:`~peft_notify.cli.args.job_url`) or a NATS server URL to follow (``watch``,
    ``app``); :class:`UsageError` (one line, no secret repeated) when malformed or refused."""
    from peft_notify import natsurl
    from peft_notify.cli.args import job_url

    if not natsurl.is_nats_url(url):
        return job_url(url)
    try:
        natsurl.parse(url, insecure=insecure)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return url
