"""End to end under the real desktop session: simulated job → the app (own process) → dunst + history.

Needs ``eval "$(../shared/desktop-session/start.sh)"`` (Xvfb, session D-Bus, dunst with -print).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.ports import HistoryEntry, HistoryQuery

pytestmark = [pytest.mark.desktop, pytest.mark.linux, pytest.mark.slow]

TOKEN = "e2e-token"


def _require_desktop() -> None:
    if not (os.environ.get("DISPLAY") and os.environ.get("DBUS_SESSION_BUS_ADDRESS")):
        pytest.skip("needs the desktop session (DISPLAY and DBUS_SESSION_BUS_ADDRESS)")
    if not os.environ.get("DESKTOP_SESSION_DUNST_LOG"):
        pytest.skip("needs the desktop session's dunst print log (DESKTOP_SESSION_DUNST_LOG)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Session:
    """An isolated app run: its own config/data/runtime dirs and single-instance socket."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = dict(os.environ)
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
            path = tmp / name.lower()
            path.mkdir(mode=0o700)
            self.env[name] = str(path)
        self.env["PEFT_NOTIFY_INSTANCE"] = str(tmp / "instance.sock")
        self.env.pop("QT_QPA_PLATFORM", None)
        self.env["QT_QPA_PLATFORM"] = "xcb"
        self.db = tmp / "xdg_data_home" / "peft-notify" / "history.sqlite3"
        self.dunst_log = Path(os.environ["DESKTOP_SESSION_DUNST_LOG"])
        self.log_start = self.dunst_log.stat().st_size if self.dunst_log.exists() else 0
        self.procs: list[subprocess.Popen[bytes]] = []
        self.app_proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.tmp / log).open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "peft_notify", *args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def simulate(self, port: int, *args: str) -> subprocess.Popen[bytes]:
        return self.start(
            "simulate",
            "--port",
            str(port),
            "--job-id",
            "e2e",
            "--name",
            "e2e-job",
            "--no-discovery",
            "--token",
            TOKEN,  # every job has a token (issue 10 item 1); a restarted job keeps it
            *args,
            log=f"sim-{len(self.procs)}.log",
        )

    def app(self, url: str) -> subprocess.Popen[bytes]:
        self.app_proc = self.start("-v", "app", f"{url}?token={TOKEN}", "--no-local", log="app.log")
        return self.app_proc

    def history(self) -> list[HistoryEntry]:
        if not self.db.exists():
            return []
        store = SqliteHistoryStore(self.db)
        try:
            return list(reversed(store.query(HistoryQuery(limit=1000))))
        finally:
            store.close()

    def dunst(self) -> str:
        with self.dunst_log.open("rb") as handle:
            handle.seek(self.log_start)
            return handle.read().decode("utf-8", "replace")

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if self.app_proc is not None and self.app_proc.poll() is not None:
                break  # the app died: fail now, with its log
            time.sleep(0.2)
        app_log = (self.tmp / "app.log").read_text(errors="replace")[-3000:] if (self.tmp / "app.log").exists() else ""
        raise AssertionError(f"timed out waiting for {what}; history={[e.title for e in self.history()]}\n{app_log}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    _require_desktop()
    s = Session(tmp_path)
    yield s
    s.stop()


def _done(entries: list[HistoryEntry], kind: str) -> bool:
    """An entry of ``kind`` exists and has been handed to a notifier (no longer pending)."""
    return any(e.kind == kind and e.status.value != "pending" for e in entries)


def _titles(entries: list[HistoryEntry], kind: str) -> list[str]:
    return [e.title for e in entries if e.kind == kind]


def test_milestones_and_completion_reach_dunst_and_history(session: Session) -> None:
    port = _free_port()
    session.simulate(port, "--steps", "80", "--step-ms", "60", "--wait-client", "30", "--linger", "5")
    session.app(f"ws://127.0.0.1:{port}/ws/notifications/e2e")
    session.wait_for("completion", lambda: _done(session.history(), "completion"))
    entries = session.history()
    milestones = [e.milestone for e in entries if e.kind == "progress"]
    assert milestones == [25, 50, 75]
    assert all(e.status.value == "shown" and e.backend == "desktop-notifier" for e in entries), entries
    session.wait_for("dunst to print the completion", lambda: "e2e-job finished" in session.dunst(), 15)
    log = session.dunst()
    for percent in (25, 50, 75):
        assert f"summary: 'e2e-job: {percent}% complete'" in log


def _kill_and_resume(session: Session, *resume_args: str) -> list[HistoryEntry]:
    """Run a job, SIGKILL it after 25 %, restart it resumed from step 60 of 200; the final history."""
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/ws/notifications/e2e"
    first = session.simulate(port, "--steps", "200", "--step-ms", "50", "--wait-client", "30")
    session.app(url)
    session.wait_for("the 25% milestone", lambda: 25 in [e.milestone for e in session.history()])
    first.kill()  # SIGKILL, like the OOM killer: no goodbye message
    first.wait()
    session.wait_for(
        "the dead process to be flagged", lambda: any(e.error_type == "system_crash" for e in session.history()), 30
    )
    session.simulate(port, "--steps", "200", "--step-ms", "30", "--resume-from", "60", "--linger", "5", *resume_args)
    session.wait_for("completion after the restart", lambda: _done(session.history(), "completion"), 90)
    return session.history()


def test_killed_simulator_is_flagged_and_the_restarted_run_is_followed(session: Session) -> None:
    entries = _kill_and_resume(session)
    milestones = [e.milestone for e in entries if e.kind == "progress"]
    # 50 % and 75 % happen after the restart: each exactly once, none missing.
    assert [m for m in milestones if m != 25] == [50, 75], [e.title for e in entries]
    assert 25 in milestones
    assert len(_titles(entries, "completion")) == 1
    crash = [e for e in entries if e.error_type == "system_crash"]
    assert len(crash) == 1
    assert crash[0].urgency == "critical"
    session.wait_for("dunst to show the crash", lambda: "urgency: CRITICAL" in session.dunst(), 15)


def test_resumed_run_does_not_repeat_a_passed_milestone(session: Session) -> None:
    # --wait-client: the app's hello from the restarted job always comes before its first progress.
    entries = _kill_and_resume(session, "--wait-client", "30")
    assert [e.milestone for e in entries if e.kind == "progress"] == [25, 50, 75]


def test_clicking_the_error_in_dunst_reaches_the_app(session: Session) -> None:
    import shutil

    if not shutil.which("dunstctl"):
        pytest.skip("dunstctl is not installed")
    port = _free_port()
    session.simulate(
        port, "--steps", "40", "--step-ms", "100", "--fail-at", "0.75", "--wait-client", "30", "--linger", "30"
    )
    session.app(f"ws://127.0.0.1:{port}/ws/notifications/e2e")
    session.wait_for("the 25% milestone", lambda: 25 in [e.milestone for e in session.history()])
    # Sticky criticals from earlier runs would come first: clear them before ours arrives.
    subprocess.run(["dunstctl", "close-all"], env=session.env, check=True, timeout=10)
    session.wait_for("the error to be shown", lambda: _done(session.history(), "error"))
    session.wait_for("dunst to print the error", lambda: "urgency: CRITICAL" in session.dunst(), 15)
    time.sleep(0.5)
    # dunst sorts by urgency: action 0 clicks our critical error -> on_clicked -> the app marks it read.
    subprocess.run(["dunstctl", "action", "0"], env=session.env, check=True, timeout=10)
    session.wait_for(
        "the clicked error to be marked read", lambda: any(e.kind == "error" and e.read for e in session.history()), 15
    )
