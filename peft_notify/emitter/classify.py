"""Guess a protocol ``error_type`` from an exception or from a process's output text.

Used by :func:`peft_notify.job`, the integrations and ``peft-notify run``. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["classify_exception", "classify_text", "is_divergent", "summarize_exception"]

_OOM: Final = re.compile(
    r"CUDA out of memory|OutOfMemoryError|out of memory|MPS backend out of memory|HIP out of memory", re.I
)
_CUDA: Final = re.compile(r"CUDA error|device-side assert|cuDNN error|CUBLAS_STATUS|NCCL error|CUDA driver", re.I)


def classify_text(text: str) -> str | None:
    """``oom_error`` / ``cuda_error`` when ``text`` names one, else ``None``."""
    if _OOM.search(text):
        return "oom_error"
    if _CUDA.search(text):
        return "cuda_error"
    return None


def classify_exception(exc: BaseException) -> str:
    """The error type for an exception escaping training code.

    ``torch.cuda.OutOfMemoryError`` or "CUDA out of memory" → ``oom_error``; "CUDA error" /
    "device-side assert" → ``cuda_error``; a non-finite loss error → ``loss_divergence``;
    anything else → ``system_crash``. ``KeyboardInterrupt`` is not an error: callers report
    it as a cancelled status.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "OutOfMemoryError" in names:
        return "oom_error"
    text = f"{type(exc).__name__}: {exc}"
    found = classify_text(text)
    if found is not None:
        return found
    if re.search(r"\b(nan|inf)\b.*\bloss\b|\bloss\b.*\b(nan|inf)\b", text, re.I):
        return "loss_divergence"
    return "system_crash"


def summarize_exception(exc: BaseException, limit: int = 600) -> str:
    """``Type: message`` on one line, clipped to ``limit`` characters."""
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_divergent(value: float | None) -> bool:
    """Whether a loss value is NaN or infinite."""
    return value is not None and not math.isfinite(value)
