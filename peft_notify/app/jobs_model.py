"""What the window shows about one subscribed job: a plain value per job, plus formatting.

The controller keeps one :class:`JobRow` per subscription (keyed by URL) and updates it from
the engine's ``JobView`` and the monitor's connection events; widgets only read it. No Qt here,
so the formatting is tested without a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from peft_notify.app.resources_view import ResourceHistory
from peft_notify.desktop.curve import Curve
from peft_notify.engine.config import format_eta
from peft_notify.engine.resources import ResourceView
from peft_notify.ports import HistoryEntry

__all__ = ["JobRow", "Link", "aggregate_progress", "format_duration"]

MAX_LOSS_POINTS = 600
RUN_START_SLACK_S = 1.0  # the run's start is the server's clock; an event stamped here may be a bit earlier


class Link(Enum):
    """Connection state as the user sees it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    AUTH_REFUSED = "auth refused"
    PROTOCOL_ERROR = "protocol error"
    FINISHED = "finished"
    STOPPED = "paused"

    @property
    def is_problem(self) -> bool:
        return self in (Link.AUTH_REFUSED, Link.PROTOCOL_ERROR)


def format_duration(seconds: float | None) -> str:
    """``1h 02m`` / ``3m 20s`` / ``45s``; an em dash when unknown."""
    return format_eta(seconds, unknown="—")


@dataclass
class JobRow:
    """One subscription's live state (mutable; owned by the controller)."""

    key: str  # the subscription URL: stable identity even before the hello arrives
    job_id: str  # the job's key in the engine and the history (JOB@HOST:PORT for a followed job)
    name: str = ""
    label: str = ""  # what to call it before its hello names it (the job id in its URL)
    host: str = ""
    pid: int | None = None
    state: str = ""  # wire.JobState value once known
    link: Link = Link.CONNECTING
    link_detail: str = ""
    retry_in: float | None = None
    step: int = 0
    total: int | None = None
    fraction: float | None = None
    eta_s: float | None = None
    loss: float | None = None
    capabilities: tuple[str, ...] = ()
    stalled: bool = False
    errors: int = 0
    token: str | None = None
    local: bool = False  # discovered from this machine's job files
    losses: Curve = field(default_factory=lambda: Curve(MAX_LOSS_POINTS))  # the monitor's (desktop/curve.py)
    resources: ResourceView | None = None  # Engine.resources(): latest sample, worst condition
    resource_history: ResourceHistory = field(default_factory=ResourceHistory)
    run_started_at: float | None = None  # when the current run started: older events are the previous run's

    @property
    def title(self) -> str:
        return self.name or self.label or self.job_id

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")

    @property
    def can_retry(self) -> bool:
        """Whether Retry can work now: the job offers it, its run failed, and it is still reachable.

        A job that ended for good (``peft-notify run`` past its retry window, a closed
        connection) cannot relaunch anything, so Retry is not offered then.
        """
        return "retry" in self.capabilities and self.state == "failed" and self.link is Link.CONNECTED

    @property
    def retry_hint(self) -> str:
        """Why Retry is disabled (empty when it is enabled): the detail pane's tooltip."""
        if self.can_retry or "retry" not in self.capabilities:
            return ""
        if self.state != "failed":
            return "Retry becomes available if the run fails"
        return "The job is no longer reachable, so it cannot be relaunched from here"

    @property
    def percent_text(self) -> str:
        return "—" if self.fraction is None else f"{self.fraction * 100:.0f}%"

    @property
    def step_text(self) -> str:
        total = "?" if self.total is None else f"{self.total:,}"
        return f"step {self.step:,} / {total}"

    @property
    def loss_text(self) -> str:
        return "loss —" if self.loss is None else f"loss {self.loss:.4g}"

    @property
    def eta_text(self) -> str:
        if self.finished or self.state == "paused":
            return ""
        return f"ETA {format_duration(self.eta_s)}"

    @property
    def status_text(self) -> str:
        """The one-line state: the job's lifecycle, or the connection's when that matters more.

        A connection problem says its real cause: a bad URL, a refused connection (nothing
        listens there), a refused token, a job the server no longer has (gone).
        """
        if self.link.is_problem:
            return self._cause() or self.link.value + (f": {self.link_detail}" if self.link_detail else "")
        if self.link is Link.RECONNECTING and not self.finished:
            when = "" if self.retry_in is None else f" in {format_duration(self.retry_in)}"
            cause = self._cause()
            return f"{cause} — retrying{when}" if cause else f"reconnecting{when}"
        if self.link is Link.STOPPED:
            return "paused (not connected)"
        if self.stalled and self.state == "running":
            return "stalled"
        if self.state:
            return self.state
        return str(self.link.value)

    @property
    def dead(self) -> bool:
        """Nothing more will come over this subscription by itself: refused, gone, a bad URL, or ended."""
        return self.link.is_problem or self.link is Link.FINISHED

    def _cause(self) -> str:
        """The connection problem in the user's words, or "" when the detail says nothing known."""
        detail = self.link_detail
        lowered = detail.lower()
        if self.link is Link.AUTH_REFUSED:
            return ""  # "auth refused: HTTP 401: missing or wrong token" says it already
        if "http 404" in lowered:
            return f"gone: the server no longer has this job ({detail})"
        if any(word in lowered for word in ("not a job url", "valid uri", "out of range", "invalid ipv6")):
            return f"bad URL: {detail}"
        address = _address(self.key)
        if "refused" in lowered or "errno 111" in lowered or "connect call failed" in lowered:
            return f"refused: nothing is listening at {address}" if address else "refused: nothing is listening there"
        if "timeout" in lowered or "timed out" in lowered:
            return f"no answer from {address}" if address else "no answer"
        if "name or service not known" in lowered or "nodename nor servname" in lowered:
            return f"bad URL: unknown host ({detail})"
        return ""

    @property
    def tone(self) -> str:
        """``ok`` / ``done`` / ``warn`` / ``error`` / ``idle``: the card's accent colour."""
        if self.state == "failed" or self.link.is_problem or self.errors:
            return "error"
        if self.state == "completed":
            return "done"
        if self.stalled or self.link is Link.RECONNECTING or self.state in ("paused", "cancelled"):
            return "warn"
        if self.state == "running":
            return "ok"
        return "idle"

    def new_run(self, started_at: float | None) -> None:
        """The job started a new run (new ``run_id``): what the card shows starts fresh.

        The loss chart is the monitor's curve (cleared there); the engine's view brings the
        new run's step, state and ETA. The previous run stays in history.
        """
        self.run_started_at = started_at
        self.loss = None
        self.eta_s = None
        self.errors = 0
        self.stalled = False
        self.resources = None
        self.resource_history = ResourceHistory()

    def this_run(self, entries: Sequence[HistoryEntry]) -> list[HistoryEntry]:
        """The history entries of the current run (all when its start is unknown)."""
        if self.run_started_at is None:
            return list(entries)
        return [e for e in entries if e.ts >= self.run_started_at - RUN_START_SLACK_S]

    def update_from_view(self, view: Any) -> None:
        """Copy the engine's ``JobView`` fields (duck-typed, so tests can pass a stand-in)."""
        self.job_id = view.job_id
        if view.name and view.name != view.job_id:  # the engine falls back to the key
            self.name = view.name
        self.host = view.host or self.host
        self.pid = view.pid if view.pid is not None else self.pid
        self.state = str(getattr(view.state, "value", view.state) or "")
        self.step = view.current_step
        self.total = view.total_steps
        self.fraction = view.fraction
        self.eta_s = view.eta_s
        self.capabilities = tuple(view.capabilities)
        self.stalled = bool(view.stalled)
        self.errors = int(view.errors)
        if view.loss is not None:
            self.loss = view.loss

    def add_loss(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            return
        if self.losses and self.losses[-1][0] >= step:
            if self.losses[-1][0] == step:
                self.losses[-1] = (step, loss)
            return
        self.losses.append((step, loss))


def _address(url: str) -> str:
    """``HOST:PORT`` of a job URL, or "" when it has none (shown in connection problems)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    return f"{parts.hostname}:{port}" if port is not None else parts.hostname


def aggregate_progress(rows: list[JobRow]) -> float | None:
    """Mean fraction over running jobs with a known total (what the tray tooltip shows)."""
    fractions = [r.fraction for r in rows if r.state == "running" and r.fraction is not None]
    return sum(fractions) / len(fractions) if fractions else None
