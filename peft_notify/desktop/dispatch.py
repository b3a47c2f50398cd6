"""The dispatcher: performs the engine's actions against the ports. Pure asyncio, no Qt.

Call ``await dispatcher.perform(actions)`` with each list the engine returns, in order. It is
the only place that talks to the OS on the app's behalf, and it keeps one promise: every
notification is written to history (status ``PENDING``) *before* any notifier sees it, then
updated to ``SHOWN`` (first notifier), ``FALLBACK`` (a later one) or ``FAILED``. Each notifier
call has a timeout, so a hung D-Bus call delays one notification, never the app. Button presses
come back through :meth:`Dispatcher.route_action`, which marks the entry read and says where
the press goes (Sans-I/O, like the engine): :class:`SendToJob` for "retry"/"cancel" (with the
sequence number of the notification whose button was pressed) and for a dismissed error
notification ("dismiss": a job waiting for Retry stops waiting), or :class:`ShowDetails` for a
click or "view-details"; the monitor (:mod:`peft_notify.desktop.monitor`) carries it out on the
connection that produced the notification. Nothing here raises to the caller except cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ParamSpec, TypeAlias, TypeVar

from peft_notify.engine.actions import (
    Action,
    Attention,
    ClearTaskbar,
    MergeRepeat,
    Notify,
    PlaySound,
    Record,
    SetBadge,
    SetTaskbar,
)
from peft_notify.ports import Delivery, DeliveryStatus, HistoryStore, Notifier, NotifyRequest, TaskbarProgress
from peft_notify.wire import MAX_TITLE, ActionRequest, NotificationEvent

__all__ = ["AttachmentFor", "DispatchResult", "Dispatcher", "Route", "SendToJob", "ShowDetails", "named"]

log = logging.getLogger(__name__)

AttachmentFor = Callable[[str, NotificationEvent], Path | None]

P = ParamSpec("P")
R = TypeVar("R")

_JOB_ACTIONS = frozenset({"retry", "cancel", "pause", "resume"})
_REMEMBERED = 512  # record ids kept for routing button presses back


@dataclass(frozen=True, slots=True)
class SendToJob:
    """A notification's Retry/Cancel button: send ``action`` to the job ``job_id`` names (its connection)."""

    job_id: str
    action: ActionRequest


@dataclass(frozen=True, slots=True)
class ShowDetails:
    """A notification was clicked or "View Details" pressed: show history entry ``record_id`` of ``job_id``."""

    job_id: str
    record_id: int


Route: TypeAlias = SendToJob | ShowDetails


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """What became of one Notify/Record/MergeRepeat: its history id (0 if history failed) and status."""

    job_id: str
    entry_id: int
    status: DeliveryStatus
    delivery: Delivery | None = None


def named(event: NotificationEvent, job_name: str) -> NotificationEvent:
    """``event`` with a title that names its job ("Eval done" → "llama-lora: Eval done").

    Every popup says which job it is about (several jobs run at once, issue 11 item 10); a
    title that already names the job is kept. History keeps the title as decided (it has
    its own job column).
    """
    name = job_name.strip()
    if not name or name.casefold() in event.title.casefold():
        return event
    return replace(event, title=f"{name}: {event.title}"[:MAX_TITLE])


class Dispatcher:
    """Performs engine actions (see the module docstring)."""

    def __init__(
        self,
        history: HistoryStore,
        notifiers: Sequence[Notifier],
        taskbar: TaskbarProgress,
        sound_player: Callable[[str], None] | None = None,
        muted: Callable[[], bool] = lambda: False,
        *,
        job_name: Callable[[str], str] = lambda job_id: job_id,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
        attachment_for: AttachmentFor | None = None,
    ) -> None:
        self.history = history
        self.notifiers = list(notifiers)
        self.taskbar = taskbar
        self.sound_player = sound_player
        self.muted = muted
        self.job_name = job_name
        self.clock = clock
        self.timeout = timeout
        self.attachment_for = attachment_for
        self._entries: OrderedDict[int, tuple[str, int | None]] = OrderedDict()  # record id -> (job, seq)
        self._errors: set[int] = set()  # which of them are error notifications (their dismissal is sent)
        self._history_failing = False  # the last history write failed (reported once)

    # -- performing actions --------------------------------------------------------------

    async def perform(self, actions: Sequence[Action]) -> list[DispatchResult]:
        """Perform ``actions`` in order; returns one result per notification-like action."""
        sounds = {a.job_id: a.name for a in actions if isinstance(a, PlaySound)}
        notified = {a.job_id for a in actions if isinstance(a, Notify)}
        results: list[DispatchResult] = []
        for action in actions:
            if isinstance(action, Notify):
                sound = None if self.muted() else sounds.get(action.job_id)
                results.append(await self._notify(action, sound))
            elif isinstance(action, Record):
                results.append(self._record(action))
            elif isinstance(action, MergeRepeat):
                results.append(self._merge(action))
            elif isinstance(action, PlaySound):
                if action.job_id not in notified and not self.muted() and self.sound_player is not None:
                    self._safely("play sound", self.sound_player, action.name)
            else:
                self._taskbar(action)
        return results

    def _record_entry(
        self, job_id: str, event: NotificationEvent, status: DeliveryStatus, key: str, seq: int | None
    ) -> int:
        try:
            entry_id = self.history.record(
                job_id, self.job_name(job_id), event, ts=self.clock(), status=status, key=key, seq=seq
            )
        except Exception as exc:  # HistoryError or a bug: the notification must still reach the user
            if not self._history_failing:  # say it once per outage (a full disk fails every record)
                log.error("history is not being written (notifications still show): %s", exc, exc_info=True)
            self._history_failing = True
            return 0
        if self._history_failing:
            log.warning("history is being written again")
            self._history_failing = False
        self._entries[entry_id] = (job_id, seq)
        if event.type == "error":
            self._errors.add(entry_id)
        while len(self._entries) > _REMEMBERED:
            self._errors.discard(self._entries.popitem(last=False)[0])
        return entry_id

    async def _notify(self, action: Notify, sound: str | None) -> DispatchResult:
        # Record first: whatever the notifiers do (fail, raise, hang), the entry exists.
        entry_id = self._record_entry(action.job_id, action.event, DeliveryStatus.PENDING, action.key, action.seq)
        attachment = None
        if self.attachment_for is not None:
            attachment = self._safely("render attachment", self.attachment_for, action.job_id, action.event)
        # A summary over every job (Do Not Disturb ended: job id "") names its jobs in its message.
        name = self._safely("name the job", self.job_name, action.job_id) if action.job_id else ""
        event = named(action.event, name or "")
        request = NotifyRequest(
            record_id=entry_id, job_id=action.job_id, event=event, attachment=attachment, sound=sound
        )
        failures: list[str] = []
        status, delivery = DeliveryStatus.FAILED, None
        for index, notifier in enumerate(self.notifiers):
            delivery = await self._try(notifier, request)
            if delivery.ok:
                status = DeliveryStatus.SHOWN if index == 0 else DeliveryStatus.FALLBACK
                break
            failures.append(f"{delivery.backend}: {delivery.detail}")
        if status is DeliveryStatus.FAILED:
            log.warning("notification %r reached no notifier (%s)", action.event.title, "; ".join(failures) or "none")
        backend = delivery.backend if delivery is not None and delivery.ok else ""
        detail = "; ".join(failures)
        if entry_id:
            try:
                self.history.set_status(entry_id, status, backend=backend, detail=detail)
            except Exception:
                log.error("could not update history entry %d", entry_id, exc_info=True)
        return DispatchResult(action.job_id, entry_id, status, delivery)

    async def _try(self, notifier: Notifier, request: NotifyRequest) -> Delivery:
        name = getattr(notifier, "name", type(notifier).__name__)
        try:
            return await asyncio.wait_for(notifier.notify(request), self.timeout)
        except TimeoutError:
            log.warning("notifier %s did not answer within %.1f s", name, self.timeout)
            return Delivery.failed(name, f"timed out after {self.timeout:g} s")
        except Exception as exc:  # the port says notify never raises; an adapter bug must not stop us
            log.warning("notifier %s raised", name, exc_info=True)
            return Delivery.failed(name, f"{type(exc).__name__}: {exc}")

    def _record(self, action: Record) -> DispatchResult:
        entry_id = self._record_entry(action.job_id, action.event, action.reason, action.key, action.seq)
        return DispatchResult(action.job_id, entry_id, action.reason)

    def _merge(self, action: MergeRepeat) -> DispatchResult:
        try:
            entry_id = self.history.merge_repeat(action.job_id, action.key, ts=self.clock(), repeat=action.repeat)
        except Exception:
            log.error("could not merge a repeat into history", exc_info=True)
            entry_id = None
        if entry_id is None:  # nothing to merge into (pruned, or history failed): keep it anyway
            return self._record(Record(action.job_id, action.event, action.key, DeliveryStatus.DUPLICATE))
        return DispatchResult(action.job_id, entry_id, DeliveryStatus.DUPLICATE)

    def _taskbar(self, action: Action) -> None:
        if isinstance(action, SetTaskbar):
            self._safely("set taskbar", self.taskbar.set, action.value, action.state)
        elif isinstance(action, ClearTaskbar):
            self._safely("clear taskbar", self.taskbar.clear)
        elif isinstance(action, Attention):
            self._safely("request attention", self.taskbar.attention, action.critical)
        elif isinstance(action, SetBadge):
            self._safely("set badge", self.taskbar.badge, action.count)

    @staticmethod
    def _safely(what: str, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return func(*args, **kwargs)
        except Exception:
            log.warning("could not %s", what, exc_info=True)
            return None

    # -- actions coming back from notifications ------------------------------------------

    def route_action(self, job_id: str, record_id: int, action: str) -> Route | None:
        """Where one notification action goes (see the module docstring); ``None``: nowhere.

        Marks the entry read. ``action`` is the notifier's key ("retry", "Cancel", "default"
        for a click, "view-details", "dismissed").
        """
        action = action.strip().lower().replace(" ", "-")
        if action == "dismissed":
            # A dismissed failure tells a job waiting for Retry (``peft-notify run``) to stop waiting.
            if record_id in self._errors:
                return SendToJob(job_id, ActionRequest("dismiss", ref_seq=self._entries[record_id][1]))
            return None
        if record_id:
            self._safely("mark read", self.history.mark_read, [record_id])
        if action in _JOB_ACTIONS:
            return SendToJob(job_id, ActionRequest(action, ref_seq=self._entries.get(record_id, (job_id, None))[1]))
        if action in ("default", "view-details"):
            return ShowDetails(job_id, record_id)
        log.info("ignoring unknown notification action %r for job %s", action, job_id)
        return None
