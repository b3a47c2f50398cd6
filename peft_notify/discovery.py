"""Discovery of local training jobs through small JSON files in a per-user runtime directory.

A job server calls :func:`write_job_file` when a job starts and :func:`remove_job_file`
when it ends; the desktop app and ``peft-notify watch --local`` call
:func:`list_job_files` to find jobs without any configuration. Files hold the job's
token, so they are created 0600 inside a 0700 directory. A file whose process is gone
(killed with SIGKILL, power loss) is pruned by :func:`list_job_files`.

Set ``PEFT_NOTIFY_RUNTIME_DIR`` to use another directory (tests, containers).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JobFile", "list_job_files", "remove_job_file", "runtime_dir", "write_job_file"]

log = logging.getLogger(__name__)

ENV_DIR = "PEFT_NOTIFY_RUNTIME_DIR"
_SUFFIX = ".job.json"


@dataclass(frozen=True)
class JobFile:
    """One discovered job: where to connect and how to authenticate."""

    url: str
    job_id: str
    name: str
    pid: int
    token: str | None
    host: str
    started_at: float
    path: Path


def runtime_dir() -> Path:
    """The per-user directory for job files, created 0700 if missing.

    ``$PEFT_NOTIFY_RUNTIME_DIR`` wins; then platformdirs' user runtime dir; when that
    cannot be created, a per-user folder under the system temp dir.
    """
    override = os.environ.get(ENV_DIR)
    if override:
        path = Path(override)
    else:
        import platformdirs

        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine for us.
            warnings.simplefilter("ignore")
            path = Path(platformdirs.user_runtime_dir("peft-notify"))
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
        path = Path(tempfile.gettempdir()) / f"peft-notify-{uid}"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    return path


def write_job_file(
    *,
    url: str,
    job_id: str,
    name: str,
    token: str | None = None,
    pid: int | None = None,
    host: str | None = None,
    started_at: float | None = None,
    directory: Path | None = None,
) -> Path:
    """Write (atomically, 0600) the job file for ``job_id``; returns its path.

    Raises ``OSError`` when the runtime directory is not writable.
    """
    folder = directory or runtime_dir()
    pid = os.getpid() if pid is None else pid
    payload = {
        "url": url,
        "job_id": job_id,
        "name": name,
        "pid": pid,
        "token": token,
        "host": host or socket.gethostname(),
        "started_at": time.time() if started_at is None else started_at,
    }
    path = folder / f"{pid}-{_safe(job_id)}{_SUFFIX}"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def remove_job_file(path: Path) -> None:
    """Delete a job file; a missing file is fine (already pruned or removed)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("could not remove job file %s", path, exc_info=True)


def list_job_files(prune_dead: bool = True, directory: Path | None = None) -> list[JobFile]:
    """Every readable job file, oldest first. Unreadable files are logged and skipped.

    With ``prune_dead``, files whose process no longer exists are deleted and left out.
    """
    folder = directory or runtime_dir()
    jobs: list[JobFile] = []
    for path in sorted(folder.glob(f"*{_SUFFIX}")):
        job = _read(path)
        if job is None:
            continue
        if prune_dead and not _pid_alive(job.pid):
            log.info("pruning job file of dead process %d: %s", job.pid, path)
            remove_job_file(path)
            continue
        jobs.append(job)
    jobs.sort(key=lambda j: j.started_at)
    return jobs


def _read(path: Path) -> JobFile | None:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        token = raw.get("token")
        return JobFile(
            url=str(raw["url"]),
            job_id=str(raw["job_id"]),
            name=str(raw.get("name") or raw["job_id"]),
            pid=int(raw["pid"]),
            token=None if token is None else str(token),
            host=str(raw.get("host") or ""),
            started_at=float(raw.get("started_at") or 0.0),
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("skipping unreadable job file %s: %s", path, exc)
        return None


def _safe(job_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in job_id)[:100]


def _pid_alive(pid: int) -> bool:
    psutil = importlib.import_module("psutil")  # no type stubs; the one call we need is simple
    return bool(psutil.pid_exists(pid))
