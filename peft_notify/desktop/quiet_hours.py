"""Quiet hours: a daily window per weekday (e.g. ``mon-fri 22:00-08:00``) that acts like Do Not Disturb.

:func:`parse_quiet_hours` turns the setting's text into a :class:`QuietHours` (raises ``ValueError``
with one clear line); :meth:`QuietHours.active` is a pure function of a local ``datetime``.
:class:`QuietHoursProbe` wraps the system's DND probe: during quiet hours it says ``ON``, so the
engine withholds everything but errors and sends the one summary when they end (engine/dnd.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from peft_notify.ports import DndProbe, DndState

__all__ = ["DAYS", "QuietHours", "QuietHoursProbe", "QuietWindow", "parse_quiet_hours"]

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_MINUTES: Final = 24 * 60


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Quiet from ``start`` to ``end`` (minutes after midnight) starting on each of ``days`` (0 = Monday).

    ``end <= start`` runs past midnight into the next day (22:00-08:00); ``start == end`` is a whole day.
    """

    days: frozenset[int]
    start: int
    end: int

    def active(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Past midnight: the evening of a listed day, or the morning after one.
        return (weekday in self.days and minute >= self.start) or ((weekday - 1) % 7 in self.days and minute < self.end)

    def __str__(self) -> str:
        return f"{_days_text(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """The user's quiet windows; empty: never quiet."""

    windows: tuple[QuietWindow, ...] = ()

    def active(self, now: dt.datetime) -> bool:
        """Whether ``now`` (local time) is inside a quiet window."""
        minute = now.hour * 60 + now.minute
        return any(w.active(now.weekday(), minute) for w in self.windows)

    def ends_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the quiet period around ``now`` ends (to the minute), or ``None`` when not quiet now."""
        if not self.active(now):
            return None
        t = now.replace(second=0, microsecond=0)
        for _ in range(8 * _DAY_MINUTES):  # windows can chain across days; a whole week quiet ends never
            t += dt.timedelta(minutes=1)
            if not self.active(t):
                return t
        return None

    def __str__(self) -> str:
        return "; ".join(str(w) for w in self.windows)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _days_text(days: frozenset[int]) -> str:
    if days == frozenset(range(7)):
        return "daily"
    return ",".join(DAYS[d] for d in sorted(days))


def _time(text: str) -> int:
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not a time like 22:00")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > _DAY_MINUTES:
        raise ValueError(f"{text!r} is not a time of day")
    return value % _DAY_MINUTES


def _days(text: str) -> frozenset[int]:
    if text in ("daily", "every day", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            a = DAYS.index(first.strip()[:3])
            b = DAYS.index(last.strip()[:3]) if sep else a
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a weekday (mon … sun)") from None
        days.update(d % 7 for d in range(a, b + 1 if b >= a else b + 8))
    return frozenset(days)


def parse_quiet_hours(text: str) -> QuietHours:
    """``"mon-fri 22:00-08:00; sat,sun 23:00-10:00"`` → :class:`QuietHours`; ``""`` → never quiet.

    A window without days is every day (``"22:00-08:00"``). Raises ``ValueError`` naming the bad part.
    """
    windows = []
    for raw in text.replace("\n", ";").split(";"):
        chunk = raw.strip().lower()
        if not chunk:
            continue
        days_text, _, span = chunk.rpartition(" ")
        start, sep, end = span.partition("-")
        if not sep:
            raise ValueError(f"{chunk!r}: give a time range like 22:00-08:00")
        windows.append(QuietWindow(_days(days_text.strip() or "daily"), _time(start), _time(end)))
    return QuietHours(tuple(windows))


class QuietHoursProbe:
    """A :class:`~peft_notify.ports.DndProbe` that is ``ON`` during quiet hours, else asks ``inner``.

    ``hours`` is read on every call, so a changed setting applies at the next poll; ``now`` gives
    local time (tests pass a fixed clock).
    """

    def __init__(
        self,
        inner: DndProbe,
        hours: Callable[[], QuietHours],
        now: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.inner = inner
        self.name = inner.name  # the system's probe is what doctor and the About box name
        self.hours = hours
        self.now = now

    def quiet_until(self) -> dt.datetime | None:
        """When the current quiet hours end, or ``None`` when it is not quiet hours now."""
        return self.hours().ends_at(self.now())

    async def state(self) -> DndState:
        if self.hours().active(self.now()):
            return DndState.ON
        return await self.inner.state()
