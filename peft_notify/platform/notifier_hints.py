"""The freedesktop ``desktop-entry`` hint, which desktop-notifier 6.2 does not send.

GNOME Shell, KDE Plasma and dunst match a notification to its app (name, icon, per-app
settings) by this hint (Desktop Notifications spec, "Hints"); without it GNOME files us under
"Other". desktop-notifier builds the hints inside its D-Bus backend's ``_send`` with no way to
add one, so :func:`add_desktop_entry_hint` wraps the backend's ``Notify`` proxy call once, when
the backend opens its D-Bus connection. Call it right after creating the ``DesktopNotifier``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["add_desktop_entry_hint", "with_desktop_entry"]

log = logging.getLogger(__name__)


def with_desktop_entry(hints: Any, desktop_id: str) -> Any:
    """``hints`` plus ``desktop-entry``, in the same dict flavour (``a{sv}`` Variants or ``a{ss}`` strings)."""
    if not isinstance(hints, dict) or not hints or "desktop-entry" in hints:
        return hints  # {}: desktop-notifier found an unsupported hints signature and sends none
    from dbus_fast import Variant

    variant = any(isinstance(value, Variant) for value in hints.values())
    return {**hints, "desktop-entry": Variant("s", desktop_id) if variant else desktop_id}


def add_desktop_entry_hint(notifier: Any, desktop_id: str) -> bool:
    """Make every notification ``notifier`` sends over D-Bus carry ``desktop-entry=desktop_id``.

    Returns False (and changes nothing) when the backend is not desktop-notifier's D-Bus one.
    """
    backend = getattr(notifier, "_backend", None)
    init: Callable[[], Awaitable[Any]] | None = getattr(backend, "_init_dbus", None)
    if init is None or getattr(backend, "interface", None) is not None:
        return False

    async def init_dbus() -> Any:
        interface = await init()
        send = interface.call_notify

        async def call_notify(*args: Any, **kwargs: Any) -> Any:
            # Notify(app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout)
            if len(args) >= 7:
                args = (*args[:6], with_desktop_entry(args[6], desktop_id), *args[7:])
            return await send(*args, **kwargs)

        interface.call_notify = call_notify
        return interface

    backend._init_dbus = init_dbus  # type: ignore[union-attr]
    return True
