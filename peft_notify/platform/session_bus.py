"""A lazily connected session D-Bus connection (dbus-fast) with a timeout on every call.

Create one :class:`SessionBus` per event loop and share it between adapters
(notifier check, DND probes, Unity LauncherEntry). Every method raises
:class:`BusError` on failure (no bus, no such name, timeout) — callers decide
whether that means "unavailable" or "unknown". Linux (and BSD) only; importing
this module never imports dbus-fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NOTIFICATIONS_NAME",
    "NOTIFICATIONS_PATH",
    "BusError",
    "ServerInfo",
    "SessionBus",
    "disconnect",
    "notification_server",
]

log = logging.getLogger(__name__)

# Desktop Notifications Specification 1.2, "D-BUS Protocol".
NOTIFICATIONS_NAME = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
_DBUS_NAME = "org.freedesktop.DBus"
_DBUS_PATH = "/org/freedesktop/DBus"
_PROPERTIES = "org.freedesktop.DBus.Properties"


class BusError(Exception):
    """A D-Bus operation failed: no session bus, an error reply, or no answer in time."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """``GetServerInformation`` plus ``GetCapabilities`` of the notification server."""

    name: str
    vendor: str
    version: str
    spec_version: str
    capabilities: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.vendor}, spec {self.spec_version})"


def _unwrap(value: Any) -> Any:
    # A Variant's payload is in .value; nested variants happen in a{sv} dictionaries.
    while hasattr(value, "signature") and hasattr(value, "value"):
        value = value.value
    return value


class SessionBus:
    """One session-bus connection, connected on first use and reconnected after a disconnect."""

    def __init__(self, timeout: float = 1.0, address: str | None = None) -> None:
        self.timeout = timeout
        self._address = address
        self._bus: Any = None
        self._lock: asyncio.Lock | None = None

    @property
    def available(self) -> bool:
        """Whether a session bus address is known at all (no connection attempt)."""
        return bool(self._address or os.environ.get("DBUS_SESSION_BUS_ADDRESS"))

    async def connection(self) -> Any:
        """The connected ``dbus_fast.aio.MessageBus``. Raises :class:`BusError`."""
        if self._bus is not None and self._bus.connected:
            return self._bus
        if not self.available:
            raise BusError("no session D-Bus (DBUS_SESSION_BUS_ADDRESS is not set)")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._bus is not None and self._bus.connected:
                return self._bus
            try:
                from dbus_fast.aio import MessageBus
            except ImportError as exc:
                raise BusError("dbus-fast is not installed") from exc
            try:
                bus = MessageBus(bus_address=self._address)
                self._bus = await asyncio.wait_for(bus.connect(), self.timeout)
            except TimeoutError:
                raise BusError(f"session D-Bus did not answer within {self.timeout:g} s") from None
            except Exception as exc:
                raise BusError(f"cannot connect to the session D-Bus: {exc}") from exc
            return self._bus

    async def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        *,
        signature: str = "",
        body: Sequence[Any] = (),
        timeout: float | None = None,
    ) -> list[Any]:
        """Call a method and return its reply body (variants unwrapped). Raises :class:`BusError`."""
        from dbus_fast import Message, MessageType

        bus = await self.connection()
        message = Message(
            destination=destination, path=path, interface=interface, member=member, signature=signature, body=list(body)
        )
        limit = self.timeout if timeout is None else timeout
        try:
            reply = await asyncio.wait_for(bus.call(message), limit)
        except TimeoutError:
            raise BusError(f"{destination} {interface}.{member} did not answer within {limit:g} s") from None
        except Exception as exc:
            raise BusError(f"{destination} {interface}.{member} failed: {exc}") from exc
        if reply is None:
            raise BusError(f"{destination} {interface}.{member}: no reply")
        if reply.message_type == MessageType.ERROR:
            detail = reply.body[0] if reply.body else ""
            raise BusError(f"{destination} {interface}.{member}: {reply.error_name} {detail}".rstrip())
        return [_unwrap(v) for v in reply.body]

    async def get_property(self, destination: str, path: str, interface: str, name: str) -> Any:
        """Read one property through ``org.freedesktop.DBus.Properties.Get``. Raises :class:`BusError`."""
        body = await self.call(destination, path, _PROPERTIES, "Get", signature="ss", body=[interface, name])
        return _unwrap(body[0])

    async def name_has_owner(self, name: str) -> bool:
        """Whether some connection owns the well-known ``name``. Raises :class:`BusError`."""
        body = await self.call(_DBUS_NAME, _DBUS_PATH, _DBUS_NAME, "NameHasOwner", signature="s", body=[name])
        return bool(body[0])

    async def emit_signal(self, path: str, interface: str, member: str, *, signature: str, body: Sequence[Any]) -> None:
        """Broadcast a signal. Raises :class:`BusError`."""
        from dbus_fast import Message

        bus = await self.connection()
        try:
            await asyncio.wait_for(
                bus.send(Message.new_signal(path, interface, member, signature, list(body))), self.timeout
            )
        except TimeoutError:
            raise BusError(f"signal {interface}.{member} not sent within {self.timeout:g} s") from None
        except Exception as exc:
            raise BusError(f"signal {interface}.{member} failed: {exc}") from exc

    async def close(self) -> None:
        """Disconnect and wait for the socket to close (idempotent). A later call reconnects."""
        bus, self._bus = self._bus, None
        await disconnect(bus)


async def disconnect(bus: Any, timeout: float = 1.0) -> None:
    """Disconnect a dbus-fast ``MessageBus`` (or ``None``) and wait until its socket is closed."""
    if bus is None:
        return
    try:
        bus.disconnect()
        await asyncio.wait_for(bus.wait_for_disconnect(), timeout)
    except Exception:  # already gone, or it ended with an error: either way it is closed
        log.debug("disconnect", exc_info=True)


async def notification_server(bus: SessionBus) -> ServerInfo | None:
    """Who owns ``org.freedesktop.Notifications``, or ``None`` when nobody does.

    Raises :class:`BusError` when the bus itself is unusable.
    """
    if not await bus.name_has_owner(NOTIFICATIONS_NAME):
        activatable = await bus.call(_DBUS_NAME, _DBUS_PATH, _DBUS_NAME, "ListActivatableNames")
        if NOTIFICATIONS_NAME not in activatable[0]:
            return None
        # D-Bus activation starts the server on the first call (dunst, mako, xfce4-notifyd ship service files).
    info = await bus.call(NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, NOTIFICATIONS_NAME, "GetServerInformation")
    try:
        caps = await bus.call(NOTIFICATIONS_NAME, NOTIFICATIONS_PATH, NOTIFICATIONS_NAME, "GetCapabilities")
        capabilities = tuple(str(c) for c in caps[0])
    except BusError:
        capabilities = ()
    name, vendor, version, spec = (str(x) for x in info[:4])
    return ServerInfo(name=name, vendor=vendor, version=version, spec_version=spec, capabilities=capabilities)
