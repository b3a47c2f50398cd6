"""Channel levels: which notification kinds a channel sends.

``progress < completion < warning < error``; a channel sends an event whose kind is at or
above its level, and errors always. Pure; call :func:`parse_level` on user input (raises
``ValueError`` with the allowed values).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from peft_notify.wire import NotificationType

__all__ = ["DEFAULT_LEVEL", "Level", "level_of", "parse_level", "passes"]


class Level(IntEnum):
    """Minimum kind a channel sends, ordered from chattiest to quietest."""

    PROGRESS = 0
    COMPLETION = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


DEFAULT_LEVEL: Final = Level.COMPLETION

_OF_KIND: Final = {
    NotificationType.PROGRESS: Level.PROGRESS,
    NotificationType.COMPLETION: Level.COMPLETION,
    NotificationType.WARNING: Level.WARNING,
    NotificationType.ERROR: Level.ERROR,
}


def level_of(kind: NotificationType) -> Level:
    """The level of a notification kind."""
    return _OF_KIND[kind]


def passes(kind: NotificationType, level: Level) -> bool:
    """Whether a channel at ``level`` sends ``kind`` (errors always go out)."""
    return kind is NotificationType.ERROR or level_of(kind) >= level


def parse_level(text: str | Level) -> Level:
    """``"warning"`` → ``Level.WARNING``. Raises ``ValueError`` naming the allowed values."""
    if isinstance(text, Level):
        return text
    try:
        return Level[text.strip().upper()]
    except KeyError:
        allowed = ", ".join(level.label for level in Level)
        raise ValueError(f"unknown level {text[:40]!r} (one of: {allowed})") from None
