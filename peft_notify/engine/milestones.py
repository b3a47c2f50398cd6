"""Milestone arithmetic: which milestones a step has reached or crossed.

Pure functions shared by the engine and the seed API. Percentages compare in
integers (``step * 100 >= m * total``) so 1/3 of 300 steps is exactly 33 %.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["crossed", "first_crossed", "passed_phrase", "percent", "reached"]


def percent(step: int, total: int | None) -> float | None:
    """Completed percentage in [0, 100], or ``None`` when ``total`` is unknown or not positive."""
    if total is None or total <= 0:
        return None
    return max(0.0, min(100.0, step * 100.0 / total))


def reached(step: int, total: int | None, milestones: Iterable[int]) -> list[int]:
    """Milestones (sorted) that ``step`` of ``total`` has reached; none when ``total`` is unknown."""
    if total is None or total <= 0:
        return []
    return sorted(m for m in set(milestones) if step * 100 >= m * total)


def crossed(previous: int, step: int, total: int | None, milestones: Iterable[int]) -> list[int]:
    """Milestones (sorted) with ``previous < m <= step`` in percent of ``total``.

    Empty when ``total`` is unknown or not positive, or when ``step`` went backwards.
    """
    if total is None or total <= 0:
        return []
    return sorted(m for m in set(milestones) if previous * 100 < m * total <= step * 100)


def first_crossed(previous: int, step: int, total: int | None, milestones: Iterable[int]) -> int | None:
    """The lowest milestone crossed between ``previous`` and ``step`` (the seed's rule), or ``None``."""
    found = crossed(previous, step, total, milestones)
    return found[0] if found else None


def passed_phrase(passed: Iterable[int]) -> str:
    """``" — passed 50 % too"`` / ``" — passed 25 % and 50 % too"``; empty when nothing was passed."""
    items = [f"{m} %" for m in sorted(passed)]
    if not items:
        return ""
    if len(items) == 1:
        return f" — passed {items[0]} too"
    return f" — passed {', '.join(items[:-1])} and {items[-1]} too"
