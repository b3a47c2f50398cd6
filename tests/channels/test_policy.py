"""The per-channel policy: one line of input, one list of expected outcomes (no I/O, no sleeps)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from peft_notify.channels.events import ChannelEvent, Delivery, Outcome, Outgoing, SendResult
from peft_notify.channels.levels import Level, passes
from peft_notify.channels.policy import ChannelPolicy, ChannelState, PolicyConfig, backoff
from peft_notify.wire import NotificationType as K
from tests.channels.factories import FAIL, OK, event, limited


def sent_now(policy: ChannelPolicy, now: float, result: SendResult = OK) -> tuple[Outgoing, list[Delivery]]:
    out = policy.take(now)
    assert out is not None
    return out, policy.on_result(out.id, result, now)


def test_default_level_sends_completion_not_milestones() -> None:
    policy = ChannelPolicy()
    assert policy.offer(event(K.PROGRESS, "25"), 0.0) == []
    assert policy.take(0.0) is None
    policy.offer(event(K.COMPLETION, "done"), 0.0)
    out, deliveries = sent_now(policy, 0.0)
    assert [d.outcome for d in deliveries] == [Outcome.SENT]
    assert out.events[0].key == "done"


def test_errors_always_go_out() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.ERROR))
    policy.offer(event(K.WARNING, "w"), 0.0)
    policy.offer(event(K.ERROR, "oom"), 0.0)
    out, _ = sent_now(policy, 0.0)
    assert out.kind is K.ERROR
    assert policy.take(1.0) is None


def test_errors_first_then_in_order() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.PROGRESS))
    for kind, key in [(K.PROGRESS, "25"), (K.WARNING, "w"), (K.ERROR, "e"), (K.COMPLETION, "c")]:
        policy.offer(event(kind, key), 0.0)
    order = [sent_now(policy, 0.0)[0].kind for _ in range(4)]
    assert order == [K.ERROR, K.PROGRESS, K.WARNING, K.COMPLETION]


def test_rate_limit_merges_the_rest_into_one_digest() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.PROGRESS, rate=10, per_s=60))
    for i in range(9):
        policy.offer(event(K.WARNING, f"early{i}"), 0.0)
        sent_now(policy, 0.0)
    for i in range(36):
        policy.offer(event(K.WARNING, f"w{i}"), 1.0)
    policy.offer(event(K.ERROR, "oom"), 1.0)
    out, deliveries = sent_now(policy, 1.0)  # the 10th and last slot of the minute: one digest
    assert out.digest
    assert out.title == "job j1: 37 more events: 1 error, 36 warnings"
    assert out.body.splitlines()[0].startswith("[error]")
    assert Counter(d.outcome for d in deliveries) == {Outcome.MERGED: 37}
    assert policy.take(2.0) is None  # nothing left, and no budget until a minute after the first send


def test_limit_waits_for_the_window_then_sends() -> None:
    policy = ChannelPolicy(PolicyConfig(rate=2, per_s=60))
    for i in range(2):
        policy.offer(event(K.COMPLETION, f"c{i}"), 0.0)
        sent_now(policy, float(i))
    policy.offer(event(K.COMPLETION, "late"), 5.0)
    assert policy.take(5.0) is None
    assert policy.next_due() == 60.0
    out, _ = sent_now(policy, 60.0)
    assert out.events[0].key == "late"


def test_same_event_within_window_updates_instead_of_resending() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.WARNING, dedup_window_s=60))
    policy.offer(event(K.WARNING, "spike"), 0.0)
    sent_now(policy, 0.0)
    [repeat] = policy.offer(event(K.WARNING, "spike"), 30.0)
    assert repeat.outcome is Outcome.UPDATED
    assert policy.take(30.0) is None
    assert policy.offer(event(K.WARNING, "spike"), 200.0) == []  # quiet for a window: new again
    assert policy.take(200.0) is not None


def test_a_queued_event_is_replaced_by_its_newer_copy() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.WARNING, rate=1))
    policy.offer(event(K.WARNING, "other"), 0.0)
    sent_now(policy, 0.0)
    policy.offer(event(K.WARNING, "spike", message="loss 9"), 1.0)
    [old] = policy.offer(event(K.WARNING, "spike", message="loss 12"), 2.0)
    assert old.outcome is Outcome.UPDATED
    assert old.event.message == "loss 9"
    out, _ = sent_now(policy, 60.0)
    assert "loss 12" in out.body


def test_a_repeat_after_the_user_read_it_counts_as_new() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.WARNING))
    policy.offer(event(K.WARNING, "spike"), 0.0)
    sent_now(policy, 0.0)
    policy.mark_read("j1", K.WARNING, "spike")
    assert policy.offer(event(K.WARNING, "spike"), 10.0) == []
    assert policy.take(10.0) is not None


def test_retries_with_backoff_then_a_clear_failure_state() -> None:
    policy = ChannelPolicy(PolicyConfig(max_attempts=3, backoff_base_s=2, backoff_cap_s=60))
    policy.offer(event(K.ERROR, "oom"), 0.0)
    assert sent_now(policy, 0.0, FAIL)[1] == []
    assert policy.state is ChannelState.RETRYING
    assert policy.next_due() == 2.0
    assert policy.take(1.9) is None
    assert sent_now(policy, 2.0, FAIL)[1] == []
    assert policy.next_due() == 6.0
    out, [failed] = sent_now(policy, 6.0, FAIL)
    assert out.attempt == 3
    assert failed.outcome is Outcome.FAILED
    assert "HTTP 500" in failed.reason
    assert failed.attempts == 3
    assert policy.state is ChannelState.FAILING
    assert "HTTP 500" in policy.last_error
    policy.offer(event(K.COMPLETION, "done"), 7.0)
    sent_now(policy, 7.0)
    assert policy.state is ChannelState.OK


def test_retry_after_is_honoured() -> None:
    policy = ChannelPolicy()
    policy.offer(event(K.COMPLETION, "c"), 0.0)
    sent_now(policy, 0.0, limited(30))
    assert policy.next_due() == 30.0
    assert policy.take(29.0) is None
    out, [ok] = sent_now(policy, 30.0)
    assert out.attempt == 2
    assert ok.outcome is Outcome.SENT


def test_an_absurd_retry_after_fails_at_once() -> None:
    policy = ChannelPolicy(PolicyConfig(max_retry_after_s=900))
    policy.offer(event(K.COMPLETION, "c"), 0.0)
    _, [failed] = sent_now(policy, 0.0, limited(86_400))
    assert failed.outcome is Outcome.FAILED
    assert "Retry-After 86400s" in failed.reason


def test_a_client_error_is_not_retried() -> None:
    policy = ChannelPolicy()
    policy.offer(event(K.COMPLETION, "c"), 0.0)
    _, [failed] = sent_now(policy, 0.0, SendResult(False, "failure", http_status=404, permanent=True))
    assert failed.outcome is Outcome.FAILED


def test_backlog_is_bounded_and_loses_the_least_severe_first() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.PROGRESS, max_backlog=3, rate=1))
    policy.offer(event(K.ERROR, "e"), 0.0)
    sent_now(policy, 0.0, FAIL)  # channel busy retrying; the rest queue up
    assert policy.offer(event(K.PROGRESS, "p"), 0.0) == []
    policy.offer(event(K.ERROR, "e2"), 0.0)
    policy.offer(event(K.WARNING, "w"), 0.0)
    [dropped] = policy.offer(event(K.ERROR, "e3"), 0.0)
    assert dropped.event.key == "p"
    assert dropped.outcome is Outcome.FAILED


def test_attachment_only_on_completion_and_error() -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.PROGRESS))
    policy.offer(event(K.WARNING, "w", chart=b"png"), 0.0)
    policy.offer(event(K.COMPLETION, "c", chart=b"png"), 0.0)
    first, _ = sent_now(policy, 0.0)
    second, _ = sent_now(policy, 0.0)
    assert (first.kind, first.attachment) == (K.WARNING, None)
    assert (second.kind, second.attachment) == (K.COMPLETION, b"png")


def test_backoff_doubles_to_the_cap() -> None:
    delays = backoff(1.0, 10.0)
    assert [next(delays) for _ in range(6)] == [1, 2, 4, 8, 10, 10]


# ---------------------------------------------------------------------- properties

kinds = st.sampled_from(list(K))
offers = st.lists(
    st.tuples(
        st.floats(0, 30),  # time step before this offer
        kinds,
        st.sampled_from(["a", "b", "c", "d", "e", "f"]),  # key
        st.sampled_from(["j1", "j2"]),
        st.booleans(),  # does the next send attempt fail?
    ),
    max_size=60,
)


def run(
    policy: ChannelPolicy, script: list[tuple[float, K, str, str, bool]]
) -> tuple[list[tuple[float, Outgoing]], list[Delivery], list[ChannelEvent]]:
    """Feed the script; after each offer send everything due. Then drain with success."""
    now = 0.0
    taken: list[tuple[float, Outgoing]] = []
    settled: list[Delivery] = []
    offered: list[ChannelEvent] = []
    failures = iter([f for *_, f in script])

    def pump(fail: bool) -> None:
        while (out := policy.take(now)) is not None:
            taken.append((now, out))
            settled.extend(policy.on_result(out.id, FAIL if fail else OK, now))

    for dt, kind, key, job, fail in script:
        now += dt
        ev = event(kind, key, job)
        offered.append(ev)
        settled.extend(policy.offer(ev, now))
        pump(next(failures, False) and fail)
    for _ in range(10_000):
        due = policy.next_due()
        if due is None:
            break
        now = max(now, due)
        pump(False)
    return taken, settled, offered


@settings(max_examples=150, deadline=None)
@given(script=offers, level=st.sampled_from(list(Level)), rate=st.integers(1, 5))
def test_every_event_at_the_level_is_settled_exactly_once(
    script: list[tuple[float, K, str, str, bool]], level: Level, rate: int
) -> None:
    policy = ChannelPolicy(PolicyConfig(level=level, rate=rate, per_s=60, max_attempts=3))
    _, settled, offered = run(policy, script)
    assert policy.pending == 0
    wanted = [e for e in offered if passes(e.kind, level)]
    assert len(settled) == len(wanted)  # nothing lost, nothing twice
    assert {id(d.event) for d in settled} == {id(e) for e in wanted}
    assert all(passes(d.event.kind, level) for d in settled)


@settings(max_examples=150, deadline=None)
@given(script=offers, rate=st.integers(1, 5), per_s=st.floats(1, 120))
def test_never_more_than_rate_sends_per_window(
    script: list[tuple[float, K, str, str, bool]], rate: int, per_s: float
) -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.PROGRESS, rate=rate, per_s=per_s))
    taken, _, _ = run(policy, script)
    times = [t for t, _ in taken]
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + per_s) <= rate


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(st.tuples(kinds, st.sampled_from("abcdefgh")), max_size=30), rate=st.integers(1, 12))
def test_a_burst_goes_out_errors_first_and_a_digest_only_in_the_last_slot(
    batch: list[tuple[K, str]], rate: int
) -> None:
    policy = ChannelPolicy(PolicyConfig(level=Level.PROGRESS, rate=rate))
    for kind, key in batch:
        policy.offer(event(kind, key), 0.0)
    outs = []
    while (out := policy.take(0.0)) is not None:
        outs.append(out)
        policy.on_result(out.id, OK, 0.0)
    errs = [o.kind is K.ERROR for o in outs if not o.digest]
    assert errs == sorted(errs, reverse=True)  # no single error after a non-error
    if outs and outs[-1].digest:
        kinds_in = [e.kind is K.ERROR for e in outs[-1].events]
        assert kinds_in == sorted(kinds_in, reverse=True)
    assert all(not o.digest for o in outs[:-1])
    assert len(outs) <= rate
    distinct = len({(k, key) for k, key in batch})
    assert sum(len(o.events) for o in outs) == distinct
