"""Rule 4: Do-Not-Disturb and the user's pause withhold, record, and summarise."""

from __future__ import annotations

from peft_notify.engine import Engine, EngineConfig, Notify, SetBadge
from peft_notify.engine.dnd import SUMMARY_KEY, QuietPeriods, Withheld, summary_event
from peft_notify.ports import DeliveryStatus, DndState
from peft_notify.wire import JobState, NotificationType

from .factories import T0, hello, note, notifies, only, progress, records, status

ON, OFF, UNKNOWN = DndState.ON, DndState.OFF, DndState.UNKNOWN


def started(engine: Engine, job_id: str = "j1", name: str = "llama-lora") -> Engine:
    engine.feed(hello(job_id=job_id, name=name, run_id=f"run-{job_id}"), now=T0)
    engine.feed(progress(0, job_id=job_id), now=T0)
    return engine


def test_rule4_dnd_withholds_progress_completion_warning_and_records_them() -> None:
    engine = started(Engine())
    actions = engine.feed(progress(300), now=T0 + 1, dnd=ON)
    actions += engine.feed(note(NotificationType.WARNING, "W", "grad norm high"), now=T0 + 2, dnd=ON)
    actions += engine.feed(status(JobState.COMPLETED), now=T0 + 3, dnd=ON)
    assert notifies(actions) == []
    withheld = records(actions)
    assert [r.event.type for r in withheld] == [
        NotificationType.PROGRESS,
        NotificationType.WARNING,
        NotificationType.COMPLETION,
    ]
    assert {r.reason for r in withheld} == {DeliveryStatus.WITHHELD_DND}
    assert only(actions, SetBadge) == [SetBadge(1), SetBadge(2)]  # warning + completion count


def test_rule4_errors_are_never_withheld_by_dnd() -> None:
    engine = started(Engine())
    actions = engine.feed(note(NotificationType.ERROR, "E", "oom", error_type="oom_error"), now=T0 + 1, dnd=ON)
    assert len(notifies(actions)) == 1
    assert records(actions) == []


def test_rule4_dnd_end_emits_exactly_one_summary() -> None:
    engine = started(Engine())
    started(engine, "j2", "mistral-qlora")
    engine.feed(progress(800), now=T0 + 1, dnd=ON)
    engine.feed(note(NotificationType.WARNING, "W", "slow dataloader"), now=T0 + 2, dnd=ON)
    engine.feed(status(JobState.COMPLETED, job_id="j2"), now=T0 + 3, dnd=ON)
    assert engine.tick(now=T0 + 4, dnd=ON) == []
    actions = engine.tick(now=T0 + 5, dnd=OFF)
    (summary,) = notifies(actions)
    assert summary.job_id == ""
    assert summary.key == SUMMARY_KEY
    assert summary.event.title == "While Do Not Disturb was on"
    assert summary.event.message == (
        "llama-lora reached 75 %, mistral-qlora finished, 1 warning (3 notifications in history)"
    )
    assert notifies(engine.tick(now=T0 + 6, dnd=OFF)) == []
    assert notifies(engine.feed(progress(810), now=T0 + 7, dnd=OFF)) == []


def test_rule4_summary_comes_before_the_feed_that_ended_dnd() -> None:
    engine = started(Engine())
    engine.feed(progress(300), now=T0 + 1, dnd=ON)
    actions = engine.feed(progress(600), now=T0 + 2, dnd=OFF)
    assert [n.key for n in notifies(actions)] == [SUMMARY_KEY, "milestone:run-j1:50"]


def test_rule4_no_summary_when_nothing_was_missed() -> None:
    engine = started(Engine())
    engine.tick(now=T0 + 1, dnd=ON)
    assert engine.tick(now=T0 + 2, dnd=OFF) == []


def test_rule4_unknown_dnd_counts_as_off() -> None:
    engine = started(Engine())
    actions = engine.feed(progress(300), now=T0 + 1, dnd=UNKNOWN)
    assert len(notifies(actions)) == 1


def test_rule4_tick_without_dnd_keeps_the_last_state() -> None:
    engine = started(Engine())
    engine.feed(progress(300), now=T0 + 1, dnd=ON)
    assert engine.tick(now=T0 + 2) == []
    assert records(engine.feed(progress(600), now=T0 + 3, dnd=None))[0].reason is DeliveryStatus.WITHHELD_DND


def test_rule4_config_can_ignore_dnd() -> None:
    engine = started(Engine(EngineConfig(respect_dnd=False)))
    assert len(notifies(engine.feed(progress(300), now=T0 + 1, dnd=ON))) == 1


def test_rule4_user_pause_withholds_and_resume_summarises() -> None:
    engine = started(Engine())
    assert engine.set_user_pause(T0 + 3600, now=T0) == []
    assert engine.next_tick_at() == T0 + 3600
    actions = engine.feed(progress(300), now=T0 + 1)
    assert records(actions)[0].reason is DeliveryStatus.PAUSED
    actions += engine.feed(note(NotificationType.ERROR, "E", "boom"), now=T0 + 2)
    assert len(notifies(actions)) == 1  # errors still show while paused
    (summary,) = notifies(engine.set_user_pause(None, now=T0 + 10))
    assert summary.event.title == "While notifications were paused"
    assert summary.event.message == "llama-lora reached 25 % (1 notification in history)"


def test_rule4_pause_expires_in_tick_with_summary() -> None:
    engine = started(Engine())
    engine.set_user_pause(T0 + 60, now=T0)
    engine.feed(progress(300), now=T0 + 1)
    assert engine.tick(now=T0 + 59) == []
    (summary,) = notifies(engine.tick(now=T0 + 60))
    assert summary.key == SUMMARY_KEY


def test_rule4_pause_and_dnd_together_summarise_once_when_both_end() -> None:
    engine = started(Engine())
    engine.set_user_pause(T0 + 100, now=T0)
    engine.feed(progress(300), now=T0 + 1, dnd=ON)
    engine.set_user_pause(None, now=T0 + 2)
    engine.feed(progress(600), now=T0 + 3, dnd=ON)
    assert notifies(engine.set_user_pause(None, now=T0 + 4)) == []
    (summary,) = notifies(engine.tick(now=T0 + 5, dnd=OFF))
    assert summary.event.title == "While notifications were held"


def test_rule4_pause_in_the_past_is_no_pause() -> None:
    engine = started(Engine())
    engine.set_user_pause(T0 - 1, now=T0)
    assert len(notifies(engine.feed(progress(300), now=T0 + 1))) == 1


def test_quiet_periods_reason_prefers_the_users_pause() -> None:
    quiet = QuietPeriods()
    quiet.update(ON, T0)
    assert quiet.reason(T0) is DeliveryStatus.WITHHELD_DND
    quiet.set_pause(T0 + 10, T0)
    assert quiet.reason(T0) is DeliveryStatus.PAUSED
    assert quiet.reason(T0 + 10) is DeliveryStatus.WITHHELD_DND


def test_summary_counts_updates_and_plural_warnings() -> None:
    items = [
        Withheld("j1", "", NotificationType.PROGRESS, None, DeliveryStatus.WITHHELD_DND),
        Withheld("j1", "", NotificationType.PROGRESS, None, DeliveryStatus.WITHHELD_DND),
        Withheld("j1", "", NotificationType.WARNING, None, DeliveryStatus.WITHHELD_DND),
        Withheld("j1", "", NotificationType.WARNING, None, DeliveryStatus.WITHHELD_DND),
    ]
    event = summary_event(items)
    assert event.message == "j1: 2 updates, 2 warnings (4 notifications in history)"
    assert event.respect_dnd is False


def test_withheld_records_are_exposed_until_summarised() -> None:
    quiet = QuietPeriods()
    quiet.update(ON, T0)
    item = Withheld("j1", "x", NotificationType.WARNING, None, DeliveryStatus.WITHHELD_DND)
    quiet.withhold(item)
    assert quiet.withheld == (item,)
    assert quiet.update(OFF, T0 + 1) is not None
    assert len(quiet.withheld) == 0


def test_summary_notify_is_app_wide() -> None:
    engine = started(Engine())
    engine.feed(progress(300), now=T0 + 1, dnd=ON)
    (summary,) = only(engine.tick(now=T0 + 2, dnd=OFF), Notify)
    assert summary.job_id == ""
