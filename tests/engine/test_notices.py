"""Notification builders and stable keys."""

from __future__ import annotations

from peft_notify.engine.notices import (
    error_event,
    error_key,
    error_urgency,
    resumed_event,
    stall_event,
    text_key,
    warning_event,
)
from peft_notify.wire import NotificationType, UrgencyLevel


def test_error_urgency_override_only_for_unmapped_types() -> None:
    assert error_urgency("oom_error", "low") is UrgencyLevel.CRITICAL
    assert error_urgency("data_error") is UrgencyLevel.HIGH
    assert error_urgency("other") is UrgencyLevel.NORMAL
    assert error_urgency("other", "high") is UrgencyLevel.HIGH
    assert error_urgency("other", "shouting") is UrgencyLevel.NORMAL


def test_error_event_shape() -> None:
    event = error_event("boom", None, retry=False, sound=False)
    assert event.type is NotificationType.ERROR
    assert event.title == "Training Error"
    assert event.actions == ["View Details"]
    assert event.sound is False
    assert event.respect_dnd is False
    assert event.error_type == "training_error"
    assert error_key(None) == "error:training_error"
    assert error_key("oom_error") == "error:oom_error"


def test_warning_stall_and_resumed_events() -> None:
    warning = warning_event("careful")
    assert (warning.type, warning.title, warning.sound, warning.respect_dnd) == (
        NotificationType.WARNING,
        "Training Warning",
        False,
        True,
    )
    assert stall_event("job", 10).message == "job appears stalled: no progress for 1 min."
    assert stall_event("job", 600).message == "job appears stalled: no progress for 10 min."
    assert resumed_event("job", 7).urgency == UrgencyLevel.LOW


def test_text_key_is_stable_and_masks_numbers() -> None:
    a = text_key("warning", ["loss spiked to 4.25 at step 12"])
    assert a == text_key("warning", ["loss spiked to 1e-3 at step 13000"])
    assert a != text_key("warning", ["grad norm spiked at step 12"])
    assert a != text_key("progress", ["loss spiked to 4.25 at step 12"])
    assert a.startswith("warning:")
    assert len(a) == len("warning:") + 12
