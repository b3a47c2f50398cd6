"""Job files: written 0600 with the token, listed, dead ones pruned, bad ones skipped."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from peft_notify import discovery


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rt"
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(path))
    return path


def test_runtime_dir_is_private(runtime: Path) -> None:
    path = discovery.runtime_dir()
    assert path == runtime
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_runtime_dir_without_override_is_created(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PEFT_NOTIFY_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir()
    assert discovery.runtime_dir().is_dir()


def test_write_list_remove_roundtrip() -> None:
    path = discovery.write_job_file(url="ws://127.0.0.1:1/ws/notifications/a", job_id="a", name="A", token="s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [job] = discovery.list_job_files()
    assert (job.url, job.job_id, job.name, job.token, job.pid) == (
        "ws://127.0.0.1:1/ws/notifications/a",
        "a",
        "A",
        "s3cret",
        os.getpid(),
    )
    assert job.path == path
    discovery.remove_job_file(path)
    discovery.remove_job_file(path)  # already gone: fine
    assert discovery.list_job_files() == []


def test_dead_process_file_is_pruned() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(proc.stdout)
    path = discovery.write_job_file(url="ws://x:1/ws/notifications/b", job_id="b", name="B", pid=dead_pid)
    assert [j.job_id for j in discovery.list_job_files(prune_dead=False)] == ["b"]
    assert discovery.list_job_files() == []
    assert not path.exists()


def test_unreadable_file_is_skipped(runtime: Path, caplog: pytest.LogCaptureFixture) -> None:
    discovery.runtime_dir()
    (runtime / "1-bad.job.json").write_text("{not json")
    (runtime / "2-partial.job.json").write_text(json.dumps({"url": "ws://x"}))
    good = discovery.write_job_file(url="ws://x:1/ws/notifications/c", job_id="c", name="C")
    assert [j.path for j in discovery.list_job_files()] == [good]
    assert "unreadable job file" in caplog.text


# --------------------------------------------------------------------------- issue 10 item 10: squatted directories

OTHER_UID = 65534  # nobody
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every uid (the venv's interpreter may live under /root)

SQUAT = r"""
import os, sys
for path in sys.argv[2:]:
    if sys.argv[1] == "symlink":
        os.symlink("/etc", path)
    else:
        os.mkdir(path)
        os.chmod(path, 0o777)
"""

TRAIN = """
import peft_notify
with peft_notify.job("squatted", total_steps=2, linger=0) as job:
    job.progress(1)
    job.progress(2)
print("trained")
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A world-writable sticky temp dir (like /tmp) that a second uid can reach."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs root, setpriv and /usr/bin/python3 to act as a second uid")
    path = Path(tempfile.mkdtemp(prefix="pn-squat-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _squat(kind: str, *paths: Path) -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv is not None
    cmd = [setpriv, f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", SYSTEM_PYTHON, "-c", SQUAT]
    subprocess.run([*cmd, kind, *map(str, paths)], check=True, timeout=30)


def _env(shared_tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEFT_NOTIFY_RUNTIME_DIR", "PEFT_NOTIFY_FD")}
    env.update(TMPDIR=str(shared_tmp), XDG_RUNTIME_DIR=str(shared_tmp / "xdg"))
    return env


def _python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.mark.parametrize("kind", ["dir", "symlink"])
def test_squatted_runtime_dirs_never_stop_training(shared_tmp: Path, kind: str) -> None:
    """Another uid created every directory we could use first: training still runs; watch --local does not crash."""
    squatted = [shared_tmp / "xdg", shared_tmp / f"runtime-{os.getuid()}", shared_tmp / f"peft-notify-{os.getuid()}"]
    _squat("dir", squatted[0])  # XDG_RUNTIME_DIR itself belongs to the attacker
    _squat(kind, *squatted[1:])
    env = _env(shared_tmp)
    proc = _python(env, "-c", TRAIN)
    assert proc.returncode == 0, proc.stderr
    assert "trained" in proc.stdout
    assert proc.stderr.count("served without a discovery file") == 1
    assert "Traceback" not in proc.stderr
    for path in squatted:  # nothing of ours was written where the attacker can read it
        assert path.is_symlink() or list(path.iterdir()) == []
    watch = _python(env, "-m", "peft_notify", "watch", "--local")
    assert watch.returncode != 1, watch.stderr  # 1 means "a job failed"
    assert "Traceback" not in watch.stderr


def test_the_temp_fallback_is_used_when_only_the_runtime_dir_is_squatted(shared_tmp: Path) -> None:
    _squat("dir", shared_tmp / "xdg", shared_tmp / f"runtime-{os.getuid()}")
    script = TRAIN + "\nfrom peft_notify import discovery\nprint(discovery.runtime_dir())\n"
    proc = _python(_env(shared_tmp), "-c", script)
    assert proc.returncode == 0, proc.stderr
    fallback = shared_tmp / f"peft-notify-{os.getuid()}"
    assert proc.stdout.split()[-1] == str(fallback)
    info = fallback.lstat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.getuid(), 0o700)
    assert "served without a discovery file" not in proc.stderr


def test_private_dir_refuses_a_directory_of_another_user(shared_tmp: Path) -> None:
    _squat("dir", shared_tmp / "theirs")
    with pytest.raises(discovery.DiscoveryError, match="belongs to uid"):
        discovery.private_dir(shared_tmp / "theirs")
    mine = discovery.private_dir(shared_tmp / "mine")
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700


def test_job_files_are_created_exclusively_and_never_through_a_symlink(runtime: Path) -> None:
    folder = discovery.runtime_dir()
    target = folder / "1-a.job.json"
    victim = runtime.parent / "victim.txt"
    victim.write_text("keep me")
    target.symlink_to(victim)  # a planted link where the job file goes is replaced, not written through
    path = discovery.write_job_file(url="ws://127.0.0.1:1/ws/notifications/a", job_id="a", name="A", pid=1)
    assert path == target
    assert not path.is_symlink()
    assert victim.read_text() == "keep me"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
