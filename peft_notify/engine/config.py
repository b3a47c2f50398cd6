"""Engine configuration and the user's message templates.

Build one :class:`EngineConfig` (all fields defaulted) and hand it to
``Engine``. Templates are rendered by :class:`Templates`, which never raises:
a template that fails to format falls back to the default text and the error
is remembered in ``Templates.errors`` (shown by ``peft-notify doctor``).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Final

from peft_notify.engine.resources import ResourceThresholds
from peft_notify.wire import NotificationType

__all__ = [
    "DEFAULT_COMPLETION_MESSAGE",
    "DEFAULT_COMPLETION_TITLE",
    "DEFAULT_MILESTONE_MESSAGE",
    "DEFAULT_MILESTONE_TITLE",
    "TEMPLATE_NAMES",
    "EngineConfig",
    "TemplateValues",
    "Templates",
    "format_eta",
]

log = logging.getLogger(__name__)

DEFAULT_MILESTONE_TITLE: Final = "{job}: {percent}% complete"
DEFAULT_MILESTONE_MESSAGE: Final = "Step {step}/{total} · ETA {eta}"
DEFAULT_COMPLETION_TITLE: Final = "{job}: training complete"
DEFAULT_COMPLETION_MESSAGE: Final = "{job} finished at step {step}."

#: The user's message templates: the same-named fields of EngineConfig and of the desktop Settings.
TEMPLATE_NAMES: Final = ("milestone_title", "milestone_message", "completion_title", "completion_message")


def format_eta(seconds: float | None, unknown: str = "unknown") -> str:
    """Seconds → ``"1h 02m"``, ``"3m 20s"``, ``"45s"``; ``unknown`` for None, negative or non-finite."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return unknown
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class _Slot:
    """A template value that formats as ``missing`` when absent, whatever the format spec."""

    __slots__ = ("_missing", "_text", "_value")

    def __init__(self, value: float | int | None, text: str, missing: str = "n/a") -> None:
        self._value = value
        self._text = text
        self._missing = missing

    def __format__(self, spec: str) -> str:
        if self._value is None:
            return self._missing
        if not spec:
            return self._text
        return format(self._value, spec)

    def __str__(self) -> str:
        return self._text if self._value is not None else self._missing


@dataclass(frozen=True, slots=True)
class TemplateValues:
    """What a template may name: ``{job} {percent} {step} {total} {eta} {loss}``."""

    job: str
    percent: int
    step: int
    total: int | None
    eta_s: float | None
    loss: float | None

    def mapping(self) -> dict[str, object]:
        return {
            "job": self.job,
            "percent": self.percent,
            "step": self.step,
            "total": _Slot(self.total, str(self.total), missing="?"),
            "eta": _Slot(self.eta_s, format_eta(self.eta_s), missing="unknown"),
            "loss": _Slot(self.loss, f"{self.loss:.4g}" if self.loss is not None else ""),
        }


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine's rules can be tuned by. Frozen; all fields defaulted.

    ``milestones`` are percentages in 1..99 that pop up once per run; 100 is the
    completion (always on, whatever the list says). ``popup_kinds`` are the
    notification kinds that may pop up; the others are recorded with reason
    ``FILTERED`` — except errors, which always pop up (they are never dropped).
    ``taskbar_max_hz`` <= 0 disables coalescing.
    """

    milestones: tuple[int, ...] = (25, 50, 75, 100)
    milestone_title: str = DEFAULT_MILESTONE_TITLE
    milestone_message: str = DEFAULT_MILESTONE_MESSAGE
    completion_title: str = DEFAULT_COMPLETION_TITLE
    completion_message: str = DEFAULT_COMPLETION_MESSAGE
    popup_kinds: frozenset[NotificationType] = field(default_factory=lambda: frozenset(NotificationType))
    respect_dnd: bool = True
    taskbar_max_hz: float = 10.0
    dedup_window_s: float = 60.0
    rate_capacity: int = 5
    rate_refill_s: float = 12.0
    error_popups_per_minute: int = 3  # more errors of a job are merged into one summary popup (<= 0: never)
    stall_min_s: float = 300.0
    stall_factor: float = 10.0
    sounds: bool = True
    resources: ResourceThresholds = field(default_factory=ResourceThresholds)  # docs/resources.md
    group_trial_popups: bool = False  # milestones/completion of a group's trials pop up (docs/sweeps.md)
    group_grace_s: float = 120.0  # a group whose jobs all ended ends after this long without a new one

    @functools.cached_property
    def progress_milestones(self) -> tuple[int, ...]:
        """The milestones below 100, sorted and unique (100 is the completion). Computed once."""
        return tuple(sorted({int(m) for m in self.milestones if 0 < m < 100}))

    @property
    def taskbar_interval_s(self) -> float:
        """Minimum seconds between two taskbar value updates (0: no coalescing)."""
        if not math.isfinite(self.taskbar_max_hz) or self.taskbar_max_hz <= 0:
            return 0.0
        return 1.0 / self.taskbar_max_hz


class Templates:
    """Renders the config's templates; never raises.

    Call :meth:`render` with the template and its default. A template that fails
    (unknown name, bad format spec, stray brace) is logged once, remembered in
    :attr:`errors`, and the default is used instead.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def render(self, template: str, default: str, values: TemplateValues) -> str:
        mapping = values.mapping()
        try:
            return template.format_map(mapping)
        except (KeyError, ValueError, IndexError, AttributeError, TypeError) as exc:
            error = f"template {template!r} failed ({type(exc).__name__}: {exc}); using the default"
            if error not in self.errors:
                log.warning("%s", error)
                self.errors.append(error)
            return default.format_map(mapping)
