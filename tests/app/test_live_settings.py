"""Every setting applies at once, without a restart (issue 16): the real controller, monitor and engine."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from pytestqt.qtbot import QtBot

from peft_notify.app.main import engine_config
from peft_notify.app.window import MainWindow
from peft_notify.desktop.history import SqliteHistoryStore
from peft_notify.desktop.quiet_hours import parse_quiet_hours
from peft_notify.desktop.settings import Settings, load_settings, save_settings
from peft_notify.ports import DeliveryStatus, DndState, HistoryQuery
from peft_notify.wire import NotificationEvent, NotificationType
from tests.app.app_support import ClientFactory, envelope, hello, progress
from tests.app.test_controller import URL, Rig


def live_rig(client_factory: ClientFactory, settings: Settings, **kw: Any) -> Rig:
    """The controller as the app builds it: its engine configured from ``settings``."""
    rig = Rig(client_factory, settings, engine_config=engine_config, **kw)
    rig.controller.monitor.set_engine_config(engine_config(settings))
    return rig


def test_milestones_templates_and_popup_kinds_apply_without_a_restart(qapp: Any, client_factory: ClientFactory) -> None:
    rig = live_rig(client_factory, Settings(milestones=(50, 100)))

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(URL)
        rig.push(URL, envelope("job-1", 1, hello()), envelope("job-1", 2, progress(30)))
        await rig.controller.drain()
        assert rig.notifier.requests == []  # 25 % is not a milestone yet
        rig.controller.update_settings(
            dataclasses.replace(
                rig.controller.settings, milestones=(10, 40, 50, 100), milestone_title="{job} is at {percent}!"
            )
        )
        rig.push(URL, envelope("job-1", 3, progress(45)))
        await rig.controller.drain()
        rig.controller.update_settings(dataclasses.replace(rig.controller.settings, popup_kinds=("error",)))
        rig.push(URL, envelope("job-1", 4, progress(55)))
        await rig.controller.drain()
        await rig.controller.shutdown()

    asyncio.run(scenario())
    # 10 % was already passed when it was added: nothing for it; 40 % pops with the new template.
    assert [r.event.title for r in rig.notifier.requests] == ["llama is at 40!"]
    titles = [e.title for e in rig.history.query(HistoryQuery())]
    assert any("50" in t for t in titles)  # recorded, not popped: progress no longer pops up


def test_turning_respect_dnd_off_releases_the_summary_at_once(qapp: Any, client_factory: ClientFactory) -> None:
    rig = live_rig(client_factory, Settings())
    rig.dnd.set(DndState.ON)

    async def scenario() -> None:
        rig.controller.start()
        await rig.controller.poll_dnd()
        rig.controller.subscribe(URL)
        rig.push(
            URL, envelope("job-1", 1, hello()), envelope("job-1", 2, progress(0)), envelope("job-1", 3, progress(30))
        )
        await rig.controller.drain()
        assert rig.notifier.requests == []  # withheld by DND
        rig.controller.update_settings(dataclasses.replace(rig.controller.settings, respect_dnd=False))
        await rig.controller.drain()
        await rig.controller.shutdown()

    asyncio.run(scenario())
    assert [r.event.title for r in rig.notifier.requests] == ["While Do Not Disturb was on"]


def test_quiet_hours_apply_at_once_and_show_in_the_status_bar_and_tray(
    qtbot: QtBot, client_factory: ClientFactory
) -> None:
    from peft_notify.app.shell import AppShell
    from peft_notify.testing import MemoryHistoryStore

    rig = live_rig(client_factory, Settings())
    now = dt.datetime.now()
    whole_day = f"{now:%a}".lower() + " 00:00-24:00"  # today, all day: quiet now whatever the time
    shell = AppShell(Settings(), MemoryHistoryStore())
    qtbot.addWidget(shell.window)
    shell.attach(rig.controller)
    window: MainWindow = shell.window

    async def scenario() -> None:
        rig.controller.start()
        assert await rig.controller.poll_dnd() is DndState.OFF
        rig.controller.update_settings(dataclasses.replace(rig.controller.settings, quiet_hours=whole_day))
        await asyncio.sleep(0)  # the controller asks the probe again at once
        await rig.controller.drain()
        assert rig.controller.dnd is DndState.ON
        rig.controller.subscribe(URL)
        rig.push(
            URL, envelope("job-1", 1, hello()), envelope("job-1", 2, progress(0)), envelope("job-1", 3, progress(30))
        )
        rig.push(
            URL,
            envelope(
                "job-1",
                4,
                NotificationEvent(type=NotificationType.ERROR, title="CUDA out of memory", message="oom"),
            ),
        )
        await rig.controller.drain()
        await rig.controller.shutdown()

    asyncio.run(scenario())
    assert [r.event.type for r in rig.notifier.requests] == [NotificationType.ERROR]  # errors come through
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0)
    assert window.status_label.text().startswith(f"Quiet hours until {tomorrow:%a %H:%M}")
    assert shell.tray.dnd_action.text() == f"Do Not Disturb: on (quiet hours until {tomorrow:%a %H:%M})"
    assert rig.controller.quiet_hours == parse_quiet_hours(whole_day)
    shell.close()


def test_retention_applies_at_once(qapp: Any, client_factory: ClientFactory, tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "h.sqlite3", retention_days=90)
    old = NotificationEvent(type=NotificationType.PROGRESS, title="old", message="m")
    store.record("job-1", "llama", old, ts=dt.datetime.now().timestamp() - 10 * 86400, status=DeliveryStatus.SHOWN)
    assert [e.title for e in store.query(HistoryQuery())] == ["old"]
    rig = Rig(client_factory, Settings(), engine_config=engine_config)
    rig.controller.history = store
    rig.controller.update_settings(dataclasses.replace(rig.controller.settings, retention_days=7.0))
    assert [e.title for e in store.query(HistoryQuery())] == []


def test_quiet_hours_setting_round_trips_and_a_bad_one_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    save_settings(Settings(quiet_hours="mon-fri 22:00-08:00"), path)
    assert load_settings(path).quiet_hours == "mon-fri 22:00-08:00"
    path.write_text('quiet_hours = "someday 25:00"\n')
    loaded = load_settings(path)
    assert loaded.quiet_hours == ""
    assert loaded.load_error is not None and "quiet_hours" in loaded.load_error
