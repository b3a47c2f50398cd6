"""Values that travel through the channel layer: events in, messages out, deliveries recorded.

Frozen dataclasses only; no I/O. :class:`ChannelEvent` is what the training side or the
desktop offers a channel; :class:`Outgoing` is one message the policy wants sent now
(a single event or a digest); :class:`Delivery` is what became of an event on one channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from peft_notify.wire import NotificationType

__all__ = ["ChannelEvent", "Delivery", "Outcome", "Outgoing", "SendResult", "severity"]

_SEVERITY = {
    NotificationType.ERROR: 3,
    NotificationType.WARNING: 2,
    NotificationType.COMPLETION: 1,
    NotificationType.PROGRESS: 0,
}


def severity(kind: NotificationType) -> int:
    """Higher is worse: error 3, warning 2, completion 1, progress 0 (errors go first)."""
    return _SEVERITY[kind]


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """One notification offered to the channels, with the context its message needs.

    ``key`` is the engine's identifier of the event within the job (dedup: the same
    (job, kind, key) within the window updates instead of re-sending). ``chart`` is a
    PNG of the loss curve (completion / error only) or ``None``. ``ref`` is an opaque
    handle the caller uses to find its own record (e.g. a history row id).
    """

    job_id: str
    kind: NotificationType
    key: str
    title: str
    message: str = ""
    job_name: str = ""
    host: str = ""
    duration_s: float | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    error_type: str | None = None
    chart: bytes | None = None
    ref: object = None

    @property
    def ident(self) -> tuple[str, NotificationType, str]:
        """The seed's identifier: (job, kind, key)."""
        return (self.job_id, self.kind, self.key)


class Outcome(Enum):
    """What became of an event on one channel (recorded in history)."""

    SENT = "sent"  # the service accepted a message carrying it alone
    MERGED = "merged"  # sent inside a digest message
    UPDATED = "updated"  # a repeat of an event already sent/queued: no new message
    FAILED = "failed"  # retries exhausted (or a permanent error): see the reason


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send now: a single event, or a digest of several."""

    id: int
    title: str
    body: str
    kind: NotificationType
    events: tuple[ChannelEvent, ...]
    attachment: bytes | None = None
    attempt: int = 1

    @property
    def digest(self) -> bool:
        return len(self.events) > 1


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one event on one channel; ``reason`` explains FAILED (and digests)."""

    event: ChannelEvent
    outcome: Outcome
    reason: str = ""
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one send attempt returned: the service's answer in a form the policy can use.

    ``http_status`` / ``retry_after_s`` are filled when the service answered over HTTP;
    ``detail`` is the service's own text (already free of secrets: apprise's privacy URLs).
    """

    ok: bool
    status: str
    detail: str = ""
    http_status: int | None = None
    retry_after_s: float | None = None
    elapsed_s: float = 0.0
    permanent: bool = False

    def summary(self) -> str:
        """One line for a log, a dialog or ``doctor``."""
        parts = [self.status]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.retry_after_s is not None:
            parts.append(f"Retry-After {self.retry_after_s:g}s")
        if self.detail:
            parts.append(self.detail)
        return " · ".join(parts)
