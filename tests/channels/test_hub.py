"""ChannelHub with real apprise sends to a real loopback receiver: threads, timing, isolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from peft_notify.channels.events import Delivery, Outcome
from peft_notify.channels.hub import Channel, ChannelHub, ChannelSpec
from peft_notify.channels.levels import Level
from peft_notify.wire import NotificationType as K
from tests.channels.conftest import Receiver
from tests.channels.factories import event


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, Delivery]] = []
        self.cond = threading.Condition()

    def __call__(self, channel: Channel, delivery: Delivery) -> None:
        with self.cond:
            self.items.append((channel.display, delivery))
            self.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[str, Delivery]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.items) >= count, timeout)
            return list(self.items)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def hubs() -> Iterator[list[ChannelHub]]:
    made: list[ChannelHub] = []
    yield made
    for hub in made:
        hub.close()


def test_offer_sends_and_reports_the_delivery(receiver: Receiver, recorder: Recorder, hubs: list[ChannelHub]) -> None:
    hub = ChannelHub([ChannelSpec(receiver.url("json"))], recorder)
    hubs.append(hub)
    hub.offer(event(K.COMPLETION, "done", title="j1: training complete"))
    [(_, delivery)] = recorder.wait_for(1)
    assert delivery.outcome is Outcome.SENT
    assert receiver.hits[0].json()["title"] == "j1: training complete"
    assert hub.flush(5)


def test_level_and_job_filter(receiver: Receiver, recorder: Recorder, hubs: list[ChannelHub]) -> None:
    hub = ChannelHub(
        [
            ChannelSpec(receiver.url("json", "errors"), level=Level.ERROR),
            ChannelSpec(receiver.url("json", "only-j2"), level=Level.PROGRESS, jobs=("j2",)),
            ChannelSpec(receiver.url("json", "off"), enabled=False),
        ],
        recorder,
    )
    hubs.append(hub)
    hub.offer(event(K.PROGRESS, "25", job="j1"))
    hub.offer(event(K.WARNING, "w", job="j1"))
    hub.offer(event(K.ERROR, "oom", job="j1"))
    hub.offer(event(K.PROGRESS, "50", job="j2"))
    assert hub.flush(10)
    paths = sorted(h.path for h in receiver.hits)
    assert paths == ["/errors", "/only-j2"]


def test_retry_after_is_honoured_by_the_worker(receiver: Receiver, recorder: Recorder, hubs: list[ChannelHub]) -> None:
    receiver.retry_after = "1"
    hub = ChannelHub([ChannelSpec(receiver.url("json", "limit"))], recorder)
    hubs.append(hub)
    hub.offer(event(K.ERROR, "oom"))
    [(_, delivery)] = recorder.wait_for(1)
    first, second = receiver.wait_for(2)
    assert second.at - first.at >= 0.95
    assert delivery.outcome is Outcome.SENT
    assert delivery.attempts == 2


def test_failure_state_after_retries(receiver: Receiver, recorder: Recorder, hubs: list[ChannelHub]) -> None:
    spec = ChannelSpec(receiver.url("json", "fail"), max_attempts=3, backoff_base_s=0.1)
    hub = ChannelHub([spec], recorder)
    hubs.append(hub)
    hub.offer(event(K.ERROR, "oom"))
    [(display, delivery)] = recorder.wait_for(1)
    assert len(receiver.hits) == 3
    assert delivery.outcome is Outcome.FAILED
    assert "HTTP 500" in delivery.reason
    [(_, state, error)] = hub.states()
    assert state == "failing"
    assert "HTTP 500" in error
    assert display.startswith("json://127.0.0.1")


def test_a_hanging_channel_never_delays_another(receiver: Receiver, recorder: Recorder, hubs: list[ChannelHub]) -> None:
    hub = ChannelHub(
        [ChannelSpec(receiver.url("json", "hang"), timeout_s=3.0), ChannelSpec(receiver.url("json", "ok"))], recorder
    )
    hubs.append(hub)
    started = time.monotonic()
    for i in range(3):
        hub.offer(event(K.ERROR, f"e{i}"))
    ok = receiver.wait_for(3, mode="ok")
    assert len(ok) == 3
    assert max(h.at for h in ok) - started < 2.0  # while the other channel's first send still hangs
    assert receiver.wait_for(1, mode="hang")


def test_offer_never_blocks_even_on_a_hanging_channel(receiver: Receiver, hubs: list[ChannelHub]) -> None:
    hub = ChannelHub([ChannelSpec(receiver.url("json", "hang"), level=Level.PROGRESS, timeout_s=5.0)])
    hubs.append(hub)
    started = time.perf_counter()
    for i in range(2000):
        hub.offer(event(K.PROGRESS, str(i)))
    assert time.perf_counter() - started < 1.0


def test_burst_beyond_the_limit_becomes_a_digest(
    receiver: Receiver, recorder: Recorder, hubs: list[ChannelHub]
) -> None:
    hub = ChannelHub([ChannelSpec(receiver.url("json"), level=Level.PROGRESS, rate=3, per_s=60)], recorder)
    hubs.append(hub)
    for i in range(20):
        hub.offer(event(K.WARNING if i else K.ERROR, f"e{i}"))
    assert hub.flush(10)
    assert len(receiver.hits) <= 3
    titles = [h.json()["title"] for h in receiver.hits]
    assert titles[0].endswith("error e0")
    assert titles[-1].startswith("job j1:")
    assert "more events" in titles[-1]
    outcomes = [d.outcome for _, d in recorder.items]
    assert len(outcomes) == 20
    assert set(outcomes) <= {Outcome.SENT, Outcome.MERGED}


def test_an_invalid_url_records_failures_with_one_clear_reason(recorder: Recorder, hubs: list[ChannelHub]) -> None:
    hub = ChannelHub([ChannelSpec("nosuch://secret-token@x")], recorder)
    hubs.append(hub)
    hub.offer(event(K.ERROR, "oom"))
    [(display, delivery)] = recorder.wait_for(1)
    assert delivery.outcome is Outcome.FAILED
    assert "scheme 'nosuch' unknown" in delivery.reason
    assert "secret-token" not in display
    assert hub.states()[0][1] == "invalid"


def test_close_drains_pending_sends(receiver: Receiver, hubs: list[ChannelHub]) -> None:
    hub = ChannelHub([ChannelSpec(receiver.url("json"))])
    hub.offer(event(K.COMPLETION, "done"))
    assert hub.close(drain_s=10)
    assert len(receiver.hits) == 1
