"""JobCore: the socket-free heart of one served job. Reports in, numbered log entries out.

Feed it what a :class:`~peft_notify.emitter.mailbox.Mailbox` held (:meth:`JobCore.feed`)
and the current loop time; it appends to the job's
:class:`~peft_notify.emitter.buffer.EventLog`, holds rank-tagged errors in the
:class:`~peft_notify.emitter.merge.ErrorMerger` (a terminal status waits behind them), and
keeps each notification pre-encoded for the ``/api/notifications`` pages. It says when
the next progress frame may go (:meth:`progress_wait`) and when held errors are due
(:meth:`merge_due`); whoever drives it owns the timers. No sockets, no event loop, no clock.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from peft_notify import wire
from peft_notify.emitter import reports
from peft_notify.emitter.buffer import EventLog
from peft_notify.emitter.mailbox import Report
from peft_notify.emitter.merge import ErrorMerger
from peft_notify.emitter.reports import Ranked
from peft_notify.redact import redact

__all__ = ["NOTES_KEPT", "JobCore"]

log = logging.getLogger(__name__)

NOTES_KEPT = 1000  # notifications kept per job for /api/notifications (the log keeps its own replay rings)


@dataclass(eq=False)
class JobCore:
    """Turns one job's reports into log entries (see the module docstring)."""

    log: EventLog
    merger: ErrorMerger
    progress_interval: float = 0.0
    last_progress_at: float = float("-inf")
    # (seq, the notification as encoded JSON): /api/notifications pages are joined from these.
    encoded_notes: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=NOTES_KEPT))

    def progress_wait(self, now: float) -> float:
        """Seconds until the next progress frame may be sent (<= 0: now)."""
        return self.last_progress_at + self.progress_interval - now

    def feed(self, items: Iterable[Report], now: float) -> None:
        """Log ``items`` in order; rank-tagged errors are held to merge, a status waits behind them."""
        for item in items:
            if isinstance(item, tuple):  # the latest plain progress, as the training thread gave it
                try:
                    self.append(reports.progress_from_raw(item), now)
                except ValueError as exc:
                    log.warning("job %s: dropping an invalid report (%s)", self.log.job_id, redact(str(exc)))
            elif isinstance(item, Ranked):
                self.merger.add(item.rank, item.event, now)
            elif isinstance(item, wire.Status) and self.merger.pending:
                self.merger.defer(item)  # the held error goes out before "failed"
            else:
                self.append(item, now)

    def add_ranked(self, ranked: Ranked, now: float) -> None:
        """An error another rank forwarded: hold it to merge with this job's copies."""
        self.merger.add(ranked.rank, ranked.event, now)

    def merge_due(self) -> float | None:
        """When :meth:`flush_merged` next has something to log."""
        return self.merger.next_due()

    def flush_merged(self, now: float, *, force: bool = False) -> None:
        """Log the merged errors whose window ended (all with ``force``), then what waited behind them."""
        for item in self.merger.take_due(now, force=force):
            self.append(item, now)

    def append(self, body: wire.Body, now: float) -> None:
        """Number and log ``body``; one that cannot be encoded is logged and skipped."""
        try:
            seq, _ = self.log.append(body)
        except (ValueError, TypeError):
            log.warning("job %s: could not encode %r", self.log.job_id, body, exc_info=True)
            return
        if isinstance(body, wire.Progress):
            self.last_progress_at = now
        elif isinstance(body, wire.NotificationEvent):
            data = wire.to_dict(wire.Envelope(type="notification", data=body, v=None))["data"]
            self.encoded_notes.append((seq, json.dumps({"seq": seq, **data}, ensure_ascii=False)))

    def new_run(self, start: wire.Progress | None) -> None:
        """A relaunch: the log starts a new run (older frames stay for clients still catching up)."""
        self.log.new_run(start)

    def notifications_page(self, since: int | None, limit: int) -> str:
        """``/api/notifications`` as a JSON array: the first ``limit`` after ``since``, or the last ``limit``."""
        notes = self.encoded_notes
        if since is None:
            chosen = list(notes)[-limit:] if limit else []
        else:
            chosen = []
            for seq, text in notes:
                if seq > since:
                    chosen.append((seq, text))
                    if len(chosen) >= limit:
                        break
        return "[" + ",".join(text for _, text in chosen) + "]"
