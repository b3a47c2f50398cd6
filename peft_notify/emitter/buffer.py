"""Per-job event log: sequence numbers, a bounded replay buffer and the current snapshot.

Used only on the server's event-loop thread (single writer, no locks). Progress and
the important events (notifications, status) live in two bounded rings so a flood of
progress never evicts an error: important events are evicted last.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from peft_notify import wire

__all__ = ["EventLog", "Replay", "Tap"]

log = logging.getLogger(__name__)

Tap = Callable[[wire.Envelope], None]
"""Called with every envelope appended, on the server's loop thread: must be O(1) and never block."""


@dataclass(frozen=True, slots=True)
class Replay:
    """What a client resuming with ``since`` gets: the frames, and whether some were lost."""

    frames: list[tuple[int, str]]
    gap: bool


@dataclass
class EventLog:
    """Sequence-numbered, encoded events of one job, with bounded memory."""

    job_id: str
    progress_capacity: int = 256
    important_capacity: int = 1024
    last_seq: int = 0
    run_start_seq: int = 0
    evicted: int = 0
    snapshot: wire.Progress | None = None
    state: wire.JobState = wire.JobState.RUNNING
    notifications: deque[wire.NotificationEvent] = field(default_factory=lambda: deque(maxlen=1000))
    taps: list[Tap] = field(default_factory=list)  # e.g. the job's notification channels (issue 13)
    _progress: deque[tuple[int, str]] = field(init=False)
    _important: deque[tuple[int, str]] = field(init=False)
    _evicted_max: int = 0

    def __post_init__(self) -> None:
        self._progress = deque()
        self._important = deque()

    def append(self, body: wire.Body, ts: float | None = None) -> tuple[int, str]:
        """Give ``body`` the next seq, encode it, keep it for replay; returns (seq, frame).

        Raises ``ValueError`` when the body cannot be encoded (non-finite numbers).
        """
        kind = _kind(body)
        seq = self.last_seq + 1
        env = wire.Envelope(type=kind, data=body, seq=seq, job_id=self.job_id, ts=time.time() if ts is None else ts)
        frame = wire.encode(env)
        self.last_seq = seq
        if isinstance(body, wire.Progress):
            self.snapshot = body
            self._push(self._progress, self.progress_capacity, seq, frame)
        elif isinstance(body, wire.Resource):  # samples are evicted like progress, never before an error
            self._push(self._progress, self.progress_capacity, seq, frame)
        else:
            if isinstance(body, wire.Status):
                self.state = body.state
            elif isinstance(body, wire.NotificationEvent):
                self.notifications.append(body)
            self._push(self._important, self.important_capacity, seq, frame)
        for tap in self.taps:
            try:
                tap(env)
            except Exception:  # an observer must never break serving the job
                log.exception("job %s: event tap %r failed", self.job_id, tap)
        return seq, frame

    def _push(self, ring: deque[tuple[int, str]], capacity: int, seq: int, frame: str) -> None:
        ring.append((seq, frame))
        while len(ring) > capacity:
            old_seq, _ = ring.popleft()
            self.evicted += 1
            self._evicted_max = max(self._evicted_max, old_seq)

    def new_run(self, start: wire.Progress | None = None) -> None:
        """Start a new run of the job: fresh snapshot and state; older frames stay for laggards.

        Clients resuming from before :attr:`run_start_seq` only get the new run's events.
        """
        self.run_start_seq = self.last_seq
        self.snapshot = start
        self.state = wire.JobState.RUNNING

    def after(self, since: int) -> Replay:
        """Frames with seq > ``since`` in order; ``gap`` when evicted ones are among them."""
        frames = [item for item in self._progress if item[0] > since]
        frames += [item for item in self._important if item[0] > since]
        frames.sort(key=lambda item: item[0])
        return Replay(frames=frames, gap=since < self._evicted_max)

    def frames_after(self, since: int) -> list[tuple[int, str]]:
        """Live path: what a connected subscriber at ``since`` still has to send."""
        if since >= self.last_seq:
            return []
        return self.after(since).frames


def _kind(body: wire.Body) -> str:
    if isinstance(body, wire.Progress):
        return wire.MessageType.PROGRESS.value
    if isinstance(body, wire.NotificationEvent):
        return wire.MessageType.NOTIFICATION.value
    if isinstance(body, wire.Status):
        return wire.MessageType.STATUS.value
    if isinstance(body, wire.Hello):
        return wire.MessageType.HELLO.value
    if isinstance(body, wire.Resource):
        return wire.MessageType.RESOURCE.value
    raise TypeError(f"cannot send a {type(body).__name__}")
