"""Adapter selection installs the desktop entry that docks use to match LauncherEntry progress."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from peft_notify.app.adapters import install_launcher_entry
from peft_notify.appinfo import APP_ID

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG desktop entries are Linux-only")


def test_launcher_entry_is_installed_once_and_kept_up_to_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path / "no-system-entries"))  # even where the .deb is installed
    assert install_launcher_entry() is True
    entry = tmp_path / "applications" / f"{APP_ID}.desktop"
    text = entry.read_text()
    assert "[Desktop Entry]" in text
    assert "StartupWMClass=" in text
    assert install_launcher_entry() is False  # idempotent: nothing rewritten


def test_read_only_data_home_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    assert install_launcher_entry() is False
    assert "no launcher progress" in caplog.text
