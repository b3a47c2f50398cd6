"""Shared by the sweep integrations (Ray Tune, Optuna): one job per trial, grouped under the sweep.

:class:`SweepReporter` serves every trial of one sweep from one
:class:`~peft_notify.emitter.server.JobServer` (started on first use unless one is given),
each trial a job whose ``hello.group`` names the sweep (docs/sweeps.md). Call
:meth:`~SweepReporter.trial_started`, :meth:`~SweepReporter.trial_result`,
:meth:`~SweepReporter.trial_ended` from the framework's hooks and :meth:`~SweepReporter.finish`
once at the end: it prints the sweep's one summary line (the same text the desktop shows,
from the engine's own group rules) and stops the server it started. A reporting failure is
logged and never breaks the sweep.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from peft_notify import wire
from peft_notify.emitter.grouping import redacted_params
from peft_notify.emitter.handle import JobHandle
from peft_notify.emitter.server import JobServer
from peft_notify.engine.groups import Groups, format_number, summary_event
from peft_notify.integrations.common import as_number
from peft_notify.redact import redact

__all__ = ["SweepReporter", "flat_params"]

log = logging.getLogger(__name__)

MAX_METRICS_SENT: Final = 16


def flat_params(config: Mapping[str, Any], limit: int = wire.MAX_PARAMS) -> dict[str, wire.ParamValue]:
    """A trial's config as ``hello.group.params``: scalars only, nested keys joined with ``/``, clipped."""
    out: dict[str, wire.ParamValue] = {}

    def walk(prefix: str, value: Any) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}/{key}" if prefix else str(key), inner)
            return
        key = prefix[: wire.MAX_SHORT] or "value"
        number = None if isinstance(value, str) else _finite(value)
        if isinstance(value, bool):
            out[key] = value
        elif number is not None:
            out[key] = value if isinstance(value, int) else number  # numpy scalars become floats
        elif value is not None:
            out[key] = str(value)[: wire.MAX_NAME]

    walk("", config)
    return out


def _finite(value: Any) -> float | None:
    number = as_number(value)
    return number if number is not None and math.isfinite(number) else None


def describe_params(params: Mapping[str, object], limit: int = 4) -> str:
    """``lr=2e-4, r=16`` (the first ``limit`` entries)."""
    return ", ".join(f"{k}={format_number(v)}" for k, v in list(params.items())[:limit])


@dataclass
class SweepReporter:
    """See the module docstring. Thread-safe (Optuna runs trials on several threads with ``n_jobs``)."""

    name: str
    metric: str | None = None
    mode: str = "min"
    expected_jobs: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    server: JobServer | None = None
    linger: float = 3.0
    print_url: bool = True
    group_id: str = ""
    summary: wire.NotificationEvent | None = None  # set by finish()
    _owns_server: bool = False
    _nats: Any = None  # $PEFT_NOTIFY_NATS: the trials are published to NATS too (docs/cluster.md)
    _trials: dict[str, JobHandle] = field(default_factory=dict)
    _groups: Groups = field(default_factory=Groups)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finished: bool = False
    _sweep: JobHandle | None = None  # the sweep's own job (role "sweep"): open while the sweep runs
    _ended: int = 0

    def __post_init__(self) -> None:
        if not self.group_id:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "-", redact(self.name)).strip("-._")[:80] or "sweep"
            self.group_id = f"{slug}-{uuid.uuid4().hex[:8]}"  # one sweep run: never merged with an earlier one
        self.mode = wire.GroupMode(self.mode).value  # ValueError for anything but min/max

    @property
    def job_ids(self) -> list[str]:
        with self._lock:
            return [h.job_id for h in self._trials.values()]

    def group(self, params: Mapping[str, Any], *, role: wire.GroupRole = wire.GroupRole.TRIAL) -> wire.Group:
        """The ``hello.group`` of one trial with ``params`` (or of the sweep's own job)."""
        values: dict[str, Any] = {"id": self.group_id, "name": redact(self.name), "mode": self.mode, "role": role.value}
        values["params"] = redacted_params(flat_params(params))  # a config may hold an API key
        if self.expected_jobs is not None and self.expected_jobs > 0:
            values["expected_jobs"] = self.expected_jobs
        if self.metric is not None:
            values["metric"] = self.metric[: wire.MAX_SHORT]
        return wire.group_from_mapping(values)

    def start(self) -> None:
        """Serve the sweep's own job (role ``sweep``): the desktop keeps the group open while it runs.

        Called by the first trial at the latest. Its progress counts the trials that ended.
        """
        try:
            with self._lock:
                self._start_locked()
        except Exception:
            log.warning("peft-notify: could not report the start of sweep %s", self.name, exc_info=True)

    def _start_locked(self) -> None:
        if self._sweep is not None or self._finished:
            return
        server = self._server()
        group = self.group({}, role=wire.GroupRole.SWEEP)
        self._sweep = server.add_job(
            f"{self.group_id}.sweep", name=self.name, total_steps=self.expected_jobs, group=group
        )
        self._publish(server, self._sweep)
        if self.print_url:
            print(f"peft-notify: sweep {self.name!r} at {self._sweep.url}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ trials

    def trial_started(self, trial_key: str, params: Mapping[str, Any], *, name: str | None = None) -> None:
        """A trial began: a new job in the group (its config in ``hello.group.params``)."""
        try:
            with self._lock:
                if trial_key in self._trials or self._finished:
                    return
                self._start_locked()
                server = self._server()
                group = self.group(params)
                job_id = f"{self.group_id}.{re.sub(r'[^A-Za-z0-9._:-]+', '-', trial_key)}"[: wire.MAX_ID]
                handle = server.add_job(job_id, name=name or f"{self.name} {trial_key}", group=group)
                self._publish(server, handle)
                self._trials[trial_key] = handle
                self._groups.join(job_id, group, name=handle.name, state=wire.JobState.RUNNING, new_run=True, now=0.0)
            if self.print_url:
                print(f"peft-notify: trial {handle.name!r} at {handle.url}", file=sys.stderr, flush=True)
        except Exception:
            log.warning("peft-notify: could not report the start of trial %s", trial_key, exc_info=True)

    def trial_result(self, trial_key: str, step: int, values: Mapping[str, Any]) -> None:
        """An intermediate (or final) result: progress at ``step`` with the numeric ``values``."""
        handle = self._trials.get(trial_key)
        if handle is None:
            return
        try:
            metrics: dict[str, float] = {}
            for k, v in values.items():
                number = None if isinstance(v, str) else _finite(v)
                if k and number is not None:
                    metrics[str(k)[: wire.MAX_SHORT]] = number
            keep = [k for k in (self.metric, "eval_loss", "loss") if k and k in metrics]
            keep += [k for k in metrics if k not in keep]
            sent = {k: metrics[k] for k in keep[:MAX_METRICS_SENT]}
            progress = wire.Progress(max(0, step), None, loss=sent.get("loss"), metrics=sent)
            with self._lock:
                self._groups.observe(handle.job_id, progress)
            handle.progress(max(0, step), loss=sent.get("loss"), metrics=sent)
        except Exception:
            log.warning("peft-notify: could not report a result of trial %s", trial_key, exc_info=True)

    def trial_ended(
        self,
        trial_key: str,
        state: wire.JobState,
        *,
        reason: str | None = None,
        error: str | None = None,
        error_type: str = "training_error",
    ) -> None:
        """The trial ended. ``error``: it failed — reported at once, with the trial's config."""
        handle = self._trials.get(trial_key)
        if handle is None or handle.finished:
            return
        try:
            if error is not None:
                params = describe_params(handle.group.params if handle.group else {}, limit=8)
                handle.error(f"{error} ({params})" if params else error, error_type, title="Trial failed")
            handle.status(state, reason)
            with self._lock:
                self._groups.settle(handle.job_id, state, reason=reason, now=0.0)
                self._ended += 1
                if self._sweep is not None:
                    total = max(self.expected_jobs or 0, self._ended) or None
                    self._sweep.progress(self._ended, total)
        except Exception:
            log.warning("peft-notify: could not report the end of trial %s", trial_key, exc_info=True)

    # ------------------------------------------------------------------ end

    def finish(self, stopped: str | None = None) -> wire.NotificationEvent | None:
        """The sweep is over: its job ends (``stopped``: why it ended early — reported as cancelled,
        the failure itself was the trial's), its one summary line is printed, and the server this
        reporter started stops."""
        with self._lock:
            if self._finished:
                return self.summary
            self._finished = True
            view = self._groups.view(self.group_id)
        try:
            if self._sweep is not None:
                if stopped is not None:
                    self._sweep.status(wire.JobState.CANCELLED, stopped[:600])
                else:
                    self._sweep.status(wire.JobState.COMPLETED)
            if view is not None:
                self.summary = summary_event(view)
                print(f"peft-notify: {self.summary.title} — {self.summary.message}", file=sys.stderr, flush=True)
        finally:
            if self._owns_server and self.server is not None:
                self.server.stop(linger=self._await_followers(self.linger))
            if self._nats:  # after the server's last frames
                self._nats.close()
        return self.summary

    def _publish(self, server: JobServer, handle: JobHandle) -> None:
        """With ``$PEFT_NOTIFY_NATS`` set, publish ``handle``'s job to that NATS server too."""
        import os

        if not os.environ.get("PEFT_NOTIFY_NATS", "").strip():
            return
        from peft_notify.emitter import nats_publisher

        if self._nats is None:
            self._nats = nats_publisher.from_environment() or False
        if self._nats:
            self._nats.attach(server, handle)

    def _await_followers(self, linger: float) -> float:
        """Wait (up to ``linger`` s) until a desktop follows every trial; the time left.

        A trial reported just before the end (Optuna reports trials as they end) would otherwise
        vanish with the server before a desktop's discovery found it, and its group never end there.
        """
        assert self.server is not None
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline:
            sweep = [] if self._sweep is None else [self._sweep.job_id]
            if all(self.server.subscriber_count(job_id) for job_id in [*self.job_ids, *sweep]):
                break
            time.sleep(0.05)
        return max(0.0, deadline - time.monotonic())

    def _server(self) -> JobServer:
        if self.server is None:
            self.server = JobServer(host=self.host, port=self.port, token=self.token).start()
            self._owns_server = True
        return self.server
