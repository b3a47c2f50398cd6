# ruff: noqa: F821, F722, PLR0917
# mypy: disable-error-code="name-defined,valid-type"
"""A recording ``org.freedesktop.Notifications`` server and LauncherEntry listener (child process).

Run as ``python -m bench.recorder`` with ``DBUS_SESSION_BUS_ADDRESS`` pointing at the bench's
private bus. Prints one JSON object per line on stdout, stamped with ``time.perf_counter_ns()``
(CLOCK_MONOTONIC, the same clock in every process on the machine): ``{"ev": "ready"}``, then
``{"ev": "notify", "t": ns, "summary": ..., "body": ..., "app": ...}`` for every Notify call and
``{"ev": "launcher", "t": ns, "progress": float | null, "visible": bool | null, "urgent": ...}`` for
every ``com.canonical.Unity.LauncherEntry.Update`` signal seen on the bus.

dbus-fast reads the D-Bus signature from string annotations (``'s'``), hence the noqa/mypy lines.
"""

import asyncio
import json
import os
import sys
import time
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method, signal

NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
LAUNCHER_INTERFACE = "com.canonical.Unity.LauncherEntry"


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class RecordingNotifications(ServiceInterface):
    """Accepts every notification, records it, shows nothing."""

    def __init__(self) -> None:
        super().__init__(NOTIFICATIONS)
        self._next_id = 0

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
        t = time.perf_counter_ns()
        self._next_id += 1
        emit({"ev": "notify", "t": t, "id": self._next_id, "app": app_name, "summary": summary, "body": body})
        return self._next_id

    @method()
    def CloseNotification(self, id: "u") -> None:
        self.NotificationClosed(id, 3)

    @method()
    def GetCapabilities(self) -> "as":
        return ["actions", "body", "body-markup", "icon-static", "persistence"]

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["bench-recorder", "peft-notify", "1.0", "1.2"]

    @signal()
    def NotificationClosed(self, id: "u", reason: "u") -> "uu":
        return [id, reason]

    @signal()
    def ActionInvoked(self, id: "u", action_key: "s") -> "us":
        return [id, action_key]


def _unvariant(value: Any) -> Any:
    return value.value if isinstance(value, Variant) else value


def on_message(msg: Message) -> None:
    if msg.message_type is not MessageType.SIGNAL or msg.interface != LAUNCHER_INTERFACE:
        return
    t = time.perf_counter_ns()
    props = msg.body[1] if len(msg.body) > 1 else {}
    emit(
        {
            "ev": "launcher",
            "t": t,
            "uri": msg.body[0] if msg.body else "",
            "progress": _unvariant(props.get("progress")),
            "visible": _unvariant(props.get("progress-visible")),
            "urgent": _unvariant(props.get("urgent")),
            "count": _unvariant(props.get("count")),
        }
    )


async def main() -> None:
    bus = await MessageBus(bus_address=os.environ["DBUS_SESSION_BUS_ADDRESS"]).connect()
    bus.export(NOTIFICATIONS_PATH, RecordingNotifications())
    await bus.request_name(NOTIFICATIONS)
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[f"type='signal',interface='{LAUNCHER_INTERFACE}'"],
        )
    )
    if reply is None or reply.message_type is MessageType.ERROR:
        raise SystemExit(f"AddMatch failed: {reply}")
    bus.add_message_handler(on_message)
    emit({"ev": "ready", "t": time.perf_counter_ns()})
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    asyncio.run(main())
