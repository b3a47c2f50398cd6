"""Notification channels of a served job (issue 13): the training side delivers them itself.

:func:`channel_specs` reads ``notify=[URL, …]`` / ``--notify`` plus ``$PEFT_NOTIFY_CHANNELS``
and the level (``notify_level`` / ``--notify-level`` / ``$PEFT_NOTIFY_LEVEL``); :func:`attach`
starts a :class:`~peft_notify.channels.TrainingRelay` for one job and taps the job's event
log, so the relay sees exactly what clients are sent. A job with channels advertises the
``channels`` capability (:data:`CAPABILITY`) in its hello so desktop channels skip it. Call
the relay's ``close()`` when the job ends: it sends what is pending (bounded wait).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from peft_notify.channels import CAPABILITY, ChannelSpec, TrainingRelay, specs_from
from peft_notify.channels.levels import Level
from peft_notify.emitter.handle import JobHandle
from peft_notify.emitter.server import JobServer

__all__ = ["CAPABILITY", "attach", "channel_specs", "with_capability"]

log = logging.getLogger(__name__)


def channel_specs(notify: Sequence[str] | None, notify_level: str | Level | None) -> list[ChannelSpec]:
    """The job's channels. Raises ``ValueError`` (one line) for an unknown level."""
    return specs_from(notify, notify_level)


def with_capability(capabilities: Sequence[str], specs: Sequence[ChannelSpec]) -> tuple[str, ...]:
    """``capabilities`` plus ``channels`` when the job has channels."""
    caps = tuple(capabilities)
    return (*caps, CAPABILITY) if specs and CAPABILITY not in caps else caps


def attach(server: JobServer, handle: JobHandle, specs: Sequence[ChannelSpec]) -> TrainingRelay:
    """Start delivering ``handle``'s notifications to ``specs``; returns the relay to close at the end."""
    relay = TrainingRelay(specs)
    relay.add_job(
        handle.job_id, handle.name, handle.run_id, started_at=handle.started_at, total_steps=handle.total_steps
    )
    server.event_log(handle.job_id).taps.append(relay.observe)
    names = ", ".join(c.display for c in relay.hub.channels)
    log.info("job %s: notification channels (level %s): %s", handle.job_id, specs[0].level.label, names)
    return relay
