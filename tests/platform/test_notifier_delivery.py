"""Delivery truth on macOS and Windows (issue 18 item 1), run on every OS.

These run desktop-notifier 6.2's own ``DesktopNotifier`` and ``DesktopNotifierBackend.send``
(the code that fires ``on_dispatched``), with a backend subclass standing in for the OS call
only: :class:`RefusingCocoaBackend` does what desktop-notifier's macOS ``_send`` does when
``addNotificationRequest`` completes with an NSError — it logs the error through
``log_nserror``'s format and returns normally (desktop_notifier/backends/macos.py). The real
Notification Center and WinRT run in test_os_macos.py / test_os_windows.py on those systems.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import desktop_notifier
import desktop_notifier.main
import pytest
from desktop_notifier.backends.base import DesktopNotifierBackend

from peft_notify.platform.notifier import (
    NOTIFICATIONS_OFF,
    DesktopNotifierAdapter,
    NotifierUnavailable,
    dummy_backend_reason,
)
from peft_notify.ports import NotifyRequest
from peft_notify.wire import NotificationEvent, NotificationType

macos_log = logging.getLogger("desktop_notifier.backends.macos")


class RefusingCocoaBackend(DesktopNotifierBackend):
    """desktop-notifier's macOS backend with the ObjC calls replaced by a switch."""

    allowed = False  # System Settings › Notifications › <app> › Allow notifications
    asked = 0
    sent: list[str] = []  # noqa: RUF012 - shared on purpose: the test reads what was attempted

    async def request_authorisation(self) -> bool:
        type(self).asked += 1
        return type(self).allowed

    async def has_authorisation(self) -> bool:
        return type(self).allowed

    async def _send(self, notification: Any) -> None:
        type(self).sent.append(notification.title)
        if not type(self).allowed:
            # backends/macos.py: `if error: log_nserror(error, "Error when scheduling notification")`
            macos_log.warning(
                "%s: domain=%s, code=%s, description=%s",
                "Error when scheduling notification",
                "UNErrorDomain",
                1,
                "Notifications are not allowed for this application",
            )

    async def _clear(self, identifier: str) -> None:
        return None

    async def _clear_all(self) -> None:
        return None

    async def _get_capabilities(self) -> frozenset[Any]:
        return frozenset()


@pytest.fixture
def cocoa(monkeypatch: pytest.MonkeyPatch) -> type[RefusingCocoaBackend]:
    RefusingCocoaBackend.allowed, RefusingCocoaBackend.asked, RefusingCocoaBackend.sent = False, 0, []
    monkeypatch.setattr(desktop_notifier.main, "get_backend_class", lambda: RefusingCocoaBackend)
    return RefusingCocoaBackend


def _request(title: str = "50% reached") -> NotifyRequest:
    event = NotificationEvent(type=NotificationType.PROGRESS, title=title, message="llama-lora")
    return NotifyRequest(record_id=7, job_id="job", event=event)


def test_desktop_notifier_itself_reports_a_refused_macos_notification_as_dispatched(
    cocoa: type[RefusingCocoaBackend],
) -> None:
    """The premise, shown on desktop-notifier's own code: on_dispatched fires after the NSError."""
    cocoa.allowed = True  # so that the first-send authorisation request does not matter

    async def scenario() -> bool:
        notifier = desktop_notifier.DesktopNotifier(app_name="peft-notify")
        cocoa.allowed = False
        dispatched = asyncio.Event()
        await notifier.send(title="t", message="m", on_dispatched=dispatched.set)
        return dispatched.is_set()

    assert asyncio.run(scenario()) is True


def test_denied_at_start_is_reported_and_falls_back_without_sending(cocoa: type[RefusingCocoaBackend]) -> None:
    async def scenario() -> tuple[Any, Any, str | None, str | None]:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None, platform="darwin")
        await asyncio.sleep(0)  # let the background permission request finish
        delivery = await adapter.notify(_request())
        reason = adapter.off_reason
        await adapter.close()
        return adapter.authorised, delivery, reason, delivery.detail

    authorised, delivery, reason, detail = asyncio.run(scenario())
    assert authorised is False
    assert delivery.ok is False  # the dispatcher goes on to the tray balloon
    assert reason is not None and reason.startswith(NOTIFICATIONS_OFF)
    assert "System Settings" in reason
    assert detail == reason
    assert cocoa.asked == 1  # macOS was asked once (the prompt the user sees the first time)
    assert cocoa.sent == []  # nothing was handed to a Notification Center that would drop it


def test_a_send_macos_refuses_after_start_is_not_counted_as_delivered(cocoa: type[RefusingCocoaBackend]) -> None:
    cocoa.allowed = True

    async def scenario() -> tuple[bool, str, bool | None]:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None, platform="darwin")
        first = await adapter.notify(_request("first"))
        cocoa.allowed = False  # the user switched notifications off in System Settings
        second = await adapter.notify(_request("second"))
        await adapter.close()
        assert first.ok, first
        return second.ok, second.detail, adapter.authorised

    ok, detail, authorised = asyncio.run(scenario())
    assert ok is False
    assert detail.startswith(NOTIFICATIONS_OFF)
    assert authorised is False
    assert cocoa.sent == ["first", "second"]


def test_turning_notifications_back_on_is_noticed_at_the_next_send(cocoa: type[RefusingCocoaBackend]) -> None:
    async def scenario() -> list[bool]:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None, platform="darwin")
        await asyncio.sleep(0)
        results = [(await adapter.notify(_request("a"))).ok]
        cocoa.allowed = True
        results.append((await adapter.notify(_request("b"))).ok)
        await adapter.close()
        return results

    assert asyncio.run(scenario()) == [False, True]
    assert cocoa.sent == ["b"]


def test_windows_asks_before_every_toast(cocoa: type[RefusingCocoaBackend]) -> None:
    # WinRT drops a disabled app's toast without an error: only has_authorisation() tells.
    cocoa.allowed = True

    async def scenario() -> list[bool]:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None, platform="win32")
        results = [(await adapter.notify(_request("a"))).ok]
        cocoa.allowed = False  # Settings › System › Notifications › peft-notify: Off
        silent = await adapter.notify(_request("b"))
        results.append(silent.ok)
        assert silent.detail.startswith(NOTIFICATIONS_OFF) and "Settings › System › Notifications" in silent.detail
        await adapter.close()
        return results

    assert asyncio.run(scenario()) == [True, False]
    assert cocoa.sent == ["a"]


def test_dummy_backend_reason_says_what_desktop_notifier_really_requires(monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop_notifier.backends.dummy import DummyNotificationCenter

    monkeypatch.setattr(desktop_notifier.main, "get_backend_class", lambda: DummyNotificationCenter)
    with pytest.raises(NotifierUnavailable) as caught:
        asyncio.run(DesktopNotifierAdapter.create(lambda *_: None, platform="darwin"))
    reason = str(caught.value)
    assert "bundle identifier" in reason
    assert "need not be signed" in reason  # 6.2 only warns about an unsigned bundle
    assert "signed app bundle" not in reason
    assert "Windows 10" in dummy_backend_reason("win32")


def test_linux_never_asks_for_authorisation(cocoa: type[RefusingCocoaBackend]) -> None:
    adapter = DesktopNotifierAdapter(object(), lambda *_: None, platform="linux")
    assert adapter.checks_authorisation is False
    assert asyncio.run(adapter.check_authorisation()) is None
    assert adapter.off_reason is None
