"""Per-channel delivery policy: level filter, dedup, rate limit + digests, retries. Sans-I/O.

One :class:`ChannelPolicy` per channel. The I/O layer (:mod:`peft_notify.channels.hub`)
calls, with ``now`` from its clock:

    deliveries = policy.offer(event, now)         # an event happened
    out = policy.take(now)                        # what to send now (None: nothing / wait)
    deliveries += policy.on_result(out.id, result, now)   # what the service answered
    policy.next_due()                             # when to call take() again

Rules: a channel sends an event whose kind is at or above its level (errors always); the
same (job, kind, key) within the dedup window updates instead of re-sending, unless the user
read it (:meth:`mark_read`); at most ``rate`` sends per ``per_s`` seconds, errors first,
and when more events wait than the budget allows the last slot carries one digest of all of
them (never dropped); a failed send is retried after :func:`backoff` delays, or after the
service's ``Retry-After``, then every event in it is FAILED with the reason and the channel's
:attr:`state` says so until a send succeeds again.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum

from peft_notify.channels.events import ChannelEvent, Delivery, Outcome, Outgoing, SendResult, severity
from peft_notify.channels.levels import DEFAULT_LEVEL, Level, passes
from peft_notify.channels.message import digest, render
from peft_notify.wire import NotificationType

__all__ = ["ChannelPolicy", "ChannelState", "PolicyConfig", "backoff"]

_ATTACH_KINDS = frozenset({NotificationType.COMPLETION, NotificationType.ERROR})


class ChannelState(Enum):
    """Health of a channel, shown to the user."""

    OK = "ok"
    RETRYING = "retrying"  # a send failed; waiting to try it again
    FAILING = "failing"  # the last message failed for good; see ``last_error``


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Tuning of one channel; all fields defaulted (10 messages a minute, 4 attempts)."""

    level: Level = DEFAULT_LEVEL
    rate: int = 10
    per_s: float = 60.0
    dedup_window_s: float = 60.0
    max_attempts: int = 4
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 60.0
    max_retry_after_s: float = 900.0  # a service asking for a longer wait fails the message
    max_backlog: int = 10_000  # events waiting beyond this fail ("backlog full"): bounded memory


def backoff(base_s: float = 2.0, cap_s: float = 60.0) -> Iterator[float]:
    """Delays between attempts: base, 2·base, 4·base, … capped at ``cap_s``. Infinite."""
    delay = base_s
    while True:
        yield min(delay, cap_s)
        delay *= 2


@dataclass(slots=True)
class _Seen:
    last_at: float
    read: bool = False


class ChannelPolicy:
    """Decides what one channel sends and when; see the module docstring."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self.state = ChannelState.OK
        self.last_error = ""
        self._queue: list[ChannelEvent] = []
        self._sends: deque[float] = deque()
        self._inflight: Outgoing | None = None
        self._retry: Outgoing | None = None
        self._retry_at = 0.0
        self._seen: dict[tuple[str, NotificationType, str], _Seen] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ inputs

    def offer(self, event: ChannelEvent, now: float) -> list[Delivery]:
        """Take one event. Returns deliveries decided at once (UPDATED repeats, FAILED backlog)."""
        if not passes(event.kind, self.config.level):
            return []
        seen = self._seen.get(event.ident)
        window = self.config.dedup_window_s
        if seen is not None and not seen.read and 0 <= now - seen.last_at < window:
            seen.last_at = now
            for i, queued in enumerate(self._queue):
                if queued.ident == event.ident:
                    self._queue[i] = event  # not sent yet: the newer copy replaces it
                    return [Delivery(queued, Outcome.UPDATED, "replaced by a newer copy before sending")]
            return [Delivery(event, Outcome.UPDATED, "same event already sent within the dedup window")]
        self._seen[event.ident] = _Seen(now)
        self._forget_old(now)
        self._queue.append(event)
        if len(self._queue) > self.config.max_backlog:
            victim = min(range(len(self._queue)), key=lambda i: (severity(self._queue[i].kind), i))
            dropped = self._queue.pop(victim)
            return [Delivery(dropped, Outcome.FAILED, f"channel backlog full ({self.config.max_backlog} waiting)")]
        return []

    def mark_read(self, job_id: str, kind: NotificationType, key: str) -> None:
        """The user read this event: a repeat of it counts as new."""
        seen = self._seen.get((job_id, kind, key))
        if seen is not None:
            seen.read = True

    def take(self, now: float) -> Outgoing | None:
        """The message to send now, or ``None``. At most one is in flight per channel."""
        if self._inflight is not None:
            return None
        budget = self._budget(now)
        if budget <= 0:
            return None
        if self._retry is not None:
            if now < self._retry_at:
                return None
            out = replace(self._retry, attempt=self._retry.attempt + 1)
            self._retry = None
        elif not self._queue:
            return None
        elif len(self._queue) > budget == 1:
            out = self._digest()
        else:
            out = self._single()
        self._sends.append(now)
        self._inflight = out
        return out

    def on_result(self, out_id: int, result: SendResult, now: float) -> list[Delivery]:
        """What the service answered for message ``out_id``. Returns the deliveries it settles."""
        out = self._inflight
        if out is None or out.id != out_id:
            return []
        self._inflight = None
        if result.ok:
            self.state = ChannelState.OK
            self.last_error = ""
            if out.digest:
                reason = f"in a digest of {len(out.events)}"
                return [Delivery(e, Outcome.MERGED, reason, out.attempt) for e in out.events]
            return [Delivery(e, Outcome.SENT, "", out.attempt) for e in out.events]
        reason = result.summary()
        delay = self._retry_delay(out.attempt, result)
        if delay is None:
            self.state = ChannelState.FAILING
            self.last_error = reason
            return [Delivery(e, Outcome.FAILED, reason, out.attempt) for e in out.events]
        self.state = ChannelState.RETRYING
        self.last_error = reason
        self._retry = out
        self._retry_at = now + delay
        return []

    # ------------------------------------------------------------------ queries

    def next_due(self) -> float | None:
        """When :meth:`take` may next return a message (``None``: only after an offer or a result)."""
        if self._inflight is not None:
            return None
        free_at = self._sends[0] + self.config.per_s if len(self._sends) >= self.config.rate else -math.inf
        if self._retry is not None:
            return max(self._retry_at, free_at)
        if self._queue:
            return free_at
        return None

    @property
    def pending(self) -> int:
        """Events not yet settled (queued, in flight or waiting for a retry)."""
        held = [self._inflight, self._retry]
        return len(self._queue) + sum(len(o.events) for o in held if o is not None)

    # ------------------------------------------------------------------ internals

    def _budget(self, now: float) -> int:
        # Same expression as next_due(): (t + per_s) - t can round below per_s, and then the
        # timer would fire forever without freeing the slot (found by the property test).
        while self._sends and self._sends[0] + self.config.per_s <= now:
            self._sends.popleft()
        return self.config.rate - len(self._sends)

    def _single(self) -> Outgoing:
        # Errors jump the queue; everything else keeps its order (a milestone before the completion).
        idx = next((i for i, e in enumerate(self._queue) if e.kind is NotificationType.ERROR), 0)
        event = self._queue.pop(idx)
        title, body = render(event)
        chart = event.chart if event.kind in _ATTACH_KINDS else None
        return Outgoing(next(self._ids), title, body, event.kind, (event,), chart)

    def _digest(self) -> Outgoing:
        events = tuple(sorted(self._queue, key=lambda e: e.kind is not NotificationType.ERROR))
        self._queue.clear()
        title, body = digest(events)
        return Outgoing(next(self._ids), title, body, events[0].kind, events)

    def _retry_delay(self, attempt: int, result: SendResult) -> float | None:
        if result.permanent or attempt >= self.config.max_attempts:
            return None
        wait = result.retry_after_s
        if wait is not None:
            return wait if 0 <= wait <= self.config.max_retry_after_s else None
        delays = backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        return next(itertools.islice(delays, attempt - 1, None))

    def _forget_old(self, now: float) -> None:
        if len(self._seen) < 4096:
            return
        window = self.config.dedup_window_s
        self._seen = {k: s for k, s in self._seen.items() if 0 <= now - s.last_at < window}
