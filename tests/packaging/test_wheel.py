"""The PyPI artefacts as a user gets them: sdist + wheel that twine accepts, installed in a fresh venv.

The wheel is installed into a new virtual environment (its dependencies come from the package
index) and run from a directory outside the checkout, so nothing here can import the source
tree by accident.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from peft_notify import __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # builds and pip-installs inside the first test

REPO = Path(__file__).resolve().parents[2]
JOB_SCRIPT = """
import sys, time
import peft_notify

with peft_notify.job("wheel-job", total_steps=20, job_id="wheel", port=int(sys.argv[1]), linger=20) as job:
    print(job.url, flush=True)
    time.sleep(1.0)
    for _ in job.track(range(20)):
        time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[packaging]' (scripts/test does)")
    out = tmp_path_factory.mktemp("pydist")
    # --no-isolation: the build backend (setuptools) from this venv, no download.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    return out


@pytest.fixture(scope="module")
def venv(dists: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with only the wheel and its core dependencies."""
    where = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    wheel = next(dists.glob("peft_notify-*.whl"))
    subprocess.run(
        [str(where / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True, capture_output=True, timeout=600,
    )
    return where


def user_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["PEFT_NOTIFY_RUNTIME_DIR"] = str(tmp / "runtime")
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    env["XDG_DATA_HOME"] = str(tmp / "data")
    return env


def test_sdist_and_wheel_pass_twine_check_and_the_pypi_readme_is_current(dists: Path) -> None:
    names = sorted(p.name for p in dists.iterdir())
    assert names == [f"peft_notify-{__version__}-py3-none-any.whl", f"peft_notify-{__version__}.tar.gz"]
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *(str(p) for p in dists.iterdir())],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    check = subprocess.run([sys.executable, str(REPO / "packaging" / "pypi_readme.py"), "--check"], check=False)
    assert check.returncode == 0, "docs/pypi.md is stale: python packaging/pypi_readme.py"


def test_installed_wheel_runs_doctor_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    exe = venv / "bin" / "peft-notify"
    version = subprocess.run([str(exe), "--version"], cwd=tmp_path, env=user_env(tmp_path),
                             capture_output=True, text=True, check=True, timeout=60)
    assert version.stdout.strip() == f"peft-notify {__version__}"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import peft_notify; print(peft_notify.__file__)"],
                           cwd=tmp_path, env=user_env(tmp_path), capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy, not the checkout
    doctor = subprocess.run([str(exe), "doctor"], cwd=tmp_path, env=user_env(tmp_path),
                            capture_output=True, text=True, check=False, timeout=120)
    # The core install (a GPU server) has no D-Bus or desktop libraries: doctor says what to
    # install and exits 1 (it crashed with ModuleNotFoundError before).
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "desktop side: not installed here" in doctor.stdout
    assert "pip install 'peft-notify[desktop]'" in doctor.stdout
    assert "history: " in doctor.stdout


def test_installed_wheel_training_side_job_and_watch_json(venv: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "train.py"
    script.write_text(JOB_SCRIPT)
    env = user_env(tmp_path)
    job = subprocess.Popen([str(venv / "bin" / "python"), str(script), str(port)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert job.stdout is not None
        url = job.stdout.readline().strip()
        assert url.startswith(f"ws://127.0.0.1:{port}/"), job.stderr.read() if job.stderr else ""
        watch = subprocess.run([str(venv / "bin" / "peft-notify"), "watch", "--json", "--since", "0", url],
                               cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120)
    finally:
        job.wait(60)
        for stream in (job.stdout, job.stderr):
            if stream is not None:
                stream.close()
    assert job.returncode == 0
    assert watch.returncode == 0, watch.stdout + watch.stderr
    events = [json.loads(line)["event"] for line in watch.stdout.splitlines()
              if line.startswith("{") and json.loads(line).get("action") == "Notify"]
    assert [e["milestone"] for e in events if e.get("milestone")][:3] == [25, 50, 75]
    assert any(e["type"] == "completion" for e in events)
