"""Builders for the notifications the engine emits, and their stable keys.

Pure functions shared by the engine and the seed API. Each builder returns a
fresh :class:`~peft_notify.wire.NotificationEvent`; keys identify one logical
notification across restarts (history dedups on them), so they never use
Python's randomised ``hash()``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Final

from peft_notify.wire import ERROR_URGENCY, NotificationEvent, NotificationType, UrgencyLevel, error_type_urgency

__all__ = [
    "CRITICAL_ERRORS",
    "HIGH_ERRORS",
    "error_event",
    "error_key",
    "error_urgency",
    "resumed_event",
    "stall_event",
    "text_key",
    "warning_event",
]

# Views of the one error-type → urgency table (wire.ERROR_URGENCY), kept for importers.
CRITICAL_ERRORS: Final = frozenset(t for t, u in ERROR_URGENCY.items() if u is UrgencyLevel.CRITICAL)
HIGH_ERRORS: Final = frozenset(t for t, u in ERROR_URGENCY.items() if u is UrgencyLevel.HIGH)
DEFAULT_ERROR_TYPE: Final = "training_error"

_NUMBER_RE: Final = re.compile(r"[-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?")


def error_urgency(error_type: str | None, urgency: str | None = None) -> UrgencyLevel:
    """Urgency of an error (issue rule 3).

    ``oom_error``, ``cuda_error``, ``system_crash`` → critical; ``loss_divergence``,
    ``gradient_explosion``, ``data_error`` → high; anything else → ``urgency`` when
    given (and valid), else normal.
    """
    mapped = error_type_urgency(error_type)
    if mapped is not None:
        return mapped
    if urgency is not None:
        try:
            return UrgencyLevel(urgency)
        except ValueError:
            return UrgencyLevel.NORMAL
    return UrgencyLevel.NORMAL


def error_event(
    message: str,
    error_type: str | None = None,
    *,
    urgency: str | None = None,
    title: str = "Training Error",
    retry: bool = True,
    sound: bool = True,
    taskbar_progress: float | None = None,
) -> NotificationEvent:
    """An error notification: mapped urgency, "View Details" (+ "Retry"), sound, bypasses DND."""
    actions = ["View Details", "Retry"] if retry else ["View Details"]
    return NotificationEvent(
        type=NotificationType.ERROR,
        title=title,
        message=message,
        urgency=error_urgency(error_type, urgency),
        sound=sound,
        actions=actions,
        taskbar_progress=taskbar_progress,
        respect_dnd=False,
        error_type=error_type or DEFAULT_ERROR_TYPE,
    )


def warning_event(message: str, title: str = "Training Warning") -> NotificationEvent:
    """A warning notification: normal urgency, silent, respects DND."""
    return NotificationEvent(
        type=NotificationType.WARNING,
        title=title,
        message=message,
        urgency=UrgencyLevel.NORMAL,
        sound=False,
        respect_dnd=True,
    )


def stall_event(job: str, idle_s: float) -> NotificationEvent:
    """The "appears stalled" warning (issue rule 7)."""
    minutes = max(1, round(idle_s / 60))
    return warning_event(f"{job} appears stalled: no progress for {minutes} min.", title="Training appears stalled")


def resumed_event(job: str, step: int) -> NotificationEvent:
    """The low-urgency note that a stalled job made progress again."""
    return NotificationEvent(
        type=NotificationType.PROGRESS,
        title="Training resumed",
        message=f"{job} is making progress again (step {step}).",
        urgency=UrgencyLevel.LOW,
        sound=False,
        respect_dnd=True,
    )


def error_key(error_type: str | None) -> str:
    """Dedup key of an error: one per error type."""
    return f"error:{error_type or DEFAULT_ERROR_TYPE}"


def text_key(kind: str, parts: Iterable[str]) -> str:
    """Stable key for free text: numbers are masked so "loss spike at step 12: 4.1" and
    "... step 13: 5.0" are the same logical warning."""
    text = "\x1f".join(_NUMBER_RE.sub("#", part) for part in parts)
    digest = hashlib.blake2s(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    return f"{kind}:{digest}"
