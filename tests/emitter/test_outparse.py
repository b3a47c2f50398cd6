"""Output parsing for ``peft-notify run``: tqdm redraws, log dicts, errors, tail."""

from __future__ import annotations

import math

from peft_notify.emitter.outparse import BarSeen, ErrorSeen, LogSeen, OutputParser


def test_tqdm_carriage_return_redraws() -> None:
    p = OutputParser()
    events = p.feed("\r  0%|          | 0/100 [00:00<?, ?it/s]\r 45%|████▌     | 45/100 [00:01<00:02, 5.47it/s]")
    assert events == [BarSeen(0, 100), BarSeen(45, 100)]
    assert p.feed("\r 45%|████▌     | 45/100 [00:01<00:02, 5.47it/s]") == []  # same redraw: nothing new


def test_eval_bar_with_smaller_total_is_ignored() -> None:
    p = OutputParser()
    p.feed("\r 10%|█ | 100/1000 [00:10<01:30]\n")
    assert p.feed("\r 50%|█████| 5/10 [00:00<00:00]\n") == []


def test_log_dicts_with_nan() -> None:
    p = OutputParser()
    [event] = p.feed("{'loss': nan, 'grad_norm': inf, 'learning_rate': 1e-4, 'epoch': 0.5}\n")
    assert isinstance(event, LogSeen)
    assert event.loss is not None
    assert math.isnan(event.loss)
    assert event.values["grad_norm"] == math.inf
    assert p.feed("{'unrelated': 1}\n") == []
    assert p.feed("{'loss': __import__('os')}\n") == []


def test_errors_and_stderr_tail() -> None:
    p = OutputParser()
    events = p.feed("Traceback (most recent call last):\nRuntimeError: CUDA error: device-side assert triggered\n")
    assert next(e for e in events if isinstance(e, ErrorSeen)).error_type == "cuda_error"
    p.feed("torch.OutOfMemoryError: CUDA out of memory.\n")
    assert p.error_type == "oom_error"
    assert list(p.tail)[-1] == "torch.OutOfMemoryError: CUDA out of memory."


def test_split_chunks_and_finish() -> None:
    p = OutputParser()
    assert p.feed("{'loss': 1.") == []
    assert p.feed("5, 'epoch': 1.0}") == []  # not a bar: waits for the newline
    assert isinstance(p.finish()[0], LogSeen)
