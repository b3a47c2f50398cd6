"""``peft-notify demo`` and ``app``: job plan, and a clear message where no display exists."""

from __future__ import annotations

import pytest

from peft_notify.cli import main
from peft_notify.cli.app import display_available
from peft_notify.cli.demo import demo_jobs


def test_demo_jobs_show_every_outcome() -> None:
    jobs = demo_jobs(3, steps=400, step_ms=100, fail_at=0.6, error="cuda_error")
    assert [j.job_id for j in jobs] == ["demo-1", "demo-2", "demo-3"]
    assert jobs[0].fail_at is None  # completes
    assert (jobs[1].fail_at, jobs[1].error_type) == (0.6, "cuda_error")  # fails
    assert jobs[2].loss_spike_at is not None  # warns
    assert jobs[2].step_time > jobs[0].step_time
    assert len({j.name for j in demo_jobs(7, 10, 1, 0.5, "oom_error")}) == 7


def test_app_without_display_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    if display_available():
        pytest.skip("this OS always has a display")
    assert main(["app", "ws://127.0.0.1:9/ws/notifications/x"]) == 2
    # Issue 11 item 7: a user-facing error is one line on stderr (it was printed on stdout).
    err = capsys.readouterr().err
    assert "no display found" in err
    assert err.count("\n") == 1


def test_demo_without_display_falls_back_to_watch(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    if display_available():
        pytest.skip("this OS always has a display")
    assert main(["demo", "--jobs", "2", "--steps", "8", "--step-ms", "5"]) == 0
    out = capfd.readouterr().out
    assert "No display here" in out
    assert "finished at step 8" in out
