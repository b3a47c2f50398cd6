"""Groups (sweeps) in the engine: counts, best trial, muted trial milestones, failures at once, ONE summary."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from peft_notify.engine import Engine, EngineConfig, Notify, Record
from peft_notify.engine.actions import Action
from peft_notify.engine.groups import Groups, format_number
from peft_notify.ports import DeliveryStatus
from peft_notify.wire import (
    Envelope,
    Group,
    GroupMode,
    GroupRole,
    Hello,
    JobState,
    NotificationEvent,
    NotificationType,
    Progress,
    Status,
)

T0 = 1_700_000_000.0
SWEEP = Group(id="sweep-lr", name="sweep lr", metric="eval_loss")


def hello(job: str, group: Group | None = SWEEP, *, state: JobState = JobState.RUNNING, run: str = "r1") -> Envelope:
    params = {"lr": 2e-4 * (int(job[1:]) + 1), "r": 16} if group is not None else {}
    g = None if group is None else replace(group, params=params)
    body = Hello(name=job, run_id=f"{job}-{run}", total_steps=100, state=state, group=g)
    return Envelope("hello", body, seq=0, job_id=job, ts=T0)


def step(job: str, n: int, eval_loss: float | None = None) -> Envelope:
    metrics = {} if eval_loss is None else {"eval_loss": eval_loss}
    return Envelope("progress", Progress(n, 100, loss=1.0, metrics=metrics), seq=n, job_id=job, ts=None)


def status(job: str, state: JobState, reason: str | None = None) -> Envelope:
    return Envelope("status", Status(state, reason), seq=999, job_id=job, ts=None)


def error(job: str) -> Envelope:
    event = NotificationEvent(NotificationType.ERROR, "Training Error", "CUDA out of memory", error_type="oom_error")
    return Envelope("notification", event, seq=500, job_id=job, ts=None)


def shown(actions: list[Action]) -> list[NotificationEvent]:
    return [a.event for a in actions if isinstance(a, Notify)]


def summaries(actions: list[Action]) -> list[Notify]:
    return [a for a in actions if isinstance(a, Notify) and a.job_id.startswith("group:")]


def run_trial(
    engine: Engine, job: str, now: float, *, loss: float, end: JobState = JobState.COMPLETED, group: Group = SWEEP
) -> list[Action]:
    actions = engine.feed(hello(job, group), now=now)
    for n in (30, 60, 90):
        actions += engine.feed(step(job, n, loss), now=now + n)
    if end is JobState.FAILED:
        actions += engine.feed(error(job), now=now + 95)
    if end is JobState.COMPLETED:
        actions += engine.feed(step(job, 100, loss), now=now + 100)
    actions += engine.feed(status(job, end), now=now + 100)
    return actions


def test_four_trials_one_failing_give_exactly_one_summary_with_the_best() -> None:
    engine = Engine()
    group = replace(SWEEP, expected_jobs=4)
    actions: list[Action] = []
    losses = {"t0": 0.52, "t1": 0.41, "t2": 0.60}
    for i, job in enumerate(("t0", "t1", "t2", "t3")):
        engine.feed(hello(job, group), now=T0 + i)
    for job, loss in losses.items():
        actions += engine.feed(step(job, 50, loss), now=T0 + 50)
        actions += engine.feed(step(job, 100, loss), now=T0 + 100)
        actions += engine.feed(status(job, JobState.COMPLETED), now=T0 + 100)
    failure = engine.feed(error("t3"), now=T0 + 101)
    assert [e.type for e in shown(failure)] == [NotificationType.ERROR]  # failures pop up at once
    actions += failure + engine.feed(status("t3", JobState.FAILED), now=T0 + 102)
    done = summaries(actions)
    assert len(done) == 1
    assert f"{done[0].event.title} — {done[0].event.message}" == (
        "sweep lr: all 4 finished — 3 ok, 1 failed; best eval_loss 0.41 (lr=4e-4, r=16)"
    )
    # Trial milestones and completions are in history, not popped up.
    recorded = [a for a in actions if isinstance(a, Record) and a.reason is DeliveryStatus.FILTERED]
    assert {a.event.type for a in recorded} == {NotificationType.PROGRESS, NotificationType.COMPLETION}
    assert [e.type for e in shown(actions)] == [NotificationType.ERROR, NotificationType.COMPLETION]
    view = engine.group("sweep-lr")
    assert view is not None
    assert (view.total, view.running, view.done, view.failed, view.ended) == (4, 0, 3, 1, True)
    assert summaries(engine.tick(now=T0 + 10_000)) == []


def test_without_expected_jobs_the_group_ends_after_the_grace_period() -> None:
    engine = Engine(EngineConfig(group_grace_s=60.0))
    actions = run_trial(engine, "t0", T0, loss=0.5)
    actions += run_trial(engine, "t1", T0 + 200, loss=0.4)  # started after t0 ended, within the grace
    assert summaries(actions) == []
    last_end = T0 + 300
    assert engine.next_tick_at() == last_end + 60.0
    assert summaries(engine.tick(now=last_end + 59.0)) == []
    done = summaries(engine.tick(now=last_end + 60.0))
    assert len(done) == 1
    assert done[0].event.title == "sweep lr: all 2 finished"
    assert summaries(engine.tick(now=last_end + 600.0)) == []


def test_a_trial_starting_within_the_grace_keeps_the_group_open() -> None:
    engine = Engine(EngineConfig(group_grace_s=60.0))
    run_trial(engine, "t0", T0, loss=0.5)
    engine.feed(hello("t1"), now=T0 + 130)  # 30 s after t0 ended
    assert summaries(engine.tick(now=T0 + 400)) == []  # t1 still running
    view = engine.group("sweep-lr")
    assert view is not None and view.running == 1 and view.done == 1


def test_group_milestones_pop_up_when_the_setting_says_so() -> None:
    engine = Engine(EngineConfig(group_trial_popups=True))
    actions = run_trial(engine, "t0", T0, loss=0.5)
    kinds = [e.type for e in shown(actions)]
    assert NotificationType.PROGRESS in kinds and NotificationType.COMPLETION in kinds


def test_ungrouped_jobs_are_untouched() -> None:
    engine = Engine()
    actions = engine.feed(hello("t0", None), now=T0)
    for n in (30, 60, 80, 100):
        actions += engine.feed(step("t0", n), now=T0 + n)
    assert [e.milestone for e in shown(actions)] == [25, 50, 75, 100]
    assert engine.groups() == []


def test_pruned_and_cancelled_are_counted_apart() -> None:
    engine = Engine()
    group = replace(SWEEP, expected_jobs=3)
    for job in ("t0", "t1", "t2"):
        engine.feed(hello(job, group), now=T0)
    engine.feed(step("t0", 100, 0.3), now=T0 + 5)
    engine.feed(status("t0", JobState.COMPLETED), now=T0 + 5)
    engine.feed(status("t1", JobState.CANCELLED, "pruned at step 40"), now=T0 + 6)
    done = summaries(engine.feed(status("t2", JobState.CANCELLED, "interrupted"), now=T0 + 7))
    assert done[0].event.message == "1 ok, 1 pruned, 1 cancelled; best eval_loss 0.3 (lr=2e-4, r=16)"


def test_mode_max_picks_the_highest() -> None:
    engine = Engine()
    group = Group(id="acc", name="acc sweep", expected_jobs=2, metric="acc", mode=GroupMode.MAX)
    actions: list[Action] = []
    for job, acc in (("t0", 0.7), ("t1", 0.9)):
        actions += engine.feed(hello(job, group), now=T0)
        # Reaching the total completes the trial (the engine's rule 2), status or not.
        actions += engine.feed(Envelope("progress", Progress(100, 100, metrics={"acc": acc}), job_id=job), now=T0 + 1)
    actions += engine.feed(status("t1", JobState.COMPLETED), now=T0 + 2)
    done = summaries(actions)
    assert len(done) == 1
    assert done[0].event.message == "2 ok; best acc 0.9 (lr=4e-4, r=16)"


def test_process_exit_counts_as_a_failure() -> None:
    engine = Engine()
    engine.feed(hello("t0", replace(SWEEP, expected_jobs=1)), now=T0)
    actions = engine.process_exited("t0", now=T0 + 5)
    assert [e.type for e in shown(actions)] == [NotificationType.ERROR, NotificationType.COMPLETION]
    assert summaries(actions)[0].event.message == "0 ok, 1 failed"


def test_a_sweep_that_ended_before_we_looked_is_recorded_not_shown() -> None:
    engine = Engine(EngineConfig(group_grace_s=10.0))
    engine.feed(hello("t0", state=JobState.COMPLETED), now=T0)
    engine.feed(hello("t1", state=JobState.FAILED), now=T0)
    actions = engine.tick(now=T0 + 10)
    assert summaries(actions) == []
    records = [a for a in actions if isinstance(a, Record) and a.job_id == "group:sweep-lr"]
    assert len(records) == 1 and records[0].event.title == "sweep lr: all 2 finished"


def test_reconnect_of_a_trial_does_not_count_twice() -> None:
    engine = Engine()
    group = replace(SWEEP, expected_jobs=2)
    engine.feed(hello("t0", group), now=T0)
    engine.feed(hello("t0", group), now=T0 + 10)  # same run, reconnected
    engine.feed(status("t0", JobState.COMPLETED), now=T0 + 20)
    assert summaries(engine.feed(hello("t0", group, state=JobState.COMPLETED), now=T0 + 21)) == []
    view = engine.group("sweep-lr")
    assert view is not None and (view.total, view.done, view.running) == (2, 1, 0)


def test_a_job_after_the_summary_opens_a_new_round() -> None:
    engine = Engine()
    group = replace(SWEEP, expected_jobs=1)
    assert len(summaries(run_trial(engine, "t0", T0, loss=0.5, group=group))) == 1
    engine.feed(hello("t1", group), now=T0 + 500)
    view = engine.group("sweep-lr")
    assert view is not None and (view.round, view.running, view.done, view.ended) == (2, 1, 0, False)
    assert len(summaries(engine.feed(status("t1", JobState.COMPLETED), now=T0 + 600))) == 1


def test_end_groups_flushes_what_is_quiet_now() -> None:
    engine = Engine()
    run_trial(engine, "t0", T0, loss=0.5)
    done = summaries(engine.end_groups(now=T0 + 101))
    assert len(done) == 1 and done[0].event.title == "sweep lr: all 1 finished"
    assert summaries(engine.tick(now=T0 + 10_000)) == []


def test_forget_a_running_trial_leaves_the_group() -> None:
    engine = Engine()
    engine.feed(hello("t0"), now=T0)
    engine.feed(hello("t1"), now=T0)
    engine.forget("t1")
    view = engine.group("sweep-lr")
    assert view is not None and view.job_ids == ("t0",)


def test_group_eta_counts_rounds_of_trials_not_started() -> None:
    groups = Groups(grace_s=60)
    group = replace(SWEEP, expected_jobs=4)
    groups.join("t0", group, name="t0", state=JobState.RUNNING, new_run=True, now=0.0)
    groups.settle("t0", JobState.COMPLETED, reason=None, now=100.0)
    groups.join("t1", group, name="t1", state=JobState.RUNNING, new_run=True, now=100.0)
    view = groups.view("sweep-lr", lambda job: 40.0)
    # t1 needs 40 s more, then 2 trials not started run one at a time, 100 s each.
    assert view is not None and view.eta_s == 240.0


def test_format_number() -> None:
    assert [format_number(v) for v in (2e-4, 0.41, 16, "adamw", True, 1e7, 0.0)] == [
        "2e-4",
        "0.41",
        "16",
        "adamw",
        "True",
        "1e7",
        "0",
    ]


# --------------------------------------------------------------------------- properties

OUTCOMES = st.sampled_from([JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED])


@settings(max_examples=60, deadline=None)
@given(
    ends=st.lists(st.tuples(OUTCOMES, st.floats(0.0, 5.0), st.booleans()), min_size=1, max_size=8),
    expected=st.booleans(),
    reconnects=st.lists(st.integers(0, 7), max_size=4),
    driver=st.booleans(),
)
def test_every_group_ends_with_exactly_one_summary(
    ends: list[tuple[JobState, float, bool]], expected: bool, reconnects: list[int], driver: bool
) -> None:
    """Whatever the order of ends, reconnects and ticks: one summary per round, counts add up."""
    engine = Engine(EngineConfig(group_grace_s=30.0))
    group = replace(SWEEP, expected_jobs=len(ends) if expected else None)
    jobs = [f"t{i}" for i in range(len(ends))]
    now = T0
    actions: list[Action] = []
    if driver:  # a sweep driver (role "sweep") that ends after the trials
        actions += engine.feed(sweep_hello(expected=group.expected_jobs), now=now)
    for job in jobs:
        actions += engine.feed(hello(job, group), now=now)
    for i, (state, gap, failed_first) in enumerate(ends):
        now += gap
        if i in reconnects:
            actions += engine.feed(hello(jobs[i], group), now=now)
        if failed_first and state is JobState.FAILED:
            actions += engine.feed(error(jobs[i]), now=now)
        actions += engine.feed(status(jobs[i], state), now=now)
        actions += engine.tick(now=now)
    if driver:
        actions += engine.feed(status("drv", JobState.COMPLETED), now=now + 1.0)
    actions += engine.tick(now=now + 31.0)
    actions += engine.end_groups(now=now + 32.0)
    assert len(summaries(actions)) == 1
    view = engine.group("sweep-lr")
    assert view is not None and view.ended
    assert view.done + view.failed + view.pruned + view.cancelled == len(ends)
    # Every failure popped up at once, exactly once per failed trial.
    errors = [a for a in actions if isinstance(a, Notify) and a.event.type is NotificationType.ERROR]
    assert len(errors) == sum(state is JobState.FAILED for state, _, _ in ends)
    # No trial milestone or completion popped up.
    assert all(
        a.job_id.startswith("group:")
        for a in actions
        if isinstance(a, Notify) and a.event.type in (NotificationType.PROGRESS, NotificationType.COMPLETION)
    )


def test_best_compares_eval_loss_with_eval_loss_only() -> None:
    """Once any trial reports eval_loss, a training loss (a different scale) never wins "best"."""
    engine = Engine()
    group = replace(SWEEP, metric=None, expected_jobs=2)
    engine.feed(hello("t0", group), now=T0)
    engine.feed(hello("t1", group), now=T0)
    engine.feed(step("t0", 50, 0.9), now=T0 + 1)  # eval_loss 0.9
    engine.feed(step("t1", 50), now=T0 + 1)  # only the training loss (1.0)
    engine.feed(step("t0", 60), now=T0 + 2)  # a later step without eval keeps eval_loss 0.9
    view = engine.group("sweep-lr")
    assert view is not None and (view.best_metric, view.best_value, view.best_job_id) == ("eval_loss", 0.9, "t0")


def test_trials_first_seen_ended_one_after_another_are_news() -> None:
    """Optuna reports a trial only when it ends: a group of such trials, arriving while we watch, still pops up."""
    engine = Engine()
    group = replace(SWEEP, expected_jobs=2)
    engine.feed(hello("t0", group, state=JobState.COMPLETED), now=T0)
    done = summaries(engine.feed(hello("t1", group, state=JobState.COMPLETED), now=T0 + 5))
    assert len(done) == 1 and done[0].event.title == "sweep lr: all 2 finished"


def sweep_hello(state: JobState = JobState.RUNNING, expected: int | None = None) -> Envelope:
    group = replace(SWEEP, role=GroupRole.SWEEP, expected_jobs=expected)
    return Envelope("hello", Hello(name="sweep lr", run_id="s1", state=state, group=group), seq=0, job_id="drv", ts=T0)


def test_a_running_sweep_driver_keeps_the_group_open_past_the_grace() -> None:
    """Optuna reports trials as they end: between them nothing runs but the driver (role 'sweep')."""
    engine = Engine(EngineConfig(group_grace_s=10.0))
    engine.feed(sweep_hello(expected=5), now=T0)
    run_trial(engine, "t0", T0, loss=0.5)
    run_trial(engine, "t1", T0 + 500, loss=0.4)
    assert summaries(engine.tick(now=T0 + 2000)) == []  # the driver still runs
    view = engine.group("sweep-lr")
    assert view is not None and view.sweep_job_id == "drv" and view.job_ids == ("t0", "t1")
    # The sweep stopped short of its 5 trials: its driver's end ends the group at once.
    done = summaries(engine.feed(status("drv", JobState.COMPLETED), now=T0 + 2001))
    assert [d.event.title for d in done] == ["sweep lr: 2 of 5 finished"]
    assert "ok" in done[0].event.message and summaries(engine.tick(now=T0 + 9999)) == []


def test_driver_ending_first_waits_for_the_running_trials() -> None:
    engine = Engine()
    engine.feed(sweep_hello(), now=T0)
    engine.feed(hello("t0"), now=T0 + 1)
    assert summaries(engine.feed(status("drv", JobState.COMPLETED), now=T0 + 2)) == []
    done = summaries(engine.feed(status("t0", JobState.FAILED), now=T0 + 3))
    assert [(d.event.title, d.event.message) for d in done] == [("sweep lr: all 1 finished", "0 ok, 1 failed")]


def test_the_driver_is_not_a_trial_and_its_completion_does_not_pop_up() -> None:
    engine = Engine()
    actions = engine.feed(sweep_hello(), now=T0)
    actions += run_trial(engine, "t0", T0 + 1, loss=0.5)
    actions += engine.feed(Envelope("progress", Progress(1, 1), job_id="drv"), now=T0 + 200)
    actions += engine.feed(status("drv", JobState.COMPLETED), now=T0 + 201)
    notified = [(a.job_id, a.event.title) for a in actions if isinstance(a, Notify)]
    assert notified == [("group:sweep-lr", "sweep lr: all 1 finished")]
    view = engine.group("sweep-lr")
    assert view is not None and view.total == 1


def test_a_driver_ending_before_its_last_trial_is_seen_waits_for_it() -> None:
    """The driver counts ended trials in its progress: its end does not outrun a trial we have not seen yet."""
    engine = Engine(EngineConfig(group_grace_s=30.0))
    engine.feed(sweep_hello(), now=T0)
    run_trial(engine, "t0", T0, loss=0.5)
    engine.feed(Envelope("progress", Progress(2, None), job_id="drv"), now=T0 + 200)  # 2 trials ended
    assert summaries(engine.feed(status("drv", JobState.COMPLETED), now=T0 + 201)) == []
    done = summaries(run_trial(engine, "t1", T0 + 202, loss=0.4))  # first seen now
    assert [d.event.title for d in done] == ["sweep lr: all 2 finished"]


def test_a_trial_the_driver_counted_but_we_never_see_ends_by_the_grace() -> None:
    engine = Engine(EngineConfig(group_grace_s=30.0))
    engine.feed(sweep_hello(), now=T0)
    run_trial(engine, "t0", T0, loss=0.5)
    engine.feed(Envelope("progress", Progress(2, None), job_id="drv"), now=T0 + 200)
    engine.feed(status("drv", JobState.COMPLETED), now=T0 + 201)
    assert summaries(engine.tick(now=T0 + 230)) == []
    assert [d.event.title for d in summaries(engine.tick(now=T0 + 231))] == ["sweep lr: all 1 finished"]


# --------------------------------------------------------------------------- "all running jobs finished"


def test_all_running_jobs_finished_fires_once_when_the_last_one_ends() -> None:
    engine = Engine()
    for job in ("a", "b", "c"):
        engine.feed(hello(job, None), now=T0)
    engine.feed(status("c", JobState.COMPLETED), now=T0 + 1)  # already done before arming: not counted
    assert engine.watch_all_jobs(True, now=T0 + 2) == [] and engine.all_jobs_watched
    engine.feed(hello("d", None), now=T0 + 3)  # started after arming: not waited for
    assert summaries(engine.feed(status("a", JobState.COMPLETED), now=T0 + 4)) == []  # b still runs
    actions = engine.feed(status("b", JobState.FAILED, "boom"), now=T0 + 5)
    done = [a for a in actions if isinstance(a, Notify) and a.job_id == "group:*"]
    assert [(d.event.title, d.event.message) for d in done] == [("All 2 running jobs finished", "1 ok, 1 failed")]
    assert not engine.all_jobs_watched
    assert summaries(engine.feed(status("d", JobState.COMPLETED), now=T0 + 6)) == []  # once


def test_all_running_jobs_can_be_disarmed_and_forgotten_jobs_count_as_ended() -> None:
    engine = Engine()
    engine.feed(hello("a", None), now=T0)
    engine.feed(hello("b", None), now=T0)
    engine.watch_all_jobs(True, now=T0)
    engine.watch_all_jobs(False, now=T0 + 1)
    assert not engine.all_jobs_watched
    assert summaries(engine.feed(status("a", JobState.COMPLETED), now=T0 + 2)) == []
    engine.watch_all_jobs(True, now=T0 + 3)
    done = [a for a in engine.forget("b") if isinstance(a, Notify)]
    assert [(d.event.title, d.event.message) for d in done] == [("The running job finished", "0 ok, 1 cancelled")]
    assert engine.watch_all_jobs(True, now=T0 + 4) == [] and not engine.all_jobs_watched  # nothing runs


def test_a_job_hopping_between_groups_cannot_grow_the_engine() -> None:
    """Attack: one connection re-announcing itself in ever new groups (each hello ended) leaves one group."""
    engine = Engine()
    for i in range(500):
        group = Group(id=f"g{i}", name=f"g{i}")
        engine.feed(hello("t0", group, state=JobState.COMPLETED, run=f"r{i}"), now=T0 + i)
    assert [v.group_id for v in engine.groups()] == ["g499"]


def test_ended_groups_are_bounded() -> None:
    from peft_notify.engine.groups import MAX_ENDED_GROUPS

    engine = Engine()
    for i in range(MAX_ENDED_GROUPS + 20):
        group = Group(id=f"g{i}", name=f"g{i}", expected_jobs=1)
        engine.feed(hello(f"t{i}", group), now=T0 + i)
        engine.feed(status(f"t{i}", JobState.COMPLETED), now=T0 + i)
    views = engine.groups()
    assert len(views) == MAX_ENDED_GROUPS and views[-1].group_id == f"g{MAX_ENDED_GROUPS + 19}"
    assert engine.group_of("t0") is None
