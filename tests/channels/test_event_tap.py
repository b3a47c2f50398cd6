"""EventLog taps: how the training side's channels see every envelope the job server sends."""

from __future__ import annotations

from peft_notify import wire
from peft_notify.emitter.buffer import EventLog


def test_taps_see_every_appended_envelope_with_its_seq() -> None:
    log = EventLog("j")
    seen: list[wire.Envelope] = []
    log.taps.append(seen.append)
    log.append(wire.Progress(1, 10))
    log.append(wire.Status(wire.JobState.COMPLETED))
    assert [(e.seq, e.job_id, type(e.data).__name__) for e in seen] == [(1, "j", "Progress"), (2, "j", "Status")]


def test_a_failing_tap_never_breaks_the_log() -> None:
    log = EventLog("j")

    def broken(env: wire.Envelope) -> None:
        raise RuntimeError("boom")

    seen: list[wire.Envelope] = []
    log.taps += [broken, seen.append]
    assert log.append(wire.Progress(1, 10))[0] == 1
    assert len(seen) == 1
