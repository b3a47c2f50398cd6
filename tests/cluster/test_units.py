"""The NATS layer's pure parts, without a server: subject matching, coalescing, stream sequences, cursors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from peft_notify import natsurl, wire
from peft_notify.desktop import nats_source
from peft_notify.desktop.nats_sources import CursorStore


@dataclass
class FakeMsg:
    """Only what the source reads of a nats-py message (a real Msg needs a client)."""

    subject: str
    data: bytes
    reply: str = ""


def _progress(job: str, seq: int, **extra: object) -> bytes:
    body = wire.Progress(current_step=seq, total_steps=100, **extra)  # type: ignore[arg-type]
    return wire.encode(wire.Envelope(type="progress", data=body, seq=seq, job_id=job)).encode()


def _note(job: str, seq: int) -> bytes:
    body = wire.NotificationEvent(type=wire.NotificationType.WARNING, title="t", message="m")
    return wire.encode(wire.Envelope(type="notification", data=body, seq=seq, job_id=job)).encode()


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("peft.jobs.>", "peft.jobs.a", True),
        ("peft.jobs.>", "peft.jobs.alice.run1", True),
        ("peft.jobs.>", "peft.jobs", False),
        ("peft.jobs.alice.>", "peft.jobs.alice.run1", True),
        ("peft.jobs.alice.>", "peft.jobs.alicex.run1", False),
        ("peft.jobs.*", "peft.jobs.a", True),
        ("peft.jobs.*", "peft.jobs.a.b", False),
        ("peft.jobs.a", "peft.jobs.a", True),
    ],
)
def test_subject_matching_follows_nats_wildcards(pattern: str, subject: str, matches: bool) -> None:
    assert natsurl.subject_matches(pattern, subject) is matches


def test_a_progress_frame_is_skipped_only_when_the_same_jobs_next_frame_is_progress_too() -> None:
    msgs = [
        FakeMsg("peft.jobs.a", _progress("a", 1)),  # superseded by a's seq 2
        FakeMsg("peft.jobs.b", _progress("b", 1)),  # b's next is a notification: kept
        FakeMsg("peft.jobs.a", _progress("a", 2)),  # superseded by a's seq 4
        FakeMsg("peft.jobs.b", _note("b", 2)),
        FakeMsg("peft.jobs.a", _progress("a", 4)),  # a's last: kept
        FakeMsg("peft.jobs.c", _progress("c", 1, metrics={"eval_loss": 0.5})),  # an evaluation: kept
        FakeMsg("peft.jobs.c", _progress("c", 2)),
    ]
    assert nats_source._superseded(msgs) == {0, 2}  # type: ignore[arg-type]


def test_the_stream_sequence_comes_from_either_reply_form() -> None:
    v1 = FakeMsg("s", b"", "$JS.ACK.PEFT_JOBS.cons.1.4711.12.1700000000000000000.0")
    v2 = FakeMsg("s", b"", "$JS.ACK.domain.acchash.PEFT_JOBS.cons.1.4712.12.1700000000000000000.0.tok")
    assert nats_source._stream_seq(v1) == 4711  # type: ignore[arg-type]
    assert nats_source._stream_seq(v2) == 4712  # type: ignore[arg-type]


def test_cursors_are_written_0600_at_most_every_second_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nats-cursors.json"
    store = CursorStore(path)
    store.set("nats://127.0.0.1:4222/peft.jobs.>|PEFT_JOBS", 10, now=100.0)
    store.set("nats://127.0.0.1:4222/peft.jobs.>|PEFT_JOBS", 11, now=100.5)  # within the second: not yet
    assert json.loads(path.read_text()) == {"nats://127.0.0.1:4222/peft.jobs.>|PEFT_JOBS": 10}
    store.save()
    assert CursorStore(path).get("nats://127.0.0.1:4222/peft.jobs.>|PEFT_JOBS") == 11
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text('{"a": -3, "b": "x", "c": 5}')  # a damaged file: bad entries are ignored
    assert (CursorStore(path).get("a"), CursorStore(path).get("b"), CursorStore(path).get("c")) == (None, None, 5)
    path.write_text("not json")
    assert CursorStore(path).get("c") is None
