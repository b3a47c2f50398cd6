"""Which group a job joins (job(group=), PEFT_NOTIFY_GROUP), and that no secret leaves with it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import connect

import peft_notify
from peft_notify import wire
from peft_notify.emitter.grouping import resolve_group
from peft_notify.integrations.sweep import SweepReporter

SECRET = "hf_abcdefghijklmnopqrstuvwxyz0123"


def first_hello(url: str) -> dict[str, Any]:
    with connect(url) as ws:
        frame = ws.recv()
    assert isinstance(frame, str)
    assert SECRET not in frame and "hunter2" not in frame
    data: dict[str, Any] = json.loads(frame)["data"]
    return data


def test_job_group_reaches_the_hello_with_secrets_redacted() -> None:
    """Attack: a trial config carrying credentials must not reach the desktop (and its history)."""
    group = {
        "name": "lr sweep",
        "expected_jobs": 4,
        "params": {"lr": 2e-4, "hf_token": SECRET, "note": "password=hunter2"},
    }
    with peft_notify.job("trial-1", 10, group=group, print_url=False, linger=0) as job:
        hello = first_hello(job.url)
    assert hello["group"]["name"] == "lr sweep"
    assert hello["group"]["expected_jobs"] == 4
    assert hello["group"]["params"] == {"lr": 2e-4, "hf_token": "[redacted]", "note": "[redacted]"}


def test_sweep_reporter_redacts_trial_configs() -> None:
    reporter = SweepReporter(f"sweep {SECRET}", print_url=False, linger=0)
    reporter.trial_started("t0", {"lr": 1e-4, "tracker": {"api_key": "abcd1234"}, "model": "llama"})
    try:
        assert reporter.server is not None
        hello = first_hello(reporter.server.url_for(reporter.job_ids[0]))
    finally:
        reporter.finish()
    assert hello["group"]["params"] == {"lr": 1e-4, "tracker/api_key": "[redacted]", "model": "llama"}
    assert SECRET not in hello["group"]["name"]


def test_the_environment_groups_a_job_without_code_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_GROUP", "env sweep")
    monkeypatch.setenv("PEFT_NOTIFY_GROUP_SIZE", "40")
    with peft_notify.job("trial-2", 10, print_url=False, linger=0) as job:
        hello = first_hello(job.url)
    assert hello["group"] == {"id": wire.group_named("env sweep").id, "name": "env sweep", "expected_jobs": 40}


def test_explicit_group_wins_over_the_environment() -> None:
    env = {"PEFT_NOTIFY_GROUP": "env sweep"}
    group = resolve_group("mine", env=env)
    assert group is not None and group.name == "mine"
    assert resolve_group(env={}) is None


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"PEFT_NOTIFY_GROUP": "x" * 300}, "PEFT_NOTIFY_GROUP"),
        ({"PEFT_NOTIFY_GROUP": "ok", "PEFT_NOTIFY_GROUP_SIZE": "-3"}, "PEFT_NOTIFY_GROUP_SIZE"),
        ({"PEFT_NOTIFY_GROUP": "ok", "PEFT_NOTIFY_GROUP_SIZE": "１２"}, "PEFT_NOTIFY_GROUP_SIZE"),
    ],
)
def test_a_bad_environment_is_one_line_and_the_job_runs_ungrouped(
    env: dict[str, str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert resolve_group(env=env) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0]


def test_a_bad_explicit_group_raises() -> None:
    with pytest.raises(ValueError, match=r"group\.id"):
        resolve_group(wire.Group(id="../../etc", name="x"))
    with pytest.raises(ValueError, match="expected_jobs"):
        resolve_group({"name": "x", "expected_jobs": 0})


def test_a_secret_in_the_group_name_reaches_neither_name_nor_id() -> None:
    group = resolve_group(f"sweep {SECRET}")
    assert group is not None
    assert SECRET not in group.name and SECRET not in group.id and wire.is_valid_job_id(group.id)
    again = resolve_group(f"sweep {SECRET}")
    assert again is not None and again.id == group.id  # every trial of the sweep gets the same id


def test_cli_group_options_are_redacted_too(tmp_path: Any) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "peft_notify",
            "simulate",
            "--steps",
            "100",
            "--step-ms",
            "20",  # serves for ~2 s: long enough to connect, no waiting for a client
            "--no-discovery",
            "--linger",
            "1",
            "--group",
            f"s {SECRET}",
            "--group-param",
            "password=hunter2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        hello = first_hello(proc.stdout.readline().strip())
        assert hello["group"]["params"] == {"password": "[redacted]"}
    finally:
        proc.wait(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
