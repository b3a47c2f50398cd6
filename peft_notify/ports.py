"""Ports: the small interfaces between the app's core and the operating system.

Adapters live in :mod:`peft_notify.platform`; fakes for tests live in
:mod:`peft_notify.testing`. Each port has a handful of methods at most, and a
``name`` the user can see (``peft-notify doctor``, the About box).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

from peft_notify.wire import NotificationEvent

__all__ = [
    "ActionHandler",
    "Delivery",
    "DeliveryStatus",
    "DndProbe",
    "DndState",
    "HistoryEntry",
    "HistoryQuery",
    "HistoryStore",
    "Notifier",
    "NotifyRequest",
    "TaskbarProgress",
    "TaskbarState",
]


class DndState(Enum):
    """Do-Not-Disturb as a probe sees it. ``UNKNOWN`` (probe failed) counts as off."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"

    @property
    def active(self) -> bool:
        return self is DndState.ON


class TaskbarState(Enum):
    """Taskbar/dock indicator state (maps to ITaskbarList3 TBPF_* and friends)."""

    NONE = "none"  # no indicator
    NORMAL = "normal"
    INDETERMINATE = "indeterminate"
    PAUSED = "paused"
    ERROR = "error"


class DeliveryStatus(Enum):
    """What became of a notification, as recorded in history."""

    PENDING = "pending"  # recorded, not yet handed to the OS
    SHOWN = "shown"  # the OS accepted it
    FALLBACK = "fallback"  # primary notifier failed; a fallback showed it
    FAILED = "failed"  # no notifier could show it (still in history)
    WITHHELD_DND = "withheld_dnd"
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"  # merged into an earlier entry (repeat count)
    FILTERED = "filtered"  # the user's settings say not to pop up this level
    PAUSED = "paused"  # the user paused notifications from the tray
    MERGED = "merged"  # an error past the job's per-minute popups: counted in a summary popup
    MISSED = "missed"  # a local job had ended before the app saw it: its final state, recorded only


@dataclass(frozen=True, slots=True)
class NotifyRequest:
    """One notification to show. ``record_id`` is its history row, used to route actions back."""

    record_id: int
    job_id: str
    event: NotificationEvent
    attachment: Path | None = None  # e.g. a PNG of the loss curve
    sound: str | None = None  # freedesktop sound-theme name, None = silent


@dataclass(frozen=True, slots=True)
class Delivery:
    """Result of :meth:`Notifier.notify`. Never an exception."""

    ok: bool
    backend: str
    detail: str = ""
    platform_id: str | None = None

    @classmethod
    def failed(cls, backend: str, detail: str) -> Delivery:
        return cls(ok=False, backend=backend, detail=detail)


# (job_id, record_id, action) — action is "default" for a click, else the button label's
# key: "view-details", "retry", ..., or "dismissed".
ActionHandler = Callable[[str, int, str], None]


@runtime_checkable
class Notifier(Protocol):
    """Shows native notifications. ``notify`` never raises."""

    name: str

    def capabilities(self) -> frozenset[str]: ...

    async def notify(self, request: NotifyRequest) -> Delivery: ...

    async def close(self) -> None: ...


@runtime_checkable
class TaskbarProgress(Protocol):
    """Taskbar button / dock tile / launcher progress. Methods never block or raise."""

    name: str

    def set(self, value: float, state: TaskbarState) -> None: ...

    def clear(self) -> None: ...

    def attention(self, critical: bool) -> None: ...

    def badge(self, count: int) -> None: ...


@runtime_checkable
class DndProbe(Protocol):
    """Reads the OS Do-Not-Disturb state. Returns ``UNKNOWN`` on any failure, never raises."""

    name: str

    async def state(self) -> DndState: ...


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One notification decided by the engine, as stored."""

    id: int
    ts: float
    job_id: str
    job_name: str
    kind: str  # NotificationType value
    urgency: str
    title: str
    message: str
    status: DeliveryStatus
    key: str = ""
    repeat: int = 1
    read: bool = False
    milestone: int | None = None
    error_type: str | None = None
    backend: str = ""
    detail: str = ""
    seq: int | None = None
    channels: tuple[tuple[str, str], ...] = ()  # (channel's privacy URL, "sent" / "failed: why" / ...)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Filter for :meth:`HistoryStore.query`. Empty fields match everything."""

    job_id: str | None = None
    kinds: Sequence[str] = field(default_factory=tuple)
    urgencies: Sequence[str] = field(default_factory=tuple)
    text: str = ""
    unread_only: bool = False
    limit: int = 1000


@runtime_checkable
class HistoryStore(Protocol):
    """Durable notification history. ``record`` is called *before* the OS sees a notification.

    Raises ``peft_notify.desktop.history.HistoryError`` for environment failures.
    """

    def record(
        self,
        job_id: str,
        job_name: str,
        event: NotificationEvent,
        *,
        ts: float,
        status: DeliveryStatus,
        key: str = "",
        seq: int | None = None,
    ) -> int: ...

    def merge_repeat(self, job_id: str, key: str, *, ts: float, repeat: int) -> int | None: ...

    def set_status(self, entry_id: int, status: DeliveryStatus, *, backend: str = "", detail: str = "") -> None: ...

    def query(self, query: HistoryQuery) -> list[HistoryEntry]: ...

    def mark_read(self, ids: Sequence[int] | None = None) -> int: ...
