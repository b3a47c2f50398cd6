"""A group (sweep) in the job list: counts, best trial, ETA, and its trials listed under it.

:class:`GroupCard` shows one engine ``GroupView`` (docs/sweeps.md); :class:`GroupCards` keeps
one card per group in the window's job list, inserted above the group's first trial, and hides
the card of the sweep's own job (role ``sweep``: the group card stands for it). The window calls
:meth:`GroupCards.on_job_updated` / :meth:`GroupCards.on_job_removed` from its own slots.
The formatting (:func:`group_lines`, :func:`trial_line`) is plain code, tested without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from peft_notify.app.jobs_model import format_duration
from peft_notify.app.plain import plain_label, plain_tooltip
from peft_notify.app.style import tone_color
from peft_notify.engine.groups import GroupView, format_number
from peft_notify.wire import GroupRole

if TYPE_CHECKING:
    from peft_notify.engine.job import JobView

__all__ = ["GROUP_KEY_PREFIX", "GroupCard", "GroupCards", "group_lines", "trial_line"]

GROUP_KEY_PREFIX: Final = "group:"  # list items of groups carry "group:<id>" as their key
MAX_TRIALS_SHOWN: Final = 12
TONES: Final = {"running": "#2563eb", "done": "#16a34a", "failed": "#dc2626"}


def group_lines(view: GroupView) -> tuple[str, str, str]:
    """(state, counts, best): "3 running", "9/40 ended · 7 ok · 2 failed · ETA 1h 02m", "best loss 0.41 (r=16)"."""
    ended = view.done + view.failed + view.pruned + view.cancelled
    if view.ended:
        state = "finished"
    elif view.running:
        state = f"{view.running} running"
    else:
        state = "waiting for trials"
    parts = [f"{ended}/{view.total} ended", f"{view.done} ok"]
    parts += [
        f"{n} {word}"
        for n, word in ((view.failed, "failed"), (view.pruned, "pruned"), (view.cancelled, "cancelled"))
        if n
    ]
    if not view.ended and view.eta_s is not None:
        parts.append(f"ETA {format_duration(view.eta_s)}")
    best = ""
    if view.best_value is not None:
        params = ", ".join(f"{k}={format_number(v)}" for k, v in list(view.best_params.items())[:4])
        best = f"best {view.best_metric} {format_number(view.best_value)}" + (f" ({params})" if params else "")
    return state, " · ".join(parts), best


def trial_line(job: JobView) -> str:
    """One trial under its group: "• trial 7 — completed — loss 0.52"."""
    loss = "" if job.loss is None else f" — loss {job.loss:.4g}"
    return f"• {job.name or job.job_id} — {job.state.value}{loss}"


class GroupCard(QFrame):
    """A card for one group (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("GroupCard")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.name = plain_label(QLabel())
        self.name.setObjectName("JobName")
        self.state = plain_label(QLabel())
        self.state.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.counts = plain_label(QLabel())
        self.best = plain_label(QLabel())
        self.trials = plain_label(QLabel())
        self.trials.setObjectName("Muted")
        top = QHBoxLayout()
        top.addWidget(self.name, 1)
        top.addWidget(self.state)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 12, 10)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.counts)
        layout.addWidget(self.best)
        layout.addWidget(self.trials)
        self._tone = ""

    def show_group(self, view: GroupView, trials: Sequence[JobView]) -> None:
        """Refresh from the engine's view of the group and its trials' views."""
        state, counts, best = group_lines(view)
        self.name.setText(f"Sweep: {view.name}")
        self.state.setText(state.capitalize())
        ended = view.done + view.failed + view.pruned + view.cancelled
        self.bar.setRange(0, max(1, view.total))
        self.bar.setValue(ended)
        self.counts.setText(counts)
        self.best.setText(best)
        self.best.setVisible(bool(best))
        lines = [trial_line(t) for t in trials[:MAX_TRIALS_SHOWN]]
        if len(trials) > MAX_TRIALS_SHOWN:
            lines.append(f"+ {len(trials) - MAX_TRIALS_SHOWN} more")
        self.trials.setText("\n".join(lines))
        tone = "failed" if view.failed else "done" if view.ended else "running"
        color = tone_color({"running": "ok", "done": "done", "failed": "error"}[tone])  # the theme's (style.py)
        if color != self._tone:
            self._tone = color
            self.setStyleSheet(f"#GroupCard {{ border: 1px solid palette(mid); border-left: 5px solid {color}; }}")
        self.setToolTip(plain_tooltip(f"{view.name}\n{counts}\n{best}".strip()))


class GroupCards:
    """One :class:`GroupCard` per group in ``job_list``; see the module docstring."""

    def __init__(self, job_list: QListWidget) -> None:
        self.job_list = job_list
        self.items: dict[str, QListWidgetItem] = {}
        self.cards: dict[str, GroupCard] = {}
        self._members: dict[str, set[str]] = {}  # group key -> subscription keys

    def on_job_updated(self, key: str, job_id: str, item: QListWidgetItem, controller: Any) -> None:
        """The job of subscription ``key`` (engine key ``job_id``, list item ``item``) changed."""
        engine = controller.engine
        group_id = engine.group_of(job_id)
        view: GroupView | None = None if group_id is None else engine.group(group_id)
        if group_id is None or view is None:
            return
        gkey = GROUP_KEY_PREFIX + group_id
        if gkey not in self.items:
            group_item = QListWidgetItem()
            group_item.setData(Qt.ItemDataRole.UserRole, gkey)
            card = GroupCard()
            self.job_list.insertItem(self.job_list.row(item), group_item)  # above its first trial
            self.job_list.setItemWidget(group_item, card)
            self.items[gkey], self.cards[gkey] = group_item, card
        self._members.setdefault(gkey, set()).add(key)
        conn = controller.monitor.connections.get(key)
        if conn is not None and conn.group is not None and conn.group.role is GroupRole.SWEEP:
            item.setHidden(True)  # the sweep's own job: this card stands for it
        trials = [t for t in (engine.job(j) for j in view.job_ids) if t is not None]
        card = self.cards[gkey]
        card.show_group(view, trials)
        self.items[gkey].setSizeHint(card.sizeHint())
        self.items[gkey].setText(f"Sweep {view.name}: {group_lines(view)[1]}")  # screen readers, type-ahead

    def on_job_removed(self, key: str) -> None:
        """Subscription ``key`` is gone: a group with no subscription left leaves the list."""
        for gkey, members in list(self._members.items()):
            members.discard(key)
            if not members:
                item = self.items.pop(gkey, None)
                self.cards.pop(gkey, None)
                del self._members[gkey]
                if item is not None:
                    self.job_list.takeItem(self.job_list.row(item))
