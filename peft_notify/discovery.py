"""Discovery of local training jobs through small JSON files in a per-user runtime directory.

A job server calls :func:`write_job_file` when a job starts and :func:`remove_job_file`
when it ends; the desktop app and ``peft-notify watch --local`` call
:func:`list_job_files` to find jobs without any configuration. Files hold the job's
token, so they are created 0600 (``O_EXCL|O_NOFOLLOW``, then renamed into place) inside a
0700 directory. A file whose process is gone (killed with SIGKILL, power loss) is pruned by
:func:`list_job_files`.

Another local user may create our predictable directory first (``/tmp/runtime-<uid>``,
``/tmp/peft-notify-<uid>``) to read tokens or plant files. :func:`private_dir` therefore
creates directories itself and accepts an existing one only when it is a real directory
(not a symlink) owned by us, in a parent nobody else can swap it out of; otherwise it
raises :class:`DiscoveryError` (an ``OSError``). Writers log it and serve without
discovery; :func:`list_job_files` logs it and finds no jobs. Neither ever fails training.

Set ``PEFT_NOTIFY_RUNTIME_DIR`` to use another directory (tests, containers).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import socket
import stat
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DiscoveryError",
    "JobFile",
    "list_job_files",
    "private_dir",
    "remove_job_file",
    "runtime_dir",
    "write_job_file",
    "write_private_file",
]

log = logging.getLogger(__name__)

ENV_DIR = "PEFT_NOTIFY_RUNTIME_DIR"
_SUFFIX = ".job.json"


class DiscoveryError(OSError):
    """The runtime directory is not safe to use (owned by another user, a symlink, not a directory)."""


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


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _check_parent(path: Path) -> None:
    """Nobody else may rename entries in ``path``'s parent (ours, root's, or sticky like /tmp)."""
    uid = _uid()
    if uid is None:
        return
    parent = os.stat(path.parent)
    writable_by_others = parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky = parent.st_mode & stat.S_ISVTX
    if parent.st_uid not in (uid, 0) or (writable_by_others and not sticky):
        raise DiscoveryError(f"{path.parent} belongs to uid {parent.st_uid} or is writable by others")


def private_dir(path: Path) -> Path:
    """``path`` as a directory only this user can use: created 0700 if missing, else checked.

    Raises :class:`DiscoveryError` when it exists but is a symlink, not a directory, owned by
    another user, or sits in a directory another user can swap it out of; ``OSError`` when it
    cannot be created.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_parent(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise DiscoveryError(f"{path} is not a directory (a symlink or a file in its place)")
    uid = _uid()
    if uid is not None and info.st_uid != uid:
        raise DiscoveryError(f"{path} belongs to uid {info.st_uid}, not to us (uid {uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700, follow_symlinks=False)  # ours, but too open: repair
    return path


def runtime_dir() -> Path:
    """The per-user directory for job files (see :func:`private_dir`).

    ``$PEFT_NOTIFY_RUNTIME_DIR`` wins; then platformdirs' user runtime dir; when that
    cannot be used, ``peft-notify-<uid>`` in the system temp dir. Raises
    :class:`DiscoveryError` / ``OSError`` when none is safe.
    """
    override = os.environ.get(ENV_DIR)
    if override:
        return private_dir(Path(override))
    try:
        import platformdirs

        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is checked below.
            warnings.simplefilter("ignore")
            return private_dir(Path(platformdirs.user_runtime_dir("peft-notify")))
    except OSError as exc:  # platformdirs refuses a squatted /tmp/runtime-<uid>, or we do
        log.debug("user runtime dir unusable (%s); trying the temp dir", exc)
    owner = _uid() if _uid() is not None else os.getlogin()
    return private_dir(Path(tempfile.gettempdir()) / f"peft-notify-{owner}")


def write_private_file(path: Path, data: str) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600: a fresh temp file (``O_EXCL|O_NOFOLLOW``), renamed.

    A symlink or file planted under the temp name makes the open fail rather than write
    through it. Raises ``OSError``.
    """
    import secrets  # here: hmac/hashlib load libcrypto (~5 ms), and the app asks runtime_dir() before its first window

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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

    Raises ``OSError`` (:class:`DiscoveryError` included) when the runtime directory is
    not safe or not writable.
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
    write_private_file(path, json.dumps(payload))
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
    An unsafe or missing runtime directory is logged (once) and means no jobs: never raises.
    """
    try:
        folder = directory or runtime_dir()
    except OSError as exc:
        global _warned_unsafe
        if not _warned_unsafe:
            log.warning("cannot look for local jobs: %s", exc)
            _warned_unsafe = True
        return []
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


_warned_unsafe = False


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
