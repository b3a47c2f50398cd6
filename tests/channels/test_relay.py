"""The training side's relay: envelopes in (as the job server sends them), channel POSTs out."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest

from peft_notify.channels.hub import ChannelSpec
from peft_notify.channels.levels import Level
from peft_notify.channels.relay import CAPABILITY, ChannelFeed, TrainingRelay
from peft_notify.engine import Engine, EngineConfig
from peft_notify.wire import Envelope, JobState, NotificationType, Progress
from tests.channels.conftest import Receiver
from tests.engine.factories import T0, hello, note, progress, status


@pytest.fixture
def relays() -> Iterator[list[TrainingRelay]]:
    made: list[TrainingRelay] = []
    yield made
    for relay in made:
        relay.close(0)


def run_job(relay: TrainingRelay, *, fail: bool) -> None:
    relay.add_job("j1", "llama-lora", "run-1", started_at=time.time() - 3725, total_steps=100)
    for step in range(0, 101 if not fail else 51, 5):
        relay.observe(progress(step, 100, loss=3.0 - step / 50))
        if step == 50:
            evaluation = Progress(50, 100, metrics={"eval_loss": 1.9})
            relay.observe(Envelope(type="progress", data=evaluation, seq=None, job_id="j1", ts=None))
    if fail:
        relay.observe(note(NotificationType.ERROR, "llama-lora: out of memory", "CUDA OOM", error_type="oom_error"))
        relay.observe(status(JobState.FAILED, "oom"))
    else:
        relay.observe(status(JobState.COMPLETED))


def test_default_level_sends_only_the_completion_with_context_and_chart(
    receiver: Receiver, relays: list[TrainingRelay]
) -> None:
    relay = TrainingRelay([ChannelSpec(receiver.url("json"))], host="gpu-7")
    relays.append(relay)
    run_job(relay, fail=False)
    assert relay.close(10)
    [hit] = receiver.hits
    payload = hit.json()
    assert payload["type"] == "success"
    assert "llama-lora" in payload["title"]
    assert "host gpu-7 · ran 1h 02m · step 100/100 · loss 1" in payload["message"]
    assert "eval_loss 1.9" in payload["message"]
    [png] = payload["attachments"]
    assert base64.b64decode(png["base64"]).startswith(b"\x89PNG")


def test_error_level_sends_exactly_the_error(receiver: Receiver, relays: list[TrainingRelay]) -> None:
    relay = TrainingRelay([ChannelSpec(receiver.url("json"), level=Level.ERROR)], host="gpu-7")
    relays.append(relay)
    run_job(relay, fail=True)
    assert relay.close(10)
    [hit] = receiver.hits
    assert hit.json()["type"] == "failure"
    assert "out of memory" in hit.json()["title"]


def test_progress_level_sends_the_milestones_too(receiver: Receiver, relays: list[TrainingRelay]) -> None:
    relay = TrainingRelay([ChannelSpec(receiver.url("json"), level=Level.PROGRESS)], host="gpu-7")
    relays.append(relay)
    run_job(relay, fail=False)
    assert relay.close(10)
    titles = [h.json()["title"] for h in receiver.hits]
    assert [t for t in titles if "% complete" in t] == [
        "llama-lora: 25% complete",
        "llama-lora: 50% complete",
        "llama-lora: 75% complete",
    ]
    assert titles[-1] == "llama-lora: training complete"


def test_desktop_feed_skips_jobs_that_deliver_themselves() -> None:
    engine = Engine(EngineConfig(respect_dnd=False))
    feed = ChannelFeed(skip_self_delivering=True)
    events = []
    for env, job in [(hello(caps=[CAPABILITY], job_id="self"), "self"), (hello(job_id="plain"), "plain")]:
        feed.observe(env)
        engine.feed(env, now=T0)
        done = status(JobState.COMPLETED, job_id=job)
        events += feed.events(engine.feed(done, now=T0 + 5), engine.job, T0 + 5)
    assert [e.job_id for e in events] == ["plain"]
    assert events[0].kind is NotificationType.COMPLETION


def test_popup_only_summaries_do_not_reach_channels_but_the_errors_do() -> None:
    engine = Engine(EngineConfig(respect_dnd=False))
    feed = ChannelFeed()
    events = []
    for env in [hello(), *(note(NotificationType.ERROR, f"e{i}", error_type=f"t{i}") for i in range(12))]:
        feed.observe(env)
        events += feed.events(engine.feed(env, now=T0), engine.job, T0)
    assert [e.title for e in events] == [f"e{i}" for i in range(12)]  # the flood summary popup is not among them
