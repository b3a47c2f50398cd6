"""A sweep reports through NATS: every trial a job on the stream, one summary on the desktop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.cluster.natsd import NatsServer
from tests.cluster.rig import Desk, until

optuna = pytest.importorskip("optuna")

from peft_notify.integrations.optuna import notify_study  # noqa: E402  (needs optuna)

pytestmark = pytest.mark.slow


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    time.sleep(0.5)
    if trial.number == 1:
        raise ValueError("loss went NaN")
    return round(lr * 1000, 4)


def test_an_optuna_sweep_with_peft_notify_nats_reaches_a_desktop_following_nats(
    natsd: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PEFT_NOTIFY_NATS is all a sweep launcher sets: the trials and the sweep's own job are published,
    the desktop (following only NATS) shows the failure at once and exactly one summary."""
    monkeypatch.setenv("PEFT_NOTIFY_NATS", natsd.url)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="nats-study", direction="minimize")
    for lr in (1e-4, 2e-4, 3e-4):
        study.enqueue_trial({"lr": lr})

    async def scenario() -> None:
        async with Desk(natsd.url) as desk:

            def sweep() -> None:
                with notify_study(study, n_trials=3, print_url=False, linger=0) as notify:
                    study.optimize(objective, n_trials=3, callbacks=[notify], catch=(ValueError,))

            await asyncio.to_thread(sweep)
            await until(lambda: any("all 3 finished" in t for t in desk.popups()), 30, "the sweep's summary")
            await desk.monitor.drain()
            titles = desk.popups()
            assert sum("all 3 finished" in t for t in titles) == 1, titles
            assert sum("#1: Trial failed" in t for t in titles) == 1, titles  # the failure, at once
            jobs = [c for c in desk.monitor.connections.values() if c.source is not None]
            assert len(jobs) == 4  # three trials and the sweep's own job, each a job of the NATS source

    asyncio.run(scenario())
