"""ChannelHub: one worker thread per channel around its policy and sender. I/O shell.

Create a hub with the channels' specs and an ``on_delivery(channel, delivery)`` callback,
then :meth:`ChannelHub.offer` events from any thread: it is O(channels), never blocks and
never raises. Each channel has its own thread, so a channel whose service hangs (each send
stops waiting after its timeout) or fails never delays another, the training loop or the UI.
:meth:`ChannelHub.close` waits (bounded) for what is still pending — call it when the job ends
so the completion or error goes out before the process exits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from peft_notify.channels.events import ChannelEvent, Delivery, Outcome, Outgoing, SendResult
from peft_notify.channels.levels import DEFAULT_LEVEL, Level
from peft_notify.channels.policy import ChannelPolicy, PolicyConfig
from peft_notify.channels.sender import DEFAULT_TIMEOUT_S, AppriseSender, InvalidChannel, privacy_url
from peft_notify.wire import NotificationType

__all__ = ["Channel", "ChannelHub", "ChannelSpec", "DeliveryCallback"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A configured channel. ``url`` is the secret; show :attr:`display` instead.

    ``jobs`` empty: every job; otherwise only jobs whose id or name is listed.
    """

    url: str = field(repr=False)
    level: Level = DEFAULT_LEVEL
    jobs: tuple[str, ...] = ()
    enabled: bool = True
    name: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S
    rate: int = 10
    per_s: float = 60.0
    max_attempts: int = 4
    backoff_base_s: float = 2.0

    def applies_to(self, event: ChannelEvent) -> bool:
        return self.enabled and (not self.jobs or event.job_id in self.jobs or event.job_name in self.jobs)


class Channel:
    """One channel: its spec, policy, sender and worker thread (started by the hub)."""

    def __init__(self, spec: ChannelSpec, on_delivery: DeliveryCallback, clock: Callable[[], float]) -> None:
        self.spec = spec
        self.display = privacy_url(spec.url)
        self.policy = ChannelPolicy(
            PolicyConfig(
                level=spec.level,
                rate=spec.rate,
                per_s=spec.per_s,
                max_attempts=spec.max_attempts,
                backoff_base_s=spec.backoff_base_s,
            )
        )
        self.error = ""  # set when the URL is unusable: the channel then only records failures
        self.last_result: SendResult | None = None
        self._on_delivery = on_delivery
        self._clock = clock
        self._inbox: queue.SimpleQueue[ChannelEvent | tuple[str, NotificationType, str] | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._queued = 0  # items put but not yet processed by the worker
        self._settled = True  # nothing queued, in flight or waiting for a retry
        self._sender: AppriseSender | None = None
        try:
            self._sender = AppriseSender(spec.url, timeout_s=spec.timeout_s)
        except InvalidChannel as exc:
            self.error = str(exc)
            log.warning("channel %s: %s", self.display, exc)
        self._thread = threading.Thread(target=self._run, name=f"peft-notify-channel {self.display[:40]}", daemon=True)

    @property
    def state(self) -> str:
        return "invalid" if self.error else self.policy.state.value

    def start(self) -> None:
        self._thread.start()

    def put(self, item: ChannelEvent | tuple[str, NotificationType, str] | None) -> None:
        with self._cond:
            self._queued += 1
            self._settled = False
        self._inbox.put(item)

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._settled, timeout)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # never expected; a dead worker must say so rather than vanish
            log.exception("channel %s: worker stopped", self.display)
            with self._cond:
                self._settled = True
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            due = self.policy.next_due()
            wait = None if due is None else max(0.0, due - self._clock())
            items: list[object] = []
            try:
                items.append(self._inbox.get(timeout=wait))
                while True:  # take everything that is waiting: the policy then sees the whole burst
                    items.append(self._inbox.get_nowait())
            except queue.Empty:
                pass
            deliveries: list[Delivery] = []
            for item in items:
                if isinstance(item, ChannelEvent):
                    deliveries += self._offer(item)
                elif isinstance(item, tuple):
                    self.policy.mark_read(*item)
            if None not in items:
                out = self.policy.take(self._clock())
                if out is not None:
                    deliveries += self._send(out)
            self._report(deliveries)
            self._processed(len(items))
            if None in items:
                return

    def _processed(self, count: int) -> None:
        with self._cond:
            self._queued -= count
            self._settled = self._queued == 0 and self.policy.pending == 0
            if self._settled:
                self._cond.notify_all()

    def _offer(self, event: ChannelEvent) -> list[Delivery]:
        if self._sender is None:
            return [Delivery(event, Outcome.FAILED, self.error)]
        return self.policy.offer(event, self._clock())

    def _send(self, out: Outgoing) -> list[Delivery]:
        assert self._sender is not None  # offer() never queues for an invalid channel
        result = self._sender.send(out)
        self.last_result = result
        if not result.ok:
            log.info("channel %s: attempt %d failed: %s", self.display, out.attempt, result.summary())
        return self.policy.on_result(out.id, result, self._clock())

    def _report(self, deliveries: Iterable[Delivery]) -> None:
        for delivery in deliveries:
            if delivery.outcome is Outcome.FAILED:
                log.warning("channel %s: %r not delivered: %s", self.display, delivery.event.title, delivery.reason)
            try:
                self._on_delivery(self, delivery)
            except Exception:
                log.exception("channel %s: delivery callback failed", self.display)


DeliveryCallback = Callable[[Channel, Delivery], None]


def _log_delivery(channel: Channel, delivery: Delivery) -> None:
    log.debug("channel %s: %s %s", channel.display, delivery.outcome.value, delivery.event.title)


class ChannelHub:
    """The channels of one process; see the module docstring."""

    def __init__(
        self,
        specs: Sequence[ChannelSpec],
        on_delivery: DeliveryCallback | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channels = [Channel(spec, on_delivery or _log_delivery, clock) for spec in specs]
        self._closed = False
        for channel in self.channels:
            channel.start()

    def offer(self, event: ChannelEvent) -> None:
        """Hand ``event`` to every channel it applies to. Thread-safe, O(channels), never blocks."""
        if self._closed:
            return
        for channel in self.channels:
            if channel.spec.applies_to(event):
                channel.put(event)

    def mark_read(self, job_id: str, kind: NotificationType, key: str) -> None:
        """The user read this event: a repeat of it counts as new on every channel."""
        for channel in self.channels:
            channel.put((job_id, kind, key))

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s (total) until every channel has settled what it holds."""
        deadline = time.monotonic() + timeout
        return all(c.wait_idle(max(0.0, deadline - time.monotonic())) for c in self.channels)

    def close(self, drain_s: float = 0.0) -> bool:
        """Stop the workers after waiting up to ``drain_s`` for pending sends. Returns whether all settled."""
        if self._closed:
            return True
        settled = self.flush(drain_s) if drain_s > 0 else all(c.policy.pending == 0 for c in self.channels)
        self._closed = True
        for channel in self.channels:
            channel.put(None)
        for channel in self.channels:
            channel.join(0.5)
        return settled

    def states(self) -> list[tuple[str, str, str]]:
        """(privacy URL, state, last error) per channel, for doctor and the UI."""
        return [(c.display, c.state, c.error or c.policy.last_error) for c in self.channels]

    def __enter__(self) -> ChannelHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
