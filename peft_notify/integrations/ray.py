"""Ray Tune: one job per trial, grouped under the experiment (docs/sweeps.md).

``tune.Tuner(train_fn, run_config=tune.RunConfig(callbacks=[NotifyCallback(metric="eval_loss")]))``.
Every trial is a job of one group (the experiment) served by one job server in the driver;
the desktop shows a group card, pops up a trial's error at once (with the trial's config),
and shows ONE summary when the last trial has ended ("sweep X: all 40 finished — 37 ok,
3 failed; best eval_loss 0.41 (lr=2e-4, r=16)"). ``expected_jobs`` is Tune's
``total_num_samples``, so the group ends with its last trial; a sweep stopped early (time
budget, a stopper) ends on the desktop after the grace period. On experiment end the
callback prints the same summary on stderr and keeps it in :attr:`NotifyCallback.summary`.

Trial results become progress: ``training_iteration`` is the step, numeric results the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import tune

from peft_notify import wire
from peft_notify.emitter.classify import classify_text
from peft_notify.emitter.server import JobServer
from peft_notify.integrations.sweep import SweepReporter

__all__ = ["NotifyCallback"]

MAX_ERROR: int = 600


class NotifyCallback(tune.Callback):
    """A Tune callback that reports every trial; see the module docstring.

    ``name``: the group's name (default: the experiment's directory name). ``metric`` /
    ``mode``: what "best trial" means (default ``eval_loss`` when reported, else ``loss``;
    ``min``). ``server``: serve on this :class:`JobServer` instead of starting one.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        metric: str | None = None,
        mode: str = "min",
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        server: JobServer | None = None,
        linger: float = 3.0,
        print_url: bool = True,
    ) -> None:
        super().__init__()
        wire.GroupMode(mode)  # ValueError now, not at the first trial
        self.name = name
        self._options: dict[str, Any] = {
            "metric": metric,
            "mode": mode,
            "host": host,
            "port": port,
            "token": token,
            "server": server,
            "linger": linger,
            "print_url": print_url,
        }
        self._expected: int | None = None
        self.reporter: SweepReporter | None = None

    @property
    def summary(self) -> wire.NotificationEvent | None:
        """The sweep's summary once the experiment has ended (else ``None``)."""
        return None if self.reporter is None else self.reporter.summary

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state (for resuming): a live server,
        # its threads and the trials' handles stay behind; a restored callback starts afresh.
        state = dict(self.__dict__)
        state["_options"] = {**self._options, "server": None}
        state["reporter"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ Tune hooks

    def setup(
        self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None, **info: Any
    ) -> None:
        # num_samples = -1 samples until a stopper says so: the size is unknown.
        self._expected = total_num_samples if total_num_samples and total_num_samples > 0 else None

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        reporter = self._reporter(trial)
        reporter.trial_started(str(trial.trial_id), _config(trial), name=f"{reporter.name} {trial.trial_id}")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: Mapping[str, Any], **info: Any
    ) -> None:
        if self.reporter is not None:
            self.reporter.trial_result(str(trial.trial_id), _step(result), result)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.reporter is None:
            return
        last = getattr(trial, "last_result", None) or {}
        if last:
            self.reporter.trial_result(str(trial.trial_id), _step(last), last)
        self.reporter.trial_ended(str(trial.trial_id), wire.JobState.COMPLETED)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.reporter is None:
            return
        trace = _error_text(trial)
        summary = _last_line(trace) or "the trial raised an error"
        self.reporter.trial_ended(
            str(trial.trial_id),
            wire.JobState.FAILED,
            reason=summary[:MAX_ERROR],
            error=f"trial {trial.trial_id}: {summary}"[:MAX_ERROR],
            error_type=classify_text(trace) or "training_error",
        )

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self.reporter is not None:
            self.reporter.finish()

    # ------------------------------------------------------------------ helpers

    def _reporter(self, trial: Any) -> SweepReporter:
        if self.reporter is None:
            name = self.name or str(getattr(trial, "experiment_dir_name", "") or "ray tune")
            self.reporter = SweepReporter(name, expected_jobs=self._expected, **self._options)
        return self.reporter


def _config(trial: Any) -> Mapping[str, Any]:
    config = getattr(trial, "config", None)
    return config if isinstance(config, Mapping) else {}


def _step(result: Mapping[str, Any]) -> int:
    value = result.get("training_iteration", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _error_text(trial: Any) -> str:
    """The trial's error trace: Tune writes it to the driver's ``error_file`` before calling
    ``on_trial_error`` (``get_error()`` reads the storage copy, synced later)."""
    try:
        path = trial.error_file
        if path:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()[-64 * 1024 :]
        return str(trial.get_error() or "")
    except Exception:  # the error file may be gone (remote storage, cleaned up): report without it
        return ""


def _last_line(trace: str) -> str:
    """The exception line of a traceback ("ValueError: boom"), skipping Ray's wrapper lines."""
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
