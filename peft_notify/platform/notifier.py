"""Native notifications through desktop-notifier 6.2, and the always-working :class:`LogNotifier`.

Create the adapter once, on the running loop, with :meth:`DesktopNotifierAdapter.create`
(raises :class:`NotifierUnavailable` when nothing would show the notification: no
notification server on the bus, desktop-notifier's dummy backend, a constructor error).
``notify`` never raises; a notification counts as delivered only when the backend reports
it dispatched — ``send()``'s return value proves nothing.

macOS and Windows (delivery truth): desktop-notifier 6.2's macOS backend logs the NSError of
a refused ``addNotificationRequest`` and returns normally, so ``on_dispatched`` fires for a
notification macOS dropped (backends/macos.py ``_send`` → ``log_nserror``; base.py ``send``
then calls ``handle_dispatched``); on Windows a toast for an app whose notifications are
switched off is dropped silently too. So on those systems the adapter asks
``has_authorisation()`` after creating the notifier, before each send while it is not known
to be allowed, and after a send that logged an error; a denied one comes back as
``ok=False`` with :data:`NOTIFICATIONS_OFF` (the dispatcher falls back to the tray balloon)
and :attr:`DesktopNotifierAdapter.off_reason` says so to the window, tray and ``doctor``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peft_notify.appinfo import APP_ID, CLI_NAME, icon_file
from peft_notify.platform.notifier_hints import add_desktop_entry_hint
from peft_notify.platform.session_bus import BusError, ServerInfo, SessionBus, disconnect, notification_server
from peft_notify.ports import ActionHandler, Delivery, NotifyRequest
from peft_notify.redact import redact
from peft_notify.wire import NotificationEvent, UrgencyLevel

__all__ = [
    "APP_ID",
    "NOTIFICATIONS_OFF",
    "DesktopNotifierAdapter",
    "LogNotifier",
    "NotifierUnavailable",
    "action_key",
    "dummy_backend_reason",
    "escape_markup",
    "urgency_of",
]

log = logging.getLogger(__name__)

CLICK_ACTION = "default"  # ports.ActionHandler: "default" for a click on the body
DISMISS_ACTION = "dismissed"
NOTIFICATIONS_OFF = "notifications are off for this app"
_ENABLE_WHERE = {
    "darwin": "System Settings › Notifications › the app running peft-notify",
    "win32": "Settings › System › Notifications › peft-notify",
}
_WAITING = "waiting for you to allow notifications (macOS asked)"
# desktop-notifier's own log lines that mean "this notification was not scheduled"
# (backends/macos.py log_nserror prefix; base.py send()).
_FAILED_SEND_LOGS = ("Error when scheduling notification", "Notification failed")


def dummy_backend_reason(platform: str) -> str:
    """Why desktop-notifier 6.2's ``get_backend_class()`` chose its dummy backend here.

    Its rules (desktop_notifier/main.py): macOS needs 10.14+ and a bundle identifier
    (``NSBundle.mainBundle.bundleIdentifier``); an *unsigned* bundle still gets the real
    backend, with a warning. Windows needs build 10.0.10240 (Windows 10) or later.
    """
    if platform == "darwin":
        return (
            "desktop-notifier uses its dummy backend: this process has no bundle identifier "
            "(run peft-notify from its app bundle, or from a framework Python whose Python.app has one) "
            "or macOS is older than 10.14. The bundle need not be signed: an unsigned one gets "
            "the real Notification Center (macOS may then refuse it, which doctor reports)"
        )
    if platform == "win32":
        return "desktop-notifier uses its dummy backend: toasts need Windows 10 (build 10240) or later"
    return "desktop-notifier uses its dummy backend on this system"


class _SendErrors(logging.Handler):
    """Collects desktop-notifier's log lines that say a send failed, while one send runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_FAILED_SEND_LOGS):
            self.messages.append(message)


class NotifierUnavailable(Exception):
    """A notifier cannot work here; the message says why (shown by ``doctor``)."""


# Characters XML 1.0 does not allow (section 2.2 "Char"): C0 controls but tab, LF, CR; U+FFFE/F.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


_MARKUP_CAPS = frozenset({"body-markup", "body-hyperlinks"})


def escape_markup(text: str) -> str:
    """``text`` made literal for a body-markup notification server: ``& < >`` as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def action_key(label: str) -> str:
    """The callback key of a button label: ``"View Details"`` → ``"view-details"``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "action"


class LogNotifier:
    """Writes the notification to the log: the last candidate, which always works."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("peft_notify.notifications")
        self.count = 0

    def capabilities(self) -> frozenset[str]:
        return frozenset({"body"})

    async def notify(self, request: NotifyRequest) -> Delivery:
        event = request.event
        self.count += 1
        self._log.warning(
            "[%s] %s: %s — %s", urgency_of(event).value, request.job_id or "app", event.title, event.message
        )
        return Delivery(ok=True, backend=self.name, detail="written to the log", platform_id=str(self.count))

    async def close(self) -> None:
        return None


def urgency_of(event: NotificationEvent) -> UrgencyLevel:
    """The event's urgency as an enum (``normal`` when it is not a known level)."""
    try:
        return UrgencyLevel(event.urgency)
    except ValueError:
        return UrgencyLevel.NORMAL


def _urgency_and_timeout(level: UrgencyLevel, dn: Any) -> tuple[Any, int]:
    # desktop-notifier has Low/Normal/Critical. Critical maps to freedesktop urgency 2,
    # macOS interruptionLevel timeSensitive, and WinRT ToastNotificationPriority.HIGH.
    # timeout=0 asks the server to keep it until dismissed (spec: expire_timeout 0 = never).
    if level is UrgencyLevel.CRITICAL:
        return dn.Urgency.Critical, 0
    if level is UrgencyLevel.LOW:
        return dn.Urgency.Low, -1
    return dn.Urgency.Normal, -1


class DesktopNotifierAdapter:
    """Notifier port over one ``desktop_notifier.DesktopNotifier`` kept for the app's lifetime."""

    name = "desktop-notifier"

    def __init__(
        self,
        notifier: Any,
        on_action: ActionHandler,
        *,
        capabilities: frozenset[str] = frozenset(),
        server: ServerInfo | None = None,
        bus: SessionBus | None = None,
        timeout: float = 5.0,
        platform: str = sys.platform,
        owns_bus: bool = False,
    ) -> None:
        """Wrap an existing ``DesktopNotifier``; prefer :meth:`create`, which checks the environment.

        ``owns_bus``: :meth:`close` also disconnects ``bus`` (it was opened for this adapter).
        """
        self._dn = notifier
        self._on_action = on_action
        self._capabilities = capabilities
        self.server = server
        self._bus = bus
        self._timeout = timeout
        self._platform = platform
        self._owns_bus = owns_bus
        # None: not asked (Linux, or it could not be read); True/False: has_authorisation()'s answer.
        self.authorised: bool | None = None
        self._asking: asyncio.Task[None] | None = None

    @property
    def checks_authorisation(self) -> bool:
        """Whether this system can silently drop our notifications (macOS, Windows)."""
        return self._platform in _ENABLE_WHERE

    @property
    def off_reason(self) -> str | None:
        """``"notifications are off for this app (…where to turn them on)"`` when the OS refuses them."""
        if self.authorised is not False:
            return None
        if self._asking is not None and not self._asking.done():
            return _WAITING
        return f"{NOTIFICATIONS_OFF} (turn them on in {_ENABLE_WHERE.get(self._platform, 'the system settings')})"

    async def check_authorisation(self) -> bool | None:
        """Ask desktop-notifier whether the OS lets us notify; updates :attr:`authorised`. Never raises."""
        if not self.checks_authorisation:
            return None
        try:
            self.authorised = bool(await asyncio.wait_for(self._dn.has_authorisation(), self._timeout))
        except Exception as exc:  # a backend error must not stop notifications: assume allowed
            log.warning("could not ask whether notifications are allowed: %s", exc)
            self.authorised = None
        return self.authorised

    def request_authorisation(self) -> None:
        """macOS: ask the user (the system prompt appears once); the answer updates :attr:`authorised`.

        Runs in the background: the first-time prompt waits for the user's click.
        """
        if self._asking is not None and not self._asking.done():
            return

        async def ask() -> None:
            try:
                self.authorised = bool(await self._dn.request_authorisation())
            except Exception as exc:
                log.warning("asking for notification permission failed: %s", exc)

        self._asking = asyncio.ensure_future(ask())

    @classmethod
    async def create(
        cls,
        on_action: ActionHandler,
        *,
        app_icon: Path | None = None,
        bus: SessionBus | None = None,
        timeout: float = 5.0,
        platform: str = sys.platform,
    ) -> DesktopNotifierAdapter:
        """Build the adapter on the running loop. Raises :class:`NotifierUnavailable`."""
        try:
            import desktop_notifier as dn
        except ImportError as exc:
            raise NotifierUnavailable("desktop-notifier is not installed (pip install 'peft-notify[desktop]')") from exc
        server = None
        own_bus = bus is None
        if platform.startswith("linux") or "bsd" in platform:
            bus = bus or SessionBus()
            try:
                server = await notification_server(bus)
            except BusError as exc:
                raise NotifierUnavailable(f"no session D-Bus: {exc}") from exc
            finally:
                if own_bus and server is None:
                    await bus.close()
            if server is None:
                raise NotifierUnavailable("no notification server owns org.freedesktop.Notifications")
        backend = dn.main.get_backend_class()
        if backend.__name__ == "DummyNotificationCenter":
            raise NotifierUnavailable(dummy_backend_reason(platform))
        try:
            app_icon = app_icon or icon_file(".png")  # the product icon, not the server's generic one
            icon = dn.Icon(path=app_icon) if app_icon.exists() else None
            # Windows: app_name is the AppUserModelID toasts are sent under (the Start-menu shortcut
            # carries the same one); freedesktop: a display name, the app id goes in desktop-entry.
            notifier = dn.DesktopNotifier(app_name=APP_ID if platform == "win32" else CLI_NAME, app_icon=icon)
            add_desktop_entry_hint(notifier, APP_ID)
            caps = await asyncio.wait_for(notifier.get_capabilities(), timeout)
        except TimeoutError as exc:
            raise NotifierUnavailable(f"the notification backend did not answer within {timeout:g} s") from exc
        except Exception as exc:  # OSError from the WinRT constructor, DBusError, ...
            raise NotifierUnavailable(f"desktop-notifier failed to start: {exc}") from exc
        names = frozenset(c.name.lower() for c in caps)
        adapter = cls(
            notifier,
            on_action,
            capabilities=names,
            server=server,
            bus=bus,
            timeout=timeout,
            platform=platform,
            owns_bus=own_bus,
        )
        if adapter.checks_authorisation and await adapter.check_authorisation() is False:
            log.warning("%s", adapter.off_reason)
            if platform == "darwin":  # undecided yet, or denied: the prompt shows only the first time
                adapter.request_authorisation()
        return adapter

    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    async def notify(self, request: NotifyRequest) -> Delivery:
        """Show ``request``; a failed or unconfirmed delivery comes back as ``ok=False``."""
        try:
            return await asyncio.wait_for(self._notify(request), self._timeout)
        except TimeoutError:
            log.warning("notification %s: backend did not answer within %g s", request.record_id, self._timeout)
            return Delivery.failed(self.name, f"no answer within {self._timeout:g} s")
        except Exception as exc:  # a notification must never crash monitoring
            log.warning("notification %s failed via %s", request.record_id, self.name, exc_info=True)
            return Delivery.failed(self.name, str(exc) or type(exc).__name__)

    async def _notify(self, request: NotifyRequest) -> Delivery:
        # Windows drops a disabled app's toast without any error: ask every time (a property read).
        # macOS: ask until allowed; afterwards a refusal shows up as a logged NSError (below).
        ask = self._platform == "win32" or self.authorised is not True
        if self.checks_authorisation and ask and await self.check_authorisation() is False:
            return Delivery.failed(self.name, self.off_reason or NOTIFICATIONS_OFF)
        errors = _SendErrors()
        source = logging.getLogger("desktop_notifier")
        source.addHandler(errors)
        try:
            delivery = await self._send(request)
        finally:
            source.removeHandler(errors)
        if errors.messages and self.checks_authorisation:
            # macOS logs the NSError and still reports it dispatched: find out why it failed.
            if await self.check_authorisation() is False:
                return Delivery.failed(self.name, self.off_reason or NOTIFICATIONS_OFF)
            return Delivery.failed(self.name, f"the system refused it: {errors.messages[0]}")
        return delivery

    async def _send(self, request: NotifyRequest) -> Delivery:
        import desktop_notifier as dn

        event = request.event
        job_id, record_id = request.job_id, request.record_id
        dispatched = asyncio.Event()

        def fire(key: str) -> Callable[[], None]:
            def callback() -> None:
                try:
                    self._on_action(job_id, record_id, key)
                except Exception:
                    log.exception("action handler failed for %s on record %s", key, record_id)

            return callback

        buttons = tuple(
            dn.Button(title=label, on_pressed=fire(action_key(label)), identifier=action_key(label))
            for label in (event.actions or ())
        )
        urgency, timeout = _urgency_and_timeout(urgency_of(event), dn)
        title, message = self.display_text(event)
        identifier = await self._dn.send(
            title=title,
            message=message,
            urgency=urgency,
            buttons=buttons,
            on_dispatched=dispatched.set,
            on_clicked=fire(CLICK_ACTION),
            on_dismissed=fire(DISMISS_ACTION),
            attachment=self._attachment(request.attachment, dn),
            sound=self._sound(request.sound, dn),
            thread=job_id or None,
            timeout=timeout,
        )
        if not dispatched.is_set():
            # desktop-notifier logs and swallows backend errors; on_dispatched only fires on success.
            detail = "the notification backend did not accept it (see the log)"
            if self._bus is not None:
                detail = await self._why_not_dispatched(detail)
            return Delivery.failed(self.name, detail)
        where = self.server.name if self.server else self._platform
        return Delivery(ok=True, backend=self.name, detail=where, platform_id=str(identifier))

    def display_text(self, event: NotificationEvent) -> tuple[str, str]:
        """The (title, body) to hand desktop-notifier: redacted, and literal on every platform.

        freedesktop: a server that advertises ``body-markup`` or ``body-hyperlinks`` parses the
        body as markup (Desktop Notifications Specification, "Markup": ``<b> <i> <u> <a href>
        <img>``; dunst 1.9 renders ``<a href>`` as a link it offers to open, and advertises only
        ``body-hyperlinks`` unless its config names ``markup``), so ``& < >`` are escaped there;
        the summary is plain text by the spec. Windows: desktop-notifier builds the toast XML with
        ElementTree, which escapes ``& < >`` itself but writes control characters that XML 1.0
        forbids (``load_xml`` then refuses the toast), so those are dropped. macOS: the
        UNNotificationContent title/body are plain strings.
        """
        title, message = redact(event.title), redact(event.message)
        if self._platform == "win32":
            return _XML_INVALID.sub("", title), _XML_INVALID.sub("", message)
        if self.server is not None and _MARKUP_CAPS.intersection(self.server.capabilities):
            return title, escape_markup(message)
        return title, message

    async def _why_not_dispatched(self, default: str) -> str:
        assert self._bus is not None
        try:
            server = await notification_server(self._bus)
        except BusError as exc:
            return f"session D-Bus unusable: {exc}"
        return "no notification server is running" if server is None else default

    def _attachment(self, path: Path | None, dn: Any) -> Any:
        if path is None or not path.is_file():
            return None
        # Linux: goes out as the image-path hint; servers without image support ignore it.
        return dn.Attachment(path=path)

    def _sound(self, name: str | None, dn: Any) -> Any:
        if not name:
            return None
        if self._platform.startswith("linux") or "bsd" in self._platform:
            return dn.Sound(name=name)  # a freedesktop sound-theme name ("complete", "dialog-error")
        return dn.DEFAULT_SOUND  # theme names mean nothing to macOS/Windows: use the system sound

    async def withdraw(self, platform_id: str) -> None:
        """Remove a shown notification; quietly ignores one the user already closed."""
        try:
            await asyncio.wait_for(self._dn.clear(platform_id), self._timeout)
        except (KeyError, TimeoutError):  # clear() raises KeyError after a click/close on Linux
            log.debug("notification %s was already gone", platform_id)
        except Exception:
            log.warning("could not withdraw notification %s", platform_id, exc_info=True)

    async def close(self) -> None:
        """Release the backend's D-Bus connection (the adapter is unusable afterwards)."""
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
        backend = getattr(self._dn, "_backend", None)
        await disconnect(getattr(backend, "bus", None))
        if self._owns_bus and self._bus is not None:
            await self._bus.close()
