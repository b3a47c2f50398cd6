"""The seed-compatible API (PEFT Studio's notification_service) over the engine's logic."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import types

import pytest

import peft_notify
from peft_notify import seed
from peft_notify.ports import DndState
from peft_notify.seed import (
    NotificationManager,
    ProgressUpdate,
    calculate_taskbar_progress,
    check_do_not_disturb,
    check_progress_milestone,
    create_error_notification,
    create_warning_notification,
)
from peft_notify.testing import ScriptedDndProbe
from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel


def test_seed_names_are_importable_from_the_package() -> None:
    assert peft_notify.NotificationManager is NotificationManager
    assert peft_notify.ProgressUpdate is ProgressUpdate
    assert peft_notify.check_progress_milestone is check_progress_milestone
    assert peft_notify.create_error_notification is create_error_notification
    assert peft_notify.create_warning_notification is create_warning_notification
    assert peft_notify.check_do_not_disturb is check_do_not_disturb
    assert peft_notify.calculate_taskbar_progress is calculate_taskbar_progress
    assert peft_notify.NotificationEvent is NotificationEvent
    assert peft_notify.NotificationType is NotificationType


# ---------------------------------------------------------------- milestones


@pytest.mark.parametrize(
    ("current", "previous", "milestone", "title", "kind"),
    [
        (250, 200, 25, "Training 25% Complete", NotificationType.PROGRESS),
        (500, 400, 50, "Training Halfway There!", NotificationType.PROGRESS),
        (750, 600, 75, "Training 75% Complete", NotificationType.PROGRESS),
        (1000, 900, 100, "Training Complete! 🎉", NotificationType.COMPLETION),
    ],
)
def test_check_progress_milestone_titles(
    current: int, previous: int, milestone: int, title: str, kind: NotificationType
) -> None:
    event = check_progress_milestone(current, 1000, previous)
    assert event is not None
    assert (event.milestone, event.title, event.type) == (milestone, title, kind)
    assert event.sound is (milestone == 100)
    assert event.urgency == "normal"


def test_check_progress_milestone_fires_the_highest_crossed_naming_the_passed() -> None:
    # Issue 11: the highest milestone crossed wins (was the lowest), naming the ones passed on the way.
    event = check_progress_milestone(800, 1000, 100)
    assert event is not None
    assert event.milestone == 75
    assert "passed 25 % and 50 % too" in event.message


def test_check_progress_milestone_completion_wins_over_milestones_passed() -> None:
    event = check_progress_milestone(1000, 1000, 620)
    assert event is not None
    assert (event.milestone, event.type, event.sound) == (100, NotificationType.COMPLETION, True)
    assert "passed 75 % too" in event.message


def test_check_progress_milestone_none_cases() -> None:
    assert check_progress_milestone(260, 1000, 250) is None
    assert check_progress_milestone(10, 0, 0) is None
    assert check_progress_milestone(10) is None


def test_check_progress_milestone_accepts_a_progress_update() -> None:
    event = check_progress_milestone(ProgressUpdate(current_step=250, total_steps=1000, previous_step=200))
    assert event is not None
    assert event.milestone == 25


# ---------------------------------------------------------------- errors, warnings, taskbar


@pytest.mark.parametrize(
    ("error_type", "urgency", "expected"),
    [
        ("oom_error", None, "critical"),
        ("cuda_error", "low", "critical"),
        ("system_crash", None, "critical"),
        ("loss_divergence", None, "high"),
        ("gradient_explosion", None, "high"),
        ("data_error", "critical", "high"),
        ("training_error", None, "normal"),
        ("other", "high", "high"),
    ],
)
def test_create_error_notification(error_type: str, urgency: str | None, expected: str) -> None:
    event = create_error_notification("Out of memory", error_type, urgency)
    assert event.type is NotificationType.ERROR
    assert event.title == "Training Error"
    assert event.message == "Out of memory"
    assert event.urgency == expected
    assert event.sound is True
    assert event.actions == ["View Details", "Retry"]
    assert event.respect_dnd is False


def test_create_error_notification_defaults() -> None:
    event = create_error_notification("boom")
    assert event.urgency == UrgencyLevel.NORMAL
    assert event.error_type == "training_error"


def test_create_warning_notification() -> None:
    event = create_warning_notification("loss plateau")
    assert (event.type, event.title, event.message) == (NotificationType.WARNING, "Training Warning", "loss plateau")
    assert event.urgency == "normal"
    assert event.sound is False
    assert event.respect_dnd is True


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [(450, 1000, 0.45), (1000, 1000, 1.0), (2000, 1000, 1.0), (-1, 10, 0.0), (5, 0, 0.0)],
)
def test_calculate_taskbar_progress(current: int, total: int, expected: float) -> None:
    assert calculate_taskbar_progress(current, total) == expected


# ---------------------------------------------------------------- NotificationManager


def test_manager_get_next_notification_sets_taskbar_and_marks_sent() -> None:
    manager = NotificationManager(dnd_check=lambda: False)
    update = ProgressUpdate(current_step=250, total_steps=1000, previous_step=200)
    assert manager.should_send_notification(update)
    event = manager.get_next_notification(update)
    assert event is not None
    assert event.milestone == 25
    assert event.taskbar_progress == 0.25
    assert manager.sent_milestones == {25}
    assert manager.last_notification_step == 250
    assert not manager.should_send_notification(update)
    assert manager.get_next_notification(update) is None


def test_manager_sends_the_completion_when_a_jump_crosses_75_and_100() -> None:
    # Issue 11: this returned the 75 % event, so the completion (with its sound) was never sent.
    manager = NotificationManager(dnd_check=lambda: False)
    event = manager.get_next_notification(ProgressUpdate(current_step=1000, total_steps=1000, previous_step=620))
    assert event is not None
    assert (event.milestone, event.type, event.sound) == (100, NotificationType.COMPLETION, True)
    assert event.title == "Training Complete! 🎉"
    assert "passed 75 % too" in event.message
    assert event.taskbar_progress == 1.0
    assert manager.sent_milestones == {75, 100}
    again = manager.get_next_notification(ProgressUpdate(current_step=1000, total_steps=1000, previous_step=0))
    assert again is not None and again.milestone == 50  # 25 and 50 were never sent; 75 and 100 never twice
    assert manager.get_next_notification(ProgressUpdate(current_step=1000, total_steps=1000, previous_step=0)) is None


def test_manager_jump_returns_the_highest_milestone_and_each_once() -> None:
    manager = NotificationManager(dnd_check=lambda: False)
    event = manager.get_next_notification(ProgressUpdate(current_step=600, total_steps=1000, previous_step=200))
    assert event is not None
    assert event.milestone == 50
    assert event.message.startswith("50 % — passed 25 % too")
    assert manager.sent_milestones == {25, 50}
    # A later jump over 25/50/75 only names what was not sent yet.
    event = manager.get_next_notification(ProgressUpdate(current_step=800, total_steps=1000, previous_step=0))
    assert event is not None
    assert event.milestone == 75
    assert "passed" not in event.message
    assert manager.get_next_notification(ProgressUpdate(current_step=800, total_steps=1000, previous_step=0)) is None
    assert manager.sent_milestones == {25, 50, 75}


def test_manager_under_dnd_suppresses_but_marks_sent() -> None:
    dnd = [True]
    manager = NotificationManager(dnd_check=lambda: dnd[0])
    assert manager.dnd_enabled
    update = ProgressUpdate(current_step=500, total_steps=1000, previous_step=400)
    assert manager.get_next_notification(update) is None
    assert manager.sent_milestones == {50}
    dnd[0] = False
    assert manager.get_next_notification(update) is None


def test_manager_errors_ignore_dnd() -> None:
    manager = NotificationManager(dnd_check=lambda: True)
    assert manager.should_respect_dnd(create_warning_notification("w"))
    assert not manager.should_respect_dnd(create_error_notification("e"))


def test_manager_mark_and_reset() -> None:
    manager = NotificationManager(dnd_check=lambda: False)
    manager.mark_milestone_sent(75)
    manager.last_notification_step = 9
    manager.reset()
    assert manager.sent_milestones == set()
    assert manager.last_notification_step == -1


def test_manager_uses_check_do_not_disturb_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed, "check_do_not_disturb", lambda: True)
    manager = NotificationManager()
    assert manager.dnd_enabled is True


# ---------------------------------------------------------------- check_do_not_disturb


@pytest.fixture
def platform_select(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Stand-ins for the platform layer's select/session_bus modules, driven by the shipped fake probe."""
    state = types.SimpleNamespace(probe=ScriptedDndProbe([DndState.ON]), closed=0, fail=False)

    async def default_dnd_probe(bus: object = None) -> object:
        if state.fail:
            raise RuntimeError("no probe")
        return state.probe

    class SessionBus:
        async def close(self) -> None:
            state.closed += 1

    monkeypatch.setitem(
        sys.modules, "peft_notify.platform.choose", types.SimpleNamespace(default_dnd_probe=default_dnd_probe)
    )
    monkeypatch.setitem(sys.modules, "peft_notify.platform.session_bus", types.SimpleNamespace(SessionBus=SessionBus))
    return state


def test_check_do_not_disturb_reads_the_platform_probe(platform_select: types.SimpleNamespace) -> None:
    assert check_do_not_disturb() is True
    platform_select.probe.set(DndState.OFF)
    assert check_do_not_disturb() is False
    platform_select.probe.set(DndState.UNKNOWN)
    assert check_do_not_disturb() is False  # unknown counts as off
    assert platform_select.closed == 3


def test_check_do_not_disturb_inside_a_running_loop(platform_select: types.SimpleNamespace) -> None:
    async def main() -> bool:
        return check_do_not_disturb()

    assert asyncio.run(main()) is True


def test_check_do_not_disturb_never_raises(platform_select: types.SimpleNamespace) -> None:
    platform_select.fail = True
    assert check_do_not_disturb() is False

    async def main() -> bool:
        return check_do_not_disturb()

    assert asyncio.run(main()) is False
    assert platform_select.closed == 2


def test_check_do_not_disturb_without_a_platform_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "peft_notify.platform.choose", None)
    assert check_do_not_disturb() is False


def test_check_do_not_disturb_odd_probe_answer_is_unknown(platform_select: types.SimpleNamespace) -> None:
    class Odd:
        async def state(self) -> str:
            return "on"

    platform_select.probe = Odd()
    assert check_do_not_disturb() is False


@pytest.mark.desktop
@pytest.mark.linux
def test_check_do_not_disturb_follows_dunst_pause_on_the_real_session() -> None:
    if not (os.environ.get("DBUS_SESSION_BUS_ADDRESS") and os.environ.get("DISPLAY")):
        pytest.skip("needs the desktop session (DBUS_SESSION_BUS_ADDRESS and DISPLAY)")
    dunstctl = shutil.which("dunstctl")
    if dunstctl is None:
        pytest.skip("dunstctl is not installed")
    subprocess.run([dunstctl, "set-paused", "true"], check=True)
    try:
        assert check_do_not_disturb() is True
    finally:
        subprocess.run([dunstctl, "set-paused", "false"], check=True)
    assert check_do_not_disturb() is False


def test_check_do_not_disturb_accepts_a_sync_default_probe(
    platform_select: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.SimpleNamespace(default_dnd_probe=lambda bus=None: platform_select.probe)
    monkeypatch.setitem(sys.modules, "peft_notify.platform.choose", module)
    assert check_do_not_disturb() is True
