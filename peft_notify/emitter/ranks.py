"""Distributed jobs (torch.distributed, torchrun, accelerate, DeepSpeed): rank 0 serves, every rank reports errors.

:func:`detect_rank` reads the global rank from ``torch.distributed`` when a process group
is initialised (without importing torch), else from ``RANK`` / ``LOCAL_RANK`` /
``WORLD_SIZE`` as torchrun, accelerate and the DeepSpeed launcher set them (or Open MPI's
``OMPI_COMM_WORLD_*``).

Rank 0 serves the job and calls :func:`publish`: it writes a rendezvous file (0600) with
the URL of its ``/ws/ranks/JOB`` endpoint and a token, named after ``MASTER_ADDR``,
``MASTER_PORT``, ``TORCHELASTIC_RUN_ID`` and the job's id (or name), in
``$PEFT_NOTIFY_RANK_DIR`` or the per-user runtime directory. Every other rank gets a
:class:`RankForwarder`: progress, notifications and status are cheap no-ops, and errors
are sent — on a background thread, never blocking training — to rank 0, which merges the
same error from several ranks into one notification (``... (ranks 0, 3)``). We chose a
file over a ``torch.distributed`` collective because a collective deadlocks when only some
ranks reach it (an exception on rank 3 is exactly that case). Across nodes, point
``PEFT_NOTIFY_RANK_DIR`` at a shared directory and bind rank 0 to a reachable address.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peft_notify import discovery, wire
from peft_notify.emitter import httpgate
from peft_notify.emitter.handle import ActionCallback

if TYPE_CHECKING:
    from peft_notify.emitter.handle import JobHandle
    from peft_notify.emitter.server import JobServer

__all__ = ["ENV_RANK_DIR", "RankForwarder", "RankInfo", "detect_rank", "publish", "rendezvous_path"]

log = logging.getLogger(__name__)

ENV_RANK_DIR = "PEFT_NOTIFY_RANK_DIR"


@dataclass(frozen=True, slots=True)
class RankInfo:
    """Where this process is in a distributed job (``world_size`` 1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def detect_rank(env: Mapping[str, str] | None = None) -> RankInfo:
    """This process's rank: ``torch.distributed`` if initialised, else the launchers' variables.

    Pass ``env`` to read only that mapping (tests). Never imports torch; never raises.
    """
    if env is None:
        dist: Any = sys.modules.get("torch.distributed")
        env = os.environ
        try:
            if dist is not None and dist.is_available() and dist.is_initialized():
                local = _int(env.get("LOCAL_RANK"))
                rank = int(dist.get_rank())
                return RankInfo(rank, int(dist.get_world_size()), rank if local is None else local)
        except Exception:  # a half-initialised group: fall back to the environment
            log.debug("torch.distributed rank lookup failed", exc_info=True)
    found = _int(env.get("RANK"))
    world = _int(env.get("WORLD_SIZE"))
    local = _int(env.get("LOCAL_RANK"))
    if found is None:
        found = _int(env.get("OMPI_COMM_WORLD_RANK"))
        world = world if world is not None else _int(env.get("OMPI_COMM_WORLD_SIZE"))
    if found is None:
        found = local
    rank = found or 0
    return RankInfo(rank=rank, world_size=max(world or 1, rank + 1), local_rank=local if local is not None else rank)


def rendezvous_path(job_key: str, env: Mapping[str, str] | None = None) -> Path:
    """The file where rank 0 publishes its rank endpoint for the job named ``job_key``.

    Raises ``OSError`` (:class:`~peft_notify.discovery.DiscoveryError` included) when its
    directory cannot be used.
    """
    env = os.environ if env is None else env
    parts = (env.get("MASTER_ADDR", ""), env.get("MASTER_PORT", ""), env.get("TORCHELASTIC_RUN_ID", ""), job_key)
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    override = env.get(ENV_RANK_DIR)
    if override:  # a directory shared across nodes, chosen by the user: still ours alone (issue 10 item 10)
        folder = discovery.private_dir(Path(override))
    else:
        folder = discovery.private_dir(discovery.runtime_dir() / "ranks")
    return folder / f"{digest}.rank.json"


def publish(server: JobServer, handle: JobHandle, job_key: str) -> Path | None:
    """On rank 0: mark ``handle`` as rank 0 and write the rendezvous file (removed when the server stops)."""
    handle.rank = 0
    try:
        path = rendezvous_path(job_key)
    except OSError as exc:
        log.warning("no rank rendezvous directory (%s); other ranks' errors will not arrive", exc)
        return None
    payload = {
        "url": server.url_for(handle.job_id, prefix=httpgate.RANK_PREFIX, with_token=False),
        "token": server.rank_token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job_id": handle.job_id,
    }
    try:
        discovery.write_private_file(path, json.dumps(payload))
    except OSError:
        log.warning("could not write the rank rendezvous file %s; other ranks' errors will not arrive", path)
        return None
    server.track_file(path)
    return path


class RankForwarder:
    """A JobHandle look-alike for ranks other than 0: only errors do anything (see module docstring)."""

    def __init__(
        self, info: RankInfo, job_key: str, *, name: str, total_steps: int | None = None, wait: float = 30.0
    ) -> None:
        self.info = info
        self.job_key = job_key
        self.job_id = job_key
        self.url = ""
        self.name = name
        self.total_steps = total_steps
        self.wait = wait
        self.sent = 0
        self._finished = False
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def finished(self) -> bool:
        return self._finished

    def progress(self, step: int, total: int | None = None, **fields: Any) -> None:
        """No-op: rank 0 reports progress."""

    def notify(self, title: str, message: str = "", **fields: Any) -> None:
        """No-op: rank 0 reports notifications."""

    def warning(self, message: str, **fields: Any) -> None:
        """No-op: rank 0 reports warnings."""

    def status(self, state: wire.JobState | str, reason: str | None = None) -> None:
        self._finished = self._finished or wire.JobState(state).finished

    def on_action(self, callback: ActionCallback) -> ActionCallback:
        return callback

    def error(self, message: str, error_type: str = "system_crash", *, title: str | None = None, **_: Any) -> None:
        """Queue the error for rank 0 (O(1)); a background thread sends it."""
        self._queue.put({"rank": self.info.rank, "message": message, "error_type": error_type, "title": title})
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_all, name="peft-notify-rank", daemon=True)
                self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Wait (up to ``timeout``, default :attr:`wait`) until queued errors were delivered."""
        deadline = time.monotonic() + (self.wait if timeout is None else timeout)
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _send_all(self) -> None:
        from websockets.sync.client import connect

        while True:
            item = self._queue.get()
            deadline = time.monotonic() + self.wait
            try:
                while True:
                    target = self._target()
                    try:
                        if target is None:
                            raise OSError("rank 0 has not published its endpoint yet")
                        url, token = target
                        headers = {"Authorization": f"Bearer {token}"}
                        with connect(url, additional_headers=headers, open_timeout=5, close_timeout=2) as ws:
                            ws.send(json.dumps(item))
                            answer = json.loads(ws.recv(timeout=5))
                        if not answer.get("ok"):
                            log.warning("rank 0 refused a forwarded error: %s", answer.get("error"))
                        self.sent += 1
                        break
                    except Exception as exc:
                        if time.monotonic() > deadline:
                            log.warning("could not forward an error to rank 0: %s", exc)
                            break
                        time.sleep(0.2)
            finally:
                self._queue.task_done()

    def _target(self) -> tuple[str, str] | None:
        try:
            raw = json.loads(rendezvous_path(self.job_key).read_text(encoding="utf-8"))
            url, token = str(raw["url"]), str(raw["token"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if raw.get("host") not in (None, socket.gethostname()) and "://127.0.0.1:" in url:
            url = url.replace("://127.0.0.1:", f"://{raw['host']}:", 1)  # rank 0 is on another node
        return url, token
