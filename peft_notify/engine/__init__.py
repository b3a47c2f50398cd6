"""The Sans-I/O notification engine: envelopes and time in, actions out.

``Engine(EngineConfig()).feed(envelope, now=..., dnd=...)`` returns the
actions (:mod:`peft_notify.engine.actions`) the I/O layers perform. No clock
reads, no I/O, no asyncio anywhere in this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use (PEP 562): importing one submodule (``engine.resources``, which the
# app's widgets need before the first paint) must not load the whole engine (bench/startup.py).
_WHERE = {
    **dict.fromkeys(
        ("Action", "Attention", "ClearTaskbar", "MergeRepeat", "Notify", "PlaySound", "Record", "SetBadge"), "actions"
    ),
    "SetTaskbar": "actions",
    "EngineConfig": "config",
    "Engine": "core",
    "JobView": "job",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


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
