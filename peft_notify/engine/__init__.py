"""The Sans-I/O notification engine: envelopes and time in, actions out.

``Engine(EngineConfig()).feed(envelope, now=..., dnd=...)`` returns the
actions (:mod:`peft_notify.engine.actions`) the I/O layers perform. No clock
reads, no I/O, no asyncio anywhere in this package.
"""

from __future__ import annotations

from peft_notify.engine.actions import (
    Action,
    Attention,
    ClearTaskbar,
    MergeRepeat,
    Notify,
    PlaySound,
    Record,
    SetBadge,
    SetTaskbar,
)
from peft_notify.engine.config import EngineConfig
from peft_notify.engine.core import Engine
from peft_notify.engine.job import JobView

__all__ = [
    "Action",
    "Attention",
    "ClearTaskbar",
    "Engine",
    "EngineConfig",
    "JobView",
    "MergeRepeat",
    "Notify",
    "PlaySound",
    "Record",
    "SetBadge",
    "SetTaskbar",
]
