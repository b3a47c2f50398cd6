"""desktop/curve.py: a loss curve behaves like ``deque(maxlen=N)`` of ``(step, loss)`` and costs 16 bytes a point."""

from __future__ import annotations

import tracemalloc
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peft_notify.desktop.curve import Curve
from peft_notify.desktop.monitor import MAX_LOSS_POINTS, LossCurves

JOBS = 100

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 2**40), st.floats(allow_nan=False)),
        st.tuples(st.just("replace"), st.integers(0, 2**40), st.floats(allow_nan=False)),
        st.tuples(st.just("clear"), st.just(0), st.just(0.0)),
    ),
    max_size=60,
)


@given(st.integers(1, 7), operations)
def test_a_curve_holds_what_a_deque_would(maxlen: int, ops: list[tuple[str, int, float]]) -> None:
    curve, model = Curve(maxlen), deque[tuple[int, float]](maxlen=maxlen)
    for op, step, loss in ops:
        if op == "append":
            curve.append((step, loss))
            model.append((step, loss))
        elif op == "replace" and model:
            curve[-1] = (step, loss)
            model[-1] = (step, loss)
        elif op == "clear":
            curve.clear()
            model.clear()
        assert list(curve) == list(model)
        assert len(curve) == len(model) and bool(curve) is bool(model)
        if model:
            assert curve[-1] == model[-1] and curve[0] == model[0]


def test_out_of_range_and_empty() -> None:
    curve = Curve(3)
    with pytest.raises(IndexError):
        curve[-1]
    with pytest.raises(ValueError):
        Curve(0)
    curve.append((1, 2.0))
    assert curve[-1] == (1, 2.0) and curve[0] == curve[-1]
    with pytest.raises(IndexError):
        curve[1]


def test_the_monitor_keeps_curves_this_way_at_16_bytes_a_point() -> None:
    """Issue 17: a deque of tuples was ~110 bytes a point (~63 MiB for 1,000 jobs of 600 points)."""
    curves = LossCurves()
    curves.add("job", 5, 1.5)
    curves.add("job", 5, 1.25)  # a repeated step replaces the last point
    curves.add("job", 4, 9.0)  # an older step is ignored
    assert isinstance(curves.curve("job"), Curve)
    assert list(curves.curve("job")) == [(5, 1.25)]
    assert curves.losses("job") == [1.25]

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        many = LossCurves()
        for job in range(JOBS):
            for step in range(MAX_LOSS_POINTS + 50):
                many.add(f"job-{job}", 1000 + step, 1.0 / (step + 1))
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(many.curve(f"job-{JOBS - 1}")) == MAX_LOSS_POINTS
    assert used < 1.3 * 16 * MAX_LOSS_POINTS * JOBS + 200 * JOBS, f"{used / JOBS / MAX_LOSS_POINTS:.0f} bytes a point"
