"""Hypothesis properties for every invariant the engine promises."""

from __future__ import annotations

import math
import statistics
import types

from hypothesis import given, settings
from hypothesis import strategies as st

from peft_notify.engine import ClearTaskbar, Engine, EngineConfig, MergeRepeat, Notify, Record, SetTaskbar
from peft_notify.engine.actions import Action
from peft_notify.engine.floods import FLOOD_ERROR_TYPE
from peft_notify.engine.job import MAX_INTERVALS, StepRate
from peft_notify.engine.taskbar import Coalescer, aggregate
from peft_notify.ports import DeliveryStatus, DndState, TaskbarState
from peft_notify.wire import (
    Envelope,
    Hello,
    JobState,
    NotificationEvent,
    NotificationType,
    Progress,
    Status,
    Unknown,
    UrgencyLevel,
)

from .factories import T0, decided, hello, note, notifies, progress, status

MERGED = DeliveryStatus.MERGED

ACTION_TYPES = tuple(Action.__args__) if isinstance(Action, types.UnionType) else ()
JOB_IDS = st.sampled_from(["j1", "j2", "job.3"])
DND = st.sampled_from([DndState.ON, DndState.OFF, DndState.UNKNOWN, None])
TEXT = st.text(max_size=40)


@st.composite
def progress_bodies(draw: st.DrawFn) -> Progress:
    total = draw(st.one_of(st.none(), st.integers(1, 5000)))
    step = draw(st.integers(0, total if total is not None else 10_000))
    loss = draw(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)))
    return Progress(current_step=step, total_steps=total, loss=loss)


notification_bodies = st.builds(
    NotificationEvent,
    type=st.sampled_from(NotificationType),
    title=TEXT,
    message=TEXT,
    milestone=st.one_of(st.none(), st.integers(0, 100)),
    urgency=st.sampled_from(UrgencyLevel),
    sound=st.booleans(),
    actions=st.none(),
    taskbar_progress=st.one_of(st.none(), st.just(-1.0), st.floats(0.0, 1.0)),
    respect_dnd=st.booleans(),
    error_type=st.one_of(st.none(), st.sampled_from(["oom_error", "data_error", "x"]), TEXT),
)

hello_bodies = st.builds(
    Hello,
    name=TEXT,
    run_id=st.sampled_from(["r1", "r2", "r3"]),
    total_steps=st.one_of(st.none(), st.integers(1, 5000)),
    capabilities=st.lists(st.sampled_from(["retry", "cancel"]), max_size=2).map(tuple),
    progress=st.one_of(st.none(), progress_bodies()),
    state=st.sampled_from(JobState),
)

bodies = st.one_of(
    progress_bodies(),
    notification_bodies,
    hello_bodies,
    st.builds(Status, state=st.sampled_from(JobState), reason=st.one_of(st.none(), TEXT)),
    st.builds(Unknown, type=TEXT),
)


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    body = draw(bodies)
    if draw(st.booleans()):
        return Envelope(type="x", data=body, v=None, job_id=draw(st.one_of(st.none(), JOB_IDS)))
    return Envelope(type="x", data=body, seq=draw(st.integers(0, 10**6)), job_id=draw(JOB_IDS), ts=T0)


configs = st.builds(
    EngineConfig,
    milestones=st.lists(st.integers(-5, 120), max_size=6).map(tuple),
    popup_kinds=st.frozensets(st.sampled_from(NotificationType)),
    respect_dnd=st.booleans(),
    taskbar_max_hz=st.sampled_from([0.0, 2.0, 10.0]),
    dedup_window_s=st.sampled_from([0.0, 5.0, 60.0]),
    rate_capacity=st.integers(0, 3),
    rate_refill_s=st.sampled_from([0.0, 1.0, 12.0]),
    sounds=st.booleans(),
)

steps_and_gaps = st.lists(st.tuples(envelopes(), st.floats(0, 400), DND, st.booleans()), max_size=25)


def check_taskbar(actions: list[Action]) -> None:
    for action in actions:
        if isinstance(action, SetTaskbar):
            assert 0.0 <= action.value <= 1.0
            assert action.jobs >= 1
        assert isinstance(action, ACTION_TYPES)


@settings(max_examples=150, deadline=None)
@given(config=configs, script=steps_and_gaps)
def test_feed_never_raises_returns_only_actions_and_valid_taskbar(
    config: EngineConfig, script: list[tuple[Envelope, float, DndState | None, bool]]
) -> None:
    engine = Engine(config)
    now = T0
    for env, gap, dnd, tick in script:
        now += gap
        actions = engine.feed(env, now=now, dnd=dnd, job_id="conn")
        if tick:
            actions += engine.tick(now=now, dnd=dnd)
        due = engine.next_tick_at()
        if due is not None and not math.isfinite(due):
            raise AssertionError(due)
        check_taskbar(actions)
        if isinstance(env.data, NotificationEvent) and env.data.type is NotificationType.ERROR:
            jobs = {env.job_id, "conn"}  # the connection's key (issue 10 item 3), or the envelope's
            mine = [
                a
                for a in actions
                if (isinstance(a, (Notify, MergeRepeat)) or (isinstance(a, Record) and a.reason is MERGED))
                and a.job_id in jobs
                and a.event.type is NotificationType.ERROR
                and a.event.error_type != FLOOD_ERROR_TYPE
            ]
            # errors are never dropped: shown, merged as a repeat, or recorded into a flood summary
            assert len(mine) == 1, actions
    for job_id in ("j1", "conn"):
        check_taskbar(engine.forget(job_id))
    check_taskbar(engine.process_exited("j2", now=now))
    check_taskbar(engine.set_user_pause(now + 10, now=now) + engine.set_user_pause(None, now=now))
    check_taskbar(engine.acknowledge(now=now))


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 3000),
    fractions=st.lists(st.floats(0.0, 1.0), max_size=40),
    server=st.lists(st.tuples(st.integers(0, 39), st.sampled_from([25, 50, 75, 100])), max_size=4),
    start=st.floats(0.0, 1.0),
    dnd=st.lists(DND, min_size=1, max_size=3),
)
def test_each_milestone_notified_at_most_once_per_run(
    total: int, fractions: list[float], server: list[tuple[int, int]], start: float, dnd: list[DndState | None]
) -> None:
    engine = Engine()
    engine.feed(hello(step=int(start * total), total=total), now=T0)
    actions: list[Action] = []
    for i, fraction in enumerate(fractions):
        now = T0 + i + 1
        actions += engine.feed(progress(int(fraction * total), total), now=now, dnd=dnd[i % len(dnd)])
        for at, milestone in server:
            if at == i:
                actions += engine.feed(note(NotificationType.PROGRESS, "m", milestone=milestone), now=now)
    seen = [
        a.event.milestone
        for a in actions
        if isinstance(a, (Notify, Record))
        and a.job_id == "j1"
        and a.event.milestone
        and not (isinstance(a, Record) and a.reason is DeliveryStatus.DUPLICATE)
    ]
    assert len(seen) == len(set(seen)), seen


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 3000),
    fractions=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30).map(sorted),
)
def test_monotonic_progress_never_skips_a_milestone_silently(total: int, fractions: list[float]) -> None:
    engine = Engine()
    engine.feed(hello(step=0, total=total), now=T0)
    texts: list[tuple[int, str]] = []
    for i, fraction in enumerate(fractions):
        for n in notifies(engine.feed(progress(int(fraction * total), total), now=T0 + i + 1)):
            texts.append((n.event.milestone or 0, n.event.message))
    last = int(fractions[-1] * total)
    for m in (25, 50, 75):
        if last * 100 >= m * total:
            assert any(top == m or (top > m and f"{m} %" in text) for top, text in texts), (m, texts)


SIGNALS = st.sampled_from(["progress", "notification", "status"])


@settings(max_examples=200, deadline=None)
@given(
    signals=st.lists(SIGNALS, min_size=1, max_size=8),
    noise=st.lists(st.integers(0, 999), max_size=8),
)
def test_completion_notified_exactly_once_for_any_order(signals: list[str], noise: list[int]) -> None:
    engine = Engine()
    engine.feed(hello(step=0), now=T0)
    actions: list[Action] = []
    make = {
        "progress": lambda: progress(1000),
        "notification": lambda: note(NotificationType.COMPLETION, "Done", "ok"),
        "status": lambda: status(JobState.COMPLETED),
    }
    for i, name in enumerate(signals):
        if i < len(noise):
            actions += engine.feed(progress(noise[i]), now=T0 + i)
        actions += engine.feed(make[name](), now=T0 + i)
    completions = [n for n in notifies(actions) if n.event.type is NotificationType.COMPLETION]
    assert len(completions) == 1


indicators = st.one_of(
    st.just(ClearTaskbar()),
    st.builds(
        SetTaskbar,
        value=st.floats(0.0, 1.0),
        state=st.sampled_from(TaskbarState),
        jobs=st.integers(1, 3),
    ),
)


@settings(max_examples=200, deadline=None)
@given(offers=st.lists(st.tuples(indicators, st.floats(0.0, 0.3)), min_size=1, max_size=30))
def test_coalescing_always_delivers_the_latest_value(offers: list[tuple[SetTaskbar | ClearTaskbar, float]]) -> None:
    bar = Coalescer(0.1)
    now = T0
    emitted: list[Action] = []
    for target, gap in offers:
        now += gap
        emitted += bar.offer(target, now)
    due = bar.due_at()
    if due is not None:
        emitted += bar.tick(due)
    assert bar.due_at() is None
    assert bar.shown == offers[-1][0]
    if emitted:
        assert emitted[-1] == offers[-1][0]


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 999), st.floats(0.0, 0.2)), min_size=1, max_size=30))
def test_engine_taskbar_ends_on_the_latest_progress(steps: list[tuple[int, float]]) -> None:
    engine = Engine(EngineConfig(taskbar_max_hz=5.0))
    shown = engine.feed(hello(step=0), now=T0)
    now = T0
    for step, gap in steps:
        now += gap
        shown += engine.feed(progress(step), now=now)
    due = engine.next_tick_at()
    if due is not None and due < now + 1:  # the taskbar's trailing edge (a stall is minutes away)
        shown += engine.tick(now=due)
    bars = [a for a in shown if isinstance(a, SetTaskbar)]
    assert bars[-1] == SetTaskbar(round(min(0.99, steps[-1][0] / 1000), 4), TaskbarState.NORMAL, jobs=1)


@settings(max_examples=100, deadline=None)
@given(
    gaps=st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=10),
    start=st.floats(0.0, 2e9),
)
def test_a_tick_at_next_tick_at_always_fires_the_stall(gaps: list[float], start: float) -> None:
    engine = Engine()
    engine.feed(hello(step=0), now=start)
    now = start
    for i, gap in enumerate(gaps):
        now += gap
        engine.feed(progress(i + 1), now=now)
    warnings: list[Notify] = []
    for _ in range(3):  # the taskbar's trailing edge may come first
        due = engine.next_tick_at()
        if due is None:
            break
        warnings += [n for n in notifies(engine.tick(now=due)) if n.key == "stall"]
    assert len(warnings) == 1
    assert engine.next_tick_at() is None


def _last_indicator(actions: list[Action]) -> Action:
    bars = [a for a in actions if isinstance(a, (SetTaskbar, ClearTaskbar))]
    return bars[-1] if bars else ClearTaskbar()


def _eager_indicator(engine: Engine) -> Action:
    """The oracle: every job's contribution aggregated now (what the engine did per message before)."""
    jobs = engine._jobs.values()  # white-box oracle for the lazy aggregation
    return aggregate([c for job in jobs if (c := job.contribution()) is not None])


@st.composite
def taskbar_envelopes(draw: st.DrawFn) -> Envelope:
    """Mostly progress of a known total (values that change within an interval), some state changes."""
    body = draw(
        st.one_of(
            st.builds(Progress, current_step=st.integers(0, 1000), total_steps=st.just(1000)),
            st.builds(Progress, current_step=st.integers(0, 1000), total_steps=st.just(1000)),
            st.builds(Status, state=st.sampled_from(JobState)),
            st.builds(NotificationEvent, type=st.just(NotificationType.ERROR), title=TEXT, message=TEXT),
            hello_bodies,
        )
    )
    return Envelope(type="x", data=body, seq=None, job_id=draw(JOB_IDS), ts=T0)


OPS = st.sampled_from(["feed"] * 6 + ["tick", "ack", "forget"])


@settings(max_examples=300, deadline=None)
@given(
    script=st.lists(st.tuples(taskbar_envelopes(), st.floats(0, 0.3), OPS), max_size=40),
    hz=st.sampled_from([0.0, 2.0, 10.0]),
)
def test_lazy_taskbar_aggregation_settles_on_the_eager_aggregate(
    script: list[tuple[Envelope, float, str]], hz: float
) -> None:
    """Aggregating at most once per interval loses nothing: after the trailing edge the taskbar
    shows the aggregate of every job's contribution, and no more often than the rate allows."""
    engine = Engine(EngineConfig(taskbar_max_hz=hz))
    now = T0
    shown: list[Action] = []
    for env, gap, op in script:
        now += gap
        if op == "tick":
            shown += engine.tick(now=now)
        elif op == "ack":
            shown += engine.acknowledge(now=now)
        elif op == "forget":
            shown += engine.forget(env.job_id or "conn")
        else:
            shown += engine.feed(env, now=now, job_id="conn")
        if hz == 0:
            assert _last_indicator(shown) == _eager_indicator(engine)  # no coalescing: always current
    for _ in range(3):
        due = engine.next_tick_at()
        if due is not None and due < now + 1:  # the taskbar's trailing edge (a stall is minutes away)
            now = max(now, due)
            shown += engine.tick(now=now)
    assert _last_indicator(shown) == _eager_indicator(engine)


def _stall_deadlines(engine: Engine) -> dict[str, float]:
    """Every job's stall deadline, the slow way: a scan of every job (config: the median never matters)."""
    return {
        v.job_id: v.last_progress_at + engine.config.stall_min_s
        for v in engine.jobs()
        if v.state is JobState.RUNNING and not v.stalled and v.last_progress_at is not None
    }


stall_ops = st.lists(
    st.one_of(
        st.tuples(st.just("progress"), JOB_IDS, st.integers(0, 3), st.floats(0.0, 50.0)),
        st.tuples(st.just("status"), JOB_IDS, st.sampled_from(JobState), st.floats(0.0, 50.0)),
        st.tuples(st.just("hello"), JOB_IDS, st.sampled_from(["r1", "r2"]), st.floats(0.0, 50.0)),
        st.tuples(st.just("tick"), st.just(""), st.just(0), st.floats(0.0, 400.0)),
        st.tuples(st.just("forget"), JOB_IDS, st.just(0), st.just(0.0)),
        st.tuples(st.just("exited"), JOB_IDS, st.just(0), st.floats(0.0, 5.0)),
        st.tuples(st.just("config"), st.just(""), st.sampled_from([1, 30, 120]), st.just(0.0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=stall_ops)
def test_stall_timers_match_a_scan_of_every_job(ops: list[tuple[str, str, object, float]]) -> None:
    """The stall heap (a timer pass touches only the jobs due) decides what a scan of every job would.

    After any mix of progress (advancing or not), status changes, new runs, forgotten jobs, exited
    processes, config changes and ticks: ``next_tick_at`` is never later than the earliest stall
    deadline, and a tick fires a stall warning for exactly the jobs whose deadline has passed.
    (A stall factor of 0 keeps every deadline at last progress + ``stall_min_s``, so the scan
    needs only the public job views; the median has its own property below.)
    """
    config = EngineConfig(stall_min_s=60.0, stall_factor=0.0, taskbar_max_hz=0.0)
    engine = Engine(config)
    now, steps = T0, dict.fromkeys(["j1", "j2", "job.3"], 0)
    for kind, job_id, arg, gap in ops:
        now += gap
        if kind == "progress":
            steps[job_id] += int(str(arg))
            engine.feed(progress(steps[job_id], job_id=job_id), now=now)
        elif kind == "status":
            assert isinstance(arg, JobState)
            engine.feed(status(arg, job_id=job_id), now=now)
        elif kind == "hello":
            steps[job_id] = 0
            engine.feed(hello(job_id=job_id, run_id=str(arg), step=0), now=now)
        elif kind == "forget":
            engine.forget(job_id)
        elif kind == "exited":
            engine.process_exited(job_id, now=now)
        elif kind == "config":
            engine.set_config(EngineConfig(stall_min_s=float(str(arg)), stall_factor=0.0, taskbar_max_hz=0.0))
        else:
            expected = {job for job, at in _stall_deadlines(engine).items() if at <= now}
            fired = {a.job_id for a in decided(engine.tick(now=now)) if a.key == "stall"}
            assert fired == expected
        deadlines = _stall_deadlines(engine)
        due = engine.next_tick_at()
        if deadlines:
            assert due is not None and due <= min(deadlines.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-1.0, 100.0)), max_size=200))
def test_step_rate_median_is_the_median_of_the_kept_intervals(samples: list[tuple[int, float]]) -> None:
    """The sorted copy StepRate keeps gives statistics.median of its last MAX_INTERVALS intervals."""
    rate, step, ts = StepRate(), 0, 0.0
    for advance, gap in samples:
        step, ts = step + advance, ts + gap
        rate.observe(step, ts)
        assert len(rate.intervals) <= MAX_INTERVALS
        expected = statistics.median(rate.intervals) if rate.intervals else None
        assert rate.median_interval() == expected
