"""The user's desktop entry vs a packaged one, and the entry written before the reverse-DNS id."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from peft_notify.appinfo import APP_ID
from peft_notify.platform.linux_desktop_file import (
    desktop_entry,
    desktop_file_path,
    install_desktop_file,
    system_desktop_file,
)


@pytest.fixture
def data_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    home, system = tmp_path / "home-data", tmp_path / "usr-share"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setenv("XDG_DATA_DIRS", str(system))
    return home, system


def test_a_packaged_entry_is_used_and_no_user_copy_shadows_it(data_dirs: tuple[Path, Path]) -> None:
    _home, system = data_dirs
    assert system_desktop_file() is None
    packaged = system / "applications" / f"{APP_ID}.desktop"
    packaged.parent.mkdir(parents=True)
    packaged.write_text(desktop_entry("peft-notify"))
    assert system_desktop_file() == packaged
    assert install_desktop_file() is False
    assert not desktop_file_path().exists()


def test_without_a_package_the_app_installs_its_own(data_dirs: tuple[Path, Path]) -> None:
    assert install_desktop_file() is True
    assert desktop_file_path().is_file()
    assert install_desktop_file() is False


def test_frozen_app_points_its_entry_at_its_own_binary(
    data_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/PEFT Notify/peft-notify")
    assert "Exec=/opt/PEFT Notify/peft-notify app\n" in desktop_entry()


def test_the_entry_from_before_the_app_id_is_replaced_but_a_foreign_one_is_kept(data_dirs: tuple[Path, Path]) -> None:
    home, _system = data_dirs
    legacy = home / "applications" / "peft-notify.desktop"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(desktop_entry("/usr/bin/peft-notify").replace(f"Icon={APP_ID}", "Icon=peft-notify"))
    assert install_desktop_file() is True
    assert not legacy.exists()
    # A file of the same name the user wrote (not ours) is left alone.
    legacy.write_text("[Desktop Entry]\nType=Application\nName=My own launcher\nExec=peft-notify\n")
    install_desktop_file()
    assert legacy.exists()
