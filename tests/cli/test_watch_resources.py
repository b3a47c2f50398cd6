"""Resource warnings end to end without a desktop: training side → socket → ``peft-notify watch``.

The training side is ``tests/emitter/resource_job.py`` in its own process (a real job server):
``scripted`` breaks every rule in turn with scripted samples (machine states this machine
cannot be put in); ``real`` runs the real sampler on a real small tmpfs the test filled, with
``FakeNvml`` as its NVML. ``watch`` is a real process with its own settings file whose
``[resources]`` table shortens the rules' holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.emitter.resource_support import fill, small_tmpfs

pytestmark = [pytest.mark.linux, pytest.mark.slow]

ROOT = Path(__file__).parents[2]
SETTINGS = """\
[resources]
host_memory_for_s = 2
gpu_memory_for_s = 2
throttle_for_s = 2
hang_min_s = 3
hang_idle_for_s = 2
"""


def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config"
    (config / "peft-notify").mkdir(parents=True, exist_ok=True)
    (config / "peft-notify" / "settings.toml").write_text(SETTINGS)
    return {
        **os.environ,
        "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt"),
        "XDG_CONFIG_HOME": str(config),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


def start_job(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.emitter.resource_job", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("ws://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
    return proc, url


def watch_until(tmp_path: Path, url: str, titles: set[str], timeout: float) -> list[dict[str, Any]]:
    """Run ``watch --json`` until every title in ``titles`` was decided; the decided events."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "peft_notify", "watch", url, "--json", "--since", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    assert proc.stdout is not None
    got: list[dict[str, Any]] = []
    try:
        import selectors
        import time

        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not titles <= {r["event"]["title"] for r in got} and time.monotonic() < deadline:
            if not sel.select(timeout=1.0):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("action") in ("Notify", "Record") and "event" in record:
                    got.append(record)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    missing = titles - {r["event"]["title"] for r in got}
    assert not missing, f"never decided: {missing}\nwatch stderr: {err[-2000:]}"
    return got


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def test_every_resource_rule_reaches_watch(tmp_path: Path) -> None:
    job, url = start_job(tmp_path, "scripted", "--seconds", "90")
    warnings = {
        "res-job: low disk space",
        "res-job: host memory almost full",
        "res-job: swapping",
        "res-job: GPU 0 close to out of memory",
        "res-job: GPU 0 is throttling",
        "res-job appears hung",
    }
    criticals = {
        "res-job: the next checkpoint will not fit",
        "res-job: GPU 0 reported XID 79",
        "res-job: GPU 0 memory error",
    }
    try:
        got = watch_until(tmp_path, url, warnings | criticals, timeout=90)
    finally:
        stop(job)
    events = {r["event"]["title"]: r["event"] for r in got}
    for title in warnings:
        assert events[title]["type"] == "warning"
        assert events[title]["respect_dnd"] is True
    for title in criticals:
        assert events[title]["type"] == "error"
        assert events[title]["urgency"] == "critical"
        assert events[title]["respect_dnd"] is False
    assert [r["event"]["title"] for r in got].count("res-job: low disk space") == 1  # once until it clears


def test_real_sampler_full_tmpfs_and_fake_nvml_xid_reach_watch(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs") as fs:
        out = fs / "run"
        out.mkdir()
        fill(out / "dataset.arrow", 4 << 20)  # ~4 MiB left; the model's parameters need 6 MiB
        job, url = start_job(tmp_path, "real", "--output-dir", str(out), "--param-bytes", str(6 << 20))
        try:
            got = watch_until(
                tmp_path, url, {"res-job: the next checkpoint will not fit", "res-job: GPU 0 reported XID 79"}, 60
            )
        finally:
            stop(job)
    events = {r["event"]["title"]: r["event"] for r in got}
    disk = events["res-job: the next checkpoint will not fit"]
    assert disk["urgency"] == "critical"
    assert f"free on {out}; the next checkpoint needs about 6.0 MiB" in disk["message"]
    assert "XID critical error 79" in events["res-job: GPU 0 reported XID 79"]["message"]
