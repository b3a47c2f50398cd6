"""Error floods (issue 10 item 7): never dropped, but a flood is one summary popup per minute."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from peft_notify.engine import Engine, EngineConfig, MergeRepeat, Notify, Record
from peft_notify.engine.actions import Action, PlaySound
from peft_notify.engine.floods import FLOOD_ERROR_TYPE, FLOOD_KEY, ErrorFloods
from peft_notify.ports import DeliveryStatus, DndState
from peft_notify.wire import NotificationType

from .factories import T0, hello, note, notifies, only, records

WINDOW = 60.0


def error(i: int, job_id: str = "j1") -> object:
    return note(NotificationType.ERROR, f"E{i}", f"boom {i}", error_type=f"type_{i}", job_id=job_id)


def summaries(actions: list[Action]) -> list[Notify]:
    return [n for n in notifies(actions) if n.event.error_type == FLOOD_ERROR_TYPE]


def individual(actions: list[Action]) -> list[Notify]:
    return [
        n
        for n in notifies(actions)
        if n.event.type is NotificationType.ERROR and n.event.error_type != FLOOD_ERROR_TYPE
    ]


def count_of(summary: Notify) -> int:
    return int(summary.event.title.split()[0])


def started(config: EngineConfig | None = None, *jobs: str) -> Engine:
    engine = Engine(config)
    for job in jobs or ("j1",):
        engine.feed(hello(job_id=job, run_id=f"run-{job}"), now=T0)
    return engine


def test_first_three_pop_up_then_one_summary_and_the_rest_is_recorded() -> None:
    engine = started()
    actions: list[Action] = []
    for i in range(15):  # the attack: a server sending distinct errors as fast as it can
        actions += engine.feed(error(i), now=T0)
    assert [n.event.title for n in individual(actions)] == ["E0", "E1", "E2"]
    [first] = summaries(actions)
    assert first.event.title == "1 more error from llama-lora"
    assert first.key == FLOOD_KEY
    assert "E3: boom 3" in first.event.message
    merged = records(actions)
    assert [r.event.title for r in merged] == [f"E{i}" for i in range(3, 15)]  # every one recorded
    assert {r.reason for r in merged} == {DeliveryStatus.MERGED}
    assert len(only(actions, PlaySound)) == 3  # no sound per merged error, none for the summary
    # The rest of the minute's errors are counted in the next summary, due one window later.
    assert engine.next_tick_at() == T0 + WINDOW
    assert summaries(engine.tick(now=T0 + 30)) == []
    [update] = summaries(engine.tick(now=T0 + WINDOW))
    assert update.event.title == "11 more errors from llama-lora"
    assert "E14: boom 14" in update.event.message


def test_the_summary_bypasses_dnd_and_takes_the_highest_urgency() -> None:
    engine = started()
    actions: list[Action] = []
    for i in range(3):
        actions += engine.feed(error(i), now=T0, dnd=DndState.ON)
    actions += engine.feed(
        note(NotificationType.ERROR, "OOM", "CUDA out of memory", error_type="oom_error"), now=T0, dnd=DndState.ON
    )
    [summary] = summaries(actions)
    assert summary.event.respect_dnd is False
    assert summary.event.urgency == "critical"
    assert len(individual(actions)) == 3


def test_floods_are_per_job() -> None:
    engine = started(None, "a", "b")
    actions = [a for i in range(10) for a in engine.feed(error(i, "a"), now=T0)]
    assert len(individual(actions)) == 3
    [shown] = individual(engine.feed(error(0, "b"), now=T0))
    assert shown.job_id == "b"


def test_the_allowance_slides_back_after_a_quiet_minute() -> None:
    engine = started()
    for i in range(5):
        engine.feed(error(i), now=T0)
    engine.tick(now=T0 + WINDOW)
    actions = [a for i in range(5, 8) for a in engine.feed(error(i), now=T0 + WINDOW + 1)]
    assert [n.event.title for n in individual(actions)] == ["E5", "E6", "E7"]


def test_repeats_of_one_error_stay_dedup_merges_not_flood_records() -> None:
    engine = started()
    err = note(NotificationType.ERROR, "E", "boom", error_type="cuda_error")
    actions = [a for _ in range(50) for a in engine.feed(err, now=T0)]
    assert len(notifies(actions)) == 1
    assert len(only(actions, MergeRepeat)) == 49
    assert records(actions) == []


def test_limit_zero_disables_merging() -> None:
    engine = started(EngineConfig(error_popups_per_minute=0))
    actions = [a for i in range(20) for a in engine.feed(error(i), now=T0)]
    assert len(individual(actions)) == 20
    assert records(actions) == []


def test_forget_drops_the_flood_state() -> None:
    engine = started()
    for i in range(6):
        engine.feed(error(i), now=T0)
    engine.forget("j1")
    assert engine.next_tick_at() is None
    assert summaries(engine.tick(now=T0 + WINDOW)) == []


def test_idle_flood_state_is_pruned() -> None:
    floods = ErrorFloods(limit=1)
    assert floods.admit("a", T0)
    assert floods.due(T0 + WINDOW) == []
    assert floods._jobs == {}  # nothing remembered for a quiet job


# A flood script: (seconds since the previous error, job, error type, tick after it?)
_script = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.001, 0.5, 5.0, 20.0, 59.9, 60.0, 61.0, 300.0]),
        st.sampled_from(["a", "b"]),
        st.integers(0, 30),
        st.booleans(),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(script=_script, limit=st.integers(1, 5), dnd=st.sampled_from([DndState.OFF, DndState.ON]))
def test_every_error_is_recorded_and_popups_per_job_per_minute_are_bounded(
    script: list[tuple[float, str, int, bool]], limit: int, dnd: DndState
) -> None:
    engine = started(EngineConfig(error_popups_per_minute=limit, dedup_window_s=0.0), "a", "b")
    now = T0
    popups: dict[str, list[float]] = defaultdict(list)
    merged: dict[str, int] = defaultdict(int)
    summarised: dict[str, int] = defaultdict(int)

    def account(actions: list[Action], at: float) -> None:
        for n in notifies(actions):
            if n.event.type is NotificationType.ERROR:
                popups[n.job_id].append(at)
            if n.event.error_type == FLOOD_ERROR_TYPE:
                summarised[n.job_id] += count_of(n)

    for gap, job, kind, tick in script:
        now += gap
        actions = engine.feed(error(kind, job), now=now, dnd=dnd)
        mine = [
            a
            for a in actions
            if isinstance(a, (Notify, Record, MergeRepeat)) and a.job_id == job and a.event.error_type == f"type_{kind}"
        ]
        assert len(mine) == 1, actions  # never dropped: shown or recorded as merged, exactly once
        if isinstance(mine[0], Record):
            assert mine[0].reason is DeliveryStatus.MERGED
            merged[job] += 1
        account(actions, now)
        if tick:
            account(engine.tick(now=now, dnd=dnd), now)
    # After the flood, the pending summaries come out at next_tick_at: every merged error counted.
    while (due := engine.next_tick_at()) is not None and due <= now + 10 * WINDOW:
        now = max(now, due)
        account(engine.tick(now=now, dnd=dnd), now)
    assert summarised == merged
    for times in popups.values():
        for i, start in enumerate(times):
            in_window = [t for t in times[i:] if t - start < WINDOW]
            assert len(in_window) <= limit + 1, (limit, times)
