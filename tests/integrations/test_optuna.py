"""Optuna (real): per-trial completion/failure/pruning as jobs of one group, one summary at the end.

The desktop side is live (tests/integrations/sweep_support.py): the real Monitor, engine and
JobClients follow the trials' jobs through the discovery directory while the study runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from peft_notify import wire
from peft_notify.engine import EngineConfig, Record
from tests.integrations.sweep_support import LiveDesktop

optuna = pytest.importorskip("optuna")

from peft_notify.integrations.optuna import NotifyCallback, notify_study  # noqa: E402  (needs optuna)

pytestmark = pytest.mark.slow

PARAMS = [{"lr": 1e-4, "r": 8}, {"lr": 2e-4, "r": 16}, {"lr": 3e-4, "r": 16}, {"lr": 5e-3, "r": 8}]


@pytest.fixture(autouse=True)
def _quiet_optuna(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def make_study(name: str) -> optuna.Study:
    study = optuna.create_study(study_name=name, direction="minimize")
    for params in PARAMS:
        study.enqueue_trial(params)
    return study


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    r = trial.suggest_categorical("r", [8, 16])
    time.sleep(1.2)  # trials end one after another while the desktop watches
    if trial.number == 1:
        raise ValueError("loss went NaN")
    if trial.number == 2:
        trial.report(0.9, step=3)
        raise optuna.TrialPruned()
    return round(lr * 1000 + r / 100, 4)


def test_study_reports_each_trial_and_one_summary() -> None:
    study = make_study("tiny-study")
    with LiveDesktop() as desk:
        with notify_study(study, n_trials=4, print_url=False) as notify:
            study.optimize(objective, n_trials=4, callbacks=[notify], catch=(ValueError,))
        assert desk.wait_for(lambda _a: desk.summaries(), timeout=30)
    assert notify.summary is not None
    expected = ("tiny-study: all 4 finished", "2 ok, 1 failed, 1 pruned; best value 0.18 (lr=1e-4, r=8)")
    assert (notify.summary.title, notify.summary.message) == expected
    assert [(s.event.title, s.event.message) for s in desk.summaries()] == [expected]
    errors = desk.errors()
    assert len(errors) == 1 and "trial 1" in errors[0].event.message and "lr=2e-4, r=16" in errors[0].event.message
    shown = desk.shown()
    assert {a.event.type for a in shown} == {wire.NotificationType.ERROR, wire.NotificationType.COMPLETION}
    assert any(isinstance(a, Record) and a.event.type is wire.NotificationType.COMPLETION for a in desk.actions)
    view = desk.engine.groups()[0]
    assert (view.total, view.done, view.failed, view.pruned, view.ended) == (4, 2, 1, 1, True)


def test_a_failure_outside_catch_is_reported_by_the_context_manager() -> None:
    """Optuna skips callbacks for an exception not in catch=; the context manager reports it."""
    study = make_study("escaping")
    with LiveDesktop(EngineConfig(group_grace_s=1.0)) as desk:
        with (
            pytest.raises(ValueError, match="loss went NaN"),
            notify_study(study, n_trials=4, print_url=False) as notify,
        ):
            study.optimize(objective, n_trials=4, callbacks=[notify])
        assert desk.wait_for(lambda _a: desk.summaries(), timeout=30)
    errors = desk.errors()
    assert len(errors) == 1
    assert "ValueError: loss went NaN" in errors[0].event.message and "lr=2e-4" in errors[0].event.message
    assert notify.summary is not None
    assert notify.summary.title == "escaping: 2 of 4 finished"
    assert [s.event.title for s in desk.summaries()] == ["escaping: 2 of 4 finished"]


def test_earlier_trials_of_a_resumed_study_are_not_this_sweep() -> None:
    study = make_study("resumed")
    study.optimize(lambda t: t.suggest_float("lr", 1e-5, 1e-2), n_trials=1)
    callback = NotifyCallback(expected_trials=1, print_url=False)
    callback.begin(study)
    study.optimize(lambda t: t.suggest_float("lr", 1e-5, 1e-2), n_trials=1, callbacks=[callback])
    summary = callback.finish(study)
    assert summary is not None and summary.title == "resumed: all 1 finished"
