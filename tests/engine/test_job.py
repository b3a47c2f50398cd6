"""Per-job state: step rate, ETA, stall threshold, taskbar contribution."""

from __future__ import annotations

import pytest

from peft_notify.engine.job import Job, StepRate
from peft_notify.engine.limits import TokenBucket
from peft_notify.engine.taskbar import Contribution
from peft_notify.ports import TaskbarState
from peft_notify.wire import JobState


def make_job(**fields: object) -> Job:
    return Job(job_id="j", bucket=TokenBucket(5, 12.0, 0.0), **fields)  # type: ignore[arg-type]


def test_step_rate_is_smoothed_and_ignores_bursts_and_rewinds() -> None:
    rate = StepRate()
    rate.observe(0, 0.0)
    assert rate.eta(0, 100) is None
    rate.observe(10, 10.0)  # 1 step/s
    assert rate.rate == 1.0
    rate.observe(30, 20.0)  # 2 steps/s -> 0.3 * 2 + 0.7 * 1
    assert rate.rate == pytest.approx(1.3)
    rate.observe(40, 20.0)  # same timestamp (a replayed burst): no sample yet
    assert rate.rate == pytest.approx(1.3)
    rate.observe(40, 25.0)  # the burst's steps count over the time that passed: 10 steps in 5 s
    assert rate.rate == pytest.approx(0.3 * 2 + 0.7 * 1.3)
    assert list(rate.intervals) == [10.0, 10.0, 5.0]
    rate.observe(5, 30.0)  # rewind: new reference point, no sample
    rate.observe(15, 40.0)
    assert list(rate.intervals) == [10.0, 10.0, 5.0, 10.0]
    assert rate.median_interval() == 10.0
    assert rate.eta(50, None) is None


def test_step_rate_eta() -> None:
    rate = StepRate()
    rate.observe(0, 0.0)
    rate.observe(10, 5.0)
    assert rate.eta(10, 100) == 45.0
    assert rate.eta(100, 100) == 0.0


def test_stall_after_uses_minimum_until_intervals_are_known() -> None:
    job = make_job()
    assert job.stall_after(300, 10) == 300
    job.rate.observe(0, 0.0)
    job.rate.observe(1, 100.0)
    assert job.stall_after(300, 10) == 1000


def test_contribution_per_state() -> None:
    assert make_job(total_steps=10, current_step=5).contribution() == Contribution(0.5, TaskbarState.NORMAL)
    assert make_job(state=JobState.PAUSED).contribution() == Contribution(None, TaskbarState.PAUSED)
    assert make_job(state=JobState.PAUSED, error_flag=True).contribution() == Contribution(None, TaskbarState.ERROR)
    assert make_job(state=JobState.FAILED).contribution() == Contribution(None, TaskbarState.ERROR)
    assert make_job(state=JobState.FAILED, failure_seen=True).contribution() is None
    assert make_job(state=JobState.COMPLETED).contribution() is None
    assert make_job(state=JobState.CANCELLED).contribution() is None


def test_new_run_forgets_the_previous_run() -> None:
    job = make_job(name="n", total_steps=10, current_step=7, completion_done=True, error_sent=True, stalled=True)
    job.milestones_done.add(25)
    job.new_run("r2")
    assert job.run_id == "r2"
    assert job.milestone_ref == "r2"
    assert (job.current_step, job.completion_done, job.error_sent, job.stalled) == (0, False, False, False)
    assert job.milestones_done == set()
    assert job.total_steps == 10  # identity survives; the hello updates it
    assert job.view().name == "n"
