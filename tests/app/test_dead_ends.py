"""Dead subscriptions (issue 11 item 8): the card says the real cause, ended jobs are not reconnected,
bad saved URLs are dropped, and a dead job can be removed from its card and from the tray."""

from __future__ import annotations

from typing import Any

import pytest

from peft_notify import wire
from peft_notify.app.jobs_model import JobRow, Link
from peft_notify.app.tray import Tray
from peft_notify.desktop.frames import ClientState, ConnectionEvent
from peft_notify.desktop.settings import Settings, Subscription
from tests.app.app_support import ClientFactory, envelope, hello
from tests.app.test_controller import URL, Rig, run


@pytest.mark.parametrize(
    ("link", "detail", "text"),
    [
        (
            Link.RECONNECTING,
            "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 9)",
            "refused: nothing is listening at 127.0.0.1:9 — retrying in 14s",
        ),
        (
            Link.RECONNECTING,
            "TimeoutError: timed out during opening handshake",
            "no answer from 127.0.0.1:9 — retrying in 14s",
        ),
        (
            Link.PROTOCOL_ERROR,
            "HTTP 404: unknown job 'job-1'",
            "gone: the server no longer has this job (HTTP 404: unknown job 'job-1')",
        ),
        (
            Link.PROTOCOL_ERROR,
            "ws://x:99999 isn't a valid URI: port out of range",
            "bad URL: ws://x:99999 isn't a valid URI: port out of range",
        ),
        (Link.AUTH_REFUSED, "HTTP 401: missing or wrong token", "auth refused: HTTP 401: missing or wrong token"),
        (Link.RECONNECTING, "connection closed (1006)", "reconnecting in 14s"),  # nothing known: as before
    ],
)
def test_the_card_says_the_real_cause(link: Link, detail: str, text: str) -> None:
    """Before: "Protocol error: port out of range" / "Reconnecting in 14s" forever, whatever the cause."""
    row = JobRow(key=URL, job_id="j", state="running", link=link, link_detail=detail, retry_in=14.0)
    assert row.status_text == text
    assert row.dead is (link is not Link.RECONNECTING)


def test_a_saved_url_that_cannot_work_is_dropped_with_one_message(qapp: Any, client_factory: ClientFactory) -> None:
    bad = "ws://127.0.0.1:99999/ws/notifications/x"
    rig = Rig(client_factory, Settings(subscriptions=(Subscription(bad, None), Subscription(URL, "t"))))

    async def scenario() -> None:
        rig.controller.start()
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert [s.url for s in rig.saved[-1].subscriptions] == [URL]  # never comes back on the next start
    assert len(rig.problems) == 1
    assert "removed from the saved jobs" in rig.problems[0]


def test_a_job_that_ended_is_not_reconnected_on_the_next_start(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)

    async def scenario() -> None:
        rig.controller.start()
        assert rig.controller.subscribe(URL, "tok")
        assert [s.url for s in rig.controller.settings.subscriptions] == [URL]
        rig.push(URL, envelope("job-1", 1, hello()), envelope("job-1", 2, wire.Status(wire.JobState.COMPLETED)))
        rig.clients.last(URL).on_event(ConnectionEvent(ClientState.FINISHED, "job finished"))
        await rig.controller.drain()
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert rig.saved[-1].subscriptions == ()  # the next start does not reconnect it
    assert URL in rig.controller.rows  # the card stays (removable) and so does its history
    assert rig.controller.rows[URL].dead


def test_a_dead_job_can_be_removed_from_the_tray(qapp: Any) -> None:
    tray = Tray()
    live = JobRow(key="ws://a", job_id="a", name="live", state="running", link=Link.CONNECTED)
    dead = JobRow(key="ws://b", job_id="b", name="dead", link=Link.PROTOCOL_ERROR, link_detail="HTTP 404: gone")
    tray.refresh([live, dead], 0)
    removed: list[str] = []
    tray.remove_requested.connect(removed.append)
    entries = tray.jobs_menu.actions()
    assert entries[0].menu() is None  # a live job: one click shows it, as before
    submenu = entries[1].menu()
    assert submenu is not None
    [show, remove] = submenu.actions()
    assert (show.text(), remove.text()) == ("&Show", "&Remove")
    remove.trigger()
    assert removed == ["ws://b"]


def test_a_job_can_be_removed_from_its_card(qapp: Any, client_factory: ClientFactory) -> None:
    from peft_notify.app.window import MainWindow
    from peft_notify.testing import MemoryHistoryStore

    rig = Rig(client_factory)
    window = MainWindow(MemoryHistoryStore())

    async def scenario() -> None:
        rig.controller.start()
        window.attach(rig.controller)
        assert rig.controller.subscribe(URL, "tok")
        rig.clients.last(URL).on_event(ConnectionEvent(ClientState.PROTOCOL_ERROR, "HTTP 404: unknown job"))
        menu = window.card_menu(URL)
        assert menu is not None
        [_pause, remove] = menu.actions()
        assert remove.text() == "Remove job"
        remove.trigger()
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert URL not in rig.controller.rows
    assert rig.saved[-1].subscriptions == ()
    window.close()


def test_the_app_watches_the_discovery_directory_with_qt(
    qapp: Any, client_factory: ClientFactory, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 item 4 in the app: a QFileSystemWatcher on the directory, not the 5 s poll."""
    import asyncio
    import time

    from peft_notify import discovery
    from peft_notify.desktop import monitor as monitor_module

    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setattr(monitor_module, "DISCOVER_S", 3600.0)  # only the watcher can find it in time
    rig = Rig(client_factory, discover=discovery.list_job_files, discovery_dir=discovery.runtime_dir)
    rig.controller.monitor.clock = time.time

    async def scenario() -> None:
        rig.controller.start()
        assert rig.controller.dir_watcher is not None
        assert not rig.controller.monitor.polls_dir  # the watcher replaces the directory check
        await asyncio.sleep(0.3)
        discovery.write_job_file(url="ws://127.0.0.1:9/ws/notifications/qt", job_id="qt", name="qt", token="t")
        deadline = time.monotonic() + 5
        while not rig.controller.rows and time.monotonic() < deadline:
            qapp.processEvents()  # the watcher's directoryChanged is a Qt signal
            await asyncio.sleep(0.02)
        await rig.controller.shutdown()

    run(qapp, scenario)
    [row] = rig.controller.rows.values()
    assert (row.name, row.local) == ("qt", True)
