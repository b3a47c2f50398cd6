"""Plain PyTorch loops: ``for batch in track(loader, "my-run"):`` — one line to adopt.

Wraps :func:`peft_notify.job`: serves the job while iterating, reports one step per item,
completed at the end, and a classified error + failed if the loop body raises.
Use ``peft_notify.job(...)`` directly to also report loss or custom notifications.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from peft_notify.emitter.context import job

__all__ = ["track"]

T = TypeVar("T")


def track(iterable: Iterable[T], name: str = "training", total: int | None = None, **job_options: Any) -> Iterator[T]:
    """Yield from ``iterable`` while serving a job named ``name`` (options go to ``peft_notify.job``)."""
    with job(name, total_steps=total, **job_options) as ctx:
        yield from ctx.track(iterable, total=total)
