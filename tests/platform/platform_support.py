"""Helpers for platform tests: captured outputs, and a private dunst on a private session bus.

``private_dunst`` starts its own dbus-daemon + dunst (on the shared Xvfb display) so tests
that pause or kill the notification server never disturb other tests using the shared
desktop session. Tests needing it are marked ``desktop`` and skip without DISPLAY.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@contextlib.contextmanager
def private_session_bus(directory: Path) -> Iterator[str]:
    """A dbus-daemon of our own listening in ``directory``; yields its address, stops it after.

    No <servicedir>: nothing is D-Bus-activated, so "no server" and "server killed" stay true
    (dunst ships a service file and would otherwise be restarted by the first Notify call).
    """
    if not shutil.which("dbus-daemon"):
        pytest.skip("dbus-daemon is not installed")
    config = directory / "bus.conf"
    config.write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f"<busconfig><type>session</type><listen>unix:dir={directory}</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>'
        '<allow own="*"/></policy></busconfig>\n'
    )
    out = subprocess.run(
        ["dbus-daemon", f"--config-file={config}", "--fork", "--nosyslog", "--print-address=1", "--print-pid=1"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    address, pid = (line.strip() for line in out.stdout.split("\n")[:2])
    try:
        yield address
    finally:
        os.kill(int(pid), signal.SIGTERM)


def require_desktop() -> None:
    """Skip unless the real desktop session is available."""
    missing = [v for v in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS") if not os.environ.get(v)]
    if missing:
        pytest.skip(f"needs the desktop session ({', '.join(missing)} unset): see ../shared/desktop-session")


@dataclass
class PrivateDunst:
    address: str
    log: Path
    choice: Path
    dunst: subprocess.Popen[bytes]
    daemon_pid: int

    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def ctl(self, *args: str) -> str:
        return subprocess.run(
            ["dunstctl", *args], env=self.env(), capture_output=True, text=True, timeout=10, check=True
        ).stdout

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        return self.read_until(self.log, needle, timeout)

    @staticmethod
    def read_until(log: Path, needle: str, timeout: float = 10.0) -> str:
        """The text of ``log`` once ``needle`` appears in it (dunst prints asynchronously)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never reached dunst's log:\n{log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        if self.dunst.poll() is None:
            self.dunst.send_signal(signal.SIGTERM)
            self.dunst.wait(10)


def name_owned(address: str, name: str) -> bool:
    out = subprocess.run(
        [
            "dbus-send",
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            f"string:{name}",
        ],
        env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return "boolean true" in out.stdout
