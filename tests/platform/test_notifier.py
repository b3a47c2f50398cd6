"""Tests for peft_notify.platform.notifier against real dunst (shared session and a private one)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from pathlib import Path

import pytest

from peft_notify.platform.notifier import (
    DesktopNotifierAdapter,
    LogNotifier,
    NotifierUnavailable,
    action_key,
    escape_markup,
)
from peft_notify.platform.session_bus import ServerInfo
from peft_notify.ports import Delivery, Notifier, NotifyRequest
from peft_notify.wire import NotificationEvent, NotificationType, UrgencyLevel
from tests.platform.platform_support import PrivateDunst, require_desktop


def _request(
    title: str, *, urgency: UrgencyLevel = UrgencyLevel.NORMAL, actions: list[str] | None = None
) -> NotifyRequest:
    kind = NotificationType.ERROR if urgency is UrgencyLevel.CRITICAL else NotificationType.PROGRESS
    event = NotificationEvent(type=kind, title=title, message=f"body of {title}", urgency=urgency, actions=actions)
    return NotifyRequest(record_id=41, job_id="job-7", event=event, sound="dialog-error")


def _block(log_text: str, title: str) -> str:
    """The dunst -print block of the notification with ``title``."""
    start = log_text.index(f"summary: '{title}'")
    end = log_text.find("\n}", start)
    return log_text[log_text.rfind("{", 0, start) : end]


def test_action_key_slugs_labels() -> None:
    assert action_key("View Details") == "view-details"
    assert action_key("Retry") == "retry"
    assert action_key("  !!  ") == "action"


def test_log_notifier_always_delivers(caplog: pytest.LogCaptureFixture) -> None:
    notifier = LogNotifier()
    assert isinstance(notifier, Notifier)
    with caplog.at_level(logging.WARNING):
        delivery = asyncio.run(notifier.notify(_request("Loss exploded", urgency=UrgencyLevel.CRITICAL)))
    assert delivery == Delivery(ok=True, backend="log", detail="written to the log", platform_id="1")
    assert "Loss exploded" in caplog.text
    assert "critical" in caplog.text


@pytest.mark.desktop
def test_milestone_and_error_reach_the_session_dunst() -> None:
    require_desktop()
    log_path = os.environ.get("DESKTOP_SESSION_DUNST_LOG")
    if not log_path:
        pytest.skip("DESKTOP_SESSION_DUNST_LOG is not set (start ../shared/desktop-session)")
    tag = uuid.uuid4().hex[:8]
    milestone, error = f"50% reached {tag}", f"Training failed {tag}"

    async def scenario() -> list[Delivery]:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None)
        try:
            return [
                await adapter.notify(_request(milestone)),
                await adapter.notify(_request(error, urgency=UrgencyLevel.CRITICAL, actions=["View Details", "Retry"])),
            ]
        finally:
            await adapter.close()

    deliveries = asyncio.run(scenario())
    assert all(d.ok for d in deliveries), deliveries
    assert deliveries[0].detail == "dunst"
    text = PrivateDunst.read_until(Path(log_path), error)
    first, second = _block(text, milestone), _block(text, error)
    assert f"body: 'body of {milestone}'" in first
    assert "urgency: NORMAL" in first
    assert "appname: 'peft-notify'" in first
    # GNOME/KDE/dunst match the app (name, icon, settings) by the desktop-entry hint; the icon is ours.
    assert "desktop_entry: 'io.github.peftnotify.PeftNotify'" in first
    assert "icon: 'file://" in first
    assert "io.github.peftnotify.PeftNotify.png'" in first
    assert "urgency: CRITICAL" in second
    assert '"retry": "Retry"' in second
    assert '"view-details": "View Details"' in second


@pytest.mark.desktop
def test_buttons_and_clicks_come_back_through_the_callback(private_dunst: PrivateDunst) -> None:
    pressed: list[tuple[str, int, str]] = []

    async def scenario() -> None:
        adapter = await DesktopNotifierAdapter.create(lambda *args: pressed.append(args))
        try:
            got = asyncio.Event()
            adapter._on_action = lambda *args: (pressed.append(args), got.set())  # type: ignore[assignment]
            delivery = await adapter.notify(_request("Crash", urgency=UrgencyLevel.CRITICAL, actions=["Retry"]))
            assert delivery.ok, delivery
            private_dunst.choice.write_text("Retry\n")
            await _run("dunstctl", "context", env=private_dunst.env())
            await asyncio.wait_for(got.wait(), 10)
            got.clear()
            await _run("dunstctl", "close-all", env=private_dunst.env())  # "Crash" is sticky (critical)
            assert (await adapter.notify(_request("Done"))).ok
            await _run("dunstctl", "action", "0", env=private_dunst.env())
            await asyncio.wait_for(got.wait(), 10)
        finally:
            await adapter.close()

    asyncio.run(scenario())
    assert pressed == [("job-7", 41, "retry"), ("job-7", 41, "default")]


async def _run(*argv: str, env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, env=env)
    assert await asyncio.wait_for(proc.wait(), 10) == 0


@pytest.mark.desktop
def test_no_notification_server_makes_the_adapter_unavailable(private_bus: str) -> None:
    with pytest.raises(NotifierUnavailable, match=r"no notification server owns org\.freedesktop\.Notifications"):
        asyncio.run(DesktopNotifierAdapter.create(lambda *_: None))


def test_no_session_bus_makes_the_adapter_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)  # never let libdbus autolaunch a bus
    with pytest.raises(NotifierUnavailable, match="no session D-Bus"):
        asyncio.run(DesktopNotifierAdapter.create(lambda *_: None, platform="linux"))


@pytest.mark.desktop
def test_killing_dunst_mid_run_reports_failure_not_success(private_dunst: PrivateDunst) -> None:
    async def scenario() -> tuple[Delivery, Delivery]:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None)
        try:
            before = await adapter.notify(_request("before"))
            private_dunst.kill()
            after = await adapter.notify(_request("after"))
            return before, after
        finally:
            await adapter.close()

    before, after = asyncio.run(scenario())
    assert before.ok
    assert not after.ok
    assert after.detail == "no notification server is running"


MARKUP_ATTACK = '<a href="http://evil.example/x">Open the report</a> & <b>bold</b> <img src="file:///etc/x"/>'


@pytest.mark.desktop
def test_server_markup_stays_literal_in_dunst(private_dunst: PrivateDunst) -> None:
    # The attack: a job server sent `<a href>` in a message and dunst rendered a live link.
    # dunst parses bodies as markup (it advertises body-hyperlinks); its history's "message" is
    # the Pango markup it renders.
    title = "<b>job</b> &amp; done"

    async def scenario() -> Delivery:
        adapter = await DesktopNotifierAdapter.create(lambda *_: None)
        try:
            assert adapter.server is not None
            assert {"body-markup", "body-hyperlinks"} & set(adapter.server.capabilities)
            event = NotificationEvent(type=NotificationType.ERROR, title=title, message=MARKUP_ATTACK)
            return await adapter.notify(NotifyRequest(record_id=1, job_id="j", event=event))
        finally:
            await adapter.close()

    assert asyncio.run(scenario()).ok
    private_dunst.wait_log("Open the report")
    private_dunst.ctl("close-all")
    [entry] = json.loads(private_dunst.ctl("history"))["data"][0]
    rendered = entry["message"]["data"]
    # What dunst draws: the markup as literal text (escaped for Pango), no <a>, <b> or <img> tags.
    assert "&lt;a href=&quot;http://evil.example/x&quot;&gt;Open the report&lt;/a&gt;" in rendered or (
        '&lt;a href="http://evil.example/x"&gt;Open the report&lt;/a&gt;' in rendered
    ), rendered
    assert "&lt;b&gt;bold&lt;/b&gt;" in rendered
    assert "<a " not in rendered
    assert "<b>bold</b>" not in rendered
    assert "<img" not in rendered
    assert entry["summary"]["data"] == title  # the summary is plain text by the spec: sent unchanged


def test_display_text_per_platform() -> None:
    body = 'a <a href="x">b</a> & \x1b[2J c\x07 token hf_' + "Abc123" * 6
    event = NotificationEvent(type=NotificationType.ERROR, title="t <b>&\x00", message=body)
    markup = ServerInfo("dunst", "dunst", "1.9", "1.2", capabilities=("body", "body-markup"))
    plain = ServerInfo("plain", "x", "1", "1.2", capabilities=("body",))

    def adapter(platform: str, server: ServerInfo | None) -> DesktopNotifierAdapter:
        return DesktopNotifierAdapter(object(), lambda *_: None, server=server, platform=platform)

    title, message = adapter("linux", markup).display_text(event)
    assert message.startswith('a &lt;a href="x"&gt;b&lt;/a&gt; &amp; ')
    assert "hf_" not in message and "[redacted]" in message
    assert title == "t <b>&\x00"  # summary: plain text, shown as sent
    _, message = adapter("linux", plain).display_text(event)
    assert message.startswith('a <a href="x">b</a> &')  # a server without body-markup shows text as-is
    title, message = adapter("win32", None).display_text(event)
    assert "\x1b" not in message and "\x07" not in message and "\x00" not in title  # XML 1.0 forbids them
    assert message.startswith('a <a href="x">b</a> & ')  # ElementTree escapes & < > in the toast XML
    _, message = adapter("darwin", None).display_text(event)
    assert message.startswith('a <a href="x">b</a> & ')  # UNNotificationContent: plain strings


def test_escape_markup() -> None:
    assert escape_markup("<a href='x'>&amp;</a>") == "&lt;a href='x'&gt;&amp;amp;&lt;/a&gt;"
