"""Actions: what the engine decides. Frozen values; the dispatcher performs them.

The engine never performs I/O. The app's dispatcher (and ``peft-notify watch``)
turn each action into OS calls, in list order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from peft_notify.ports import DeliveryStatus, TaskbarState
from peft_notify.wire import NotificationEvent

__all__ = [
    "Action",
    "Attention",
    "ClearTaskbar",
    "MergeRepeat",
    "Notify",
    "PlaySound",
    "Record",
    "SetBadge",
    "SetTaskbar",
]


@dataclass(frozen=True, slots=True)
class Notify:
    """Record ``event`` in history, then show it. ``key`` identifies it for dedup."""

    job_id: str
    event: NotificationEvent
    key: str
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """Record ``event`` in history without showing it; ``reason`` says why."""

    job_id: str
    event: NotificationEvent
    key: str
    reason: DeliveryStatus
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class MergeRepeat:
    """The same (job, kind, key) came again within the dedup window: bump its repeat count."""

    job_id: str
    key: str
    repeat: int
    event: NotificationEvent


@dataclass(frozen=True, slots=True)
class SetTaskbar:
    """Show ``value`` (0.0-1.0) in ``state``; ``jobs`` is how many jobs the value aggregates."""

    value: float
    state: TaskbarState
    jobs: int = 1


@dataclass(frozen=True, slots=True)
class ClearTaskbar:
    """Remove the taskbar/dock indicator."""


@dataclass(frozen=True, slots=True)
class Attention:
    """Flash the taskbar button / bounce the dock. ``critical``: until the user looks."""

    critical: bool


@dataclass(frozen=True, slots=True)
class PlaySound:
    """Play a freedesktop sound-theme name ("complete", "dialog-error", "dialog-warning")."""

    name: str
    job_id: str


@dataclass(frozen=True, slots=True)
class SetBadge:
    """Unread-attention count on the tray/dock (0 hides it)."""

    count: int


Action: TypeAlias = Notify | Record | MergeRepeat | SetTaskbar | ClearTaskbar | Attention | PlaySound | SetBadge
