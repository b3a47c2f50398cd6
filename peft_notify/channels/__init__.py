"""Notification channels away from the desk: chat, mail, phone push, webhooks (via apprise).

Qt-free and usable on both sides: the training side (:class:`TrainingRelay`, started by
``job(notify=...)``, ``peft-notify run --notify``) and the desktop. The policy
(:mod:`~peft_notify.channels.policy`) and formatting are Sans-I/O; :mod:`~peft_notify.channels.hub`
runs each channel on its own thread; apprise and keyring are imported only when used.
"""

from __future__ import annotations

from peft_notify.channels.config import ENV_CHANNELS, specs_from
from peft_notify.channels.events import ChannelEvent, Delivery, Outcome, Outgoing, SendResult
from peft_notify.channels.hub import Channel, ChannelHub, ChannelSpec
from peft_notify.channels.levels import DEFAULT_LEVEL, Level, parse_level
from peft_notify.channels.policy import ChannelPolicy, ChannelState, PolicyConfig
from peft_notify.channels.relay import CAPABILITY, ChannelFeed, TrainingRelay

__all__ = [
    "CAPABILITY",
    "DEFAULT_LEVEL",
    "ENV_CHANNELS",
    "Channel",
    "ChannelEvent",
    "ChannelFeed",
    "ChannelHub",
    "ChannelPolicy",
    "ChannelSpec",
    "ChannelState",
    "Delivery",
    "Level",
    "Outcome",
    "Outgoing",
    "PolicyConfig",
    "SendResult",
    "TrainingRelay",
    "parse_level",
    "specs_from",
]
