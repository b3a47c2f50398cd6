"""The desktop's notification channels (issue 13): settings → channels, engine actions → sends.

Build one :class:`DesktopChannels` from ``Settings.channels`` when the app (or ``watch``)
starts; feed it every envelope (:meth:`~DesktopChannels.observe`, for loss curves and eval
metrics) and every batch of engine actions (:meth:`~DesktopChannels.decided`). Events of jobs
whose hello says they deliver to channels themselves are skipped (nothing arrives twice).
Each channel's delivery is recorded on the entry's history row (sent / failed + reason /
merged into a digest / updated). Never raises; a channel whose secret cannot be read is
left out and said in :attr:`DesktopChannels.problems` (one line each, without the URL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from peft_notify.channels import ChannelFeed, ChannelHub, ChannelSpec, parse_level
from peft_notify.channels.events import Delivery, Outcome
from peft_notify.channels.hub import Channel
from peft_notify.channels.secrets import SecretError, SecretStore
from peft_notify.desktop.settings import ChannelSetting
from peft_notify.engine import Action, JobView
from peft_notify.ports import HistoryEntry
from peft_notify.wire import Envelope

__all__ = ["ChannelHistory", "DesktopChannels", "resolve"]

log = logging.getLogger(__name__)


@runtime_checkable
class ChannelHistory(Protocol):
    """What :class:`DesktopChannels` needs of the history (SqliteHistoryStore has it)."""

    def latest_id(self, job_id: str, key: str) -> int | None: ...

    def get(self, entry_id: int) -> HistoryEntry | None: ...

    def set_channel(self, entry_id: int, channel: str, outcome: str, *, reason: str = "", ts: float) -> None: ...


def resolve(
    settings: Iterable[ChannelSetting], store: SecretStore | None = None
) -> tuple[list[ChannelSpec], list[str]]:
    """Enabled channel settings → specs (secrets read from the keyring), and one line per problem."""
    store = store or SecretStore()
    specs: list[ChannelSpec] = []
    problems: list[str] = []
    for setting in settings:
        if not setting.enabled:
            continue
        name = setting.display or "a channel"
        try:
            url = store.get(setting.secret)
            level = parse_level(setting.level)
        except (SecretError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        specs.append(ChannelSpec(url=url, level=level, jobs=setting.jobs, name=setting.display))
    return specs, problems


class DesktopChannels:
    """The app's channels; see the module docstring. Call from one thread (the app's loop)."""

    def __init__(
        self,
        specs: Sequence[ChannelSpec],
        *,
        problems: Sequence[str] = (),
        history: ChannelHistory | None = None,
        clock: Callable[[], float] = time.time,
        post: Callable[[Callable[[], None]], object] | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        """``post(fn)`` runs ``fn`` on the history's thread (``loop.call_soon_threadsafe``): deliveries
        are reported on channel threads and SQLite connections stay on the thread that made them.
        ``on_problem(line)`` (run through ``post``) hears when a channel fails for good."""
        self.problems = list(problems)
        for line in self.problems:
            log.warning("notification channel left out: %s", line)
        self.history = history
        self.clock = clock
        self.post = post
        self.on_problem = on_problem
        self._failing: set[str] = set()  # channels whose last message failed for good
        self.feed = ChannelFeed(skip_self_delivering=True)
        self.hub = ChannelHub(specs, self._on_delivery)

    @classmethod
    def from_settings(
        cls,
        settings: Sequence[ChannelSetting],
        *,
        store: SecretStore | None = None,
        history: ChannelHistory | None = None,
        post: Callable[[Callable[[], None]], object] | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> DesktopChannels:
        """The channels of ``Settings.channels`` (secrets read from the keyring; problems kept)."""
        specs, problems = resolve(settings, store)
        return cls(specs, problems=problems, history=history, post=post, on_problem=on_problem)

    def observe(self, envelope: Envelope, job_id: str | None = None) -> None:
        """One envelope fed to the engine (``job_id``: the engine's key for its job)."""
        try:
            self.feed.observe(envelope, job_id)
        except Exception:
            log.exception("channels: could not note an envelope")

    def decided(self, actions: Sequence[Action], view: Callable[[str], JobView | None]) -> None:
        """The engine's actions for one envelope or tick; ``view`` is ``engine.job``."""
        if not self.hub.channels:
            return
        try:
            for event in self.feed.events(actions, view, self.clock()):
                if self._read_in_history(event.job_id, event.key):
                    # The seed's rule: a repeat of an event the user has read counts as new.
                    self.hub.mark_read(event.job_id, event.kind, event.key)
                self.hub.offer(event)
        except Exception:
            log.exception("channels: could not hand events to the channels")

    def _read_in_history(self, job_id: str, key: str) -> bool:
        """Whether the user read the newest history entry of (job, key); called on the history's thread.

        The monitor reports a decision before its performer records the new entry, so the newest
        entry here is the previous occurrence: the one the user may have read.
        """
        if self.history is None:
            return False
        try:
            entry_id = self.history.latest_id(job_id, key)
            entry = None if entry_id is None else self.history.get(entry_id)
        except Exception:
            return False
        return entry is not None and entry.read

    def close(self, drain_s: float = 5.0) -> None:
        self.hub.close(drain_s)

    def _on_delivery(self, channel: Channel, delivery: Delivery) -> None:
        """Channel worker thread: have the outcome written on the entry's history row (and a
        failure said once per failing spell: the channel's clear failure state)."""
        failing = delivery.outcome is Outcome.FAILED and channel.display not in self._failing
        if delivery.outcome is Outcome.FAILED:
            self._failing.add(channel.display)
        elif delivery.outcome in (Outcome.SENT, Outcome.MERGED):
            self._failing.discard(channel.display)
        if self.history is None and not (failing and self.on_problem):
            return
        display, ts = channel.display, self.clock()
        problem = f"Channel {display} is failing: {delivery.reason}" if failing else None

        def write() -> None:
            if self.history is not None:
                self._record(display, delivery, ts)
            if problem is not None and self.on_problem is not None:
                self.on_problem(problem)

        if self.post is None:
            write()
            return
        try:
            self.post(write)
        except RuntimeError:  # the loop is closed: the app is quitting
            log.debug("channels: delivery not recorded (shutting down)")

    def _record(self, display: str, delivery: Delivery, ts: float) -> None:
        assert self.history is not None
        event = delivery.event
        try:
            entry = self.history.latest_id(event.job_id, event.key)
            if entry is not None:
                self.history.set_channel(entry, display, delivery.outcome.value, reason=delivery.reason, ts=ts)
        except Exception:  # history trouble is reported by the dispatcher; never crash a channel
            log.debug("channels: could not record a delivery in history", exc_info=True)
