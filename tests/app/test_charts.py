"""Loss chart axis ticks are round numbers covering the data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peft_notify.app.charts import nice_ticks


def test_ticks_for_a_typical_loss_curve() -> None:
    assert nice_ticks(0.5386, 2.539) == ([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], 1)
    assert nice_ticks(0.0, 100.0) == ([0.0, 20.0, 40.0, 60.0, 80.0, 100.0], 0)


def test_small_ranges_get_enough_decimals() -> None:
    ticks, decimals = nice_ticks(0.1234, 0.1289)
    assert decimals == 3
    assert len({f"{t:.{decimals}f}" for t in ticks}) == len(ticks)


def test_invalid_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="finite lo < hi"):
        nice_ticks(1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0.0, float("nan"))


@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
)
def test_ticks_cover_the_range_with_few_round_labels(lo: float, span: float) -> None:
    hi = lo + span
    if hi <= lo:
        return
    ticks, decimals = nice_ticks(lo, hi)
    assert ticks[0] <= lo + abs(lo) * 1e-9
    assert ticks[-1] >= hi - abs(hi) * 1e-9
    assert 2 <= len(ticks) <= 10
    assert ticks == sorted(ticks)
    labels = [f"{t:.{decimals}f}" for t in ticks]
    assert len(set(labels)) == len(labels), labels
