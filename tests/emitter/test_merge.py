"""ErrorMerger: the same error from several ranks becomes one notification naming them."""

from __future__ import annotations

from peft_notify import wire
from peft_notify.emitter.merge import ErrorMerger, rank_suffix
from peft_notify.emitter.reports import error as error_item


def _oom(gpu: int) -> wire.NotificationEvent:
    return error_item("llama", f"at step {10 + gpu}: CUDA out of memory (GPU {gpu})", "oom_error")


def test_same_error_on_several_ranks_is_one_notification() -> None:
    merger = ErrorMerger(window=1.0)
    merger.add(3, _oom(3), now=0.0)
    merger.add(0, _oom(0), now=0.2)
    merger.add(5, _oom(5), now=0.5)
    assert merger.take_due(0.9) == []
    [merged] = merger.take_due(1.0)
    assert merged.title == "llama: oom error (ranks 0, 3, 5)"
    assert merged.message == "at step 10: CUDA out of memory (GPU 0)"  # rank 0's own text
    assert merged.urgency == "critical"
    assert not merger.pending


def test_different_errors_stay_apart_and_status_waits_behind_them() -> None:
    merger = ErrorMerger(window=1.0)
    merger.add(1, error_item("llama", "ValueError: bad batch", "system_crash"), now=0.0)
    merger.add(0, _oom(0), now=0.1)
    failed = wire.Status(wire.JobState.FAILED, "oom")
    merger.defer(failed)
    first = merger.take_due(1.0)
    assert [item.title for item in first] == ["llama: system crash (rank 1)"]
    assert merger.pending
    second = merger.take_due(1.1)
    assert second[0].title == "llama: oom error (rank 0)"
    assert second[1] is failed
    assert merger.next_due() is None


def test_force_flushes_everything() -> None:
    merger = ErrorMerger(window=60.0)
    merger.add(2, _oom(2), now=0.0)
    assert merger.next_due() == 60.0
    assert [item.title for item in merger.take_due(0.0, force=True)] == ["llama: oom error (rank 2)"]


def test_rank_suffix() -> None:
    assert rank_suffix([3]) == "(rank 3)"
    assert rank_suffix([3, 0, 3]) == "(ranks 0, 3)"
