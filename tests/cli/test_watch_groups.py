"""Sweeps end to end: real ``simulate --group`` processes followed by a real ``watch`` (issue 15 part 1).

Exactly one "all finished" notification per group, the failure at once, trial milestones
recorded (history) but not shown, and group lines as the counts change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_simulate import start_simulate

pytestmark = pytest.mark.slow


def start_trials(tmp_path: Path, *group: str, fail: int = 2) -> list[subprocess.Popen[str]]:
    procs = []
    for i, lr in enumerate(("1e-4", "2e-4", "3e-4")):
        extra = ["--fail-at", "0.5"] if i == fail else []
        proc, _url = start_simulate(
            tmp_path,
            "--steps",
            "40",
            "--eval-every",
            "10",
            "--seed",
            str(i),
            "--job-id",
            f"trial-{i}",
            "--name",
            f"trial {i}",
            "--wait-client",
            "30",
            *group,
            "--group-param",
            f"lr={lr}",
            "--group-param",
            "r=16",
            *extra,
        )
        procs.append(proc)
    return procs


def watch_local(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    env = {**os.environ, "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
    done = subprocess.run(
        [sys.executable, "-m", "peft_notify", "watch", "--local", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
        env=env,
    )
    assert done.returncode == 1, done.stderr  # one trial failed
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def close(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.wait(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def notified(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("action") == "Notify"]


def test_a_sweep_of_simulated_jobs_gives_one_summary(tmp_path: Path) -> None:
    procs = start_trials(tmp_path, "--group", "sweep-e2e", "--group-size", "3")
    try:
        lines = watch_local(tmp_path, "--json")
    finally:
        close(procs)
    shown = notified(lines)
    summaries = [n for n in shown if n["job_id"].startswith("group:")]
    assert len(summaries) == 1, shown
    event = summaries[0]["event"]
    assert event["title"] == "sweep-e2e: all 3 finished"
    assert event["message"].startswith("2 ok, 1 failed; best eval_loss ")
    assert event["message"].endswith("r=16)")
    # The failure popped up (before the summary); no trial milestone or completion did.
    kinds = [n["event"]["type"] for n in shown]
    assert kinds.count("error") == 1
    assert kinds.index("error") < kinds.index("completion")
    assert [n for n in shown if n["event"]["type"] == "progress"] == []
    assert [n for n in shown if n["event"]["type"] == "completion"] == summaries
    recorded = [line for line in lines if line.get("action") == "Record" and line["reason"] == "filtered"]
    assert {r["event"]["type"] for r in recorded} >= {"progress", "completion"}  # in history
    groups = [line["group"] for line in lines if "group" in line]
    assert groups[-1]["done"] == 2 and groups[-1]["failed"] == 1 and groups[-1]["ended"]


def test_a_sweep_of_unknown_size_ends_when_watch_has_nothing_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment names the group, as a sweep launcher would set it: no --group, no code change.
    monkeypatch.setenv("PEFT_NOTIFY_GROUP", "env sweep")
    procs = start_trials(tmp_path, fail=0)
    monkeypatch.delenv("PEFT_NOTIFY_GROUP")
    try:
        lines = watch_local(tmp_path, "--json")
    finally:
        close(procs)
    summaries = [n for n in notified(lines) if n["job_id"].startswith("group:")]
    assert len(summaries) == 1
    assert summaries[0]["event"]["title"] == "env sweep: all 3 finished"
    assert summaries[0]["event"]["message"].startswith("2 ok, 1 failed")
