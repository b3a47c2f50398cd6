"""Taskbar helpers shared by every OS: the always-working :class:`NullTaskbar` and :class:`TeeTaskbar`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from peft_notify.ports import TaskbarProgress, TaskbarState

__all__ = ["NullTaskbar", "TeeTaskbar"]

log = logging.getLogger(__name__)


class NullTaskbar:
    """Shows nothing: the last candidate, for desktops without a progress API."""

    name = "none"

    def set(self, value: float, state: TaskbarState) -> None:
        return None

    def clear(self) -> None:
        return None

    def attention(self, critical: bool) -> None:
        return None

    def badge(self, count: int) -> None:
        return None


class TeeTaskbar:
    """Forwards every call to several taskbars (e.g. Unity LauncherEntry + Qt window alert).

    A member that raises is logged and skipped; the others still run.
    """

    def __init__(self, members: Sequence[TaskbarProgress]) -> None:
        self.members = tuple(members)
        self.name = "+".join(m.name for m in self.members) or "none"

    def _each(self, method: str, *args: object) -> None:
        for member in self.members:
            try:
                getattr(member, method)(*args)
            except Exception:
                log.warning("taskbar %s.%s failed", member.name, method, exc_info=True)

    def set(self, value: float, state: TaskbarState) -> None:
        self._each("set", value, state)

    def clear(self) -> None:
        self._each("clear")

    def attention(self, critical: bool) -> None:
        self._each("attention", critical)

    def badge(self, count: int) -> None:
        self._each("badge", count)
