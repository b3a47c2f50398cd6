"""A hostile freedesktop notification server (run as a script on a private bus; prints "ready").

Its GetServerInformation and GetCapabilities answers carry terminal escape sequences, which
``peft-notify doctor`` prints. (No ``from __future__ import annotations``: dbus-fast reads the
D-Bus signatures from the annotation strings.)
"""

# ruff: noqa: F722, F821, PLR0917
# mypy: ignore-errors

import asyncio
import sys

from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

EVIL = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;pwned\x07\x1b[2J\x9b2J"


class Notifications(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("org.freedesktop.Notifications")

    @method()
    def GetServerInformation(self) -> "ssss":
        return [f"evil{EVIL}", f"vendor{EVIL}", f"1{EVIL}", "1.2"]

    @method()
    def GetCapabilities(self) -> "as":
        return ["body", f"cap{EVIL}"]

    @method()
    def Notify(
        self,
        app_name: "s",
        replaces_id: "u",
        app_icon: "s",
        summary: "s",
        body: "s",
        actions: "as",
        hints: "a{sv}",
        expire_timeout: "i",
    ) -> "u":
        return 1

    @method()
    def CloseNotification(self, notification_id: "u") -> None:
        return None


async def main() -> None:
    bus = await MessageBus().connect()
    bus.export("/org/freedesktop/Notifications", Notifications())
    await bus.request_name("org.freedesktop.Notifications")
    print("ready", flush=True)
    await asyncio.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)


if __name__ == "__main__":
    asyncio.run(main())
