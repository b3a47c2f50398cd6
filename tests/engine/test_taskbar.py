"""Rule 5: taskbar progress — seed semantics, states, aggregation, coalescing."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from peft_notify.engine import ClearTaskbar, Engine, EngineConfig, SetTaskbar
from peft_notify.engine.taskbar import Coalescer, Contribution, Tally, aggregate, taskbar_fraction
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


def test_tally_head_is_the_aggregate_state_and_count_without_aggregating() -> None:
    assert Tally().head is None
    tally = Tally()
    assert tally.put("a", Contribution(0.5, NORMAL)) is True
    assert tally.put("a", Contribution(0.5, NORMAL)) is False
    assert tally.put("b", Contribution(None, PAUSED)) is True
    assert tally.head == (NORMAL, 2)
    assert tally.put("a", Contribution(0.5, ERROR)) is True
    assert tally.head == (ERROR, 2)
    assert tally.indicator(["b", "a", "gone"]) == SetTaskbar(0.5, ERROR, jobs=2)
    tally.put("a", None)
    assert tally.head == (PAUSED, 1)
    tally.put("c", Contribution(None, NORMAL))
    assert tally.head == (TaskbarState.INDETERMINATE, 2)
    assert tally.put("missing", None) is False


def test_offer_lazy_builds_at_most_once_per_interval_and_never_delays_a_state_change() -> None:
    bar = Coalescer(1.0)
    builds: list[float] = []

    def build(value: float, state: TaskbarState = NORMAL) -> Callable[[], SetTaskbar]:
        def make() -> SetTaskbar:
            builds.append(value)
            return SetTaskbar(value, state)

        return make

    assert bar.offer_lazy((NORMAL, 1), True, build(0.1), T0) == [SetTaskbar(0.1, NORMAL)]
    assert bar.offer_lazy((NORMAL, 1), True, build(0.2), T0 + 0.1) == []
    assert bar.offer_lazy((NORMAL, 1), True, build(0.3), T0 + 0.2) == []
    assert builds == [0.1]
    assert bar.due_at() == T0 + 1.0
    assert bar.tick(T0 + 0.9, build(0.3)) == []
    assert bar.tick(T0 + 1.0, build(0.3)) == [SetTaskbar(0.3, NORMAL)]
    assert bar.due_at() is None
    # A build that shows nothing new still counts: the next one waits an interval.
    assert bar.offer_lazy((NORMAL, 1), True, build(0.3), T0 + 2.0) == []
    assert bar.offer_lazy((NORMAL, 1), True, build(0.4), T0 + 2.5) == []
    assert bar.due_at() == T0 + 3.0
    assert bar.offer_lazy((ERROR, 1), False, build(0.4, ERROR), T0 + 2.6) == [SetTaskbar(0.4, ERROR)]
    assert bar.due_at() is None
    assert bar.offer_lazy(None, True, ClearTaskbar, T0 + 2.7) == [ClearTaskbar()]
    assert bar.offer_lazy(None, False, ClearTaskbar, T0 + 2.8) == []
    assert builds == [0.1, 0.3, 0.3, 0.4]


def test_engine_aggregates_a_many_job_flood_at_the_taskbar_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(EngineConfig(taskbar_max_hz=10.0))
    for i in range(50):
        engine.feed(hello(job_id=f"j{i}", run_id=f"r{i}", step=0), now=T0)
    calls: list[int] = []
    original = Tally.indicator

    def counting(self: Tally, order: Iterable[str]) -> ClearTaskbar | SetTaskbar:
        calls.append(1)
        return original(self, order)

    monkeypatch.setattr(Tally, "indicator", counting)
    now = T0 + 1.0
    bars = []
    for step in range(1, 21):  # 1,000 progress messages within 0.2 s: two intervals
        for i in range(50):
            now += 0.0002
            bars += only(engine.feed(progress(step, job_id=f"j{i}"), now=now), SetTaskbar)
    assert len(calls) <= 3
    bars += only(engine.tick(now=engine.next_tick_at() or now), SetTaskbar)
    assert bars[-1] == SetTaskbar(0.02, NORMAL, jobs=50)
