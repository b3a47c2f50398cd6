"""peft_notify: tells you when your training job hits a milestone, finishes, or dies.

The seed API (``NotificationManager``, ``check_progress_milestone`` and friends)
is importable from here; it is a thin layer over :mod:`peft_notify.engine`.
Names are resolved lazily so ``import peft_notify`` stays cheap on a GPU server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from peft_notify.appinfo import VERSION as __version__

_SEED = frozenset(
    {
        "NotificationManager",
        "ProgressUpdate",
        "calculate_taskbar_progress",
        "check_do_not_disturb",
        "check_progress_milestone",
        "create_error_notification",
        "create_warning_notification",
    }
)
_WIRE = frozenset({"NotificationEvent", "NotificationType", "UrgencyLevel"})

__all__ = [
    "NotificationEvent",
    "NotificationManager",
    "NotificationType",
    "ProgressUpdate",
    "UrgencyLevel",
    "__version__",
    "calculate_taskbar_progress",
    "check_do_not_disturb",
    "check_progress_milestone",
    "create_error_notification",
    "create_warning_notification",
    "job",
]

if TYPE_CHECKING:
    from peft_notify.emitter import job
    from peft_notify.seed import (
        NotificationManager,
        ProgressUpdate,
        calculate_taskbar_progress,
        check_do_not_disturb,
        check_progress_milestone,
        create_error_notification,
        create_warning_notification,
    )
    from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel


def __getattr__(name: str) -> object:
    import importlib

    if name in _SEED:
        return getattr(importlib.import_module("peft_notify.seed"), name)
    if name in _WIRE:
        return getattr(importlib.import_module("peft_notify.wire"), name)
    if name == "job":
        return importlib.import_module("peft_notify.emitter").job
    raise AttributeError(f"module 'peft_notify' has no attribute {name!r}")
