"""``run --nats`` / ``simulate --nats`` publish; ``watch --json nats://...`` follows (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.cluster.natsd import NatsServer
from tests.cluster.rig import ROOT


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "PEFT_NOTIFY_RESOURCES": "0", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "peft_notify", *args],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_follows_simulate_and_run_jobs_published_to_nats(natsd: NatsServer, tmp_path: Path) -> None:
    watch = _cli("watch", "--json", f"nats://127.0.0.1:{natsd.port}")
    printed: list[str] = []
    assert watch.stdout is not None
    reader = threading.Thread(target=lambda: printed.extend(iter(watch.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        sim = _cli(
            "simulate", "--steps", "40", "--step-ms", "20", "--job-id", "sim-a", "--linger", "0",
            "--nats", natsd.url, "--no-discovery",
        )  # fmt: skip
        script = tmp_path / "train.py"
        script.write_text("import time\nfor i in range(30):\n    time.sleep(0.02)\nprint('trained')\n")
        wrapped = _cli(
            "run", "--job-id", "run-b", "--retry-wait", "0", "--linger", "0", "--", sys.executable, str(script),
            env={"PEFT_NOTIFY_NATS": natsd.url},
        )  # fmt: skip
        assert sim.wait(60) == 0, sim.communicate()[1]
        out, err = wrapped.communicate(timeout=60)
        assert wrapped.returncode == 0, err
        assert "trained" in out and "publishing 'train.py' to nats://127.0.0.1" in err
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            records = [json.loads(line) for line in list(printed) if line.strip()]
            done = {
                str(rec.get("job_id", "")).split("@")[0]
                for rec in records
                if rec.get("action") == "Notify" and "complete" in str(rec.get("event", {}).get("title", "")).lower()
            }
            if {"sim-a", "run-b"} <= done:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"watch did not print both completions: {''.join(printed)[-3000:]}")
        assert sim.stdout is not None and sim.stderr is not None
        sim.stdout.close()
        sim.stderr.close()
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(20)
        reader.join(5)
        assert watch.stderr is not None
        err = watch.stderr.read()
        watch.stdout.close()
        watch.stderr.close()
    assert watch.returncode == 130, err


def test_watch_and_run_refuse_clear_text_to_another_host() -> None:
    for args in (
        ("watch", "nats://tok3n@10.9.8.7:4222"),
        ("run", "--nats", "nats://tok3n@10.9.8.7:4222", "--", "true"),
        ("simulate", "--nats", "nats://tok3n@10.9.8.7:4222"),
    ):
        proc = _cli(*args)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 2, (args, err)
        assert "clear text" in err and "tok3n" not in err + out


def test_a_job_id_that_cannot_be_a_subject_is_refused_before_serving() -> None:
    proc = _cli("simulate", "--nats", "nats://127.0.0.1:4222", "--job-id", "a..b", "--no-discovery")
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "cannot be a NATS subject" in err and "Traceback" not in err
