"""Where training threads leave their reports for the server's loop, and what both sides share.

:class:`Mailbox` holds one job's reports between the training thread (``put`` /
``set_latest``: O(1), never blocking) and the loop (``take``). :class:`RunState` is the
job's current run (id, start, total, finished). :class:`ActionRegistry` holds the
callbacks for client actions. :class:`Waker` is all a handle knows of whoever drives the
mailbox: two calls that say "there is something to take". No sockets, no event loop.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from peft_notify import wire
from peft_notify.emitter.reports import Ranked, RawProgress

__all__ = ["ActionCallback", "ActionRegistry", "Mailbox", "Report", "RunState", "Waker"]

log = logging.getLogger(__name__)

ActionCallback = Callable[[wire.ActionRequest], None]
Report: TypeAlias = wire.Body | Ranked | RawProgress  # RawProgress: the latest plain progress, unchecked


class Waker(Protocol):
    """Told by a handle that its mailbox has something to take (called on training threads)."""

    def wake_progress(self, job_id: str) -> None:
        """A new latest progress is waiting (may be rate limited)."""

    def wake_now(self, job_id: str) -> None:
        """A report that is never coalesced is waiting: take it soon."""


class Mailbox:
    """One job's reports in order; progress is coalesced (latest wins) unless it carries metrics.

    The coalesced progress and resource sample sit in a dict, replaced and taken with single
    dict operations (atomic in CPython): the per-step :meth:`set_latest` takes no lock and can
    never lose a value to a concurrent :meth:`take`. The queue of reports that are never dropped
    has a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, RawProgress | wire.Resource] = {}  # _PROGRESS / _LOGGED / _RESOURCE: not taken yet
        self._pending: deque[Report] = deque()
        self._taken: RawProgress | None = None  # the last latest taken (never sent twice as "logged")

    def set_latest(self, progress: RawProgress) -> None:
        """Replace the coalesced progress (training thread; its arguments, checked when taken).

        A progress with a loss is also kept in its own slot, so the next plain step (a Trainer
        reports every step, the loss only at its logging steps) does not coalesce the loss away:
        the flush sends the newest logged one, then the latest step.
        """
        latest = self._latest
        latest[_PROGRESS] = progress  # first: a take between the two stores sends it as the latest
        if progress[3] is not None:
            latest[_LOGGED] = progress

    def set_resource(self, sample: wire.Resource) -> None:
        """Replace the coalesced resource sample (sampler thread); sent with the next progress flush."""
        self._latest[_RESOURCE] = sample

    def peek_latest(self) -> RawProgress | None:
        """The coalesced progress not yet taken (any thread; a racy read: it may be replaced meanwhile)."""
        latest = self._latest.get(_PROGRESS)
        return latest if isinstance(latest, tuple) else None

    def put(self, report: Report) -> None:
        """Queue a report that is never dropped; the progress reported before it goes first."""
        with self._lock:
            self._take_latest(self._pending)  # likewise the sample taken before it
            self._pending.append(report)

    def put_superseding(self, progress: wire.Progress) -> None:
        """Queue a progress that must not be coalesced away (an evaluation); the older latest is dropped."""
        with self._lock:
            logged = self._latest.pop(_LOGGED, None)
            self._latest.pop(_PROGRESS, None)
            if isinstance(logged, tuple) and logged is not self._taken:
                self._pending.append(logged)  # a logged loss before it still goes out, in order
            self._pending.append(progress)

    def take(self, *, include_latest: bool) -> list[Report]:
        """Everything queued, in order, and the latest progress too when ``include_latest`` (loop)."""
        with self._lock:
            items: list[Report] = list(self._pending)
            self._pending.clear()
            if include_latest:
                self._take_latest(items)
        return items

    def _take_latest(self, into: list[Report] | deque[Report]) -> None:
        logged = self._latest.pop(_LOGGED, None)  # before the latest (see set_latest's order)
        progress = self._latest.pop(_PROGRESS, None)
        if isinstance(logged, tuple) and logged is not progress and logged is not self._taken:
            into.append(logged)  # the newest logged loss, older than the latest step
        if isinstance(progress, tuple):
            into.append(progress)
            self._taken = progress
        sample = self._latest.pop(_RESOURCE, None)
        if sample is not None:
            into.append(sample)

    def drop_latest(self) -> None:
        """Forget the coalesced progress (a new run starts)."""
        self._latest.pop(_PROGRESS, None)
        self._latest.pop(_LOGGED, None)


_PROGRESS: Final = "progress"
_RESOURCE: Final = "resource"
_LOGGED: Final = "logged"  # the newest progress with a loss, not taken yet


@dataclass(eq=False)
class RunState:
    """The job's current run; a relaunch (``JobServer.new_run``) starts a new one."""

    run_id: str
    started_at: float
    total_steps: int | None
    finished: bool = False
    resources: tuple[str, ...] = ()  # what the resource sampler watches, for hello (docs/resources.md)
    resource_notes: tuple[str, ...] = ()  # and what it does not, with why

    def restart(self, run_id: str, started_at: float, total_steps: int | None) -> None:
        self.run_id, self.started_at, self.total_steps, self.finished = run_id, started_at, total_steps, False


class ActionRegistry:
    """Callbacks for client actions of one job; :meth:`dispatch` runs them (on a worker thread)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._lock = threading.Lock()
        self._callbacks: list[ActionCallback] = []

    def add(self, callback: ActionCallback) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def dispatch(self, action: wire.ActionRequest) -> None:
        """Call every callback with ``action``; a callback's exception is logged, never raised."""
        with self._lock:
            callbacks = list(self._callbacks)
        if not callbacks:
            log.info("job %s: action %r received, but no callback is registered", self.job_id, action.action)
        for callback in callbacks:
            try:
                callback(action)
            except Exception:
                log.exception("job %s: action callback %r failed", self.job_id, callback)
