"""Derive progress from a training process's console output (for ``peft-notify run``).

Recognises tqdm bars (``45%|████▌     | 450/1000 [01:23<01:40, 5.47it/s]``, including the
``\\r`` redraws), Transformers log dicts (``{'loss': 1.23, 'grad_norm': 0.5,
'learning_rate': 1e-4, 'epoch': 0.5}``) and error lines (CUDA OOM → ``oom_error``).
Pure: feed text chunks, get events back. Several bars (training + eval): the one with the
largest total is the training bar; the others are ignored. Text kept from the output (the
tail, error lines) has its secrets redacted (:func:`peft_notify.redact.redact`): it ends
up in notifications.
"""

from __future__ import annotations

import ast
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from peft_notify.emitter.classify import classify_text
from peft_notify.redact import redact

__all__ = ["BarSeen", "ErrorSeen", "LogSeen", "OutputParser"]

_BAR: Final = re.compile(r"(?:(\d{1,3})%\|[^|\r\n]*\|\s*)?(\d+)/(\d+)\s*\[")
_DICT: Final = re.compile(r"\{'[A-Za-z_][^{}]*\}")
_NONFINITE: Final = re.compile(r"(?<![\w'])(-?)(nan|inf)(?![\w'])")
_LOG_KEYS: Final = ("loss", "learning_rate", "grad_norm", "epoch")


@dataclass(frozen=True, slots=True)
class BarSeen:
    """A progress bar was redrawn at ``step`` of ``total``."""

    step: int
    total: int


@dataclass(frozen=True, slots=True)
class LogSeen:
    """A Transformers-style log dict; non-finite values come through as floats."""

    values: dict[str, float]

    @property
    def loss(self) -> float | None:
        return self.values.get("loss")


@dataclass(frozen=True, slots=True)
class ErrorSeen:
    """A line naming a known failure (``oom_error`` / ``cuda_error``)."""

    error_type: str
    line: str


Event = BarSeen | LogSeen | ErrorSeen


@dataclass
class OutputParser:
    """Incremental parser of one output stream (see the module docstring)."""

    main_total: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    error_type: str | None = None
    _partial: str = ""
    _last_bar: BarSeen | None = None

    def feed(self, text: str) -> list[Event]:
        """Parse a chunk. Lines end at ``\\n``; ``\\r`` separates redraws within a line."""
        data = self._partial + text
        lines = data.split("\n")
        partial = lines.pop()
        events: list[Event] = []
        for line in lines:
            visible = ""
            for segment in line.split("\r"):
                if segment.strip():
                    events += self._segment(segment)
                    visible = segment
            if visible and not _BAR.search(visible):
                self.tail.append(redact(visible.rstrip()))  # the tail becomes an error message
        if "\r" in partial:  # finished redraws of a bar that has not printed its newline yet
            *done, partial = partial.split("\r")
            for segment in done:
                if segment.strip():
                    events += [e for e in self._segment(segment) if not isinstance(e, BarSeen) or e != self._last_bar]
        if len(partial) > 8192:  # a runaway line without a newline: parse what we have
            events += self._segment(partial)
            partial = ""
        elif partial.rstrip().endswith("]"):
            # tqdm writes "\r" *before* each redraw: the bar on screen is this partial segment.
            events += [e for e in self._segment(partial, errors=False) if isinstance(e, BarSeen)]
        self._partial = partial
        return self._dedupe(events)

    def finish(self) -> list[Event]:
        """Parse what is left at end of stream."""
        rest, self._partial = self._partial, ""
        return self.feed(rest + "\n") if rest.strip() else []

    def _dedupe(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if isinstance(event, BarSeen):
                if event == self._last_bar:
                    continue
                self._last_bar = event
            out.append(event)
        return out

    def _segment(self, segment: str, errors: bool = True) -> list[Event]:
        events: list[Event] = []
        for match in _BAR.finditer(segment):
            step, total = int(match.group(2)), int(match.group(3))
            if total > 0 and step <= total and total >= self.main_total:
                self.main_total = total
                events.append(BarSeen(step, total))
        for match in _DICT.finditer(segment):
            values = _log_dict(match.group(0))
            if values:
                events.append(LogSeen(values))
        found = classify_text(segment) if errors else None
        if found is not None:
            events.append(ErrorSeen(found, redact(segment.strip()[:500])))
            if self.error_type is None or found == "oom_error":
                self.error_type = found
        return events


def _log_dict(text: str) -> dict[str, float]:
    try:
        raw = ast.literal_eval(_NONFINITE.sub(lambda m: f"{m.group(1)}1e999" if m.group(2) == "inf" else "'nan'", text))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return {}
    if not isinstance(raw, dict):
        return {}
    values: dict[str, float] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        if value == "nan":
            values[key] = math.nan
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = float(value)
    return values if any(k in values for k in _LOG_KEYS) or any(k.startswith("eval_") for k in values) else {}
