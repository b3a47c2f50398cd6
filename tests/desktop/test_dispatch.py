"""Dispatcher: history first, notifier chain, timeouts, taskbar, sounds, actions routed back."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from peft_notify.desktop.dispatch import Dispatcher, SendToJob, ShowDetails
from peft_notify.desktop.history import HistoryError, SqliteHistoryStore
from peft_notify.engine.actions import (
    Action,
    Attention,
    ClearTaskbar,
    MergeRepeat,
    Notify,
    PlaySound,
    Record,
    SetBadge,
    SetTaskbar,
)
from peft_notify.ports import Delivery, DeliveryStatus, HistoryEntry, HistoryQuery, NotifyRequest, TaskbarState
from peft_notify.testing import FakeClock, MemoryHistoryStore, RecordingNotifier, RecordingTaskbar
from peft_notify.wire import ActionRequest, NotificationEvent, NotificationType

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def milestone(title: str = "llama: 50% reached") -> NotificationEvent:
    return NotificationEvent(type=NotificationType.PROGRESS, title=title, message="step 500/1000", milestone=50)


def error() -> NotificationEvent:
    return NotificationEvent(
        type=NotificationType.ERROR,
        title="CUDA out of memory",
        message="boom",
        urgency="critical",
        actions=["View Details", "Retry"],
        sound=True,
        respect_dnd=False,
        error_type="oom_error",
    )


class PeekingNotifier:
    """Fails, raises or hangs, and on the way checks the history already holds the entry."""

    def __init__(self, history: MemoryHistoryStore | SqliteHistoryStore, mode: str) -> None:
        self.name = f"peek-{mode}"
        self.history = history
        self.mode = mode
        self.seen: list[HistoryEntry] = []

    def capabilities(self) -> frozenset[str]:
        return frozenset()

    async def notify(self, request: NotifyRequest) -> Delivery:
        self.seen = self.history.query(HistoryQuery())
        if self.mode == "raise":
            raise RuntimeError("D-Bus exploded")
        if self.mode == "hang":
            await asyncio.Event().wait()
        return Delivery.failed(self.name, "no server")

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["fail", "raise", "hang"])
def test_history_has_the_entry_before_and_after_a_broken_notifier(tmp_path: Path, mode: str) -> None:
    history = SqliteHistoryStore(tmp_path / "h.sqlite3")
    peek = PeekingNotifier(history, mode)
    dispatcher = Dispatcher(history, [peek], RecordingTaskbar(), timeout=0.05)
    [result] = run(dispatcher.perform([Notify("job", milestone(), key="m50", seq=4)]))
    assert [(e.title, e.status) for e in peek.seen] == [("llama: 50% reached", DeliveryStatus.PENDING)]
    [entry] = history.query(HistoryQuery())
    assert entry.status is DeliveryStatus.FAILED is result.status
    assert entry.seq == 4
    assert peek.name in entry.detail
    history.close()


def test_first_ok_notifier_wins_and_later_ones_are_fallbacks() -> None:
    history = MemoryHistoryStore()
    primary, fallback = RecordingNotifier("primary"), RecordingNotifier("tray")
    dispatcher = Dispatcher(history, [primary, fallback], RecordingTaskbar(), job_name=lambda j: "Llama")
    run(dispatcher.perform([Notify("job", milestone(), key="m50")]))
    assert len(primary.requests) == 1
    assert fallback.requests == []
    entry = history.entries[1]
    assert (entry.status, entry.backend, entry.job_name) == (DeliveryStatus.SHOWN, "primary", "Llama")
    assert primary.requests[0].record_id == 1

    primary.fail = True
    [result] = run(dispatcher.perform([Notify("job", error(), key="oom")]))
    assert result.status is DeliveryStatus.FALLBACK
    assert history.entries[2].backend == "tray"
    assert "primary: configured to fail" in history.entries[2].detail


def test_all_notifiers_failing_marks_failed_but_keeps_entry() -> None:
    history = MemoryHistoryStore()
    dispatcher = Dispatcher(
        history, [RecordingNotifier("a", fail=True), RecordingNotifier("b", fail=True)], RecordingTaskbar()
    )
    [result] = run(dispatcher.perform([Notify("job", error(), key="oom")]))
    assert result.status is DeliveryStatus.FAILED
    assert history.entries[1].status is DeliveryStatus.FAILED


def test_a_hanging_notifier_falls_through_to_the_next() -> None:
    history = MemoryHistoryStore()
    hang = PeekingNotifier(history, "hang")
    backup = RecordingNotifier("backup")
    dispatcher = Dispatcher(history, [hang, backup], RecordingTaskbar(), timeout=0.05)
    [result] = run(dispatcher.perform([Notify("job", milestone(), key="m")]))
    assert result.status is DeliveryStatus.FALLBACK
    assert "timed out" in history.entries[1].detail
    assert len(backup.requests) == 1


def test_history_failure_still_shows_the_notification() -> None:
    class BrokenHistory(MemoryHistoryStore):
        def record(self, *args: Any, **kwargs: Any) -> int:
            raise HistoryError("disk full")

    notifier = RecordingNotifier()
    [result] = run(
        Dispatcher(BrokenHistory(), [notifier], RecordingTaskbar()).perform([Notify("job", milestone(), key="m")])
    )
    assert len(notifier.requests) == 1
    assert result.entry_id == 0
    assert result.status is DeliveryStatus.SHOWN


def test_record_and_merge_repeat_go_to_history_only() -> None:
    history = MemoryHistoryStore()
    notifier = RecordingNotifier()
    dispatcher = Dispatcher(history, [notifier], RecordingTaskbar(), clock=FakeClock(100.0).now)
    ev = NotificationEvent(type=NotificationType.WARNING, title="loss spike", message="x")
    run(
        dispatcher.perform(
            [
                Record("job", ev, key="spike", reason=DeliveryStatus.WITHHELD_DND),
                MergeRepeat("job", key="spike", repeat=3, event=ev),
                MergeRepeat("job", key="never-seen", repeat=2, event=ev),  # nothing to merge into: kept anyway
            ]
        )
    )
    assert notifier.requests == []
    assert history.entries[1].status is DeliveryStatus.WITHHELD_DND
    assert history.entries[1].repeat == 3
    assert history.entries[2].status is DeliveryStatus.DUPLICATE
    assert history.entries[1].ts == 100.0


def test_taskbar_actions_reach_the_taskbar_port() -> None:
    taskbar = RecordingTaskbar()
    run(
        Dispatcher(MemoryHistoryStore(), [], taskbar).perform(
            [
                SetTaskbar(0.5, TaskbarState.NORMAL, jobs=2),
                Attention(critical=True),
                SetBadge(3),
                ClearTaskbar(),
            ]
        )
    )
    assert taskbar.calls == [("set", 0.5, TaskbarState.NORMAL), ("attention", True), ("badge", 3), ("clear",)]


def test_sound_is_attached_to_the_notify_of_the_same_job_unless_muted() -> None:
    notifier = RecordingNotifier()
    played: list[str] = []
    muted = [False]
    dispatcher = Dispatcher(MemoryHistoryStore(), [notifier], RecordingTaskbar(), played.append, lambda: muted[0])
    batch: list[Action] = [Notify("a", error(), key="e"), PlaySound("dialog-error", "a"), PlaySound("complete", "b")]
    run(dispatcher.perform(batch))
    assert notifier.requests[0].sound == "dialog-error"
    assert played == ["complete"]  # job b had no notification in this batch: played directly
    muted[0] = True
    run(dispatcher.perform(batch))
    assert notifier.requests[1].sound is None
    assert played == ["complete"]


def test_attachment_is_passed_and_its_failure_ignored(tmp_path: Path) -> None:
    notifier = RecordingNotifier()
    png = tmp_path / "loss.png"
    dispatcher = Dispatcher(MemoryHistoryStore(), [notifier], RecordingTaskbar(), attachment_for=lambda j, e: png)
    run(dispatcher.perform([Notify("a", milestone(), key="m")]))
    assert notifier.requests[0].attachment == png

    def broken(job_id: str, event: NotificationEvent) -> Path | None:
        raise ValueError("no curve")

    dispatcher.attachment_for = broken
    run(dispatcher.perform([Notify("a", milestone(), key="m")]))
    assert notifier.requests[1].attachment is None


def test_retry_button_reaches_the_job_with_the_entry_seq() -> None:
    sent: list[tuple[str, ActionRequest]] = []
    viewed: list[tuple[str, int]] = []
    history = MemoryHistoryStore()
    dispatcher = Dispatcher(history, [], RecordingTaskbar())

    def on_action(job_id: str, record_id: int, action: str) -> None:
        route = dispatcher.route_action(job_id, record_id, action)
        if isinstance(route, SendToJob):
            sent.append((route.job_id, route.action))
        elif isinstance(route, ShowDetails):
            viewed.append((route.job_id, route.record_id))

    async def scenario() -> None:
        notifier = RecordingNotifier(on_action=on_action)
        dispatcher.notifiers = [notifier]
        await dispatcher.perform([Notify("job", error(), key="oom", seq=12)])
        notifier.invoke("retry")
        on_action("job", 1, "Retry")
        notifier.invoke("view-details")
        notifier.invoke("default")
        # Issue 11 item 1: a dismissed failure is told to the job (a ``run`` waiting for Retry stops waiting).
        assert dispatcher.route_action("job", 1, "dismissed") == SendToJob("job", ActionRequest("dismiss", ref_seq=12))

    run(scenario())
    assert sent == [("job", ActionRequest("retry", ref_seq=12))] * 2
    assert viewed == [("job", 1), ("job", 1)]
    assert history.entries[1].read


def test_only_a_dismissed_error_is_sent_to_the_job() -> None:
    dispatcher = Dispatcher(MemoryHistoryStore(), [RecordingNotifier()], RecordingTaskbar())
    run(dispatcher.perform([Notify("job", milestone(), key="m", seq=3), Notify("job", error(), key="oom", seq=4)]))
    assert dispatcher.route_action("job", 1, "dismissed") is None  # a milestone popup closed: nothing to say
    assert dispatcher.route_action("job", 2, "dismissed") == SendToJob("job", ActionRequest("dismiss", ref_seq=4))


def test_unknown_actions_go_nowhere_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="peft_notify.desktop.dispatch")
    dispatcher = Dispatcher(MemoryHistoryStore(), [], RecordingTaskbar())
    assert dispatcher.route_action("job", 0, "retry") == SendToJob("job", ActionRequest("retry"))
    assert dispatcher.route_action("job", 0, "explode") is None
    assert "ignoring unknown notification action 'explode'" in caplog.text


def test_every_popup_names_its_job_and_history_keeps_the_title() -> None:
    """Issue 11 item 10: "Eval done" did not say which of several jobs it was about."""
    notifier = RecordingNotifier()
    history = MemoryHistoryStore()
    names = {"j1": "llama-lora", "j2": "mistral"}
    dispatcher = Dispatcher(history, [notifier], RecordingTaskbar(), job_name=lambda key: names.get(key, ""))
    done = NotificationEvent(type=NotificationType.PROGRESS, title="Eval done", message="eval_loss 1.2")
    own = NotificationEvent(type=NotificationType.COMPLETION, title="Mistral: training complete", message="")
    nameless = NotificationEvent(type=NotificationType.WARNING, title="Loss spike", message="")
    summary = NotificationEvent(type=NotificationType.PROGRESS, title="While you were away", message="2 jobs...")
    dispatcher.job_name = lambda key: names.get(key, "peft-notify" if not key else "")
    run(
        dispatcher.perform(
            [
                Notify("j1", done, key="a"),
                Notify("j2", own, key="b"),
                Notify("j3", nameless, key="c"),
                Notify("", summary, key="dnd-summary"),
            ]
        )
    )
    assert [r.event.title for r in notifier.requests] == [
        "llama-lora: Eval done",
        "Mistral: training complete",  # already names it (any case): kept
        "Loss spike",  # no name known: nothing to add
        "While you were away",  # about every job (job id ""): its message names them
    ]
    assert [e.title for e in history.entries.values()][:3] == ["Eval done", "Mistral: training complete", "Loss spike"]
