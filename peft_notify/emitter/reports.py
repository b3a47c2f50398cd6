"""What training code reports, validated once: the notification builders and the progress check.

Called at the public API (:class:`~peft_notify.emitter.handle.JobHandle`, errors that
other ranks forward) on the caller's thread. Each builder returns a ready
:mod:`~peft_notify.wire` body or raises ``ValueError`` naming the bad field; the server
numbers and sends the body as it is (the network decoder never sees our own reports).
Free text (titles, messages, reasons) goes through :func:`peft_notify.redact.redact` here,
so a secret never leaves the process. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from peft_notify import wire
from peft_notify.redact import redact

__all__ = [
    "Ranked",
    "RawProgress",
    "clip",
    "error",
    "notification",
    "progress",
    "progress_from_raw",
    "status",
    "warning",
]

# progress() arguments as given, (step, total, epoch, loss, learning_rate, grad_norm): what the
# training thread stores for a coalesced report. Only the latest one is ever built and checked
# (progress_from_raw, on the server's loop), so a report that is superseded costs no validation.
RawProgress: TypeAlias = tuple[Any, Any, Any, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Ranked:
    """An error reported by one rank of a distributed job (merged with other ranks' copies)."""

    rank: int
    event: wire.NotificationEvent


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any, name: str, limit: int, *, cut: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    text = redact(value)
    if len(text) > limit:
        if not cut:
            raise ValueError(f"{name} is {len(text)} characters long; the limit is {limit}")
        text = clip(text, limit)
    return text


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean, not {type(value).__name__}")
    return value


def notification(
    title: str,
    message: str = "",
    *,
    kind: wire.NotificationType | str = wire.NotificationType.PROGRESS,
    urgency: wire.UrgencyLevel | str | None = None,
    milestone: int | None = None,
    sound: bool | None = None,
    actions: Sequence[str] | None = None,
    error_type: str | None = None,
    respect_dnd: bool | None = None,
) -> wire.NotificationEvent:
    """A notification body. Errors default to their type's urgency, sound, and bypass DND.

    Raises ``ValueError`` for an unknown kind/urgency or a field out of the protocol's bounds.
    """
    nkind = wire.NotificationType(kind)
    is_error = nkind is wire.NotificationType.ERROR
    if urgency is None:
        urgency = (wire.error_type_urgency(error_type) or wire.UrgencyLevel.NORMAL) if is_error else "normal"
    level = wire.UrgencyLevel(urgency)
    if milestone is not None and (
        isinstance(milestone, bool) or not isinstance(milestone, int) or not 0 <= milestone <= 100
    ):
        raise ValueError(f"milestone must be an integer in 0..100, got {milestone!r}")
    if error_type is not None and (not isinstance(error_type, str) or len(error_type) > wire.MAX_SHORT):
        raise ValueError(f"error_type must be a string of at most {wire.MAX_SHORT} characters")
    names: list[str] | None = None
    if actions:
        names = list(actions)
        if len(names) > wire.MAX_ACTIONS or not all(isinstance(a, str) and 0 < len(a) <= wire.MAX_SHORT for a in names):
            raise ValueError(f"actions must be at most {wire.MAX_ACTIONS} names of 1..{wire.MAX_SHORT} characters")
    return wire.NotificationEvent(
        type=nkind,
        title=_text(title, "title", wire.MAX_TITLE, cut=True),
        message=_text(message, "message", wire.MAX_MESSAGE, cut=False),
        milestone=milestone,
        urgency=level,
        sound=_flag(sound, "sound", is_error),
        actions=names,
        error_type=error_type,
        respect_dnd=_flag(respect_dnd, "respect_dnd", not is_error),
    )


def error(job_name: str, message: str, error_type: str, title: str | None = None) -> wire.NotificationEvent:
    """An error notification (urgency from its type; the message is clipped, not refused)."""
    return notification(
        title or f"{job_name}: {error_type.replace('_', ' ')}",
        clip(message, wire.MAX_MESSAGE),
        kind=wire.NotificationType.ERROR,
        error_type=error_type,
    )


def warning(
    job_name: str, message: str, *, title: str | None = None, error_type: str | None = None
) -> wire.NotificationEvent:
    """A warning notification (respects Do Not Disturb; urgency from ``error_type`` if it has one)."""
    return notification(
        title or f"{job_name}: warning",
        clip(message, wire.MAX_MESSAGE),
        kind=wire.NotificationType.WARNING,
        urgency=wire.error_type_urgency(error_type) or wire.UrgencyLevel.NORMAL,
        error_type=error_type,
    )


def status(state: wire.JobState | str, reason: str | None = None) -> wire.Status:
    """A status body (``reason`` clipped). Raises ``ValueError`` for an unknown state."""
    return wire.Status(
        wire.JobState(state), None if reason is None else _text(reason, "reason", wire.MAX_REASON, cut=True)
    )


def _number(value: Any) -> float | None:
    """A finite float from ``value`` (numpy / torch scalars too); ``None`` when unusable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def progress(
    step: Any,
    total: Any = None,
    *,
    epoch: Any = None,
    loss: Any = None,
    learning_rate: Any = None,
    grad_norm: Any = None,
    metrics: Mapping[str, Any] | None = None,
) -> wire.Progress:
    """A progress body. Non-finite or non-numeric values are left out (never sent as NaN);
    a step past ``total`` is clamped to it (an extra logging step).

    Raises ``ValueError`` for a step that is not a non-negative integer, a total below 1,
    a negative epoch or grad norm, or more than ``wire.MAX_METRICS`` metrics.
    """
    try:
        current = operator.index(step)
        steps = None if total is None else operator.index(total)
    except TypeError:
        raise ValueError(f"step and total must be integers, got {step!r} / {total!r}") from None
    if current < 0:
        raise ValueError(f"current_step must be >= 0, got {current}")
    if steps is not None and steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {steps}")
    if steps is not None and current > steps:
        current = steps
    epoch_f, grad_f = _number(epoch), _number(grad_norm)
    if epoch_f is not None and epoch_f < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch_f}")
    if grad_f is not None and grad_f < 0:
        raise ValueError(f"grad_norm must be >= 0, got {grad_f}")
    values: dict[str, float] = {}
    if metrics:
        if len(metrics) > wire.MAX_METRICS:
            raise ValueError(f"{len(metrics)} metrics; the limit is {wire.MAX_METRICS}")
        for key, raw in metrics.items():
            number = _number(raw)
            if number is not None and str(key):
                values[str(key)[: wire.MAX_SHORT]] = number
    return wire.Progress(
        current_step=current,
        total_steps=steps,
        epoch=epoch_f,
        loss=_number(loss),
        learning_rate=_number(learning_rate),
        grad_norm=grad_f,
        metrics=values,
    )


def progress_from_raw(raw: RawProgress) -> wire.Progress:
    """:func:`progress` of stored arguments. Raises ``ValueError`` like it."""
    step, total, epoch, loss, learning_rate, grad_norm = raw
    return progress(step, total, epoch=epoch, loss=loss, learning_rate=learning_rate, grad_norm=grad_norm)
