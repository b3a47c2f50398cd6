from __future__ import annotations

import pytest

from peft_notify.channels.levels import DEFAULT_LEVEL, Level, parse_level, passes
from peft_notify.wire import NotificationType as K


def test_default_is_completion_and_order() -> None:
    assert DEFAULT_LEVEL is Level.COMPLETION
    assert Level.PROGRESS < Level.COMPLETION < Level.WARNING < Level.ERROR


@pytest.mark.parametrize(
    ("level", "sent"),
    [
        (Level.PROGRESS, {K.PROGRESS, K.COMPLETION, K.WARNING, K.ERROR}),
        (Level.COMPLETION, {K.COMPLETION, K.WARNING, K.ERROR}),
        (Level.WARNING, {K.WARNING, K.ERROR}),
        (Level.ERROR, {K.ERROR}),
    ],
)
def test_a_channel_sends_kinds_at_or_above_its_level(level: Level, sent: set[K]) -> None:
    assert {k for k in K if passes(k, level)} == sent


def test_parse_level() -> None:
    assert parse_level(" Warning ") is Level.WARNING
    with pytest.raises(ValueError, match="one of: progress, completion, warning, error"):
        parse_level("loud")
