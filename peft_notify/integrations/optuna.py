"""Optuna: one job per trial grouped under the study, one summary at the end (docs/sweeps.md).

::

    with notify_study(study, n_trials=40) as notify:
        study.optimize(objective, n_trials=40, callbacks=[notify])

Optuna calls callbacks after each trial that completed, was pruned, or failed with an
exception listed in ``catch=``; each such trial becomes a job of the study's group (its
params in ``hello.group.params``, its value as the group's metric) that has just ended, so a
failure pops up at once on the desktop. Optuna has no study-end hook, and an exception *not*
in ``catch=`` ends ``optimize`` without calling callbacks: the context manager reports that
trial's failure (with the exception) and, on leaving, every trial the callbacks missed, then
the sweep's one summary (printed on stderr and kept in :attr:`NotifyCallback.summary`; the
desktop shows the same once the last expected trial has ended).

Multi-objective studies rank by the first objective.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from peft_notify import wire
from peft_notify.emitter.classify import classify_exception, summarize_exception
from peft_notify.emitter.server import JobServer
from peft_notify.integrations.sweep import SweepReporter

__all__ = ["NotifyCallback", "notify_study"]


class NotifyCallback:
    """An Optuna callback reporting each finished trial; see the module docstring.

    ``name``: the group's name (default: the study's name). ``metric``: the objective's name
    (default: the study's first metric name, else ``value``). ``expected_trials``: how many
    trials this ``optimize`` runs (``n_trials``), so the desktop's summary comes with the last.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        metric: str | None = None,
        expected_trials: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        server: JobServer | None = None,
        linger: float = 3.0,
        print_url: bool = True,
    ) -> None:
        self.name = name
        self.metric = metric
        self.expected_trials = expected_trials
        self._options: dict[str, Any] = {
            "host": host,
            "port": port,
            "token": token,
            "server": server,
            "linger": linger,
            "print_url": print_url,
        }
        self.reporter: SweepReporter | None = None
        self._reported: set[int] = set()
        self._before: set[int] | None = None  # trials of the study before this session (not ours)

    @property
    def summary(self) -> wire.NotificationEvent | None:
        """The sweep's summary once :meth:`finish` ran (else ``None``)."""
        return None if self.reporter is None else self.reporter.summary

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna's callback: ``trial`` has just ended."""
        self.report(study, trial)

    def begin(self, study: optuna.Study) -> None:
        """Serve the sweep's own job now, and remember the study's earlier trials (a resumed
        study): they are not this sweep's."""
        self._reporter(study).start()
        if self._before is None:
            # Enqueued (WAITING) trials are this sweep's: they run in the coming optimize().
            self._before = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def report(self, study: optuna.Study, trial: FrozenTrial, *, error: BaseException | None = None) -> None:
        """Report one ended trial (once); ``error``: the exception that failed it, when known."""
        if trial.number in self._reported or trial.number in (self._before or set()):
            return
        if not trial.state.is_finished():
            return
        self._reported.add(trial.number)
        reporter = self._reporter(study)
        key = str(trial.number)
        reporter.trial_started(key, trial.params, name=f"{reporter.name} #{trial.number}")
        steps = trial.intermediate_values
        last_step = max(steps) if steps else 0
        values = trial.values or []
        if values:
            reporter.trial_result(key, last_step, {reporter.metric or "value": values[0]})
        elif steps:
            reporter.trial_result(key, last_step, {reporter.metric or "value": steps[last_step]})
        if trial.state is TrialState.COMPLETE:
            reporter.trial_ended(key, wire.JobState.COMPLETED)
        elif trial.state is TrialState.PRUNED:
            reporter.trial_ended(key, wire.JobState.CANCELLED, reason=f"pruned at step {last_step}")
        elif isinstance(error, KeyboardInterrupt):
            reporter.trial_ended(key, wire.JobState.CANCELLED, reason="interrupted (Ctrl+C)")
        else:
            what = summarize_exception(error) if isinstance(error, Exception) else "the objective failed"
            error_type = classify_exception(error) if isinstance(error, Exception) else "training_error"
            reporter.trial_ended(
                key, wire.JobState.FAILED, reason=what, error=f"trial {trial.number}: {what}", error_type=error_type
            )

    def finish(self, study: optuna.Study, *, stopped: str | None = None) -> wire.NotificationEvent | None:
        """The study's session is over: report every trial the callbacks missed, then the summary.

        ``stopped``: why ``optimize`` ended early (the exception that escaped it)."""
        for trial in study.get_trials(deepcopy=False):
            self.report(study, trial)
        return None if self.reporter is None else self.reporter.finish(stopped)

    def _reporter(self, study: optuna.Study) -> SweepReporter:
        if self.reporter is None:
            names = study.metric_names
            direction = study.directions[0]
            self.reporter = SweepReporter(
                self.name or study.study_name,
                metric=self.metric or (names[0] if names else "value"),
                mode="max" if direction == optuna.study.StudyDirection.MAXIMIZE else "min",
                expected_jobs=self.expected_trials,
                **self._options,
            )
        return self.reporter


@contextmanager
def notify_study(
    study: optuna.Study, *, n_trials: int | None = None, name: str | None = None, **options: Any
) -> Iterator[NotifyCallback]:
    """Wrap ``study.optimize``: yields the callback to pass in ``callbacks=[...]``; see the module docstring.

    ``options`` go to :class:`NotifyCallback`. The exception that ended ``optimize`` is re-raised.
    """
    callback = NotifyCallback(name, expected_trials=n_trials, **options)
    callback.begin(study)
    stopped: str | None = None
    try:
        yield callback
    except BaseException as exc:
        # Not in catch=: Optuna marked the trial FAIL and skipped the callbacks. It is the last one.
        failed = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.FAIL, TrialState.RUNNING)]
        if failed:
            callback.report(study, failed[-1], error=exc)
        stopped = "interrupted (Ctrl+C)" if isinstance(exc, KeyboardInterrupt) else f"stopped by {type(exc).__name__}"
        raise
    finally:
        callback.finish(study, stopped=stopped)
