"""Tests for peft_notify.platform.choose and linux_desktop_file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from peft_notify.appinfo import APP_ID
from peft_notify.platform.choose import (
    Candidate,
    Selection,
    desktop_names,
    select_dnd_probe,
    select_notifiers,
    select_taskbar,
)
from peft_notify.platform.dnd import CachedDndProbe, NullDndProbe
from peft_notify.platform.linux_desktop_file import desktop_entry, desktop_file_path, icon_path, install_desktop_file
from peft_notify.platform.session_bus import SessionBus
from peft_notify.ports import DndState, Notifier
from peft_notify.testing import RecordingNotifier, ScriptedDndProbe
from tests.platform.platform_support import PrivateDunst

REPO = Path(__file__).resolve().parents[2]


def _no_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)


def test_desktop_names() -> None:
    assert desktop_names({"XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}) == ("ubuntu", "GNOME")
    assert desktop_names({"XDG_SESSION_DESKTOP": "KDE"}) == ("KDE",)
    assert desktop_names({}) == ()


def test_without_a_bus_notifiers_fall_back_with_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_bus(monkeypatch)
    tray = RecordingNotifier(name="tray-balloon")
    selection = asyncio.run(
        select_notifiers(lambda *_: None, extra=[Candidate("tray-balloon", lambda: tray)], platform="linux")
    )
    assert selection.names == ("tray-balloon", "log")
    assert selection.primary is tray
    assert selection.skipped[0].name == "desktop-notifier"
    assert "no session D-Bus" in selection.skipped[0].reason
    assert not selection.only_fallback
    lines = selection.describe()
    assert lines[0] == "notifier: tray-balloon → log"
    assert lines[1].startswith("  skipped desktop-notifier: no session D-Bus")


def test_only_the_log_left_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_bus(monkeypatch)

    def broken() -> Notifier:
        raise RuntimeError("no system tray")

    selection = asyncio.run(
        select_notifiers(lambda *_: None, extra=[Candidate("tray-balloon", broken)], platform="linux")
    )
    assert selection.names == ("log",)
    assert selection.only_fallback
    assert [s.name for s in selection.skipped] == ["desktop-notifier", "tray-balloon"]
    assert selection.skipped[1].reason == "no system tray"


def test_prefer_moves_a_candidate_first_and_warns_when_it_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _no_bus(monkeypatch)
    selection = asyncio.run(select_notifiers(lambda *_: None, prefer="log", platform="linux"))
    assert selection.names == ("log",)
    selection = asyncio.run(select_notifiers(lambda *_: None, prefer="desktop-notifier", platform="linux"))
    assert "desktop-notifier unavailable" in caplog.text
    assert "the notifier you chose (desktop-notifier) is not available" in caplog.text


def test_taskbar_without_bus_is_null(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_bus(monkeypatch)
    selection = asyncio.run(select_taskbar(platform="linux"))
    assert selection.names == ("none",)
    assert selection.skipped[0].name == "unity-launcher-entry"


def test_windows_taskbar_without_hwnd_is_skipped() -> None:
    selection = asyncio.run(select_taskbar(platform="win32"))
    assert selection.names == ("none",)
    assert selection.skipped[0].reason == "the app gave no window handle"


def test_dnd_selection_on_an_unknown_system_is_null_and_extra_probes_count(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_bus(monkeypatch)
    selection = asyncio.run(select_dnd_probe(platform="linux", env={}))
    assert isinstance(selection.primary, NullDndProbe)
    scripted = ScriptedDndProbe([DndState.ON], name="user")
    selection = asyncio.run(select_dnd_probe(platform="linux", env={}, extra=[scripted]))
    assert isinstance(selection.primary, CachedDndProbe)
    assert asyncio.run(selection.primary.state()) is DndState.ON


@pytest.mark.desktop
def test_real_session_picks_dunst_everything(private_dunst: PrivateDunst) -> None:
    async def scenario() -> tuple[Selection[Notifier], Selection[object], Selection[object], DndState]:
        bus = SessionBus()
        notifiers = await select_notifiers(lambda *_: None, bus=bus)
        taskbar = await select_taskbar(bus=bus)
        dnd = await select_dnd_probe(bus=bus, env={"XDG_CURRENT_DESKTOP": "GNOME"})
        private_dunst.ctl("set-paused", "true")
        state = await dnd.primary.state()
        for notifier in notifiers.chosen:
            await notifier.close()
        await bus.close()
        return notifiers, taskbar, dnd, state  # type: ignore[return-value]

    notifiers, taskbar, dnd, state = asyncio.run(scenario())
    assert notifiers.names == ("desktop-notifier", "log")
    assert taskbar.names == ("unity-launcher-entry", "none")
    assert dnd.primary.name.startswith("dunst")
    assert state is DndState.ON


def test_desktop_entry_matches_the_resource_file() -> None:
    assert desktop_entry("peft-notify") == (REPO / "resources" / f"{APP_ID}.desktop").read_text()
    text = desktop_entry("/opt/x/bin/peft-notify")
    assert "Exec=/opt/x/bin/peft-notify app\n" in text
    assert "StartupWMClass=peft-notify\n" in text
    assert f"Icon={APP_ID}\n" in text


def test_install_desktop_file_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert install_desktop_file("/usr/bin/peft-notify") is True
    assert desktop_file_path() == tmp_path / "applications" / f"{APP_ID}.desktop"
    assert "Exec=/usr/bin/peft-notify app" in desktop_file_path().read_text()
    assert icon_path().read_bytes() == (REPO / "resources" / "icons" / f"{APP_ID}.svg").read_bytes()
    assert install_desktop_file("/usr/bin/peft-notify") is False
    assert install_desktop_file("/usr/local/bin/peft-notify") is True
