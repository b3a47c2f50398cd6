"""Processes the desktop benchmarks drive: a private D-Bus with a recorder, the app, a flood server.

Use them as context managers; each kills exactly the processes it started. Timestamps from all
of them are ``time.perf_counter_ns()`` (CLOCK_MONOTONIC), comparable across processes.
Raises :class:`BenchError` when a child fails to start (with its output tail).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import psutil

__all__ = ["AppChild", "BenchError", "FloodServer", "PrivateBus", "desktop_available", "isolated_env"]

PY = sys.executable


class BenchError(RuntimeError):
    """A benchmark's helper process failed or timed out."""


def desktop_available() -> str | None:
    """``None`` when a desktop session is usable, else the reason it is not."""
    if not os.environ.get("DISPLAY"):
        return "DISPLAY is not set (start the desktop session: bench/run does)"
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "DBUS_SESSION_BUS_ADDRESS is not set"
    try:
        import PySide6  # noqa: F401
    except ImportError:
        return "PySide6 is not installed (pip install 'peft-notify[desktop]')"
    return None


def app_available() -> str | None:
    """``None`` when ``peft-notify app`` exists in this checkout, else why not."""
    try:
        import peft_notify.cli.app  # noqa: F401
    except ImportError as exc:
        return f"peft_notify.cli.app is not importable ({exc})"
    return None


def compile_bytecode() -> int:
    """Write ``peft_notify``'s ``.pyc`` files, as ``pip install`` does; returns how many were stale.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (this development machine sets it) a source checkout
    never caches its bytecode, and every app launch would compile ~80 modules first (~100 ms on a
    2-core machine): a cost no installed app pays. ``compileall`` writes them regardless.
    """
    import compileall
    import importlib.util

    root = Path(__file__).resolve().parent.parent / "peft_notify"
    stale = 0
    for path in root.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(path)))
        if not cached.exists() or cached.stat().st_mtime < path.stat().st_mtime:
            stale += 1
    compileall.compile_dir(str(root), quiet=1, workers=1)
    return stale


def isolated_env(root: Path, bus_address: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child: temporary XDG dirs (no real history/settings/job files touched)."""
    env = dict(os.environ)
    # TMPDIR too: the app's single-instance QLocalServer socket lives there (one app per bench child).
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "TMPDIR"):
        path = root / name.lower()
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(path)
    if bus_address is not None:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus_address
    env.setdefault("QT_QPA_PLATFORM", "xcb")
    env["PYTHONUNBUFFERED"] = "1"
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class LineReader:
    """Reads a child's stdout lines (JSON) on a thread; ``wait_for(pred)`` blocks until one matches."""

    def __init__(self, proc: subprocess.Popen[str], name: str) -> None:
        self.proc = proc
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.text: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"bench-{name}")
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.strip()
            with self._cond:
                try:
                    event = json.loads(line)
                except ValueError:
                    self.text.append(line)
                    self.text[:] = self.text[-50:]
                else:
                    if isinstance(event, dict):
                        self.events.append(event)
                self._cond.notify_all()
        self.proc.stdout.close()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float = 5.0) -> None:
        """Wait until the reader saw EOF (after the process ended) and closed the pipe."""
        self._thread.join(timeout)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[start:]:
                    if pred(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    tail = "\n".join(self.text[-15:])
                    raise BenchError(f"{self.name}: timed out or exited (rc={self.proc.poll()})\n{tail}")
                self._cond.wait(min(left, 0.2))

    def snapshot(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.events)


def stop_process(proc: subprocess.Popen[str] | None, grace: float = 3.0, lines: LineReader | None = None) -> None:
    """Terminate (then kill) ``proc`` if it still runs, reap it and close our ends of its pipes."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if lines is not None:
        lines.join()
    elif proc.stdout is not None:
        proc.stdout.close()


class PrivateBus:
    """A private ``dbus-daemon --session`` with the recording notification server on it."""

    def __init__(self) -> None:
        self.daemon: subprocess.Popen[str] | None = None
        self.recorder: subprocess.Popen[str] | None = None
        self.address = ""
        self.lines: LineReader | None = None

    def __enter__(self) -> Self:
        self.daemon = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.daemon.stdout is not None
        self.address = self.daemon.stdout.readline().strip()
        if not self.address:
            stop_process(self.daemon)
            raise BenchError("dbus-daemon did not print an address")
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.address, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
        self.recorder = subprocess.Popen(
            [PY, "-m", "bench.recorder"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines = LineReader(self.recorder, "recorder")
        self.lines.wait_for(lambda e: e.get("ev") == "ready", 20)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.recorder, lines=self.lines)
        stop_process(self.daemon)

    def events(self, kind: str, start: int = 0) -> list[dict[str, Any]]:
        """Recorded events of ``kind`` ("notify", "launcher"), from position ``start`` of all events."""
        assert self.lines is not None
        return [e for e in self.lines.snapshot()[start:] if e.get("ev") == kind]

    def wait_notify(self, pred: Callable[[dict[str, Any]], bool], timeout: float, start: int = 0) -> dict[str, Any]:
        assert self.lines is not None
        return self.lines.wait_for(lambda e: e.get("ev") == "notify" and pred(e), timeout, start)

    def count(self) -> int:
        assert self.lines is not None
        return len(self.lines.snapshot())


class AppChild:
    """The app (``peft-notify app URL...``) or a bare PySide6 window, started by ``bench.appchild``.

    ``events`` come from the child's hook: ``shown`` (first top-level window exposed), ``lag``
    samples of a 10 ms QTimer (``t``, ``lag`` in ns), written to a file every ~200 ms.
    """

    def __init__(
        self,
        env: dict[str, str],
        app_args: Sequence[str] = (),
        *,
        bare: bool = False,
        lag_timer: bool = True,
        engine_overrides: dict[str, Any] | None = None,
        trace: bool = False,
    ) -> None:
        self.env = dict(env)
        self.events_path = Path(tempfile.mkstemp(prefix="bench-app-", suffix=".jsonl")[1])
        args = [PY, "-m", "bench.appchild", "--events", str(self.events_path)]
        if bare:
            args.append("--bare")
        if lag_timer:
            args.append("--lag-timer")
        if engine_overrides:
            args += ["--engine", json.dumps(engine_overrides)]
        if trace:  # ``trace`` events: a timestamp at each stage of a notification's path (bench.appchild)
            args.append("--trace")
        self.args = [*args, "--", *app_args]
        self.proc: subprocess.Popen[str] | None = None
        self.launched_ns = 0
        self.log_path = self.events_path.with_suffix(".log")

    def __enter__(self) -> Self:
        self.start()
        return self

    def start(self) -> None:
        log = self.log_path.open("w")
        self.launched_ns = time.perf_counter_ns()
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.proc)
        with contextlib.suppress(OSError):
            self.events_path.unlink()
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def events(self) -> list[dict[str, Any]]:
        out = []
        try:
            text = self.events_path.read_text()
        except OSError:
            return []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def wait_shown(self, timeout: float = 60) -> int:
        """Perf-counter ns when the first top-level window was exposed. Raises BenchError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("ev") == "shown":
                    return int(event["t"])
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise BenchError(f"app window not shown (rc={self.proc and self.proc.poll()}):\n{self.log_tail()}")

    def shown_cpu_s(self) -> float | None:
        """The child's CPU seconds (all threads, since exec) when its window was first exposed."""
        for event in self.events():
            if event.get("ev") == "shown" and "cpu" in event:
                return float(event["cpu"])
        return None

    def lag_samples(self, start_ns: int, end_ns: int) -> list[float]:
        """Timer lag in ms for samples in ``[start_ns, end_ns]``."""
        return [e["lag"] / 1e6 for e in self.events() if e.get("ev") == "lag" and start_ns <= e["t"] <= end_ns]

    def rss_mb(self) -> float:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class FloodServer:
    """``bench.floodsrv``: a raw websockets server sending pre-encoded protocol frames (child)."""

    def __init__(self, jobs: int, env: dict[str, str] | None = None, total: int = 10_000_000) -> None:
        self.jobs = jobs
        self.total = total
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.lines: LineReader | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            [PY, "-m", "bench.floodsrv", "--jobs", str(self.jobs), "--total", str(self.total)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env or isolated_env(Path(tempfile.mkdtemp(prefix="bench-flood-"))),
        )
        self.lines = LineReader(self.proc, "floodsrv")
        self.port = int(self.lines.wait_for(lambda e: e.get("ev") == "listening", 30)["port"])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        stop_process(self.proc, lines=self.lines)

    def url(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/notifications/j{index}"

    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.jobs)]

    def wait_connected(self, count: int, timeout: float = 60) -> None:
        assert self.lines is not None
        self.lines.wait_for(lambda e: e.get("ev") == "connected" and e["clients"] >= count, timeout)

    def command(self, **cmd: Any) -> dict[str, Any]:
        """Send one command (see ``bench.floodsrv``) and wait for its ``done`` line."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.lines is not None
        start = len(self.lines.snapshot())
        cmd_id = f"c{start}-{time.perf_counter_ns()}"
        self.proc.stdin.write(json.dumps({**cmd, "id": cmd_id}) + "\n")
        self.proc.stdin.flush()
        return self.lines.wait_for(lambda e: e.get("ev") == "done" and e.get("id") == cmd_id, 600, start)
