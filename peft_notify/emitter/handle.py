"""JobHandle: what training code calls. Every call is O(1), thread-safe and never blocks.

Calls only touch a lock-protected slot (the latest progress) or a queue (notifications,
errors, status); the server's event-loop thread validates, numbers and sends them.
Progress is coalesced (latest wins, at most ``progress_hz`` frames a second); nothing
else is ever dropped. Bad values are logged and dropped field by field: reporting must
never break training.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from peft_notify import wire

if TYPE_CHECKING:
    from peft_notify.emitter.server import JobServer

__all__ = ["ActionCallback", "JobHandle", "Ranked", "error_item", "notification_item", "urgency_for"]

log = logging.getLogger(__name__)

ActionCallback = Callable[[wire.Action], None]

_CRITICAL = frozenset({"oom_error", "cuda_error", "system_crash"})
_HIGH = frozenset({"loss_divergence", "gradient_explosion", "data_error"})


def urgency_for(error_type: str | None) -> wire.UrgencyLevel:
    """The protocol's default urgency for an error type (issue 2, rule 3)."""
    if error_type in _CRITICAL:
        return wire.UrgencyLevel.CRITICAL
    if error_type in _HIGH:
        return wire.UrgencyLevel.HIGH
    return wire.UrgencyLevel.NORMAL


@dataclass(frozen=True, slots=True)
class Ranked:
    """An error reported by one rank of a distributed job (merged with other ranks' copies)."""

    rank: int
    item: dict[str, Any]


def notification_item(
    title: str,
    message: str = "",
    *,
    kind: wire.NotificationType | str = wire.NotificationType.PROGRESS,
    urgency: wire.UrgencyLevel | str | None = None,
    milestone: int | None = None,
    sound: bool | None = None,
    actions: Sequence[str] | None = None,
    error_type: str | None = None,
    respect_dnd: bool | None = None,
) -> dict[str, Any]:
    """A notification as a mapping (validated later, on the server thread). Raises ``ValueError``."""
    nkind = wire.NotificationType(kind)
    is_error = nkind is wire.NotificationType.ERROR
    level = (urgency or urgency_for(error_type)) if is_error else (urgency or "normal")
    return {
        "type": nkind.value,
        "title": _clip(title, wire.MAX_TITLE),
        "message": message,
        "urgency": wire.UrgencyLevel(level).value,
        "milestone": milestone,
        "sound": is_error if sound is None else sound,
        "actions": list(actions) if actions else None,
        "error_type": error_type,
        "respect_dnd": (not is_error) if respect_dnd is None else respect_dnd,
    }


def error_item(job_name: str, message: str, error_type: str, title: str | None = None) -> dict[str, Any]:
    """The notification mapping of an error (urgency from its type)."""
    return notification_item(
        title or f"{job_name}: {error_type.replace('_', ' ')}",
        _clip(message, wire.MAX_MESSAGE),
        kind=wire.NotificationType.ERROR,
        error_type=error_type,
    )


class JobHandle:
    """One job served by a :class:`JobServer`. Create with ``JobServer.add_job``."""

    def __init__(
        self,
        server: JobServer,
        job_id: str,
        *,
        name: str,
        run_id: str,
        total_steps: int | None,
        capabilities: Sequence[str],
        started_at: float,
    ) -> None:
        self._server = server
        self.job_id = job_id
        self.name = name
        self.run_id = run_id
        self.total_steps = total_steps
        self.capabilities = tuple(capabilities)
        self.started_at = started_at
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None  # coalesced progress, not yet sent
        self._pending: deque[wire.Body | dict[str, Any] | Ranked] = deque()
        self._callbacks: list[ActionCallback] = []
        self._finished = False
        self.rank: int | None = None  # set on rank 0 of a distributed job: its errors are merged

    # ------------------------------------------------------------------ training side

    @property
    def url(self) -> str:
        """The WebSocket URL a client connects to."""
        return self._server.url_for(self.job_id)

    @property
    def finished(self) -> bool:
        """Whether a terminal status (completed / failed / cancelled) was reported."""
        return self._finished

    def progress(
        self,
        step: int,
        total: int | None = None,
        *,
        loss: float | None = None,
        epoch: float | None = None,
        learning_rate: float | None = None,
        grad_norm: float | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Report the current step (coalesced: only the latest is guaranteed to be sent).

        A report with ``metrics`` (an evaluation) is never coalesced away: it goes out as its
        own frame, so ``eval_loss`` at step 500 reaches the app as step 500's.
        """
        if total is not None:
            self.total_steps = total
        values: dict[str, Any] = {
            "current_step": step,
            "total_steps": self.total_steps,
            "epoch": epoch,
            "loss": loss,
            "learning_rate": learning_rate,
            "grad_norm": grad_norm,
        }
        if metrics:
            values["metrics"] = dict(metrics)
            with self._lock:
                self._latest = None  # older than this report: superseded
                self._pending.append(values)
            self._server._wake_now(self)
            return
        with self._lock:
            self._latest = values
        self._server._wake_progress(self)

    def notify(
        self,
        title: str,
        message: str = "",
        *,
        kind: wire.NotificationType | str = wire.NotificationType.PROGRESS,
        urgency: wire.UrgencyLevel | str | None = None,
        milestone: int | None = None,
        sound: bool | None = None,
        actions: Sequence[str] | None = None,
        error_type: str | None = None,
        respect_dnd: bool | None = None,
    ) -> None:
        """Send a notification (never dropped). Invalid fields are logged and the event skipped."""
        try:
            item = notification_item(
                title,
                message,
                kind=kind,
                urgency=urgency,
                milestone=milestone,
                sound=sound,
                actions=actions,
                error_type=error_type,
                respect_dnd=respect_dnd,
            )
        except ValueError as exc:
            log.warning("job %s: dropping an invalid notification (%s)", self.job_id, exc)
            return
        self._enqueue(item)

    def error(
        self, message: str, error_type: str = "system_crash", *, title: str | None = None, rank: int | None = None
    ) -> None:
        """Report an error (urgency from ``error_type``: oom/cuda/system_crash are critical).

        ``rank`` (default: this handle's :attr:`rank`) marks an error of one rank of a
        distributed job; the same error from several ranks becomes one notification.
        """
        item = error_item(self.name, message, error_type, title)
        rank = self.rank if rank is None else rank
        self._enqueue(item if rank is None else Ranked(rank, item))

    def warning(self, message: str, *, title: str | None = None, error_type: str | None = None) -> None:
        """Report a warning (respects Do Not Disturb on the desktop)."""
        self.notify(
            title or f"{self.name}: warning",
            _clip(message, wire.MAX_MESSAGE),
            kind=wire.NotificationType.WARNING,
            urgency=urgency_for(error_type) if error_type else wire.UrgencyLevel.NORMAL,
            error_type=error_type,
        )

    def status(self, state: wire.JobState | str, reason: str | None = None) -> None:
        """Report a lifecycle change; a terminal state marks the job finished."""
        jstate = wire.JobState(state)
        if jstate.finished:
            self._finished = True
        self._enqueue(wire.Status(jstate, None if reason is None else _clip(reason, wire.MAX_REASON)))

    def on_action(self, callback: ActionCallback) -> ActionCallback:
        """Register ``callback(action)`` for client actions (``retry``, ``cancel``, ...).

        Called on a worker thread; exceptions are logged. Usable as a decorator.
        """
        with self._lock:
            self._callbacks.append(callback)
        return callback

    # ------------------------------------------------------------------ server side

    def _enqueue(self, item: wire.Body | dict[str, Any] | Ranked) -> None:
        with self._lock:
            if self._latest is not None:
                # Keep order: the progress reported before this event goes out before it.
                self._pending.append(self._latest)
                self._latest = None
            self._pending.append(item)
        self._server._wake_now(self)

    def _take(self, *, include_latest: bool) -> list[wire.Body | dict[str, Any] | Ranked]:
        with self._lock:
            items: list[wire.Body | dict[str, Any] | Ranked] = list(self._pending)
            self._pending.clear()
            if include_latest and self._latest is not None:
                items.append(self._latest)
                self._latest = None
        return items

    def _new_run(self, run_id: str, started_at: float, total_steps: int | None) -> None:
        with self._lock:
            self.run_id = run_id
            self.started_at = started_at
            self.total_steps = total_steps
            self._finished = False
            self._latest = None

    def _has_latest(self) -> bool:
        with self._lock:
            return self._latest is not None

    def _dispatch(self, action: wire.Action) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        if not callbacks:
            log.info("job %s: action %r received, but no callback is registered", self.job_id, action.action)
        for callback in callbacks:
            try:
                callback(action)
            except Exception:
                log.exception("job %s: action callback %r failed", self.job_id, callback)


def to_body(item: wire.Body | dict[str, Any], job_id: str) -> wire.Body | None:
    """Validate a queued item into a wire body; ``None`` (logged) when it is unusable."""
    if not isinstance(item, dict):
        return item
    try:
        if "current_step" in item:
            return wire.progress_from_mapping(_clean_progress(item, job_id))
        return wire.notification_from_mapping({k: v for k, v in item.items() if v is not None})
    except wire.ProtocolError as exc:
        log.warning("job %s: dropping an invalid report (%s)", job_id, exc)
        return None


def _clean_progress(values: dict[str, Any], job_id: str) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if v is not None}
    for key in ("loss", "learning_rate", "grad_norm", "epoch"):
        value = out.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            log.debug("job %s: %s=%r is not finite; sent without it", job_id, key, value)
            del out[key]
        elif value is not None and not isinstance(value, (int, float)):
            try:
                out[key] = float(value)  # numpy / torch scalars
            except (TypeError, ValueError):
                del out[key]
    if "metrics" in out:
        out["metrics"] = {
            str(k)[: wire.MAX_SHORT]: float(v)
            for k, v in out["metrics"].items()
            if isinstance(v, (int, float)) and math.isfinite(float(v))
        }
    step, total = out.get("current_step"), out.get("total_steps")
    if isinstance(step, int) and isinstance(total, int) and step > total > 0:
        out["current_step"] = total  # overshoot (e.g. an extra logging step): clamp rather than drop
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
