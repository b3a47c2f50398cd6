"""A realistic simulated training job (decaying noisy loss, evals, failures) for demos and tests.

:func:`simulate` drives a :class:`JobHandle` step by step; ``peft-notify simulate`` and the
desktop app's demo call it. Failure points are fractions of the run (``0.4``) or step
numbers (``400``). Call it on any thread; ``stop`` ends it early (reported as cancelled).
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from peft_notify import wire
from peft_notify.emitter.handle import JobHandle

__all__ = ["SimConfig", "at_step", "simulate"]

OOM_MESSAGE = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
    "of 23.65 GiB of which 1.12 GiB is free."
)
_MESSAGES = {
    "oom_error": OOM_MESSAGE,
    "cuda_error": "RuntimeError: CUDA error: device-side assert triggered",
    "data_error": "ValueError: batch 17 has an empty input_ids tensor",
    "system_crash": "RuntimeError: worker process died unexpectedly",
}


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Points (``fail_at`` ...) are fractions in (0, 1) or step numbers."""

    steps: int = 200
    step_time: float = 0.05
    fail_at: float | None = None
    error_type: str = "oom_error"
    nan_at: float | None = None
    loss_spike_at: float | None = None
    stall_at: float | None = None
    stall_s: float = 3600.0
    eval_every: int = 50
    resume_from: int = 0
    seed: int | None = None


def at_step(point: float | None, steps: int) -> int | None:
    """A failure point as a step number: fractions (< 1) scale by ``steps``; ``None`` stays None."""
    if point is None:
        return None
    if 0 < point < 1:
        return max(1, round(point * steps))
    return int(point)


def simulate(handle: JobHandle, config: SimConfig, stop: threading.Event | None = None) -> wire.JobState:
    """Run the simulation to its end; returns the final state (also reported to ``handle``)."""
    stop = stop or threading.Event()
    rng = random.Random(config.seed)
    steps = config.steps
    fail, nan, spike, stall = (
        at_step(p, steps) for p in (config.fail_at, config.nan_at, config.loss_spike_at, config.stall_at)
    )
    handle.on_action(lambda action: stop.set() if action.action == "cancel" else None)
    handle.status(wire.JobState.RUNNING)
    for step in range(config.resume_from + 1, steps + 1):
        if stop.wait(config.step_time):
            handle.status(wire.JobState.CANCELLED, "cancelled")
            return wire.JobState.CANCELLED
        t = step / steps
        loss = 2.2 * math.exp(-3.0 * t) + 0.35 + rng.gauss(0.0, 0.03)
        if step == spike:
            loss *= 6.0
            handle.warning(f"loss spiked to {loss:.2f} at step {step}", title=f"{handle.name}: loss spike")
        if step == nan:
            handle.progress(step, steps, loss=float("nan"))
            handle.error(f"loss is NaN at step {step}", "loss_divergence")
            handle.status(wire.JobState.FAILED, "loss diverged")
            return wire.JobState.FAILED
        metrics = {"eval_loss": round(loss * 1.05, 4)} if config.eval_every and step % config.eval_every == 0 else None
        handle.progress(
            step,
            steps,
            loss=round(loss, 4),
            epoch=round(3.0 * t, 3),
            learning_rate=2e-4 * (1.0 - t),
            grad_norm=round(abs(rng.gauss(1.0, 0.2)), 4),
            metrics=metrics,
        )
        if step == fail:
            message = _MESSAGES.get(config.error_type, f"simulated {config.error_type}")
            handle.error(f"at step {step}: {message}", config.error_type)
            handle.status(wire.JobState.FAILED, message[:200])
            return wire.JobState.FAILED
        if step == stall and stop.wait(config.stall_s):
            handle.status(wire.JobState.CANCELLED, "cancelled while stalled")
            return wire.JobState.CANCELLED
    handle.status(wire.JobState.COMPLETED)
    return wire.JobState.COMPLETED
