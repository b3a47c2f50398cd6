"""Fixtures for platform tests (helpers live in platform_support.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.platform_support import PrivateDunst, name_owned, private_session_bus, require_desktop


@pytest.fixture
def private_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private session bus with nothing on it; DBUS_SESSION_BUS_ADDRESS points at it."""
    require_desktop()
    with private_session_bus(tmp_path) as address:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield address


@pytest.fixture
def private_dunst(private_bus: str, tmp_path: Path) -> Iterator[PrivateDunst]:
    """A real dunst that only this test talks to (``-print`` log, scripted dmenu for buttons)."""
    if not shutil.which("dunst"):
        pytest.skip("dunst is not installed")
    choice = tmp_path / "dmenu-choice"
    choice.write_text("")
    dmenu = tmp_path / "fake-dmenu"
    dmenu.write_text(
        "#!/bin/sh\nmenu=$(cat)\n"
        f"printf '%s\\n' \"$menu\" >{tmp_path}/dmenu-last-menu\n"
        f'printf \'%s\\n\' "$menu" | grep -F -m1 -- "$(cat {choice})"\n'
    )
    dmenu.chmod(0o755)
    rc = tmp_path / "dunstrc"
    rc.write_text(f"[global]\n    idle_threshold = 0\n    history_length = 50\n    dmenu = {dmenu}\n")
    log = tmp_path / "dunst.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            ["dunst", "-config", str(rc), "-print"],
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": private_bus},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 15
    while not name_owned(private_bus, "org.freedesktop.Notifications"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"private dunst did not start: {log.read_text(errors='replace')[-1000:]}")
        time.sleep(0.05)
    handle = PrivateDunst(address=private_bus, log=log, choice=choice, dunst=proc, daemon_pid=0)
    try:
        yield handle
    finally:
        handle.kill()


# Tests that run the real OS layers (issue 18 item 7) are marked os_windows / os_macos: they run
# on those systems (.github/workflows/os-runners.yml) and are skipped elsewhere with the reason.
_OS_MARKERS = {"os_windows": ("win32", "Windows"), "os_macos": ("darwin", "macOS")}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, (platform, name) in _OS_MARKERS.items():
        if item.get_closest_marker(marker) is not None and sys.platform != platform:
            pytest.skip(f"runs the real {name} OS layer: only on {name} (see .github/workflows/os-runners.yml)")
