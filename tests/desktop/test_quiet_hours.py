"""Quiet hours: the weekday windows (property-tested against a minute-by-minute model), the DND probe
they make, and the engine withholding everything but errors until they end (issue 16)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peft_notify.desktop.quiet_hours import QuietHours, QuietHoursProbe, QuietWindow, parse_quiet_hours
from peft_notify.engine import Engine
from peft_notify.ports import DndState
from peft_notify.testing import ScriptedDndProbe
from peft_notify.wire import NotificationType
from tests.engine.factories import hello, note, notifies, progress, records

WEEK = 7 * 24 * 60
MONDAY = dt.datetime(2026, 11, 30)  # a Monday

windows = st.builds(
    QuietWindow,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 24 * 60 - 1),
    end=st.integers(0, 24 * 60 - 1),
)
hours_strategy = st.builds(QuietHours, st.lists(windows, max_size=3).map(tuple))
instants = st.integers(0, WEEK - 1).map(lambda m: MONDAY + dt.timedelta(minutes=m))


def model(hours: QuietHours) -> set[int]:
    """The quiet minutes of the week, counted out one by one from each window's start."""
    quiet: set[int] = set()
    for w in hours.windows:
        length = (w.end - w.start) % (24 * 60) or 24 * 60
        for day in w.days:
            for k in range(length):
                quiet.add((day * 24 * 60 + w.start + k) % WEEK)
    return quiet


@given(hours_strategy, instants)
def test_active_matches_the_minute_model(hours: QuietHours, now: dt.datetime) -> None:
    minute_of_week = now.weekday() * 24 * 60 + now.hour * 60 + now.minute
    assert hours.active(now) == (minute_of_week in model(hours))


@given(hours_strategy, instants)
def test_ends_at_is_the_first_minute_that_is_not_quiet(hours: QuietHours, now: dt.datetime) -> None:
    end = hours.ends_at(now)
    if not hours.active(now):
        assert end is None
        return
    if end is None:  # quiet all week round
        assert len(model(hours)) == WEEK
        return
    assert not hours.active(end)
    t = now.replace(second=0)
    while t < end:
        assert hours.active(t)
        t += dt.timedelta(minutes=1)


@given(hours_strategy)
def test_the_text_form_reads_back_the_same(hours: QuietHours) -> None:
    again = parse_quiet_hours(str(hours))
    assert model(again) == model(hours)


def test_parse_examples_and_errors() -> None:
    h = parse_quiet_hours("mon-fri 22:00-08:00; sat,sun 23:30-10:00")
    assert h.active(MONDAY.replace(hour=23))  # Monday night
    assert h.active(MONDAY.replace(hour=9, minute=59))  # Sunday 23:30 - Monday 10:00
    assert not h.active(MONDAY.replace(hour=10))
    assert not h.active(MONDAY.replace(hour=12))
    assert parse_quiet_hours("22:00-08:00").windows[0].days == frozenset(range(7))
    assert parse_quiet_hours("fri-mon 00:00-24:00").windows[0].days == frozenset({4, 5, 6, 0})
    assert parse_quiet_hours("") == QuietHours()
    for bad, word in (("mon 22:00", "time range"), ("moon 22:00-08:00", "weekday"), ("25:00-08:00", "time of day")):
        with pytest.raises(ValueError, match=word):
            parse_quiet_hours(bad)


def test_the_probe_is_on_during_quiet_hours_and_asks_the_system_otherwise() -> None:
    now = [MONDAY.replace(hour=23)]
    probe = QuietHoursProbe(ScriptedDndProbe([DndState.OFF]), lambda: parse_quiet_hours("22:00-08:00"), lambda: now[0])
    assert asyncio.run(probe.state()) is DndState.ON
    assert probe.quiet_until() == MONDAY.replace(hour=8) + dt.timedelta(days=1)
    now[0] = MONDAY.replace(hour=12)
    assert asyncio.run(probe.state()) is DndState.OFF
    assert probe.quiet_until() is None


def test_quiet_hours_let_errors_through_and_summarise_the_rest_when_they_end() -> None:
    now = [MONDAY.replace(hour=23)]
    probe = QuietHoursProbe(ScriptedDndProbe([DndState.OFF]), lambda: parse_quiet_hours("22:00-08:00"), lambda: now[0])
    engine = Engine()
    t = now[0].timestamp()
    engine.feed(hello(), now=t, dnd=asyncio.run(probe.state()))
    engine.feed(progress(0), now=t, dnd=asyncio.run(probe.state()))
    quiet = engine.feed(progress(600), now=t + 1, dnd=asyncio.run(probe.state()))
    error = engine.feed(note(NotificationType.ERROR, "E", "oom", error_type="oom_error"), now=t + 2, dnd=DndState.ON)
    assert notifies(quiet) == [] and records(quiet)
    assert len(notifies(error)) == 1
    now[0] = MONDAY.replace(hour=8) + dt.timedelta(days=1)
    shown = notifies(engine.tick(now=now[0].timestamp(), dnd=asyncio.run(probe.state())))
    summaries = [n for n in shown if n.event.title == "While Do Not Disturb was on"]
    assert len(summaries) == 1 and "reached 50 %" in summaries[0].event.message, shown
