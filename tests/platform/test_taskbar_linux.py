"""Tests for peft_notify.platform.taskbar_linux: payloads, and real signals seen by dbus-monitor."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from peft_notify.platform.session_bus import SessionBus
from peft_notify.platform.taskbar import NullTaskbar, TeeTaskbar
from peft_notify.platform.taskbar_linux import UnityLauncherEntry, launcher_properties
from peft_notify.ports import TaskbarProgress, TaskbarState
from peft_notify.testing import RecordingTaskbar
from tests.platform.platform_support import require_desktop


def test_progress_is_a_double_and_visible() -> None:
    assert launcher_properties(0.45, TaskbarState.NORMAL) == {"progress": ("d", 0.45), "progress-visible": ("b", True)}
    assert launcher_properties(1, TaskbarState.NORMAL)["progress"] == ("d", 1.0)
    assert launcher_properties(1.7, TaskbarState.PAUSED)["progress"] == ("d", 1.0)


def test_error_is_urgent_and_none_hides_progress() -> None:
    assert launcher_properties(0.3, TaskbarState.ERROR)["urgent"] == ("b", True)
    assert launcher_properties(None, TaskbarState.NONE) == {"progress-visible": ("b", False)}


def test_count_is_int64() -> None:
    props = launcher_properties(None, TaskbarState.NONE, count=3)
    assert props["count"] == ("x", 3)
    assert props["count-visible"] == ("b", True)


def test_null_and_tee_taskbars() -> None:
    recording = RecordingTaskbar()
    tee = TeeTaskbar([NullTaskbar(), recording])
    assert isinstance(tee, TaskbarProgress)
    tee.set(0.5, TaskbarState.NORMAL)
    tee.attention(True)
    tee.badge(2)
    tee.clear()
    assert recording.calls == [("set", 0.5, TaskbarState.NORMAL), ("attention", True), ("badge", 2), ("clear",)]
    assert tee.name == "none+recording-taskbar"


def test_set_without_a_running_loop_is_dropped_not_raised() -> None:
    entry = UnityLauncherEntry(SessionBus())
    entry.set(0.5, TaskbarState.NORMAL)  # never blocks or raises
    assert entry.sent == 0


@pytest.mark.desktop
def test_update_signal_is_seen_by_dbus_monitor_in_another_process() -> None:
    require_desktop()
    if not shutil.which("dbus-monitor"):
        pytest.skip("dbus-monitor is not installed")
    monitor = subprocess.Popen(
        ["dbus-monitor", "--session", "type='signal',interface='com.canonical.Unity.LauncherEntry'"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    try:
        time.sleep(0.5)  # let dbus-monitor register its match rule before we emit

        async def emit() -> int:
            bus = SessionBus()
            entry = UnityLauncherEntry(bus)
            try:
                entry.set(0.45, TaskbarState.NORMAL)
                await entry.flush()
                entry.badge(3)
                await entry.flush()
                entry.attention(True)
                await entry.flush()
                return entry.sent
            finally:
                await bus.close()

        assert asyncio.run(emit()) == 3
        time.sleep(0.5)
    finally:
        monitor.terminate()
        out, _ = monitor.communicate(timeout=10)
    assert "path=/com/canonical/unity/launcherentry/peft_notify" in out
    assert 'string "application://io.github.peftnotify.PeftNotify.desktop"' in out
    assert 'string "progress"\n         variant             double 0.45' in out
    assert 'string "progress-visible"\n         variant             boolean true' in out
    assert 'string "count"\n         variant             int64 3' in out
    assert 'string "urgent"\n         variant             boolean true' in out
