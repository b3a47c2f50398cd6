"""EventLog: seq strictly increasing, bounded rings, errors evicted last, replay gaps reported."""

from __future__ import annotations

import json

from peft_notify import wire
from peft_notify.emitter.buffer import EventLog


def _error(i: int) -> wire.NotificationEvent:
    return wire.NotificationEvent(type=wire.NotificationType.ERROR, title=f"e{i}", message="", error_type="oom_error")


def test_seq_strictly_increases_and_frames_decode() -> None:
    log = EventLog("j", progress_capacity=4, important_capacity=4)
    seqs = [log.append(wire.Progress(i, 10))[0] for i in range(5)]
    seqs.append(log.append(wire.Status(wire.JobState.COMPLETED))[0])
    assert seqs == [1, 2, 3, 4, 5, 6]
    decoded = [wire.decode(frame) for _, frame in log.after(0).frames]
    assert [env.seq for env in decoded] == [2, 3, 4, 5, 6]  # progress 1 evicted (capacity 4)
    assert log.state is wire.JobState.COMPLETED


def test_progress_flood_never_evicts_errors() -> None:
    log = EventLog("j", progress_capacity=8, important_capacity=8)
    log.append(_error(0))
    for i in range(10_000):
        log.append(wire.Progress(i, None))
    replay = log.after(0)
    titles = [json.loads(frame)["data"].get("title") for _, frame in replay.frames]
    assert titles[0] == "e0"
    assert len(replay.frames) == 9
    assert replay.gap  # old progress is gone
    assert not log.after(log.last_seq - 8).gap


def test_resume_after_seq_is_exact() -> None:
    log = EventLog("j")
    for i in range(20):
        log.append(wire.Progress(i, 100))
    replay = log.after(12)
    assert [seq for seq, _ in replay.frames] == list(range(13, 21))
    assert not replay.gap
    assert log.frames_after(20) == []


def test_notifications_are_kept_for_the_http_api() -> None:
    log = EventLog("j")
    log.append(_error(1))
    assert [n.title for n in log.notifications] == ["e1"]
