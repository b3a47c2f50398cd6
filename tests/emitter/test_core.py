"""The training side's socket-free parts: handle → mailbox → JobCore, no server, no event loop.

A JobHandle needs only a Waker (here one that records its calls); JobCore turns what the
mailbox held into numbered log entries given a time. Also the builders (validation,
redaction) and the log throttle.
"""

from __future__ import annotations

import json
import logging

import pytest

from peft_notify import wire
from peft_notify.emitter import reports
from peft_notify.emitter.buffer import EventLog
from peft_notify.emitter.core import JobCore
from peft_notify.emitter.handle import JobHandle
from peft_notify.emitter.mailbox import ActionRegistry, Mailbox, RunState
from peft_notify.emitter.merge import ErrorMerger
from peft_notify.emitter.throttle import LogThrottle


class RecordingWaker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def wake_progress(self, job_id: str) -> None:
        self.calls.append(("progress", job_id))

    def wake_now(self, job_id: str) -> None:
        self.calls.append(("now", job_id))


def _handle(waker: RecordingWaker, mailbox: Mailbox, total: int | None = 10) -> JobHandle:
    return JobHandle(
        "j",
        name="llama",
        url="ws://127.0.0.1:1/ws/notifications/j?token=t",
        capabilities=(),
        run=RunState("run-1", 0.0, total),
        mailbox=mailbox,
        actions=ActionRegistry("j"),
        waker=waker,
    )


def _core(window: float = 1.0) -> JobCore:
    return JobCore(EventLog("j"), ErrorMerger(window), progress_interval=0.05)


def test_a_handle_needs_only_a_waker_and_a_mailbox() -> None:
    waker, mailbox = RecordingWaker(), Mailbox()
    handle = _handle(waker, mailbox)
    handle.progress(3, loss=0.5)
    handle.progress(4, loss=0.4)  # coalesced: only the latest is taken
    handle.warning("slow disk")
    assert waker.calls == [("progress", "j"), ("progress", "j"), ("now", "j")]
    core = _core()
    core.feed(mailbox.take(include_latest=True), now=10.0)
    kinds = [json.loads(frame)["type"] for _, frame in core.log.frames_after(0)]
    assert kinds == ["progress", "notification"]  # the progress reported before the warning goes first
    assert core.log.snapshot == wire.Progress(current_step=4, total_steps=10, loss=0.4)
    assert core.progress_wait(10.0) == pytest.approx(0.05)


def test_invalid_progress_is_dropped_when_taken(caplog: pytest.LogCaptureFixture) -> None:
    mailbox = Mailbox()
    handle = _handle(RecordingWaker(), mailbox)
    handle.progress(-1)
    core = _core()
    core.feed(mailbox.take(include_latest=True), now=0.0)
    assert core.log.last_seq == 0
    assert "dropping an invalid report" in caplog.text


def test_an_evaluation_is_its_own_frame_and_checked_at_the_call(caplog: pytest.LogCaptureFixture) -> None:
    waker, mailbox = RecordingWaker(), Mailbox()
    handle = _handle(waker, mailbox)
    handle.progress(5)
    handle.progress(6, metrics={"eval_loss": 0.7, "bad": float("nan")})
    handle.progress(7, epoch=-1.0, metrics={"eval_loss": 0.6})  # invalid: logged at the call, nothing queued
    assert "dropping an invalid report" in caplog.text
    items = mailbox.take(include_latest=True)
    assert items == [wire.Progress(current_step=6, total_steps=10, metrics={"eval_loss": 0.7})]


def test_ranked_errors_merge_and_a_status_waits_behind_them() -> None:
    mailbox = Mailbox()
    handle = _handle(RecordingWaker(), mailbox)
    handle.rank = 0
    handle.error("CUDA out of memory (GPU 0)", "oom_error")
    handle.status("failed", "oom")
    core = _core(window=1.0)
    core.feed(mailbox.take(include_latest=True), now=0.0)
    core.add_ranked(reports.Ranked(3, reports.error("llama", "CUDA out of memory (GPU 3)", "oom_error")), now=0.5)
    assert core.log.last_seq == 0 and core.merge_due() == 1.0
    core.flush_merged(now=1.0)
    [note] = core.log.notifications
    assert note.title == "llama: oom error (ranks 0, 3)"
    assert core.log.state is wire.JobState.FAILED  # logged after the merged error


def test_notification_pages_are_joined_from_encoded_entries() -> None:
    core = _core()
    for i in range(5):
        core.append(reports.warning("llama", f"w{i}"), now=0.0)
    page = json.loads(core.notifications_page(since=None, limit=2))
    assert [(n["seq"], n["message"]) for n in page] == [(4, "w3"), (5, "w4")]
    page = json.loads(core.notifications_page(since=1, limit=2))
    assert [n["message"] for n in page] == ["w1", "w2"]


@pytest.mark.parametrize(
    "secret",
    ["hf_AbCdEfGhIjKlMnOpQrStUv", "https://user:hunter2@example.com/repo.git", "--token s3cr3tvalue"],
)
def test_builders_redact_secrets_before_anything_leaves(secret: str) -> None:
    event = reports.error("llama", f"failed: {secret}", "system_crash", title=f"{secret} crashed")
    status = reports.status("failed", f"because {secret}")
    text = f"{event.title} {event.message} {status.reason}"
    for part in ("AbCdEf", "hunter2", "s3cr3tvalue"):
        assert part not in text
    assert "[redacted]" in event.message


def test_builders_refuse_bad_fields() -> None:
    with pytest.raises(ValueError, match="milestone"):
        reports.notification("t", milestone=500)
    with pytest.raises(ValueError, match="message"):
        reports.notification("t", "m" * (wire.MAX_MESSAGE + 1))
    with pytest.raises(ValueError):
        reports.notification("t", kind="shouting")
    assert reports.notification("t", kind="error", error_type="data_error").urgency is wire.UrgencyLevel.HIGH
    assert reports.progress(12, 10).current_step == 10  # an extra logging step is clamped


def test_log_throttle_logs_the_first_then_counts_per_window() -> None:
    throttle = LogThrottle(window=60.0)
    assert throttle.note(0.0) is True
    assert [throttle.note(t) for t in (1.0, 2.0, 3.0)] == [False, False, False]
    assert throttle.take_summary(30.0) == 0  # the window has not ended
    assert throttle.take_summary(61.0) == 3
    assert throttle.note(61.0) is True
    assert throttle.take_summary(62.0, force=True) == 0


def test_action_callbacks_run_and_their_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    registry = ActionRegistry("j")
    got: list[str] = []
    registry.add(lambda a: (_ for _ in ()).throw(RuntimeError("callback bug")))
    registry.add(lambda a: got.append(a.action))
    registry.dispatch(wire.ActionRequest("cancel"))
    assert got == ["cancel"]
    assert "callback bug" in caplog.text


def test_the_latest_progress_is_never_lost_to_a_concurrent_take() -> None:
    """set_latest takes no lock (one dict store per step): a take racing it on another thread
    either gets a value or leaves it for the next take, never drops it; order is kept."""
    import sys
    import threading

    mailbox = Mailbox()
    last = 200_000
    seen: list[int] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL back and forth as often as possible
    try:

        def train() -> None:
            for step in range(1, last + 1):
                mailbox.set_latest((step, None, None, None, None, None))

        writer = threading.Thread(target=train)
        writer.start()
        while writer.is_alive():
            seen += [item[0] for item in mailbox.take(include_latest=True) if isinstance(item, tuple)]
        writer.join()
    finally:
        sys.setswitchinterval(switch)
    seen += [item[0] for item in mailbox.take(include_latest=True) if isinstance(item, tuple)]
    assert seen and seen[-1] == last
    assert seen == sorted(set(seen))


def test_a_logged_loss_survives_the_next_plain_step_and_goes_out_once_in_order() -> None:
    """set_latest keeps the newest progress with a loss in its own slot: a take sends it, then the
    latest step; never twice, never after a later step, and before an evaluation queued after it."""
    mailbox = Mailbox()

    def steps(items: list[object]) -> list[tuple[int, float | None]]:
        out = []
        for item in items:
            if isinstance(item, tuple):
                out.append((item[0], item[3]))
            elif isinstance(item, wire.Progress):
                out.append((item.current_step, item.loss))
        return out

    plain = lambda step: (step, 100, None, None, None, None)  # noqa: E731
    logged = lambda step: (step, 100, None, 1.0 / step, None, None)  # noqa: E731
    for report in (plain(1), logged(2), plain(3)):
        mailbox.set_latest(report)
    assert steps(mailbox.take(include_latest=True)) == [(2, 0.5), (3, None)]
    mailbox.set_latest(logged(4))
    assert steps(mailbox.take(include_latest=True)) == [(4, 0.25)]  # the latest itself: once
    assert mailbox.take(include_latest=True) == []
    mailbox.set_latest(logged(5))
    mailbox.set_latest(plain(6))
    mailbox.put_superseding(reports.progress(6, 100, metrics={"eval_loss": 0.1}))
    assert steps(mailbox.take(include_latest=True)) == [(5, 0.2), (6, None)]
    mailbox.set_latest(logged(7))
    mailbox.drop_latest()  # a new run: nothing of the old one goes out
    assert mailbox.take(include_latest=True) == []
