"""Settings: TOML round trip, atomic private writes, bad files never stop the app."""

from __future__ import annotations

import dataclasses
import logging
import stat
from pathlib import Path

import pytest

from peft_notify.desktop.settings import Settings, Subscription, default_settings_path, load_settings, save_settings


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "nope.toml")
    assert settings == Settings()
    assert settings.load_error is None


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "settings.toml"
    original = Settings(
        subscriptions=(
            Subscription("ws://127.0.0.1:8765/ws/notifications/a", token="s3cret"),
            Subscription("ws://gpu:1/ws/notifications/b", paused=True),
        ),
        auto_discover=False,
        milestones=(10, 50, 90),
        milestone_title="{job}: {percent}%",
        popup_kinds=("error", "completion"),
        respect_dnd=False,
        sounds=False,
        close_to_tray=False,
        told_about_tray=True,
        start_minimized=True,
        autostart=True,
        retention_days=30.0,
        taskbar_max_hz=4.0,
    )
    save_settings(original, path)
    assert load_settings(path) == original


def test_file_is_private_because_tokens_live_there(tmp_path: Path) -> None:
    path = save_settings(
        Settings(subscriptions=(Subscription("ws://h:1/ws/notifications/j", "tok"),)), tmp_path / "s.toml"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".settings-")]  # no temp file left


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    save_settings(Settings(sounds=False), path)
    save_settings(Settings(sounds=True, milestones=(50,)), path)
    assert load_settings(path).milestones == (50,)


def test_invalid_toml_gives_defaults_and_keeps_backup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.toml"
    path.write_text("this is = = not toml")
    with caplog.at_level(logging.ERROR, logger="peft_notify.desktop.settings"):
        settings = load_settings(path)
    assert dataclasses.replace(settings, load_error=None) == Settings()
    assert settings.load_error is not None
    assert "using defaults" in settings.load_error
    assert (tmp_path / "s.toml.bak").read_text() == "this is = = not toml"
    assert caplog.records


def test_bad_values_reset_only_those_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'sounds = "loud"\nmilestones = [10, 200]\nrespect_dnd = false\npopup_kinds = ["error", "nonsense"]\n'
        'subscriptions = [{url = "ws://h:1/ws/notifications/j", token = "t"}, {token = 3}]\nfuture_option = 1\n'
    )
    settings = load_settings(path)
    assert settings.respect_dnd is False  # good value kept
    assert settings.sounds is True
    assert settings.milestones == (25, 50, 75, 100)
    assert settings.popup_kinds == Settings().popup_kinds
    assert settings.subscriptions == ()
    assert settings.load_error is not None
    for name in ("sounds", "milestones", "popup_kinds", "subscriptions[1]"):
        assert name in settings.load_error
    assert (tmp_path / "s.toml.bak").exists()


def test_milestones_are_sorted_and_unique(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("milestones = [75, 25, 75]\n")
    assert load_settings(path).milestones == (25, 75)


def test_subscription_helpers() -> None:
    s = Settings().with_subscription(Subscription("ws://a")).with_subscription(Subscription("ws://b"))
    s = s.with_subscription(Subscription("ws://a", token="new"))
    assert [(x.url, x.token) for x in s.subscriptions] == [("ws://b", None), ("ws://a", "new")]
    assert [x.url for x in s.without_subscription("ws://b").subscriptions] == ["ws://a"]


def test_default_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    if not str(default_settings_path()).startswith(str(tmp_path)):
        pytest.skip("platformdirs ignores XDG_CONFIG_HOME on this OS")
    assert default_settings_path() == tmp_path / "peft-notify" / "settings.toml"


def test_resource_thresholds_round_trip_and_reach_the_engine(tmp_path: Path) -> None:
    from peft_notify.app.main import engine_config

    path = tmp_path / "s.toml"
    path.write_text('sounds = true\n[resources]\ngpu_memory_percent = 97\nthrottle_for_s = 5\nenabled = true\n')
    settings = load_settings(path)
    assert settings.load_error is None
    assert dict(settings.resources) == {"gpu_memory_percent": 97, "throttle_for_s": 5, "enabled": True}
    save_settings(settings, path)
    assert load_settings(path).resources == settings.resources
    config = engine_config(settings)
    assert config.resources.gpu_memory_percent == 97.0
    assert config.resources.throttle_for_s == 5.0


def test_a_bad_resource_threshold_resets_the_table_and_says_which(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[resources]\ngpu_memory_percent = -3\n")
    settings = load_settings(path)
    assert settings.resources == ()
    assert settings.load_error is not None
    assert "resources.gpu_memory_percent must be a number >= 0" in settings.load_error
