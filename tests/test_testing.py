"""The fakes shipped in peft_notify.testing behave like the ports they stand in for."""

from __future__ import annotations

import asyncio

import pytest

from peft_notify.ports import DeliveryStatus, DndState, HistoryQuery, NotifyRequest, TaskbarState
from peft_notify.testing import FakeClock, MemoryHistoryStore, RecordingNotifier, RecordingTaskbar, ScriptedDndProbe
from peft_notify.wire import NotificationEvent, NotificationType


def event(
    title: str = "Training 25% Complete", kind: NotificationType = NotificationType.PROGRESS
) -> NotificationEvent:
    return NotificationEvent(type=kind, title=title, message="step 250 of 1000", milestone=25)


def test_fake_clock_only_moves_forward() -> None:
    clock = FakeClock(100.0)
    assert clock.advance(2.5) == 102.5
    assert clock.now() == 102.5
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_recording_notifier_records_fails_and_invokes_actions() -> None:
    pressed: list[tuple[str, int, str]] = []
    notifier = RecordingNotifier(on_action=lambda job, rid, action: pressed.append((job, rid, action)))
    delivery = asyncio.run(notifier.notify(NotifyRequest(record_id=7, job_id="j", event=event())))
    assert delivery.ok
    assert delivery.platform_id == "1"
    notifier.invoke("retry")
    assert pressed == [("j", 7, "retry")]
    failing = RecordingNotifier(fail=True)
    assert not asyncio.run(failing.notify(NotifyRequest(record_id=1, job_id="j", event=event()))).ok
    assert failing.requests == []
    with pytest.raises(RuntimeError, match="on_action"):
        RecordingNotifier().invoke("retry")


def test_recording_taskbar_and_scripted_probe() -> None:
    bar = RecordingTaskbar()
    bar.set(0.5, TaskbarState.NORMAL)
    bar.attention(True)
    bar.badge(3)
    bar.clear()
    assert bar.calls == [("set", 0.5, TaskbarState.NORMAL), ("attention", True), ("badge", 3), ("clear",)]
    probe = ScriptedDndProbe([DndState.ON, DndState.OFF])
    answers = [asyncio.run(probe.state()) for _ in range(3)]
    assert answers == [DndState.ON, DndState.OFF, DndState.OFF]
    probe.set(DndState.UNKNOWN)
    assert asyncio.run(probe.state()) is DndState.UNKNOWN
    assert asyncio.run(ScriptedDndProbe([]).state()) is DndState.UNKNOWN


def test_memory_history_store_records_merges_queries_and_marks_read() -> None:
    store = MemoryHistoryStore()
    first = store.record("j", "job", event(), ts=1.0, status=DeliveryStatus.PENDING, key="m25")
    second = store.record(
        "k", "other", event("Loss spike", NotificationType.WARNING), ts=2.0, status=DeliveryStatus.WITHHELD_DND, key="w"
    )
    store.set_status(first, DeliveryStatus.SHOWN, backend="dunst")
    assert store.entries[first].status is DeliveryStatus.SHOWN
    assert store.merge_repeat("k", "w", ts=3.0, repeat=4) == second
    assert store.merge_repeat("k", "missing", ts=3.0, repeat=2) is None
    assert [e.id for e in store.query(HistoryQuery())] == [second, first]
    assert [e.id for e in store.query(HistoryQuery(text="spike"))] == [second]
    assert [e.id for e in store.query(HistoryQuery(job_id="j"))] == [first]
    assert store.mark_read([first, 999]) == 1
    assert [e.id for e in store.query(HistoryQuery(unread_only=True))] == [second]
    assert store.mark_read() == 1
