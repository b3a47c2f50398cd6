"""Rules 1-3 (milestones, completion, errors), through the engine's public API."""

from __future__ import annotations

import itertools

import pytest

from peft_notify.engine import (
    Action,
    Attention,
    ClearTaskbar,
    Engine,
    EngineConfig,
    MergeRepeat,
    Notify,
    PlaySound,
    Record,
    SetBadge,
    SetTaskbar,
)
from peft_notify.ports import DeliveryStatus, DndState, TaskbarState
from peft_notify.wire import Envelope, JobState, NotificationType, UrgencyLevel

from .factories import T0, hello, milestones_notified, note, notifies, only, progress, records, status


def started(engine: Engine, *, caps: tuple[str, ...] = (), total: int | None = 1000) -> Engine:
    engine.feed(hello(caps=caps, total=total), now=T0)
    engine.feed(progress(0, total), now=T0)
    return engine


def run(engine: Engine, *envelopes: Envelope, now: float = T0 + 10) -> list[Action]:
    actions: list[Action] = []
    for env in envelopes:
        actions += engine.feed(env, now=now)
    return actions


# ---------------------------------------------------------------- rule 1: milestones


def test_rule1_default_milestones_fire_once_each_in_order() -> None:
    engine = started(Engine())
    actions = run(engine, *(progress(s) for s in range(0, 1000, 50)))
    assert milestones_notified(actions) == [25, 50, 75]
    keys = [a.key for a in notifies(actions)]
    assert keys == ["milestone:run-1:25", "milestone:run-1:50", "milestone:run-1:75"]


def test_rule1_jump_fires_highest_naming_passed() -> None:
    engine = started(Engine())
    actions = run(engine, progress(100), progress(800))
    shown = notifies(actions)
    assert [n.event.milestone for n in shown] == [75]
    assert "75 % reached — passed 25 % and 50 % too" in shown[0].event.message


def test_rule1_single_passed_milestone_is_named() -> None:
    engine = started(Engine())
    run(engine, progress(300))
    (shown,) = notifies(run(engine, progress(760)))
    assert "75 % reached — passed 50 % too" in shown.event.message


def test_rule1_milestone_fires_at_most_once_per_run_even_when_progress_goes_back() -> None:
    engine = started(Engine())
    actions = run(engine, progress(300), progress(100), progress(300), progress(260), progress(510))
    assert milestones_notified(actions) == [25, 50]


def test_rule1_start_past_milestone_never_fires_retroactively() -> None:
    engine = Engine()
    actions = run(engine, progress(600), progress(700))
    assert notifies(actions) == []
    assert milestones_notified(run(engine, progress(750))) == [75]


def test_rule1_hello_snapshot_past_milestone_never_fires_retroactively() -> None:
    engine = Engine()
    actions = engine.feed(hello(step=550), now=T0)
    actions += run(engine, progress(560), progress(700))
    assert notifies(actions) == []
    assert milestones_notified(run(engine, progress(760))) == [75]


def test_rule1_hello_snapshot_of_finished_job_never_fires_completion() -> None:
    engine = Engine()
    actions = engine.feed(hello(step=1000, state=JobState.COMPLETED), now=T0)
    actions += run(engine, status(JobState.COMPLETED), note(NotificationType.COMPLETION, "Done"))
    assert notifies(actions) == []
    assert [r.reason for r in records(actions)] == [DeliveryStatus.DUPLICATE]


def test_rule1_new_run_id_resets_milestones() -> None:
    engine = started(Engine())
    assert milestones_notified(run(engine, progress(300))) == [25]
    engine.feed(hello(run_id="run-2", step=0), now=T0 + 20)
    actions = run(engine, progress(300), now=T0 + 30)
    assert milestones_notified(actions) == [25]
    assert notifies(actions)[0].key == "milestone:run-2:25"


def test_rule1_reconnect_of_same_run_fires_milestone_crossed_while_away() -> None:
    engine = started(Engine())
    run(engine, progress(100))
    actions = engine.feed(hello(step=600), now=T0 + 30)
    assert milestones_notified(actions) == [50]


def test_rule1_server_milestone_then_own_crossing_is_one_popup() -> None:
    engine = started(Engine())
    actions = run(engine, progress(240), note(NotificationType.PROGRESS, "Training 25% Complete", milestone=25))
    actions += run(engine, progress(260))
    assert milestones_notified(actions) == [25]
    assert records(actions) == []


def test_rule1_own_crossing_then_server_milestone_is_recorded_as_duplicate() -> None:
    engine = started(Engine())
    actions = run(engine, progress(260), note(NotificationType.PROGRESS, "Training 25% Complete", milestone=25))
    assert milestones_notified(actions) == [25]
    (dup,) = records(actions)
    assert dup.reason is DeliveryStatus.DUPLICATE
    assert dup.key == notifies(actions)[0].key


def test_rule1_server_milestone_names_lower_ones_it_passed() -> None:
    engine = started(Engine())
    actions = run(engine, note(NotificationType.PROGRESS, "Training 75% Complete", "3/4 done", milestone=75))
    (shown,) = notifies(actions)
    assert shown.event.message == "3/4 done — passed 25 % and 50 % too"
    assert shown.event.taskbar_progress == 0.0
    assert notifies(run(engine, progress(800))) == []


def test_rule1_configurable_milestones_and_templates() -> None:
    config = EngineConfig(
        milestones=(10, 90, 150, 0),
        milestone_title="{job} at {percent}%",
        milestone_message="{step} of {total}, eta {eta}, loss {loss:.2f}",
    )
    engine = started(Engine(config))
    actions = run(engine, progress(50, loss=1.23456), progress(120, loss=0.5))
    (shown,) = notifies(actions)
    assert shown.event.title == "llama-lora at 10%"
    assert shown.event.message == "120 of 1000, eta 2m 56s, loss 0.50"  # 50 steps in 10 s
    assert config.progress_milestones == (10, 90)


def test_rule1_bad_template_falls_back_to_default_and_is_remembered() -> None:
    engine = started(Engine(EngineConfig(milestone_title="{nope} {percent}", completion_message="{step:q}")))
    assert len(engine.template_errors) == 2
    (shown,) = notifies(run(engine, progress(300)))
    assert shown.event.title == "llama-lora: 25% complete"
    assert len(engine.template_errors) == 2


def test_rule1_total_becoming_known_never_fires_retroactively() -> None:
    engine = started(Engine(), total=None)
    actions = run(engine, progress(500, None), progress(600, 1000))
    assert notifies(actions) == []
    assert milestones_notified(run(engine, progress(750, 1000))) == [75]


def test_rule1_no_milestones_without_a_total() -> None:
    engine = started(Engine(), total=None)
    assert notifies(run(engine, progress(10_000, None))) == []


# ---------------------------------------------------------------- rule 2: completion


def test_rule2_completion_sound_attention_then_taskbar_removed() -> None:
    engine = started(Engine())
    run(engine, progress(990))
    actions = run(engine, progress(1000))
    tail = actions[actions.index(notifies(actions)[0]) :]
    assert [type(a) for a in tail] == [Notify, PlaySound, Attention, SetBadge, ClearTaskbar]
    shown = notifies(actions)[0]
    assert shown.event.type is NotificationType.COMPLETION
    assert shown.event.sound is True
    assert shown.event.milestone == 100
    assert shown.key == "completion:run-1"
    assert tail[1] == PlaySound("complete", "j1")
    assert tail[2] == Attention(critical=False)


SIGNALS = {
    "progress": lambda: progress(1000),
    "notification": lambda: note(NotificationType.COMPLETION, "Training Complete! 🎉", "done"),
    "status": lambda: status(JobState.COMPLETED),
}


@pytest.mark.parametrize("order", [p for r in (1, 2, 3) for p in itertools.permutations(SIGNALS, r)], ids="-".join)
def test_rule2_completion_exactly_once_in_any_order(order: tuple[str, ...]) -> None:
    engine = started(Engine())
    actions = run(engine, progress(500), *(SIGNALS[name]() for name in order), *(SIGNALS[n]() for n in order))
    completions = [n for n in notifies(actions) if n.event.type is NotificationType.COMPLETION]
    assert len(completions) == 1
    assert only(actions, PlaySound) == [PlaySound("complete", "j1")]
    assert engine.job("j1") is not None
    assert engine.job("j1").state is JobState.COMPLETED  # type: ignore[union-attr]


def test_rule2_completion_jump_names_passed_milestones() -> None:
    engine = started(Engine())
    actions = run(engine, progress(600), progress(1000))
    assert milestones_notified(actions) == [50, 100]
    assert notifies(actions)[1].event.message.endswith(" — passed 75 % too")


def test_rule2_completion_with_another_running_job_keeps_its_taskbar() -> None:
    engine = started(Engine())
    engine.feed(hello(job_id="j2", run_id="other", step=400), now=T0)
    actions = run(engine, progress(1000))
    assert actions[-1] == SetTaskbar(0.4, TaskbarState.NORMAL, jobs=1)


def test_rule2_sounds_off_means_silent_completion() -> None:
    engine = started(Engine(EngineConfig(sounds=False)))
    actions = run(engine, status(JobState.COMPLETED))
    assert notifies(actions)[0].event.sound is False
    assert only(actions, PlaySound) == []


def test_rule2_status_running_after_completion_does_not_repeat_it() -> None:
    engine = started(Engine())
    first = run(engine, status(JobState.COMPLETED))
    again = run(engine, status(JobState.RUNNING), progress(1000), status(JobState.COMPLETED))
    assert len(notifies(first)) == 1
    assert notifies(again) == []


# ---------------------------------------------------------------- rule 3: errors


@pytest.mark.parametrize(
    ("error_type", "urgency", "expected"),
    [
        ("oom_error", "low", UrgencyLevel.CRITICAL),
        ("cuda_error", None, UrgencyLevel.CRITICAL),
        ("system_crash", "normal", UrgencyLevel.CRITICAL),
        ("loss_divergence", "low", UrgencyLevel.HIGH),
        ("gradient_explosion", "normal", UrgencyLevel.HIGH),
        ("data_error", "critical", UrgencyLevel.HIGH),
        ("training_error", "normal", UrgencyLevel.NORMAL),
        (None, "normal", UrgencyLevel.NORMAL),
        ("disk_full", "critical", UrgencyLevel.CRITICAL),
        ("disk_full", "low", UrgencyLevel.LOW),
    ],
)
def test_rule3_error_urgency_mapping(error_type: str | None, urgency: str, expected: UrgencyLevel) -> None:
    engine = started(Engine())
    (shown,) = notifies(run(engine, note(NotificationType.ERROR, "E", "boom", error_type=error_type, urgency=urgency)))
    assert shown.event.urgency == expected
    assert shown.key == f"error:{error_type or 'training_error'}"


def test_rule3_error_offers_retry_only_when_hello_advertises_it() -> None:
    without = started(Engine())
    with_retry = started(Engine(), caps=("retry", "cancel"))
    err = note(NotificationType.ERROR, "E", "boom", error_type="oom_error")
    assert notifies(run(without, err))[0].event.actions == ["View Details"]
    assert notifies(run(with_retry, err))[0].event.actions == ["View Details", "Retry"]


def test_rule3_error_always_bypasses_dnd_with_sound_and_attention() -> None:
    engine = started(Engine())
    err = note(NotificationType.ERROR, "E", "nan loss", error_type="loss_divergence")
    actions = engine.feed(err, now=T0 + 5, dnd=DndState.ON)
    (shown,) = notifies(actions)
    assert shown.event.respect_dnd is False
    assert shown.event.sound is True
    assert PlaySound("dialog-error", "j1") in actions
    assert Attention(critical=False) in actions
    assert actions[-1] == SetTaskbar(0.0, TaskbarState.ERROR, jobs=1)


def test_rule3_critical_error_requests_critical_attention() -> None:
    engine = started(Engine())
    actions = run(engine, note(NotificationType.ERROR, "E", "CUDA OOM", error_type="oom_error"))
    assert Attention(critical=True) in actions
    assert engine.job("j1").errors == 1  # type: ignore[union-attr]


def test_rule3_error_flag_clears_when_progress_resumes() -> None:
    engine = started(Engine())
    run(engine, note(NotificationType.ERROR, "E", "hiccup"))
    assert run(engine, progress(10))[-1] == SetTaskbar(0.01, TaskbarState.NORMAL, jobs=1)


def test_rule3_status_failed_notifies_when_no_error_was_sent() -> None:
    engine = started(Engine())
    actions = run(engine, status(JobState.FAILED, "exit code 1"))
    (shown,) = notifies(actions)
    assert shown.event.type is NotificationType.ERROR
    assert shown.event.message == "exit code 1"
    assert shown.event.urgency == UrgencyLevel.HIGH
    assert actions[-1] == SetTaskbar(0.0, TaskbarState.ERROR, jobs=1)


def test_rule3_status_failed_after_an_error_adds_no_second_one() -> None:
    engine = started(Engine())
    actions = run(engine, note(NotificationType.ERROR, "E", "boom", error_type="cuda_error"), status(JobState.FAILED))
    assert len(notifies(actions)) == 1


def test_rule3_process_exited_is_critical_system_crash() -> None:
    engine = started(Engine())
    actions = engine.process_exited("j1", now=T0 + 50, detail="pid 4242 gone")
    (shown,) = notifies(actions)
    assert shown.event.error_type == "system_crash"
    assert shown.event.urgency == UrgencyLevel.CRITICAL
    assert shown.event.message == "llama-lora: the training process exited unexpectedly (pid 4242 gone)"
    assert Attention(critical=True) in actions
    assert engine.job("j1").state is JobState.FAILED  # type: ignore[union-attr]
    assert engine.process_exited("j1", now=T0 + 51) == []


@pytest.mark.parametrize("final", [JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED])
def test_rule3_process_exited_after_the_job_finished_is_silent(final: JobState) -> None:
    engine = started(Engine())
    run(engine, status(final))
    assert engine.process_exited("j1", now=T0 + 50) == []


def test_rule3_process_exited_of_unknown_job_still_reports() -> None:
    engine = Engine()
    (shown,) = notifies(engine.process_exited("ghost", now=T0))
    assert shown.event.message == "ghost: the training process exited unexpectedly"


def test_rule3_repeated_error_is_merged_never_dropped() -> None:
    engine = started(Engine())
    err = note(NotificationType.ERROR, "E", "boom", error_type="cuda_error")
    actions = run(engine, *(err for _ in range(10)))
    assert len(notifies(actions)) == 1
    assert [m.repeat for m in only(actions, MergeRepeat)] == list(range(2, 11))
    assert only(actions, Record) == []


def test_rule2_reconnect_hello_reporting_completion_completes_once() -> None:
    engine = started(Engine())
    run(engine, progress(500))
    actions = engine.feed(hello(step=1000, state=JobState.COMPLETED), now=T0 + 30)
    assert [n.key for n in notifies(actions)] == ["completion:run-1"]


def test_rule1_progress_after_pause_resumes_the_job() -> None:
    engine = started(Engine())
    run(engine, status(JobState.PAUSED))
    run(engine, progress(10))
    assert engine.job("j1").state is JobState.RUNNING  # type: ignore[union-attr]


def test_rule1_server_milestone_keeps_its_own_taskbar_value() -> None:
    engine = started(Engine())
    event = note(NotificationType.PROGRESS, "Half", milestone=50)
    event.data.taskbar_progress = 0.5  # type: ignore[union-attr]
    (shown,) = notifies(run(engine, event))
    assert shown.event.taskbar_progress == 0.5


def test_rule3_reconnect_hello_reporting_failure_notifies_the_error() -> None:
    engine = started(Engine())
    actions = engine.feed(hello(step=0, state=JobState.FAILED), now=T0 + 30)
    (shown,) = notifies(actions)
    assert shown.event.type is NotificationType.ERROR
    assert shown.event.title == "Training Failed"
    assert shown.event.message == "llama-lora failed."
