"""Rule 5: taskbar progress — seed semantics, states, aggregation, coalescing."""

from __future__ import annotations

import pytest

from peft_notify.engine import ClearTaskbar, Engine, EngineConfig, SetTaskbar
from peft_notify.engine.taskbar import Coalescer, Contribution, aggregate, taskbar_fraction
from peft_notify.ports import TaskbarState
from peft_notify.wire import JobState, NotificationType

from .factories import T0, hello, note, only, progress, status

NORMAL, PAUSED, ERROR = TaskbarState.NORMAL, TaskbarState.PAUSED, TaskbarState.ERROR


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [(0, 100, 0.0), (45, 100, 0.45), (100, 100, 1.0), (150, 100, 1.0), (-5, 100, 0.0), (5, 0, 0.0), (5, None, 0.0)],
)
def test_taskbar_fraction_is_the_seed_calculation(current: int, total: int | None, expected: float) -> None:
    assert taskbar_fraction(current, total) == expected


def test_rule5_active_values_stay_below_one_and_completion_removes() -> None:
    engine = Engine(EngineConfig(taskbar_max_hz=0))
    engine.feed(hello(total=100), now=T0)
    assert engine.feed(progress(45, 100), now=T0 + 1)[-1] == SetTaskbar(0.45, NORMAL, jobs=1)
    assert engine.feed(progress(99, 100), now=T0 + 2)[-1] == SetTaskbar(0.99, NORMAL, jobs=1)
    assert engine.feed(progress(100, 100), now=T0 + 3)[-1] == ClearTaskbar()


def test_rule5_indeterminate_when_total_unknown() -> None:
    engine = Engine()
    actions = engine.feed(hello(total=None, step=5), now=T0)
    assert actions == [SetTaskbar(0.0, TaskbarState.INDETERMINATE, jobs=1)]


def test_rule5_error_and_paused_states() -> None:
    engine = Engine()
    engine.feed(hello(step=500), now=T0)
    assert engine.feed(status(JobState.PAUSED), now=T0 + 1)[-1] == SetTaskbar(0.5, PAUSED, jobs=1)
    assert engine.feed(status(JobState.RUNNING), now=T0 + 2)[-1] == SetTaskbar(0.5, NORMAL, jobs=1)
    err = note(NotificationType.ERROR, "E", "boom")
    assert engine.feed(err, now=T0 + 3)[-1] == SetTaskbar(0.5, ERROR, jobs=1)


def test_rule5_failed_job_shows_error_until_acknowledged() -> None:
    engine = Engine()
    engine.feed(hello(step=500), now=T0)
    assert engine.feed(status(JobState.FAILED, "boom"), now=T0 + 1)[-1] == SetTaskbar(0.5, ERROR, jobs=1)
    assert engine.acknowledge(now=T0 + 2)[-1] == ClearTaskbar()


def test_rule5_cancelled_job_leaves_the_taskbar() -> None:
    engine = Engine()
    engine.feed(hello(step=500), now=T0)
    assert engine.feed(status(JobState.CANCELLED), now=T0 + 1) == [ClearTaskbar()]


def test_rule5_aggregate_over_running_jobs_with_count() -> None:
    engine = Engine(EngineConfig(taskbar_max_hz=0))
    engine.feed(hello(job_id="a", run_id="ra", step=200), now=T0)
    actions = engine.feed(hello(job_id="b", run_id="rb", step=600), now=T0)
    assert actions[-1] == SetTaskbar(0.4, NORMAL, jobs=2)
    actions = engine.feed(hello(job_id="c", run_id="rc", total=None, step=3), now=T0)
    assert actions[-1] == SetTaskbar(0.4, NORMAL, jobs=3)
    assert engine.forget("b")[-1] == SetTaskbar(0.2, NORMAL, jobs=2)
    assert engine.forget("b") == []


def test_aggregate_rules() -> None:
    assert aggregate([]) == ClearTaskbar()
    assert aggregate([Contribution(0.5, PAUSED), Contribution(0.1, PAUSED)]) == SetTaskbar(0.3, PAUSED, 2)
    assert aggregate([Contribution(0.5, PAUSED), Contribution(0.1, NORMAL)]) == SetTaskbar(0.3, NORMAL, 2)
    assert aggregate([Contribution(None, PAUSED), Contribution(1.0, ERROR)]) == SetTaskbar(0.99, ERROR, 2)


def test_rule5_coalesced_to_max_rate_with_trailing_edge() -> None:
    engine = Engine(EngineConfig(taskbar_max_hz=2.0))  # one update per 0.5 s
    engine.feed(hello(step=0), now=T0)
    assert only(engine.feed(progress(10), now=T0 + 0.1), SetTaskbar) == []
    assert only(engine.feed(progress(20), now=T0 + 0.2), SetTaskbar) == []
    assert engine.next_tick_at() == T0 + 0.5
    assert engine.tick(now=T0 + 0.4) == []
    assert engine.tick(now=T0 + 0.5) == [SetTaskbar(0.02, NORMAL, jobs=1)]
    assert engine.tick(now=T0 + 0.6) == []
    assert engine.feed(progress(30), now=T0 + 1.0)[-1] == SetTaskbar(0.03, NORMAL, jobs=1)


def test_coalescer_state_changes_are_never_delayed() -> None:
    bar = Coalescer(10.0)
    assert bar.offer(SetTaskbar(0.1, NORMAL), T0) == [SetTaskbar(0.1, NORMAL)]
    assert bar.offer(SetTaskbar(0.2, NORMAL), T0 + 1) == []
    assert bar.due_at() == T0 + 10
    assert bar.offer(SetTaskbar(0.2, ERROR), T0 + 2) == [SetTaskbar(0.2, ERROR)]
    assert bar.due_at() is None
    assert bar.offer(SetTaskbar(0.3, ERROR, jobs=2), T0 + 3) == [SetTaskbar(0.3, ERROR, jobs=2)]
    assert bar.offer(ClearTaskbar(), T0 + 4) == [ClearTaskbar()]
    assert bar.shown == ClearTaskbar()


def test_coalescer_drops_a_pending_value_already_shown() -> None:
    bar = Coalescer(10.0)
    bar.offer(SetTaskbar(0.1, NORMAL), T0)
    bar.offer(SetTaskbar(0.2, NORMAL), T0 + 1)
    assert bar.offer(SetTaskbar(0.1, NORMAL), T0 + 2) == []
    assert bar.due_at() is None
    assert bar.tick(T0 + 20) == []


def test_coalescer_clock_going_back_delivers_at_once() -> None:
    bar = Coalescer(10.0)
    bar.offer(SetTaskbar(0.1, NORMAL), T0)
    assert bar.offer(SetTaskbar(0.2, NORMAL), T0 - 5) == [SetTaskbar(0.2, NORMAL)]
