"""Merge the same error reported by several ranks of a distributed job into one notification.

Sans-I/O, used on the server's event-loop thread: :meth:`ErrorMerger.add` holds an error
for ``window`` seconds; errors from other ranks that match it (same type, same text once
digits are ignored: ``GPU 3`` and ``GPU 5`` match) join it; :meth:`ErrorMerger.take_due`
then returns one notification naming the ranks (``... (ranks 0, 3)``). A terminal status
reported while errors are held waits behind them (:meth:`defer`), so the app sees the error
before ``failed``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from peft_notify import wire

__all__ = ["ErrorMerger", "rank_suffix"]

_DIGITS = re.compile(r"\d+")


def rank_suffix(ranks: list[int]) -> str:
    """``(rank 3)`` or ``(ranks 0, 3)``."""
    ordered = sorted(set(ranks))
    label = "rank" if len(ordered) == 1 else "ranks"
    return f"({label} {', '.join(str(r) for r in ordered)})"


@dataclass
class _Held:
    item: wire.NotificationEvent
    rank: int
    ranks: list[int]
    due: float


@dataclass
class ErrorMerger:
    """Holds rank-tagged error notifications to merge them (see the module docstring)."""

    window: float = 1.0
    _held: dict[tuple[str, str], _Held] = field(default_factory=dict)
    _deferred: list[Any] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        """Whether errors are being held."""
        return bool(self._held)

    def add(self, rank: int, item: wire.NotificationEvent, now: float) -> None:
        """Hold ``item`` (an error notification) from ``rank``, or join a matching held one."""
        key = (str(item.error_type), _DIGITS.sub("#", f"{_strip_title(item)}\n{item.message}"))
        held = self._held.get(key)
        if held is None:
            self._held[key] = _Held(item=item, rank=rank, ranks=[rank], due=now + self.window)
            return
        held.ranks.append(rank)
        if rank < held.rank:  # show the lowest rank's own text
            held.item, held.rank = item, rank

    def defer(self, item: Any) -> None:
        """Queue ``item`` (a status) to come out after the held errors."""
        self._deferred.append(item)

    def next_due(self) -> float | None:
        """When :meth:`take_due` next has something to return."""
        return min((held.due for held in self._held.values()), default=None)

    def take_due(self, now: float, *, force: bool = False) -> list[Any]:
        """Merged errors whose window ended (all with ``force``), then deferred items once none is held."""
        out: list[Any] = []
        for key, held in list(self._held.items()):
            if force or held.due <= now:
                del self._held[key]
                out.append(_merged(held))
        if not self._held:
            out += self._deferred
            self._deferred = []
        return out


def _strip_title(item: wire.NotificationEvent) -> str:
    return re.sub(r"\s*\(ranks? [\d, ]+\)$", "", item.title)


def _merged(held: _Held) -> wire.NotificationEvent:
    title = f"{_strip_title(held.item)[:180]} {rank_suffix(held.ranks)[:70]}".strip()
    return dataclasses.replace(held.item, title=title)
