"""EngineConfig and template rendering."""

from __future__ import annotations

import pytest

from peft_notify.engine.config import EngineConfig, Templates, TemplateValues, format_eta
from peft_notify.wire import NotificationType


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (float("inf"), "unknown"),
        (-1.0, "unknown"),
        (0.4, "0s"),
        (45, "45s"),
        (200, "3m 20s"),
        (3720, "1h 02m"),
    ],
)
def test_format_eta(seconds: float | None, text: str) -> None:
    assert format_eta(seconds) == text


def values(**overrides: object) -> TemplateValues:
    base: dict[str, object] = {"job": "j", "percent": 50, "step": 5, "total": 10, "eta_s": 90.0, "loss": 0.123456}
    base.update(overrides)
    return TemplateValues(**base)  # type: ignore[arg-type]


def test_template_values_format_with_and_without_specs() -> None:
    templates = Templates()
    text = templates.render("{job} {percent}% {step}/{total} {eta} {eta:.0f} {loss} {loss:.2f} {total!s}", "", values())
    assert text == "j 50% 5/10 1m 30s 90 0.1235 0.12 10"
    assert templates.errors == []


def test_missing_values_render_placeholders_whatever_the_spec() -> None:
    text = Templates().render("{total} {eta:.1f} {loss:.3f} {loss!s}", "", values(total=None, eta_s=None, loss=None))
    assert text == "? unknown n/a n/a"


@pytest.mark.parametrize("bad", ["{nope}", "{step:q}", "{", "{0}", "{nope[0]}", "{percent:s}"])
def test_bad_template_falls_back_and_remembers_once(bad: str) -> None:
    templates = Templates()
    assert templates.render(bad, "{job} default", values()) == "j default"
    templates.render(bad, "{job} default", values())
    assert len(templates.errors) == 1
    assert repr(bad) in templates.errors[0]


def test_config_defaults_and_derived_values() -> None:
    config = EngineConfig()
    assert config.milestones == (25, 50, 75, 100)
    assert config.progress_milestones == (25, 50, 75)
    assert config.popup_kinds == frozenset(NotificationType)
    assert config.taskbar_interval_s == 0.1
    assert EngineConfig(taskbar_max_hz=0).taskbar_interval_s == 0.0
    assert EngineConfig(taskbar_max_hz=float("nan")).taskbar_interval_s == 0.0
    assert EngineConfig(milestones=(50, 50, 25, 100, 0, 101)).progress_milestones == (25, 50)
