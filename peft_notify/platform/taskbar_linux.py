"""Linux launcher progress through the Unity LauncherEntry D-Bus API (dbus-fast).

Honoured by KDE Plasma's task manager, Dash to Dock / Ubuntu Dock, Dash to Panel,
Plank and elementary's dock; stock GNOME Shell ignores it. The launcher matches
``application://<APP_ID>.desktop`` against an installed desktop file
(:mod:`peft_notify.platform.linux_desktop_file`). Methods never block: each call
records the wanted state and a single background task sends the latest one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from peft_notify.appinfo import APP_ID
from peft_notify.platform.session_bus import BusError, SessionBus
from peft_notify.ports import TaskbarState

__all__ = ["LAUNCHER_INTERFACE", "LAUNCHER_PATH", "UnityLauncherEntry", "launcher_properties"]

log = logging.getLogger(__name__)

# https://wiki.ubuntu.com/Unity/LauncherAPI: signal Update(s app_uri, a{sv} properties)
LAUNCHER_INTERFACE = "com.canonical.Unity.LauncherEntry"
LAUNCHER_PATH = "/com/canonical/unity/launcherentry/peft_notify"


def launcher_properties(
    value: float | None, state: TaskbarState, *, count: int | None = None, urgent: bool | None = None
) -> dict[str, tuple[str, Any]]:
    """The ``a{sv}`` payload as (signature, value) pairs for one state.

    ``progress`` must be a double and ``count`` an int64 (``x``): Dash to Panel rejects
    other types. Progress is ignored unless ``progress-visible`` is true.
    """
    props: dict[str, tuple[str, Any]] = {}
    if state is TaskbarState.NONE or value is None:
        props["progress-visible"] = ("b", False)
    else:
        shown = 0.0 if state is TaskbarState.INDETERMINATE else min(1.0, max(0.0, float(value)))
        props["progress"] = ("d", shown)
        props["progress-visible"] = ("b", True)
    if state is TaskbarState.ERROR:
        props["urgent"] = ("b", True)
    if urgent is not None:
        props["urgent"] = ("b", urgent)
    if count is not None:
        props["count"] = ("x", int(count))
        props["count-visible"] = ("b", count > 0)
    return props


class UnityLauncherEntry:
    """TaskbarProgress over ``com.canonical.Unity.LauncherEntry.Update`` signals."""

    name = "unity-launcher-entry"

    def __init__(self, bus: SessionBus, app_uri: str = f"application://{APP_ID}.desktop") -> None:
        self.app_uri = app_uri
        self._bus = bus
        self._queue: list[dict[str, tuple[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.last_error: str | None = None

    def set(self, value: float, state: TaskbarState) -> None:
        self._post(launcher_properties(value, state, urgent=None if state is TaskbarState.ERROR else False))

    def clear(self) -> None:
        self._post(launcher_properties(None, TaskbarState.NONE, urgent=False))

    def attention(self, critical: bool) -> None:
        self._post({"urgent": ("b", True)})

    def badge(self, count: int) -> None:
        self._post({"count": ("x", int(count)), "count-visible": ("b", count > 0)})

    def _post(self, props: dict[str, tuple[str, Any]]) -> None:
        self._queue.append(props)
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                log.debug("no running loop; launcher update dropped")
                self._queue.clear()
                return
            self._task = loop.create_task(self._drain())

    async def flush(self) -> None:
        """Wait until every posted update was sent (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        from dbus_fast import Variant

        while self._queue:
            merged: dict[str, tuple[str, Any]] = {}
            for props in self._queue:
                merged.update(props)  # coalesce: only the latest value of each key matters
            self._queue.clear()
            body = [self.app_uri, {k: Variant(sig, v) for k, (sig, v) in merged.items()}]
            try:
                await self._bus.emit_signal(LAUNCHER_PATH, LAUNCHER_INTERFACE, "Update", signature="sa{sv}", body=body)
                self.sent += 1
                self.last_error = None
            except BusError as exc:
                if self.last_error is None:
                    log.warning("launcher progress not sent: %s", exc)
                self.last_error = str(exc)
