"""The group card (issue 15 part 1): one card per sweep above its trials, counts, best trial, ETA."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from pytestqt.qtbot import QtBot

from peft_notify.app.group_card import GROUP_KEY_PREFIX, group_lines
from peft_notify.app.tray import Tray
from peft_notify.app.window import MainWindow
from peft_notify.engine.groups import GroupView
from peft_notify.wire import Envelope, Group, GroupRole, Hello, JobState, Progress, Status
from tests.app.app_support import ClientFactory, envelope
from tests.app.app_support import hello as plain_hello
from tests.app.test_window import add_row, make_window

GROUP = Group(id="lr-sweep", name="lr sweep", expected_jobs=4, metric="eval_loss", params={"lr": 2e-4, "r": 16})


def feed(win: MainWindow, key: str, job_id: str, *bodies: object, group: Group = GROUP) -> None:
    """Feed the real engine as the monitor would, then tell the window (like the controller's flush)."""
    assert win.controller is not None
    engine = win.controller.engine
    for body in bodies:
        kind = {Hello: "hello", Progress: "progress", Status: "status"}[type(body)]
        engine.feed(Envelope(kind, body, seq=1, job_id=job_id, ts=1_700_000_000.0), now=1_700_000_000.0, job_id=job_id)
    view = engine.job(job_id)
    assert view is not None
    add_row(win.controller, key, job_id=job_id, name=view.name, state=view.state.value)


def hello(name: str, group: Group = GROUP) -> Hello:
    return Hello(name=name, run_id=f"{name}-r", total_steps=10, group=group)


def test_a_group_card_sits_above_its_trials_and_counts_them(qtbot: QtBot) -> None:
    win = make_window()
    qtbot.addWidget(win)
    feed(win, "ws://h:1/ws/notifications/a", "a@h:1", hello("trial a"), Progress(10, 10, metrics={"eval_loss": 0.5}))
    feed(win, "ws://h:2/ws/notifications/b", "b@h:2", hello("trial b"), Progress(3, 10))
    feed(win, "ws://h:3/ws/notifications/c", "c@h:3", hello("trial c"), Status(JobState.FAILED, "oom"))
    gkey = GROUP_KEY_PREFIX + "lr-sweep"
    assert list(win.groups.cards) == [gkey]
    card = win.groups.cards[gkey]
    assert win.job_list.row(win.groups.items[gkey]) == 0  # above the first trial
    assert card.name.text() == "Sweep: lr sweep"
    assert card.state.text() == "1 running"
    assert card.counts.text() == "2/4 ended · 1 ok · 1 failed"
    assert card.best.text() == "best eval_loss 0.5 (lr=2e-4, r=16)"
    assert card.trials.text().splitlines() == [
        "• trial a — completed",
        "• trial b — running",
        "• trial c — failed",
    ]
    # Removing every subscription of the group removes its card.
    for key in ("ws://h:1/ws/notifications/a", "ws://h:2/ws/notifications/b", "ws://h:3/ws/notifications/c"):
        win.on_job_removed(key)
    assert win.groups.cards == {}


def test_the_sweep_driver_card_is_hidden_behind_the_group_card(qtbot: QtBot) -> None:
    win = make_window()
    qtbot.addWidget(win)
    assert win.controller is not None
    key = "ws://h:9/ws/notifications/drv"
    conn = win.controller.monitor.add(key)
    conn.group = replace(GROUP, role=GroupRole.SWEEP)  # what the monitor keeps from the driver's hello
    feed(win, key, conn.job_key, hello("lr sweep", replace(GROUP, role=GroupRole.SWEEP)))
    assert win.items[key].isHidden()
    assert win.groups.cards[GROUP_KEY_PREFIX + "lr-sweep"].state.text() == "Waiting for trials"


def test_group_lines_and_trial_line_text() -> None:
    view = GroupView(
        group_id="g",
        name="g",
        round=1,
        total=40,
        expected=40,
        running=3,
        done=7,
        failed=2,
        pruned=1,
        cancelled=0,
        best_value=0.41,
        best_metric="eval_loss",
        best_params={"lr": 2e-4, "r": 16},
        best_job_id="t7",
        eta_s=3720.0,
        ended=False,
        job_ids=(),
    )
    assert group_lines(view) == (
        "3 running",
        "10/40 ended · 7 ok · 2 failed · 1 pruned · ETA 1h 02m",
        "best eval_loss 0.41 (lr=2e-4, r=16)",
    )
    assert group_lines(replace(view, ended=True, running=0))[0] == "finished"
    assert "ETA" not in group_lines(replace(view, ended=True))[1]


def test_tray_all_running_jobs_finished_toggle(qapp: Any, client_factory: ClientFactory) -> None:
    """Tray "tell me when all running jobs have finished": one popup when the last ends, then unchecked."""
    from tests.app.test_controller import Rig

    rig = Rig(client_factory)
    tray = Tray()
    tray.all_jobs_requested.connect(rig.controller.watch_all_jobs)  # as app/shell.py wires them
    rig.controller.all_jobs_watch_changed.connect(tray.set_all_jobs_watched)
    urls = [f"ws://127.0.0.1:{9 + i}/ws/notifications/job-{i}" for i in range(2)]

    async def scenario() -> None:
        rig.controller.start()
        for i, url in enumerate(urls):
            assert rig.controller.subscribe(url, "tok")
            rig.push(url, envelope(f"job-{i}", 1, plain_hello(name=f"job {i}")))
        await rig.controller.drain()
        tray.all_jobs_action.trigger()  # the user's click
        assert tray.all_jobs_action.isChecked()
        rig.push(urls[0], envelope("job-0", 2, Status(JobState.COMPLETED)))
        await rig.controller.drain()
        assert tray.all_jobs_action.isChecked()  # job 1 still runs
        rig.push(urls[1], envelope("job-1", 2, Status(JobState.FAILED, "boom")))
        await rig.controller.drain()
        await rig.controller.shutdown()

    asyncio.run(scenario())
    titles = [r.event.title for r in rig.notifier.requests]
    assert titles.count("All 2 running jobs finished") == 1
    assert not tray.all_jobs_action.isChecked()  # it fired and disarmed


def test_group_settings_reach_the_engine(tmp_path: Any) -> None:
    """settings.toml: group_trial_popups / group_grace_s (docs/sweeps.md) configure the app's engine."""
    from peft_notify.app.main import engine_config
    from peft_notify.desktop.settings import load_settings

    path = tmp_path / "settings.toml"
    path.write_text("group_trial_popups = true\ngroup_grace_s = 30\n")
    config = engine_config(load_settings(path))
    assert (config.group_trial_popups, config.group_grace_s) == (True, 30.0)
    path.write_text("group_grace_s = -1\n")
    assert load_settings(path).load_error  # refused in one line, defaults kept
    assert engine_config(load_settings(tmp_path / "missing.toml")).group_trial_popups is False
