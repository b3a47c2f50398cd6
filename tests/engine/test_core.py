"""Engine API (feed, tick, next_tick_at, acknowledge, forget, views) and rule 7 (stalls)."""

from __future__ import annotations

from peft_notify.engine import Engine, MergeRepeat, Notify, SetBadge
from peft_notify.engine.core import LEGACY_JOB_ID
from peft_notify.ports import DeliveryStatus
from peft_notify.wire import JobState, NotificationType

from .factories import T0, hello, note, notifies, only, progress, records, status, unknown

MIN = 60.0


def running(engine: Engine, interval: float = 1.0, steps: int = 10) -> float:
    """Start a job with ``steps`` progress messages ``interval`` s apart; returns the last time."""
    engine.feed(hello(), now=T0)
    now = T0
    for i in range(steps + 1):
        now = T0 + i * interval
        engine.feed(progress(i), now=now)
    return now


# ---------------------------------------------------------------- rule 7: stalls and ETA


def test_rule7_stall_after_the_minimum_warns_once() -> None:
    engine = Engine()
    last = running(engine)
    assert engine.next_tick_at() == last + 300
    assert engine.tick(now=last + 299) == []
    actions = engine.tick(now=last + 300)
    (warning,) = notifies(actions)
    assert warning.key == "stall"
    assert warning.event.type is NotificationType.WARNING
    assert "appears stalled" in warning.event.message
    assert engine.job("j1").stalled  # type: ignore[union-attr]
    assert notifies(engine.tick(now=last + 900)) == []
    assert engine.next_tick_at() is None


def test_rule7_stall_threshold_scales_with_the_median_step_interval() -> None:
    engine = Engine()
    last = running(engine, interval=60.0, steps=5)  # 10 x 60 s = 600 s > 300 s
    assert engine.next_tick_at() == last + 600
    assert engine.tick(now=last + 599) == []
    assert len(notifies(engine.tick(now=last + 600))) == 1


def test_rule7_recovery_clears_stall_and_notifies_resumed() -> None:
    engine = Engine()
    last = running(engine)
    engine.tick(now=last + 400)
    actions = engine.feed(progress(11), now=last + 401)
    (resumed,) = notifies(actions)
    assert resumed.key == "stall-resumed"
    assert resumed.event.title == "Training resumed"
    assert not engine.job("j1").stalled  # type: ignore[union-attr]
    assert engine.next_tick_at() == last + 401 + 300


def test_rule7_paused_or_finished_jobs_never_stall() -> None:
    engine = Engine()
    last = running(engine)
    engine.feed(status(JobState.PAUSED), now=last)
    assert engine.tick(now=last + 10_000) == []
    assert engine.next_tick_at() is None
    engine.feed(status(JobState.RUNNING), now=last + 10_000)
    assert engine.next_tick_at() == last + 10_300  # paused time does not count
    engine.feed(status(JobState.CANCELLED), now=last + 10_001)
    assert engine.tick(now=last + 99_999) == []


def test_rule7_a_job_without_progress_is_not_watched_for_stalls() -> None:
    engine = Engine()
    engine.feed(hello(), now=T0)
    assert engine.next_tick_at() is None


def test_rule7_eta_from_smoothed_step_rate() -> None:
    engine = Engine()
    running(engine, interval=2.0, steps=10)  # 0.5 steps/s
    view = engine.job("j1")
    assert view is not None
    assert view.eta_s == (1000 - 10) / 0.5
    assert view.fraction == 0.01


# ---------------------------------------------------------------- API


def test_unknown_bodies_are_counted_and_ignored() -> None:
    engine = Engine()
    assert engine.feed(unknown(), now=T0) == []
    assert engine.feed(unknown("metrics"), now=T0) == []
    assert engine.unknown_count == 2
    assert engine.jobs() == []


def test_legacy_frame_uses_the_connection_job_id() -> None:
    engine = Engine()
    legacy = note(NotificationType.ERROR, "Training Error", "OOM", error_type="oom_error", job_id=None, legacy=True)
    (shown,) = notifies(engine.feed(legacy, now=T0, job_id="conn-7"))
    assert shown.job_id == "conn-7"
    assert shown.seq is None
    assert notifies(engine.feed(legacy, now=T0 + 100))[0].job_id == LEGACY_JOB_ID


def test_legacy_milestones_key_on_the_job_id() -> None:
    engine = Engine()
    milestone = note(NotificationType.PROGRESS, "Training 25% Complete", milestone=25, job_id=None, legacy=True)
    (shown,) = notifies(engine.feed(milestone, now=T0, job_id="conn-7"))
    assert shown.key == "milestone:conn-7:25"


def test_job_views_reflect_hello_and_progress() -> None:
    engine = Engine()
    engine.feed(hello(caps=("retry",), seq=3), now=T0)
    engine.feed(progress(250, loss=0.75, seq=4), now=T0 + 1)
    view = engine.job("j1")
    assert view is not None
    assert (view.name, view.run_id, view.host, view.pid) == ("llama-lora", "run-1", "gpu1", 4242)
    assert (view.current_step, view.total_steps, view.loss, view.last_seq) == (250, 1000, 0.75, 4)
    assert view.capabilities == ("retry",)
    assert view.started_at == T0
    assert view.last_progress_at == T0 + 1
    assert view.state is JobState.RUNNING
    assert engine.jobs() == [view]
    assert engine.job("nope") is None


def test_job_name_defaults_to_its_id() -> None:
    engine = Engine()
    engine.feed(progress(5, job_id="anon"), now=T0)
    assert engine.job("anon").name == "anon"  # type: ignore[union-attr]


def test_badge_counts_errors_completions_warnings_until_acknowledged() -> None:
    engine = Engine()
    engine.feed(hello(step=0), now=T0)
    actions = engine.feed(progress(300), now=T0 + 1)
    actions += engine.feed(note(NotificationType.WARNING, "W", "w"), now=T0 + 2)
    actions += engine.feed(note(NotificationType.WARNING, "W", "w"), now=T0 + 3)  # merged: not counted
    actions += engine.feed(note(NotificationType.ERROR, "E", "e"), now=T0 + 4)
    actions += engine.feed(progress(1000), now=T0 + 5)
    assert only(actions, SetBadge) == [SetBadge(1), SetBadge(2), SetBadge(3)]
    assert engine.badge == 3
    assert engine.acknowledge(now=T0 + 6)[0] == SetBadge(0)
    assert engine.badge == 0


def test_forget_drops_state_and_dedup() -> None:
    engine = Engine()
    engine.feed(hello(), now=T0)
    warn = note(NotificationType.WARNING, "W", "w")
    engine.feed(warn, now=T0)
    engine.forget("j1")
    assert engine.job("j1") is None
    assert len(only(engine.feed(warn, now=T0 + 1), Notify)) == 1


def test_notify_carries_the_envelope_seq() -> None:
    engine = Engine()
    engine.feed(hello(step=0), now=T0)
    (shown,) = notifies(engine.feed(progress(300, seq=17), now=T0 + 1))
    assert shown.seq == 17


def test_duplicate_server_milestone_is_recorded_not_merged() -> None:
    engine = Engine()
    engine.feed(hello(step=300), now=T0)
    actions = engine.feed(note(NotificationType.PROGRESS, "25%", milestone=25), now=T0 + 1)
    assert records(actions)[0].reason is DeliveryStatus.DUPLICATE
    assert only(actions, MergeRepeat) == []
