"""Report to a parent ``peft-notify run`` over an inherited pipe instead of serving a second job.

``peft-notify run`` passes the write end of a pipe as ``PEFT_NOTIFY_FD`` (plus
``PEFT_NOTIFY_JOB_ID`` and ``PEFT_NOTIFY_URL`` for information). ``peft_notify.job()`` and
the integrations call :func:`from_environment`: inside ``run`` they get a
:class:`PipeHandle` that writes one JSON line per report; the wrapper's :func:`relay`
replays them on its own JobHandle and stops guessing progress from the output.
Why a pipe: no port, no token, no second job for the same run, and nothing printed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from peft_notify import wire
from peft_notify.emitter.handle import ActionCallback, TrainingHandle
from peft_notify.redact import redact

__all__ = ["ENV_FD", "ENV_JOB_ID", "ENV_URL", "PipeHandle", "from_environment", "relay"]

log = logging.getLogger(__name__)

ENV_FD = "PEFT_NOTIFY_FD"
ENV_JOB_ID = "PEFT_NOTIFY_JOB_ID"
ENV_URL = "PEFT_NOTIFY_URL"
_OPS = frozenset({"progress", "notify", "error", "warning", "status"})


class PipeHandle:
    """A JobHandle look-alike that forwards every call as a JSON line to the wrapper."""

    def __init__(self, fd: int, *, job_id: str, url: str, name: str, total_steps: int | None) -> None:
        self._fd = fd
        self.job_id = job_id
        self.url = url
        self.name = name
        self.total_steps = total_steps
        self._finished = False
        self._lock = threading.Lock()
        self._last_progress = float("-inf")
        self._held: dict[str, Any] | None = None
        # In a distributed job: errors carry the rank (the wrapper merges them); other
        # ranks than 0 send nothing else.
        self.rank: int | None = None
        self.errors_only = False
        os.set_blocking(fd, False)

    @property
    def finished(self) -> bool:
        return self._finished

    def progress(self, step: int, total: int | None = None, **fields: Any) -> None:
        if self.errors_only:
            return
        if total is not None:
            self.total_steps = total
        args = {"step": step, "total": self.total_steps, **fields}
        now = time.monotonic()
        if now - self._last_progress < 0.05 and step != self.total_steps:
            self._held = args  # coalesce; sent with the next report
            return
        self._last_progress = now
        self._held = None
        self._write({"op": "progress", "args": args}, droppable=True)

    def notify(self, title: str, message: str = "", **fields: Any) -> None:
        if self.errors_only:
            return
        self._send("notify", {"title": title, "message": message, **fields})

    def error(self, message: str, error_type: str = "system_crash", **fields: Any) -> None:
        if self.rank is not None:
            fields.setdefault("rank", self.rank)
        self._send("error", {"message": message, "error_type": error_type, **fields})

    def warning(self, message: str, **fields: Any) -> None:
        if self.errors_only:
            return
        self._send("warning", {"message": message, **fields})

    def status(self, state: wire.JobState | str, reason: str | None = None) -> None:
        jstate = wire.JobState(state)
        self._finished = self._finished or jstate.finished
        if self.errors_only:
            return
        self._send("status", {"state": jstate.value, "reason": reason})

    def on_action(self, callback: ActionCallback) -> ActionCallback:
        log.info("actions are handled by the peft-notify run wrapper, not in the child")
        return callback

    def close(self) -> None:
        if self._held is not None:
            self._write({"op": "progress", "args": self._held}, droppable=True)
            self._held = None

    def _send(self, op: str, args: dict[str, Any]) -> None:
        if self._held is not None:
            self._write({"op": "progress", "args": self._held}, droppable=True)
            self._held = None
        self._write({"op": op, "args": args}, droppable=False)

    def _write(self, message: Mapping[str, Any], *, droppable: bool) -> None:
        data = (json.dumps(message, default=_jsonable, allow_nan=True) + "\n").encode()
        with self._lock:
            try:
                if not droppable:
                    os.set_blocking(self._fd, True)  # events are never dropped
                os.write(self._fd, data)
            except BlockingIOError:
                pass  # the wrapper is busy; a later progress report supersedes this one
            except OSError:
                log.debug("peft-notify run pipe is gone", exc_info=True)
            finally:
                if not droppable:
                    os.set_blocking(self._fd, False)


def _jsonable(value: Any) -> Any:
    try:
        return float(value)  # numpy / torch scalars
    except (TypeError, ValueError):
        return str(value)


_attached: dict[int, PipeHandle] = {}


def from_environment(name: str, total_steps: int | None = None) -> PipeHandle | None:
    """A PipeHandle when running under ``peft-notify run``, else ``None``.

    In a distributed job (``peft-notify run -- torchrun ...``) every rank shares the pipe:
    errors carry the rank, and ranks other than 0 send only errors.
    """
    raw = os.environ.get(ENV_FD)
    if not raw or not raw.isdigit():
        return None
    fd = int(raw)
    if fd in _attached:
        return _attached[fd]
    try:
        os.fstat(fd)
    except OSError:
        return None
    handle = PipeHandle(
        fd, job_id=os.environ.get(ENV_JOB_ID, ""), url=os.environ.get(ENV_URL, ""), name=name, total_steps=total_steps
    )
    from peft_notify.emitter.ranks import detect_rank

    info = detect_rank()
    if info.distributed:
        handle.rank = info.rank
        handle.errors_only = info.rank != 0
    _attached[fd] = handle
    return handle


def relay(stream: Any, handle: TrainingHandle, on_report: Any = None) -> None:
    """Read JSON lines from ``stream`` (a binary file) and replay them on ``handle`` until EOF.

    Bad lines are logged and skipped. ``on_report()`` is called after each good line.
    """
    for raw in stream:
        try:
            message = json.loads(raw)
            op, args = message["op"], dict(message["args"])
            if op not in _OPS:
                raise ValueError(f"unknown op {op!r}")
            if op == "progress":
                handle.progress(args.pop("step"), args.pop("total", None), **args)
            elif op == "notify":
                handle.notify(args.pop("title"), args.pop("message", ""), **args)
            elif op == "error":
                handle.error(args.pop("message"), args.pop("error_type", "system_crash"), **args)
            elif op == "warning":
                handle.warning(args.pop("message"), **args)
            else:
                handle.status(args["state"], args.get("reason"))
        except Exception as exc:
            log.warning("ignoring a bad report from the child process: %s", redact(str(exc)))
            continue
        if on_report is not None:
            on_report()
