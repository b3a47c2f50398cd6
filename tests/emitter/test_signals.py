"""Discovery files are removed when SIGTERM kills the process (real subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SERVE = """
import signal, sys, time
from peft_notify.emitter import JobServer
if sys.argv[1] == "user-handler":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
server = JobServer().start()
server.add_job("victim", name="victim")
print("ready", flush=True)
time.sleep(60)
"""

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def _serve(tmp_path: Path, runtime_dir: Path, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(SERVE))
    env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(runtime_dir)}
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_sigterm_removes_the_job_file_and_still_kills(tmp_path: Path, runtime_dir: Path) -> None:
    proc = _serve(tmp_path, runtime_dir, "default")
    [job_file] = runtime_dir.glob("*.job.json")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == -signal.SIGTERM  # died of SIGTERM, as without our handler
    assert not job_file.exists()
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_users_sigterm_handler_is_left_alone(tmp_path: Path, runtime_dir: Path) -> None:
    proc = _serve(tmp_path, runtime_dir, "user-handler")
    [job_file] = runtime_dir.glob("*.job.json")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 7  # the user's handler ran; it exits through atexit, which cleans up too
    assert not job_file.exists()
    assert proc.stdout is not None
    proc.stdout.close()
