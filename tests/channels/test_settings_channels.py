"""Channels in the settings file: references only, never a raw URL (issue 13)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from peft_notify.desktop.settings import ChannelSetting, Settings, load_settings, save_settings


def test_channels_round_trip_as_references(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    channel = ChannelSetting("keyring:abc", "discord://1234/****", "warning", ("llama",), False)
    save_settings(Settings(channels=(channel,)), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_settings(path).channels == (channel,)


def test_a_raw_url_in_the_file_is_refused_not_used(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[[channels]]\nsecret = "discord://1234/SecretToken"\n', encoding="utf-8")
    loaded = load_settings(path)
    assert loaded.channels == ()
    assert loaded.load_error is not None
    assert "secret reference" in loaded.load_error
    assert "SecretToken" not in loaded.load_error


def test_bad_level_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[[channels]]\nsecret = "keyring:x"\nlevel = "loud"\n', encoding="utf-8")
    loaded = load_settings(path)
    assert loaded.channels == ()
    assert loaded.load_error is not None
    assert "channels[0].level: unknown level 'loud'" in loaded.load_error
