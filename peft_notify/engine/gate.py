"""The delivery gate: turns one decided notification into Notify, Record or MergeRepeat.

Every notification the engine decides about passes :meth:`Gate.deliver`
exactly once, so nothing is lost: it is shown (``Notify``), recorded with the
reason it was not shown (``Record``), or merged into an earlier entry
(``MergeRepeat``). Order of the checks: dedup window, then errors (always
shown, except that past the first few per job per minute they are recorded as
``MERGED`` and counted in one summary popup, see :mod:`peft_notify.engine.floods`),
the user's popup kinds (``FILTERED``), DND / pause (``WITHHELD_DND`` /
``PAUSED``), the job's token bucket (``RATE_LIMITED``).

Badge: the count of errors, completions and warnings shown or withheld since
the last acknowledge (milestones and summaries are routine and do not count).
"""

from __future__ import annotations

from typing import Final

from peft_notify.engine.actions import Action, Attention, MergeRepeat, Notify, PlaySound, Record, SetBadge
from peft_notify.engine.config import EngineConfig
from peft_notify.engine.dnd import QuietPeriods, Withheld
from peft_notify.engine.floods import FLOOD_KEY, ErrorFloods
from peft_notify.engine.limits import DedupWindow, TokenBucket
from peft_notify.ports import DeliveryStatus
from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel

__all__ = ["BADGE_KINDS", "SOUNDS", "Gate"]

BADGE_KINDS: Final = frozenset({NotificationType.ERROR, NotificationType.COMPLETION, NotificationType.WARNING})
# What a trial of a group does not pop up by default (its group's one summary does).
MUTABLE_KINDS: Final = frozenset({NotificationType.PROGRESS, NotificationType.COMPLETION})
# freedesktop sound-theme names per kind
SOUNDS: Final = {
    NotificationType.COMPLETION: "complete",
    NotificationType.ERROR: "dialog-error",
    NotificationType.WARNING: "dialog-warning",
    NotificationType.PROGRESS: "message-new-instant",
}


class Gate:
    """Decides how one notification is delivered; owns the dedup window and the badge count."""

    def __init__(self, config: EngineConfig, quiet: QuietPeriods) -> None:
        self.config = config
        self.quiet = quiet
        self.dedup = DedupWindow(config.dedup_window_s)
        self.floods = ErrorFloods(config.error_popups_per_minute)
        self.badge = 0
        self.muted: set[str] = set()  # jobs whose milestones and completion are recorded, not shown

    def deliver(
        self,
        job_id: str,
        job_name: str,
        event: NotificationEvent,
        key: str,
        now: float,
        *,
        seq: int | None = None,
        bucket: TokenBucket | None = None,
        dedup: bool = True,
        filtered: bool = True,
    ) -> list[Action]:
        """The actions for ``event``: exactly one of Notify / Record / MergeRepeat, then extras.

        ``bucket``: rate-limit against it (``None``: exempt). ``dedup``: merge repeats
        of ``key`` within the window. ``filtered``: subject to ``popup_kinds``.
        """
        kind = NotificationType(event.type)
        if dedup:
            repeat = self.dedup.check(job_id, key, now)
            if repeat is not None:
                return [MergeRepeat(job_id=job_id, key=key, repeat=repeat, event=event)]
        if kind is NotificationType.ERROR and not self.floods.admit(job_id, now):
            merged: list[Action] = [Record(job_id=job_id, event=event, key=key, reason=DeliveryStatus.MERGED, seq=seq)]
            summary = self.floods.merge(job_id, job_name, event, now)
            return merged if summary is None else merged + self._show(job_id, summary, FLOOD_KEY, None)
        if kind is not NotificationType.ERROR:
            muted = job_id in self.muted and kind in MUTABLE_KINDS  # a trial of a group (engine/groups.py)
            reason = DeliveryStatus.FILTERED if muted else self._reason(kind, event, now, bucket, filtered)
            if reason is not None:
                actions: list[Action] = [Record(job_id=job_id, event=event, key=key, reason=reason, seq=seq)]
                if reason in (DeliveryStatus.WITHHELD_DND, DeliveryStatus.PAUSED):
                    self.quiet.withhold(Withheld(job_id, job_name, kind, event.milestone, reason))
                    actions += self._count(kind)
                return actions
        return self._show(job_id, event, key, seq)

    def flush_floods(self, now: float) -> list[Action]:
        """Summary popups of error floods whose minute has passed (call from the engine's tick)."""
        actions: list[Action] = []
        for job_id, _name, summary in self.floods.due(now):
            actions += self._show(job_id, summary, FLOOD_KEY, None)
        return actions

    def _show(self, job_id: str, event: NotificationEvent, key: str, seq: int | None) -> list[Action]:
        kind = NotificationType(event.type)
        return [Notify(job_id=job_id, event=event, key=key, seq=seq), *self._extras(job_id, kind, event)]

    def acknowledge(self) -> list[Action]:
        """The user has seen everything: the badge goes to 0."""
        self.badge = 0
        return [SetBadge(0)]

    def _reason(
        self,
        kind: NotificationType,
        event: NotificationEvent,
        now: float,
        bucket: TokenBucket | None,
        filtered: bool,
    ) -> DeliveryStatus | None:
        if filtered and kind not in self.config.popup_kinds:
            return DeliveryStatus.FILTERED
        if event.respect_dnd:
            quiet = self.quiet.reason(now)
            if quiet is not None:
                return quiet
        if bucket is not None and not bucket.take(now):
            return DeliveryStatus.RATE_LIMITED
        return None

    def _extras(self, job_id: str, kind: NotificationType, event: NotificationEvent) -> list[Action]:
        extras: list[Action] = []
        if event.sound and self.config.sounds:
            extras.append(PlaySound(name=SOUNDS[kind], job_id=job_id))
        if kind is NotificationType.COMPLETION:
            extras.append(Attention(critical=False))
        elif kind is NotificationType.ERROR:
            extras.append(Attention(critical=event.urgency == UrgencyLevel.CRITICAL))
        return extras + self._count(kind)

    def _count(self, kind: NotificationType) -> list[Action]:
        if kind not in BADGE_KINDS:
            return []
        self.badge += 1
        return [SetBadge(self.badge)]
