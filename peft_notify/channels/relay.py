"""From the notification engine to the channels: :class:`ChannelFeed` and :class:`TrainingRelay`.

:class:`ChannelFeed` (pure, one thread) remembers each job's loss curve and last metrics from
the envelopes it :meth:`~ChannelFeed.observe`\\ s, and turns the engine's ``Notify`` /
``Record`` / ``MergeRepeat`` actions into :class:`ChannelEvent`\\ s — the desktop side calls it
with its own engine's actions. Popup-only reasons (Do Not Disturb, the popup rate limit, the
popup level filter) do not stop a channel: channels have their own level and rate limit.

:class:`TrainingRelay` is the training side's: a thread with its own :class:`Engine` fed with
the job server's envelopes (:meth:`TrainingRelay.observe` is O(1) and never blocks), so the
messages say exactly what the desktop would, and a :class:`ChannelHub` that sends them.
A job served with a relay advertises :data:`CAPABILITY` in its hello, and desktop channels
skip it (nothing arrives twice).
"""

from __future__ import annotations

import logging
import math
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from peft_notify.channels.chart import loss_png
from peft_notify.channels.events import ChannelEvent
from peft_notify.channels.hub import ChannelHub, ChannelSpec, DeliveryCallback
from peft_notify.engine import Action, Engine, EngineConfig, JobView, MergeRepeat, Notify, Record
from peft_notify.engine.dnd import SUMMARY_KEY
from peft_notify.engine.floods import FLOOD_KEY
from peft_notify.ports import DeliveryStatus
from peft_notify.wire import Envelope, Hello, NotificationType, Progress

__all__ = ["CAPABILITY", "ChannelFeed", "TrainingRelay"]

log = logging.getLogger(__name__)

CAPABILITY: Final = "channels"  # hello capability: "this job delivers to notification channels itself"
MAX_POINTS: Final = 512  # loss points kept per job (halved by decimation when full)
_SKIP: Final = frozenset({DeliveryStatus.DUPLICATE, DeliveryStatus.PAUSED})
# Popup summaries (after Do Not Disturb; of an error flood): a channel has the events themselves.
_POPUP_SUMMARIES: Final = frozenset({SUMMARY_KEY, FLOOD_KEY})
_TICK: Final = object()  # the relay woke for the engine's timer
_CHART_KINDS: Final = frozenset({NotificationType.COMPLETION, NotificationType.ERROR})


@dataclass(slots=True)
class _Curve:
    points: list[tuple[float, float]] = field(default_factory=list)
    stride: int = 1
    seen: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, progress: Progress) -> None:
        if progress.metrics:
            self.metrics.update(progress.metrics)
        loss = progress.loss
        if loss is None or not math.isfinite(loss):
            return
        self.seen += 1
        if self.seen % self.stride:
            return
        self.points.append((float(progress.current_step), loss))
        if len(self.points) >= MAX_POINTS:  # bounded memory whatever the run length
            self.points = self.points[::2]
            self.stride *= 2


class ChannelFeed:
    """Envelopes and engine actions in, channel events out. Not thread-safe (one caller thread)."""

    def __init__(self, *, charts: bool = True, skip_self_delivering: bool = False) -> None:
        self.charts = charts
        self.skip_self_delivering = skip_self_delivering
        self._curves: dict[str, _Curve] = {}

    def observe(self, envelope: Envelope, job_id: str | None = None) -> None:
        """Note what the messages need from one envelope (loss curve, last eval metrics)."""
        body = envelope.data
        jid = job_id or envelope.job_id  # the caller's key wins (the desktop keys jobs by connection)
        if jid is None:
            return
        if isinstance(body, Hello) and body.replay_gap is False and body.progress is None:
            self._curves.pop(jid, None)  # a fresh run: a new curve
        elif isinstance(body, Progress):
            self._curves.setdefault(jid, _Curve()).add(body)

    def events(
        self, actions: Iterable[Action], view: Callable[[str], JobView | None], now: float
    ) -> list[ChannelEvent]:
        """The channel events among ``actions``; ``view`` is ``engine.job``, ``now`` wall time."""
        out: list[ChannelEvent] = []
        for action in actions:
            if isinstance(action, Record) and action.reason in _SKIP:
                continue
            if not isinstance(action, (Notify, Record, MergeRepeat)) or action.key in _POPUP_SUMMARIES:
                continue
            job = view(action.job_id)
            if self.skip_self_delivering and job is not None and CAPABILITY in job.capabilities:
                continue
            out.append(self._event(action, job, now))
        return out

    def _event(self, action: Notify | Record | MergeRepeat, job: JobView | None, now: float) -> ChannelEvent:
        ev = action.event
        curve = self._curves.get(action.job_id)
        chart = None
        if self.charts and curve is not None and ev.type in _CHART_KINDS:
            chart = loss_png(curve.points)
        started = job.started_at if job is not None else None
        return ChannelEvent(
            job_id=action.job_id,
            kind=ev.type,
            key=action.key,
            title=ev.title,
            message=ev.message,
            job_name=job.name if job is not None else "",
            host=job.host if job is not None else "",
            duration_s=(now - started) if started is not None and now >= started else None,
            step=job.current_step if job is not None else None,
            total_steps=job.total_steps if job is not None else None,
            loss=job.loss if job is not None else None,
            metrics=dict(curve.metrics) if curve is not None else {},
            error_type=ev.error_type,
            chart=chart,
        )


class TrainingRelay:
    """The training side's channels: its own engine on its own thread; see the module docstring."""

    def __init__(
        self,
        specs: Sequence[ChannelSpec],
        on_delivery: DeliveryCallback | None = None,
        *,
        host: str | None = None,
        drain_s: float = 15.0,
    ) -> None:
        self.hub = ChannelHub(specs, on_delivery)
        self.host = host if host is not None else socket.gethostname()
        self.drain_s = drain_s
        self._engine = Engine(EngineConfig(respect_dnd=False, rate_capacity=1_000_000, sounds=False))
        self._feed = ChannelFeed()
        self._inbox: queue.SimpleQueue[Envelope | None] = queue.SimpleQueue()
        self._done = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="peft-notify-channel-relay", daemon=True)
        self._thread.start()

    def add_job(self, job_id: str, name: str, run_id: str, *, started_at: float, total_steps: int | None) -> None:
        """A job this process serves (its hello: the engine's first message about it)."""
        hello = Hello(name=name, run_id=run_id, host=self.host, started_at=started_at, total_steps=total_steps)
        self.observe(Envelope(type="hello", data=hello, seq=None, job_id=job_id, ts=time.time()))

    def observe(self, envelope: Envelope) -> None:
        """One envelope the job server sent. O(1), never blocks; call from any thread."""
        if not self._closed:
            self._inbox.put(envelope)

    def close(self, drain_s: float | None = None) -> bool:
        """Send what is pending (waiting up to ``drain_s``), then stop. Returns whether all settled."""
        if self._closed:
            return True
        self._closed = True
        wait = self.drain_s if drain_s is None else drain_s
        deadline = time.monotonic() + wait
        self._inbox.put(None)
        self._thread.join(wait)
        return self.hub.close(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            due = self._engine.next_tick_at()
            timeout = None if due is None else max(0.0, min(60.0, due - time.time()))
            envelope: object
            try:
                envelope = self._inbox.get(timeout=timeout)
            except queue.Empty:
                envelope = _TICK
            try:
                if envelope is None:
                    return
                now = time.time()
                if not isinstance(envelope, Envelope):
                    actions = self._engine.tick(now=now)
                else:
                    self._feed.observe(envelope)
                    actions = self._engine.feed(envelope, now=now)
                for event in self._feed.events(actions, self._engine.job, now):
                    self.hub.offer(event)
            except Exception:  # reporting must never break training
                log.exception("channel relay: could not process a message")
