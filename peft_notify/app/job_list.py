"""The window's job list: one list item per job, a :class:`JobCard` widget only for the rows in view.

:class:`JobList` is a ``QListWidget`` (arrow keys, Enter, selection, type-ahead and what screen
readers read all come from the items). Every job has an item whose text is the card's accessible
name (``llama: running, 13 %, ETA 35 s``) and whose size hint is the card's; a card widget is
built only for the rows in view and a few around them, and dropped again when they scroll far
away, so 1,000 jobs cost 1,000 small items and a screenful of widgets (issue 17: a widget per
job made 1,000 jobs take minutes to connect and ~250 MiB). Call :meth:`JobList.show_job` when a
job's row changed and :meth:`JobList.remove_job` when it is gone; ``by_key`` maps a job's key to
its item, ``cards`` to its card while it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from PySide6.QtCore import QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from peft_notify.app.accessibility import card_name
from peft_notify.app.job_card import JobCard
from peft_notify.app.jobs_model import JobRow
from peft_notify.app.resources_view import card_text

__all__ = ["JobList"]

MARGIN_ROWS: Final = 2  # cards built beyond the view, above and below (no blank row while scrolling)
KEEP_ROWS: Final = 12  # a card this far out of view is dropped (not at once: scrolling back is cheap)
MIN_BUILT: Final = 8  # rows with a card before the list has a size (a window not shown yet)


class JobList(QListWidget):
    """See the module docstring. ``row_for(key)`` gives the current row of a job (None: gone)."""

    cards_changed = Signal()  # a card was built or dropped: ``cards`` holds other jobs now

    def __init__(self, row_for: Callable[[str], JobRow | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.row_for = row_for
        self.by_key: dict[str, QListWidgetItem] = {}  # every job (never rebound: the window shares it)
        self.cards: dict[str, JobCard] = {}  # the jobs with a card now (never rebound either)
        self._hints: dict[str, QSize] = {}  # the size hint each item was given
        self._estimates: dict[bool, QSize] = {}  # a card's size hint, without / with its resource line
        self._first = 0  # the first row in view, as of the last sync
        self._sync = QTimer(self, singleShot=True, interval=0)
        self._sync.timeout.connect(self.sync_cards)

    # -- jobs ------------------------------------------------------------------------------

    def show_job(self, row: JobRow) -> QListWidgetItem:
        """Add or refresh the job of ``row``: its item's text and size, and its card if it has one."""
        key = row.key
        item = self.by_key.get(key)
        if item is None:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.addItem(item)
            self.by_key[key] = item
            if self.row(item) < self._first + self._capacity():  # in view (or the list has no size yet)
                self._build(key, item, row)
            self._schedule_sync()
        card = self.cards.get(key)
        if card is not None:
            card.show_row(row)
            hint = card.sizeHint()
        else:
            hint = self._estimate(row)
        if self._hints.get(key) != hint:
            self._hints[key] = hint
            item.setSizeHint(hint)
        name = card_name(row)  # what screen readers say; type-ahead finds the name
        if item.text() != name:
            item.setText(name)
        return item

    def remove_job(self, key: str) -> None:
        item = self.by_key.pop(key, None)
        if self.cards.pop(key, None) is not None:
            self.cards_changed.emit()
        self._hints.pop(key, None)
        if item is not None:
            self.takeItem(self.row(item))
            self._schedule_sync()

    def key_of(self, item: QListWidgetItem | None) -> str | None:
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def mark_current(self, current: QListWidgetItem | None) -> None:
        """Outline the card of the current item (and no other)."""
        for key, card in self.cards.items():
            card.set_selected(self.by_key[key] is current)

    def restyle(self) -> None:
        """The theme changed: card sizes may have too; refresh every job."""
        self._estimates.clear()
        self._hints.clear()
        for key in list(self.by_key):
            row = self.row_for(key)
            if row is not None:
                self.show_job(row)

    # -- cards for the rows in view ----------------------------------------------------------

    def sync_cards(self) -> None:
        """Build the cards of the rows in view (and :data:`MARGIN_ROWS` around); drop far-away ones."""
        self._sync.stop()
        count = self.count()
        if count == 0:
            return
        first = self._first_in_view()
        bottom = self.viewport().height()
        last = first
        while last + 1 < count and (self.isRowHidden(last + 1) or self._top(last + 1) < bottom):
            last += 1
        self._first = first
        low, high = max(0, first - MARGIN_ROWS), min(count - 1, max(last, first + MIN_BUILT - 1) + MARGIN_ROWS)
        for index in range(low, high + 1):
            item = self.item(index)
            key = self.key_of(item)
            if key is None or key not in self.by_key or key in self.cards or item.isHidden():
                continue
            row = self.row_for(key)
            if row is not None:
                self._build(key, item, row)
        far = [k for k in self.cards if not low - KEEP_ROWS <= self.row(self.by_key[k]) <= high + KEEP_ROWS]
        for key in far:
            del self.cards[key]
            self.removeItemWidget(self.by_key[key])  # Qt deletes the card
        if far:
            self.cards_changed.emit()

    def _top(self, index: int) -> int:
        return self.visualItemRect(self.item(index)).top()

    def _first_in_view(self) -> int:
        for y in (1, 1 + 2 * self.spacing() + 1):
            index = self.indexAt(QPoint(self.viewport().width() // 2, y))
            if index.isValid():
                return index.row()
        # Between items (the spacing) or above the first: the first row whose bottom is in view.
        low, high = 0, self.count() - 1
        while low < high:
            mid = (low + high) // 2
            rect = self.visualItemRect(self.item(mid))
            if rect.isValid() and rect.bottom() < 0:
                low = mid + 1
            else:
                high = mid
        return low

    def _build(self, key: str, item: QListWidgetItem, row: JobRow) -> None:
        card = JobCard()
        card.show_row(row)
        card.set_selected(item is self.currentItem())
        self.cards[key] = card
        self.setItemWidget(item, card)
        hint = card.sizeHint()
        if self._hints.get(key) != hint:
            self._hints[key] = hint
            item.setSizeHint(hint)
        self._estimates.setdefault(card.resources.isVisibleTo(card), hint)
        self.cards_changed.emit()

    def _estimate(self, row: JobRow) -> QSize:
        """The size a card for ``row`` would have (measured on a card with the same lines)."""
        lines = bool(card_text(row.resources))
        hint = self._estimates.get(lines)
        if hint is None:
            probe = JobCard()
            probe.show_row(row)
            hint = self._estimates[lines] = probe.sizeHint()
            probe.deleteLater()
        return hint

    def _capacity(self) -> int:
        """How many rows fit in the view, at least :data:`MIN_BUILT`, plus the margin."""
        height = min((h.height() for h in self._estimates.values()), default=0) + self.spacing()
        fit = self.viewport().height() // height + 1 if height > self.spacing() else 0
        return max(fit, MIN_BUILT) + MARGIN_ROWS

    def _schedule_sync(self) -> None:
        if not self._sync.isActive():
            self._sync.start()

    # -- Qt --------------------------------------------------------------------------------

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        if dy:
            self.sync_cards()  # at once: rows scrolled in are painted with their cards

    def updateGeometries(self) -> None:
        super().updateGeometries()  # after every layout of the items
        self._schedule_sync()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._schedule_sync()
