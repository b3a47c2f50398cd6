"""Tests for peft_notify.platform.dnd: fail-open base, cache, composite."""

from __future__ import annotations

import asyncio
import logging

import pytest

from peft_notify.platform.dnd import (
    BaseDndProbe,
    CachedDndProbe,
    CompositeDndProbe,
    NullDndProbe,
    ProbeError,
    parse_bool_word,
)
from peft_notify.ports import DndProbe, DndState
from peft_notify.testing import FakeClock, ScriptedDndProbe


class HangingProbe(BaseDndProbe):
    name = "hanging"

    async def _read(self) -> DndState:
        await asyncio.Event().wait()  # never answers
        return DndState.ON


class BrokenProbe(BaseDndProbe):
    name = "broken"

    async def _read(self) -> DndState:
        raise OSError("permission denied")


def test_hanging_probe_is_unknown_after_its_timeout() -> None:
    probe = HangingProbe(timeout=0.05)
    assert asyncio.run(probe.state()) is DndState.UNKNOWN
    assert probe.last_error is not None
    assert "no answer within 0.05 s" in probe.last_error


def test_failing_probe_is_unknown_and_warns_only_once(caplog: pytest.LogCaptureFixture) -> None:
    probe = BrokenProbe()
    with caplog.at_level(logging.DEBUG, logger="peft_notify.platform.dnd"):
        assert asyncio.run(probe.state()) is DndState.UNKNOWN
        assert asyncio.run(probe.state()) is DndState.UNKNOWN
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "permission denied" in warnings[0].getMessage()


def test_null_probe_is_unknown_and_a_dnd_probe() -> None:
    probe = NullDndProbe()
    assert isinstance(probe, DndProbe)
    assert asyncio.run(probe.state()) is DndState.UNKNOWN


@pytest.mark.parametrize(("text", "value"), [("true\n", True), ("false\n", False), (" 1 ", True), ("0", False)])
def test_parse_bool_word(text: str, value: bool) -> None:
    assert parse_bool_word(text) is value


def test_parse_bool_word_rejects_other_text() -> None:
    with pytest.raises(ProbeError, match="unexpected"):
        parse_bool_word("No such schema")


def test_composite_first_definite_answer_wins() -> None:
    probes = [NullDndProbe(), ScriptedDndProbe([DndState.OFF], name="a"), ScriptedDndProbe([DndState.ON], name="b")]
    composite = CompositeDndProbe(probes, mode="first")
    assert asyncio.run(composite.state()) is DndState.OFF
    assert composite.last_source == "a"
    assert composite.name == "none+a+b"


def test_composite_any_reports_on_when_any_probe_is_on() -> None:
    probes = [ScriptedDndProbe([DndState.OFF], name="a"), NullDndProbe(), ScriptedDndProbe([DndState.ON], name="b")]
    composite = CompositeDndProbe(probes, mode="any")
    assert asyncio.run(composite.state()) is DndState.ON
    assert composite.last_source == "b"


def test_composite_any_off_and_unknown() -> None:
    assert asyncio.run(CompositeDndProbe([NullDndProbe(), ScriptedDndProbe([DndState.OFF])], "any").state()) is (
        DndState.OFF
    )
    assert asyncio.run(CompositeDndProbe([NullDndProbe(), BrokenProbe()], "any").state()) is DndState.UNKNOWN


def test_cache_reads_once_per_ttl() -> None:
    clock = FakeClock(now=100.0)
    inner = ScriptedDndProbe([DndState.OFF, DndState.ON])
    cached = CachedDndProbe(inner, ttl=3.0, clock=clock.now)

    async def scenario() -> list[DndState]:
        seen = [await cached.state(), await cached.state()]
        clock.advance(2.9)
        seen.append(await cached.state())
        clock.advance(0.2)
        seen.append(await cached.state())
        return seen

    assert asyncio.run(scenario()) == [DndState.OFF, DndState.OFF, DndState.OFF, DndState.ON]
    assert inner.calls == 2


def test_cache_shares_one_read_between_concurrent_callers() -> None:
    inner = ScriptedDndProbe([DndState.ON])
    cached = CachedDndProbe(inner)

    async def scenario() -> list[DndState]:
        return list(await asyncio.gather(*(cached.state() for _ in range(5))))

    assert asyncio.run(scenario()) == [DndState.ON] * 5
    assert inner.calls == 1


def test_cache_invalidate_forces_a_new_read() -> None:
    inner = ScriptedDndProbe([DndState.OFF, DndState.ON])
    cached = CachedDndProbe(inner, ttl=60.0)

    async def scenario() -> tuple[DndState, DndState]:
        first = await cached.state()
        cached.invalidate()
        return first, await cached.state()

    assert asyncio.run(scenario()) == (DndState.OFF, DndState.ON)


def test_a_probe_that_cannot_answer_at_start_is_asked_again_later_not_dropped() -> None:
    from peft_notify.platform.dnd import ReprobingDndProbe

    now = [0.0]
    inner = ScriptedDndProbe([DndState.UNKNOWN, DndState.ON, DndState.OFF], name="focus")
    probe = ReprobingDndProbe(inner, interval=60.0, clock=lambda: now[0])
    assert asyncio.run(probe.state()) is DndState.UNKNOWN  # not asked again before the interval
    now[0] = 61.0
    assert asyncio.run(probe.state()) is DndState.UNKNOWN  # asked: still cannot answer
    now[0] = 90.0
    assert asyncio.run(probe.state()) is DndState.UNKNOWN  # waits for the next interval
    now[0] = 122.0
    assert asyncio.run(probe.state()) is DndState.ON  # e.g. Full Disk Access granted meanwhile
    assert probe.answered
    assert asyncio.run(probe.state()) is DndState.OFF  # from now on asked on every poll


def test_selection_keeps_unknown_probes_and_says_they_are_retried() -> None:
    from peft_notify.platform.choose import select_dnd_probe

    flaky = ScriptedDndProbe([DndState.UNKNOWN, DndState.ON], name="flaky")
    selection = asyncio.run(select_dnd_probe(platform="none", env={}, extra=[flaky], reprobe_s=0.0))
    assert [s.name for s in selection.skipped] == ["flaky"]
    assert "asked again every 0 s" in selection.skipped[0].reason
    assert asyncio.run(selection.primary.state()) is DndState.ON
