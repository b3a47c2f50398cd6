"""Issue 11 item 1 as the user meets it: ``peft-notify run`` of a training script that dies of OOM,
the real app, dunst's Retry button and Dismiss (real processes, the real desktop session).

Before: ``run`` exited with the child, so Retry only got "The job did not accept 'retry'".
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.test_desktop_e2e import TOKEN, Session

pytestmark = [pytest.mark.desktop, pytest.mark.linux, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    if not (os.environ.get("DISPLAY") and os.environ.get("DESKTOP_SESSION_DUNST_LOG")):
        pytest.skip("needs the desktop session with its dunst print log (../shared/desktop-session)")
    s = Session(tmp_path)
    yield s
    s.stop()


# Slowly past half the bar (the app, started with the job, sees its 50 % milestone live), then
# an OOM once the test says so; the relaunched run finishes (the marker file exists by then).
TRAIN = """
import pathlib, sys, time
from tqdm import tqdm
here = pathlib.Path(__file__).parent
relaunched = (here / "ran-once").exists()
for i in tqdm(range(8), mininterval=0):
    time.sleep(0.15 if relaunched else 1.0)
    if i == 4 and not relaunched:
        while not (here / "go").exists():
            time.sleep(0.05)
if not relaunched:
    (here / "ran-once").write_text("1")
    raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")
print("second run ok", flush=True)
"""


def _start_run(session: Session, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    port = _free_port()
    run = session.start(
        "run", "--port", str(port), "--job-id", "oom", "--name", "oom-job", "--token", TOKEN, "--linger", "0.5",
        "--no-pty", "--", sys.executable, str(script),
        log="run.log",
    )  # fmt: skip
    return run, f"ws://127.0.0.1:{port}/ws/notifications/oom"


def _run_log(tmp_path: Path) -> str:
    return (tmp_path / "run.log").read_text(errors="replace")


def _fail_and_wait_for_the_window(session: Session, tmp_path: Path) -> None:
    session.wait_for(
        "the app to follow the job (its 50 % milestone)", lambda: 50 in [e.milestone for e in session.history()]
    )
    (tmp_path / "go").touch()
    session.wait_for("the OOM popup with Retry", lambda: "urgency: CRITICAL" in session.dunst(), 30)
    session.wait_for("run to wait for Retry", lambda: "waiting for Retry from the desktop" in _run_log(tmp_path), 30)


def _dunstctl(*args: str) -> None:
    subprocess.run(["dunstctl", *args], check=True, timeout=10)


def test_retry_in_the_popup_relaunches_the_job(session: Session, tmp_path: Path) -> None:
    run, url = _start_run(session, tmp_path)
    session.app(url)
    _fail_and_wait_for_the_window(session, tmp_path)
    assert '"retry"' in session.dunst().lower()  # the popup offers Retry: the job can take it now
    Path(os.environ["DESKTOP_SESSION_DMENU_CHOICE"]).write_text("Retry\n")
    _dunstctl("context")  # the user picks Retry in the notification's menu
    assert run.wait(90) == 0, _run_log(tmp_path)
    log = _run_log(tmp_path)
    assert "relaunching (retry from the app)" in log
    assert "second run ok" in log
    session.wait_for("the relaunched run's completion", lambda: any(e.kind == "completion" for e in session.history()))


def test_dismissing_the_failure_ends_the_wait_with_the_childs_code(session: Session, tmp_path: Path) -> None:
    run, url = _start_run(session, tmp_path)
    session.app(url)
    _fail_and_wait_for_the_window(session, tmp_path)
    dismissed = time.monotonic()
    _dunstctl("close-all")  # the user dismisses the failure notification
    assert run.wait(30) == 1, _run_log(tmp_path)  # the child's exit code, long before the 10 minutes
    assert time.monotonic() - dismissed < 20
    assert "dismissed on the desktop" in _run_log(tmp_path)
