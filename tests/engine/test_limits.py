"""Rule 6: dedup with repeat counts, per-job token bucket; errors merged, never dropped."""

from __future__ import annotations

from peft_notify.engine import Engine, EngineConfig, MergeRepeat, Notify, Record
from peft_notify.engine.limits import DedupWindow, TokenBucket
from peft_notify.ports import DeliveryStatus
from peft_notify.wire import NotificationType

from .factories import T0, decided, hello, note, notifies, only, records


def test_rule6_repeated_warning_merges_with_repeat_count() -> None:
    engine = Engine()
    engine.feed(hello(), now=T0)
    warn = note(NotificationType.WARNING, "Training Warning", "loss plateau")
    actions = [a for i in range(3) for a in engine.feed(warn, now=T0 + i)]
    (first,) = notifies(actions)
    merges = only(actions, MergeRepeat)
    assert [m.repeat for m in merges] == [2, 3]
    assert {m.key for m in merges} == {first.key}
    assert first.key.startswith("warning:")


def test_rule6_loss_spike_every_step_is_one_popup() -> None:
    engine = Engine()
    engine.feed(hello(), now=T0)
    actions = []
    for step in range(500):
        spike = note(NotificationType.WARNING, "Loss spike", f"loss spiked to {1 + step / 7:.3f} at step {step}")
        actions += engine.feed(spike, now=T0 + step)
    assert len(notifies(actions)) == 1
    assert only(actions, MergeRepeat)[-1].repeat == 500
    assert len(decided(actions)) == 500


def test_rule6_repeat_after_a_quiet_window_pops_up_again() -> None:
    engine = Engine(EngineConfig(dedup_window_s=60))
    engine.feed(hello(), now=T0)
    warn = note(NotificationType.WARNING, "W", "disk almost full")
    assert len(notifies(engine.feed(warn, now=T0))) == 1
    assert len(notifies(engine.feed(warn, now=T0 + 61))) == 1


def test_rule6_popups_rate_limited_per_job() -> None:
    engine = Engine(EngineConfig(rate_capacity=2, rate_refill_s=10))
    engine.feed(hello(job_id="a", run_id="ra"), now=T0)
    engine.feed(hello(job_id="b", run_id="rb"), now=T0)
    actions = [
        a for i in range(4) for a in engine.feed(note(NotificationType.WARNING, "W", f"w{'x' * i}", job_id="a"), now=T0)
    ]
    assert len(notifies(actions)) == 2
    assert [r.reason for r in records(actions)] == [DeliveryStatus.RATE_LIMITED] * 2
    assert len(notifies(engine.feed(note(NotificationType.WARNING, "W", "other job", job_id="b"), now=T0))) == 1
    assert len(notifies(engine.feed(note(NotificationType.WARNING, "W", "refilled", job_id="a"), now=T0 + 10))) == 1


def test_rule6_errors_are_never_rate_limited_only_merged() -> None:
    # The token bucket never holds an error back; the error-flood allowance (issue 10 item 7,
    # tests/engine/test_floods.py) is set above the 5 distinct errors here to keep this rule apart.
    engine = Engine(EngineConfig(rate_capacity=1, error_popups_per_minute=5))
    engine.feed(hello(), now=T0)
    actions = []
    for i in range(20):
        actions += engine.feed(note(NotificationType.ERROR, "E", "boom", error_type=f"type_{'x' * (i % 5)}"), now=T0)
    assert len(notifies(actions)) == 5
    assert len(only(actions, MergeRepeat)) == 15
    assert only(actions, Record) == []


def test_rule6_generic_server_progress_notes_are_deduped_by_text() -> None:
    engine = Engine()
    engine.feed(hello(), now=T0)
    a = engine.feed(note(NotificationType.PROGRESS, "Epoch 1 done", "eval loss 0.5"), now=T0)
    b = engine.feed(note(NotificationType.PROGRESS, "Epoch 2 done", "eval loss 0.4"), now=T0 + 1)
    assert len(notifies(a)) == 1
    assert only(b, MergeRepeat)[0].repeat == 2


def test_rule6_filtered_kinds_are_recorded_not_shown() -> None:
    engine = Engine(EngineConfig(popup_kinds=frozenset({NotificationType.COMPLETION})))
    engine.feed(hello(), now=T0)
    warn = engine.feed(note(NotificationType.WARNING, "W", "x"), now=T0)
    err = engine.feed(note(NotificationType.ERROR, "E", "x"), now=T0)
    assert records(warn)[0].reason is DeliveryStatus.FILTERED
    assert len(only(err, Notify)) == 1


def test_dedup_window_counts_and_slides() -> None:
    window = DedupWindow(10)
    assert window.check("j", "k", T0) is None
    assert window.check("j", "k", T0 + 9) == 2
    assert window.check("j", "k", T0 + 18) == 3  # slid from the last occurrence
    assert window.check("j", "other", T0 + 18) is None
    assert window.check("j2", "k", T0 + 18) is None
    assert window.check("j", "k", T0 + 29) is None


def test_dedup_window_forget_and_prune() -> None:
    window = DedupWindow(10)
    window.check("a", "k", T0)
    window.check("b", "k", T0 + 5)
    window.forget("a")
    assert window.check("a", "k", T0 + 1) is None
    window.prune(T0 + 12)
    assert window.check("b", "k", T0 + 13) == 2
    window.prune(T0 + 30)
    assert window.check("b", "k", T0 + 31) is None


def test_dedup_window_zero_or_invalid_never_merges() -> None:
    for bad in (0.0, -1.0, float("nan")):
        window = DedupWindow(bad)
        window.check("j", "k", T0)
        assert window.check("j", "k", T0) is None


def test_token_bucket_refills_one_per_interval() -> None:
    bucket = TokenBucket(2, 10.0, T0)
    assert bucket.take(T0)
    assert bucket.take(T0)
    assert not bucket.take(T0 + 5)
    assert bucket.take(T0 + 10)
    assert not bucket.take(T0 - 100)  # time going back adds nothing
    assert bucket.tokens < 1


def test_token_bucket_disabled_or_instant_refill() -> None:
    unlimited = TokenBucket(0, 10.0, T0)
    assert all(unlimited.take(T0) for _ in range(100))
    instant = TokenBucket(1, 0.0, T0)
    assert instant.take(T0)
    assert not instant.take(T0)
    assert instant.take(T0 + 0.001)
