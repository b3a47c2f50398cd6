"""What the history views share without Qt: delivery status words, the newest-page merge, the unread count.

Kept apart from :mod:`peft_notify.app.history_view` (the History tab's widgets) so the window and
the detail pane use them without importing the tab, which is built only when it is first shown
(issue 17, idle RSS).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Sequence

from peft_notify.ports import DeliveryStatus, HistoryEntry, HistoryQuery, HistoryStore

__all__ = ["LIMIT", "PAGE", "STATUS_TEXT", "entry_order", "merge_newest", "unread_count"]

log = logging.getLogger(__name__)

STATUS_TEXT = {
    DeliveryStatus.PENDING: "pending",
    DeliveryStatus.SHOWN: "shown",
    DeliveryStatus.FALLBACK: "shown (fallback)",
    DeliveryStatus.FAILED: "not shown (failed)",
    DeliveryStatus.WITHHELD_DND: "withheld (DND)",
    DeliveryStatus.RATE_LIMITED: "withheld (rate limit)",
    DeliveryStatus.DUPLICATE: "merged duplicate",
    DeliveryStatus.FILTERED: "recorded only",
    DeliveryStatus.PAUSED: "withheld (paused)",
    DeliveryStatus.MERGED: "merged into a summary",
    DeliveryStatus.MISSED: "recorded (ended before it was seen)",
}
LIMIT = 2000  # entries the table holds (newest first)
PAGE = 50  # entries a notification's refresh reads; more new ones than this: everything is read again


def entry_order(entry: HistoryEntry) -> tuple[float, int]:
    """The key history is sorted by, newest first (``ORDER BY ts DESC, id DESC``)."""
    return (entry.ts, entry.id)


def merge_newest(
    shown: Sequence[HistoryEntry],
    newest: Sequence[HistoryEntry],
    page: int,
    limit: int,
    *,
    keep: Callable[[HistoryEntry], bool] | None = None,
    shown_ids: Container[int] | None = None,
    seen: tuple[float, int] | None = None,
) -> list[HistoryEntry] | None:
    """What a query of ``limit`` entries would return now, from the one shown (``shown``) and the
    ``page`` newest entries read now with the same filters (``newest``); both newest first.

    ``keep`` filters the entries read (a filter the store does not apply: e.g. the detail pane
    reads the newest of all jobs, which SQLite finds at once, and keeps its job's); ``seen`` is
    the :func:`entry_order` of the newest entry read last time (``shown`` was complete up to it),
    so entries that ``keep`` leaves out still join the two up; ``shown_ids`` (the ids in
    ``shown``, when the caller keeps them) saves a pass over ``shown``. The newest entries
    replace the shown ones they overlap (a status, repeat or channel change shows); the older
    shown ones stay as they were. None when the two do not meet (more than ``page`` entries
    are new): read everything again. Costs O(page) unless an older entry moved to the top
    (a merged repeat).
    """
    kept = list(newest) if keep is None else [e for e in newest if keep(e)]
    if len(newest) < page:  # every entry there is
        return kept[:limit]
    boundary = entry_order(newest[-1])
    reach = max(entry_order(shown[0]), seen or (0.0, 0)) if shown else seen
    if reach is None or boundary > reach:
        return None
    head = 0  # the shown entries the newest cover (the rest are older)
    while head < len(shown) and entry_order(shown[head]) >= boundary:
        head += 1
    if shown_ids is None:
        shown_ids = {e.id for e in shown}
    head_ids = {e.id for e in shown[:head]}
    moved = {e.id for e in newest if e.id in shown_ids and e.id not in head_ids}
    room = max(0, limit - len(kept))
    rest = shown[head : head + room] if not moved else [e for e in shown[head:] if e.id not in moved]
    merged = [*kept, *rest][:limit]
    if len(merged) < limit <= len(shown):  # entries left the filter: those below the shown ones are unknown
        return None
    return merged


def unread_count(history: HistoryStore) -> int:
    """Unread entries in the whole of ``history`` (0, logged, when it cannot be read)."""
    counter = getattr(history, "unread_count", None)
    try:
        if callable(counter):
            return int(counter())
        return len(history.query(HistoryQuery(unread_only=True, limit=100_000)))
    except Exception:
        log.warning("could not count unread history", exc_info=True)
        return 0
