"""Channels from the command line, the ``job()`` arguments and ``PEFT_NOTIFY_CHANNELS``.

Call :func:`specs_from` with the ``--notify`` URLs and ``--notify-level``; the environment
variable (space-separated URLs) adds more, so a cluster job script needs no code change.
Raises ``ValueError`` (one line) for an unknown level; a URL apprise cannot use is kept and
reported by its channel (its events are recorded as failed with the reason).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Final

from peft_notify.channels.hub import ChannelSpec
from peft_notify.channels.levels import DEFAULT_LEVEL, Level, parse_level

__all__ = ["ENV_CHANNELS", "ENV_LEVEL", "specs_from"]

ENV_CHANNELS: Final = "PEFT_NOTIFY_CHANNELS"
ENV_LEVEL: Final = "PEFT_NOTIFY_LEVEL"


def specs_from(
    urls: Iterable[str] | None = None,
    level: str | Level | None = None,
    env: Mapping[str, str] | None = None,
) -> list[ChannelSpec]:
    """One spec per distinct URL (arguments first, then ``$PEFT_NOTIFY_CHANNELS``)."""
    environ = os.environ if env is None else env
    if level is None:
        level = environ.get(ENV_LEVEL) or DEFAULT_LEVEL
    lvl = parse_level(level)
    found = [u.strip() for u in (urls or ()) if u and u.strip()]
    found += environ.get(ENV_CHANNELS, "").split()
    return [ChannelSpec(url=u, level=lvl) for u in dict.fromkeys(found)]
