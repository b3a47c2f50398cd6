"""AppShell: closing to the tray (or quitting without one), second-launch messages, mute, tray refresh."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytestqt.qtbot import QtBot

from peft_notify.app.controller import Controller
from peft_notify.app.jobs_model import JobRow
from peft_notify.app.shell import AppShell
from peft_notify.desktop.settings import Settings, load_settings, save_settings
from peft_notify.engine import Engine
from peft_notify.testing import MemoryHistoryStore, RecordingNotifier, RecordingTaskbar, ScriptedDndProbe
from tests.app.app_support import ClientFactory


def make_shell(qtbot: QtBot, tmp_path: Path, settings: Settings | None = None) -> tuple[AppShell, ClientFactory]:
    clients = ClientFactory()
    path = tmp_path / "settings.toml"
    settings = settings or Settings()
    history = MemoryHistoryStore()
    controller = Controller(
        settings,
        engine=Engine(),
        history=history,
        notifiers=[RecordingNotifier()],
        taskbar=RecordingTaskbar(),
        dnd_probe=ScriptedDndProbe(),
        client_factory=clients,
        save_settings=lambda s: save_settings(s, path),
    )
    shell = AppShell(settings, history)
    shell.attach(controller)
    qtbot.addWidget(shell.window)
    return shell, clients


def test_close_quits_when_there_is_no_tray(qtbot: QtBot, tmp_path: Path) -> None:
    shell, _ = make_shell(qtbot, tmp_path)
    shell.tray.available = False
    shell.window.show()
    shell.on_close_requested()
    assert shell._quit.is_set()


def test_close_hides_to_tray_and_says_so_once(qtbot: QtBot, tmp_path: Path) -> None:
    shell, _ = make_shell(qtbot, tmp_path)
    shell.tray.available = True
    shell.window.show()
    shell.on_close_requested()
    assert not shell._quit.is_set()
    assert shell.window.isHidden()
    assert shell.controller.settings.told_about_tray
    assert load_settings(tmp_path / "settings.toml").told_about_tray  # remembered across restarts


def test_second_launch_subscribes_and_shows(qtbot: QtBot, tmp_path: Path) -> None:
    shell, clients = make_shell(qtbot, tmp_path)

    async def scenario() -> None:
        url = "ws://127.0.0.1:9/ws/notifications/j"
        shell.on_instance_message({"urls": [url, 3], "token": "t", "show": True, "persist": False})
        assert clients.last(url).token == "t"
        assert shell.controller.settings.subscriptions == ()  # persist: False (the demo's URLs)
        await shell.controller.shutdown()

    asyncio.run(scenario())
    assert shell.window.isVisible()


def test_mute_and_tray_refresh(qtbot: QtBot, tmp_path: Path) -> None:
    shell, _ = make_shell(qtbot, tmp_path)
    shell.on_mute(True)
    assert shell.controller.settings.sounds is False
    shell.controller.rows["k"] = JobRow(key="k", job_id="j", name="llama", state="running", fraction=0.5)
    shell.refresh_tray()
    assert "llama: 50% — running" in shell.tray.icon.toolTip()
    assert not shell.window.windowIcon().isNull()


def test_the_product_icon_comes_at_the_window_icon_sizes_without_the_svg_engine(qtbot: QtBot) -> None:
    from PySide6.QtCore import QSize

    from peft_notify.app.shell import product_icon

    icon = product_icon()
    # What X11 (_NET_WM_ICON) and taskbars ask for, as the SVG gave; made from the PNG, so showing
    # it does not load QtSvg and its icon engine (bench/memory.py).
    assert {QSize(s, s) for s in (16, 32, 64, 128)} <= set(icon.availableSizes())
    assert not icon.pixmap(128, 128).isNull()
