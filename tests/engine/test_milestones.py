"""Milestone arithmetic."""

from __future__ import annotations

from peft_notify.engine.milestones import crossed, first_crossed, passed_phrase, percent, reached

M = (25, 50, 75, 100)


def test_percent() -> None:
    assert percent(250, 1000) == 25.0
    assert percent(5, None) is None
    assert percent(5, 0) is None
    assert percent(2000, 1000) == 100.0


def test_reached_uses_exact_integer_comparison() -> None:
    assert reached(100, 300, (33, 34)) == [33]
    assert reached(750, 1000, M) == [25, 50, 75]
    assert reached(750, None, M) == []


def test_crossed_and_first_crossed() -> None:
    assert crossed(200, 800, 1000, M) == [25, 50, 75]
    assert crossed(250, 260, 1000, M) == []
    assert crossed(800, 200, 1000, M) == []
    assert crossed(0, 10, None, M) == []
    assert first_crossed(200, 800, 1000, M) == 25
    assert first_crossed(990, 1000, 1000, M) == 100
    assert first_crossed(0, 10, 1000, M) is None


def test_passed_phrase() -> None:
    assert passed_phrase([]) == ""
    assert passed_phrase([50]) == " — passed 50 % too"
    assert passed_phrase([50, 25]) == " — passed 25 % and 50 % too"
    assert passed_phrase([10, 20, 30]) == " — passed 10 %, 20 % and 30 % too"
