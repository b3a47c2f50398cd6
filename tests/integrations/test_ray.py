"""Ray Tune (real, local, CPU): one job per trial grouped under the experiment, errors with the config, one summary.

One Ray session for the module (``ray.init(num_cpus=2, include_dashboard=False)`` costs ~10 s).
The desktop side is live: the real Monitor, engine and JobClients follow the trials' jobs as
the discovery directory announces them (tests/integrations/sweep_support.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from peft_notify import wire
from peft_notify.engine import Record
from tests.integrations.sweep_support import LiveDesktop

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

from peft_notify.integrations.ray import NotifyCallback  # noqa: E402  (needs ray)

pytestmark = pytest.mark.slow

FAILING_LR = 3e-3


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def train(config: dict[str, Any]) -> None:
    time.sleep(1.0)  # long enough for the desktop to find the trial while it runs
    for i in range(3):
        if config["lr"] >= FAILING_LR and i == 1:
            raise ValueError("loss went NaN")
        tune.report({"eval_loss": round(1.0 / (i + 1) + config["lr"] * 100, 4), "loss": 1.0})


def run_sweep(tmp_path: Path, callback: NotifyCallback) -> Any:
    tuner = tune.Tuner(
        train,
        param_space={"lr": tune.grid_search([1e-4, 2e-4, FAILING_LR]), "r": 16},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(
            name="tiny-sweep",
            callbacks=[callback],
            storage_path=str(tmp_path / "ray"),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    return tuner.fit()


def test_ray_tune_sweep_reports_each_trial_and_one_summary(
    tmp_path: Path, ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live desktop (real Monitor + engine + clients, following discovery) sees the sweep as it runs."""
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    # No name given: the group is named after the experiment (RunConfig(name="tiny-sweep")).
    callback = NotifyCallback(metric="eval_loss", print_url=False, linger=5.0)
    with LiveDesktop() as desk:
        results = run_sweep(tmp_path, callback)
        assert desk.wait_for(lambda _actions: len(desk.summaries()) >= 1, timeout=30)
    assert len(results) == 3
    # The training side's own summary (printed on stderr at experiment end).
    assert callback.summary is not None
    assert callback.summary.title == "tiny-sweep: all 3 finished"
    assert callback.summary.message == "2 ok, 1 failed; best eval_loss 0.3433 (lr=1e-4, r=16)"
    # The failing trial's error popped up, naming its config, before the summary.
    errors = desk.errors()
    assert len(errors) == 1
    assert "ValueError: loss went NaN" in errors[0].event.message
    assert "lr=0.003" in errors[0].event.message and "r=16" in errors[0].event.message
    shown = desk.shown()
    assert shown.index(errors[0]) < shown.index(desk.summaries()[0])
    # Exactly one group summary, with the best trial's metric and config; no trial popups.
    assert [(s.event.title, s.event.message) for s in desk.summaries()] == [
        ("tiny-sweep: all 3 finished", "2 ok, 1 failed; best eval_loss 0.3433 (lr=1e-4, r=16)")
    ]
    assert {a.event.type for a in shown} == {wire.NotificationType.ERROR, wire.NotificationType.COMPLETION}
    # The trials' completions are in history (recorded), not popped up.
    assert any(isinstance(a, Record) and a.event.type is wire.NotificationType.COMPLETION for a in desk.actions)
    view = desk.engine.groups()[0]
    assert (view.total, view.done, view.failed, view.running, view.ended) == (3, 2, 1, 0, True)
    # Every trial's hello named the experiment's group, with Tune's sample count and its config;
    # the sweep's own job (role "sweep") is not a trial.
    assert callback.reporter is not None
    groups = [c.group for c in desk.monitor.connections.values() if c.group is not None] if desk.monitor else []
    trials = [g for g in groups if g.role is wire.GroupRole.TRIAL]
    assert len(trials) == 3 and len(groups) == 4
    assert {g.id for g in groups} == {callback.reporter.group_id}
    assert {(g.name, g.expected_jobs) for g in trials} == {("tiny-sweep", 3)}
    assert sorted(g.params["lr"] for g in trials) == [1e-4, 2e-4, FAILING_LR]
