"""The desktop's channels: settings (keyring references) → real engine → real receiver → real history."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path

from peft_notify.channels import CAPABILITY
from peft_notify.channels.secrets import SecretStore
from peft_notify.desktop.channels import DesktopChannels, resolve
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.desktop.settings import ChannelSetting
from peft_notify.engine import Engine, EngineConfig, Notify
from peft_notify.ports import DeliveryStatus, HistoryQuery
from peft_notify.wire import Envelope, JobState
from tests.channels.conftest import Receiver
from tests.channels.test_secrets import FileTestKeyring
from tests.engine.factories import hello, status


def test_resolve_reads_the_keyring_and_reports_missing_secrets(tmp_path: Path, receiver: Receiver) -> None:
    store = SecretStore(FileTestKeyring(tmp_path / "k.cfg"))
    ref = store.put(receiver.url("json"))
    settings = [
        ChannelSetting(ref, "json://127.0.0.1/…", "error"),
        ChannelSetting("keyring:gone", "discord://…", "error"),
        ChannelSetting(ref, "off", enabled=False),
    ]
    specs, problems = resolve(settings, store)
    assert [s.url for s in specs] == [receiver.url("json")]
    assert problems == ["discord://…: the keyring has no entry channel-gone…"]


def test_completion_is_sent_and_recorded_in_history_skipping_self_delivering_jobs(
    tmp_path: Path, receiver: Receiver
) -> None:
    store = SecretStore(FileTestKeyring(tmp_path / "k.cfg"))
    history = SqliteHistoryStore(tmp_path / "h.db")
    posted: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    channels = DesktopChannels.from_settings(
        [ChannelSetting(store.put(receiver.url("json")), "json://…")], history=history, store=store, post=posted.put
    )
    engine = Engine(EngineConfig(respect_dnd=False))
    now = time.time()

    def feed(env: Envelope) -> None:
        channels.observe(env)
        actions = engine.feed(env, now=now)
        for action in actions:  # what the app's dispatcher does first: record in history
            if isinstance(action, Notify):
                history.record(
                    action.job_id, "llama", action.event, ts=now, status=DeliveryStatus.SHOWN, key=action.key
                )
        channels.decided(actions, engine.job)

    feed(hello(job_id="self", caps=[CAPABILITY]))
    feed(status(JobState.COMPLETED, job_id="self"))
    feed(hello(job_id="plain"))
    feed(status(JobState.COMPLETED, job_id="plain"))
    assert channels.hub.flush(10)
    [hit] = receiver.hits
    assert "training complete" in hit.json()["title"]
    posted.get(timeout=5)()  # the history write runs on this (the history's) thread
    entries = {e.job_id: e for e in history.query(HistoryQuery())}
    assert dict(entries["plain"].channels) == {channels.hub.channels[0].display: "sent"}
    assert entries["self"].channels == ()
    channels.close()
    history.close()


def test_a_repeat_is_sent_again_only_after_the_user_read_it(tmp_path: Path, receiver: Receiver) -> None:
    history = SqliteHistoryStore(tmp_path / "h.db")
    channels = DesktopChannels.from_settings(
        [ChannelSetting("plain:" + receiver.url("json"), "json://…", "warning")], history=history
    )
    engine = Engine(EngineConfig(respect_dnd=False, dedup_window_s=0))  # the channel's own window decides
    now = time.time()
    from peft_notify.wire import NotificationType
    from tests.engine.factories import note

    def warn() -> None:
        actions = engine.feed(note(NotificationType.WARNING, "loss spike", "x", job_id="j"), now=now)
        channels.decided(actions, engine.job)  # the monitor's order: Decided, then the performer records
        for action in actions:
            if isinstance(action, Notify):
                history.record(action.job_id, "j", action.event, ts=now, status=DeliveryStatus.SHOWN, key=action.key)
        assert channels.hub.flush(10)

    engine.feed(hello(job_id="j"), now=now)
    warn()
    warn()  # same (job, kind, key) within the channel's dedup window, unread: updated, not re-sent
    assert len(receiver.hits) == 1
    history.mark_read()
    warn()  # the user read it: a repeat counts as new
    assert len(receiver.hits) == 2
    channels.close()
    history.close()
