"""Controller: subscriptions → the real engine → dispatcher, with the package's fakes for the ports."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from peft_notify import wire
from peft_notify.app.controller import Controller
from peft_notify.app.jobs_model import Link
from peft_notify.desktop.frames import ClientState, ConnectionEvent
from peft_notify.desktop.settings import Settings, Subscription
from peft_notify.engine import Engine, EngineConfig
from peft_notify.ports import DeliveryStatus, DndState, HistoryQuery
from peft_notify.testing import FakeClock, MemoryHistoryStore, RecordingNotifier, RecordingTaskbar, ScriptedDndProbe
from tests.app.app_support import ClientFactory, envelope, hello, progress

URL = "ws://127.0.0.1:9/ws/notifications/job-1"


class Rig:
    def __init__(self, client_factory: ClientFactory, settings: Settings | None = None, **kw: Any) -> None:
        self.clock = FakeClock()
        self.history = MemoryHistoryStore()
        self.notifier = RecordingNotifier()
        self.taskbar = RecordingTaskbar()
        self.dnd = ScriptedDndProbe([DndState.OFF])
        self.saved: list[Settings] = []
        self.problems: list[str] = []
        self.clients = client_factory
        self.controller = Controller(
            settings or Settings(),
            engine=Engine(EngineConfig()),
            history=self.history,
            notifiers=[self.notifier],
            taskbar=self.taskbar,
            dnd_probe=self.dnd,
            client_factory=client_factory,
            clock=self.clock.now,
            save_settings=self.saved.append,
            **kw,
        )
        self.controller.problem.connect(lambda key, text: self.problems.append(text))

    def push(self, url: str, *envelopes: wire.Envelope) -> None:
        client = self.clients.last(url)
        for env in envelopes:
            self.clock.advance(1.0)
            client.on_message(env)


def run(qapp: Any, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_milestone_is_recorded_and_shown(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)
    updated: list[str] = []
    rig.controller.job_updated.connect(updated.append)

    async def scenario() -> None:
        rig.controller.start()
        assert rig.controller.subscribe(URL, "tok")
        rig.push(
            URL,
            envelope("job-1", 1, hello()),
            envelope("job-1", 2, progress(10, loss=2.0)),
            envelope("job-1", 3, progress(30, loss=1.5)),
        )
        await rig.controller.drain()
        await rig.controller.shutdown()

    run(qapp, scenario)
    row = rig.controller.rows[URL]
    assert (row.name, row.host, row.step, row.total, row.state) == ("llama", "gpu-box", 30, 100, "running")
    assert list(row.losses) == [(10, 2.0), (30, 1.5)]
    assert row.capabilities == ("retry", "cancel")
    assert updated and set(updated) == {URL}
    [shown] = rig.notifier.requests
    assert shown.event.milestone == 25
    [entry] = rig.history.query(HistoryQuery())
    assert entry.status is DeliveryStatus.SHOWN
    assert entry.job_name == "llama"
    assert any(call[0] == "set" for call in rig.taskbar.calls)
    assert rig.saved[-1].subscriptions == (Subscription(URL, "tok"),)
    assert rig.clients.last(URL).token == "tok"


def test_connection_states_and_auth_refused_are_shown(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(URL, persist=False)
        client = rig.clients.last(URL)
        client.on_event(ConnectionEvent(ClientState.CONNECTED))
        assert rig.controller.rows[URL].link is Link.CONNECTED
        client.on_event(ConnectionEvent(ClientState.RECONNECTING, "connection refused", retry_in=4.0))
        # issue 11 item 8: the card says the real cause (was "reconnecting in 4s")
        assert rig.controller.rows[URL].status_text == "refused: nothing is listening at 127.0.0.1:9 — retrying in 4s"
        client.on_event(ConnectionEvent(ClientState.AUTH_REFUSED, "HTTP 401"))
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert rig.controller.rows[URL].link is Link.AUTH_REFUSED
    assert rig.problems == ["job-1: auth refused: HTTP 401"]  # the card's own words (issue 11 item 8)
    assert rig.saved == []  # persist=False


def test_bad_url_is_reported_not_raised(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)

    async def scenario() -> None:
        assert not rig.controller.subscribe("not a url")

    run(qapp, scenario)
    assert "Not a job URL" in rig.problems[0]
    assert rig.controller.rows == {}


def test_client_factory_error_becomes_a_problem(qapp: Any) -> None:
    def broken(*args: Any) -> Any:
        raise ValueError("unsupported scheme")

    rig = Rig(broken)  # type: ignore[arg-type]

    async def scenario() -> None:
        rig.controller.subscribe(URL, persist=False)

    run(qapp, scenario)
    assert rig.controller.rows[URL].link is Link.PROTOCOL_ERROR
    assert "unsupported scheme" in rig.problems[0]


def test_dead_local_process_raises_a_critical_error(qapp: Any, client_factory: ClientFactory) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that surely is gone now
    rig = Rig(client_factory)

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(URL, persist=False)
        rig.push(URL, envelope("job-1", 1, hello(pid=child.pid, host="")), envelope("job-1", 2, progress(40)))
        rig.clients.last(URL).on_event(ConnectionEvent(ClientState.RECONNECTING, "closed", retry_in=1.0))
        await rig.controller.drain()
        await rig.controller.shutdown()

    run(qapp, scenario)
    errors = rig.history.query(HistoryQuery(kinds=["error"]))
    assert len(errors) == 1
    assert errors[0].urgency == "critical"
    assert errors[0].error_type == "system_crash"
    assert any("exited unexpectedly" in p for p in rig.problems)


def test_live_process_keeps_reconnecting_quietly(qapp: Any, client_factory: ClientFactory) -> None:
    import os

    rig = Rig(client_factory)

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(URL, persist=False)
        rig.push(URL, envelope("job-1", 1, hello(pid=os.getpid(), host="")), envelope("job-1", 2, progress(40)))
        rig.clients.last(URL).on_event(ConnectionEvent(ClientState.RECONNECTING, "closed", retry_in=1.0))
        await rig.controller.drain()
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert rig.history.query(HistoryQuery(kinds=["error"])) == []


def test_retry_button_in_a_notification_reaches_the_job(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)
    rig.notifier.on_action = rig.controller.handle_action

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(URL, persist=False)
        error = wire.NotificationEvent(
            type=wire.NotificationType.ERROR, title="OOM", message="boom", error_type="oom_error", urgency="critical"
        )
        rig.push(URL, envelope("job-1", 1, hello()), envelope("job-1", 5, error))
        await rig.controller.drain()
        rig.notifier.invoke("retry")
        rig.controller.request_action(URL, "cancel")
        for _ in range(5):
            await asyncio.sleep(0)
        await rig.controller.shutdown()

    run(qapp, scenario)
    sent = rig.clients.last(URL).sent
    by_name = {a.action: a for a in sent}
    assert sorted(by_name) == ["cancel", "retry"]
    assert by_name["retry"].ref_seq == 5  # the seq of the notification whose button was pressed


def test_pause_resume_and_unsubscribe(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory, Settings(subscriptions=(Subscription(URL),)))
    removed: list[str] = []
    rig.controller.job_removed.connect(removed.append)

    async def scenario() -> None:
        rig.controller.start()
        assert URL in rig.controller.rows  # saved subscriptions start with the app
        rig.controller.set_job_paused(URL, True)
        assert rig.clients.last(URL).stopped
        assert rig.controller.rows[URL].link is Link.STOPPED
        assert rig.saved[-1].subscriptions[0].paused
        rig.controller.set_job_paused(URL, False)
        assert not rig.clients.last(URL).stopped
        rig.controller.unsubscribe(URL)
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert removed == [URL]
    assert rig.saved[-1].subscriptions == ()
    assert len(rig.clients.clients) == 2


def test_user_pause_withholds_and_resume_summarises(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)
    paused: list[object] = []
    rig.controller.pause_changed.connect(paused.append)

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(URL, persist=False)
        rig.push(URL, envelope("job-1", 1, hello()))
        rig.controller.pause_notifications(rig.clock.now() + 3600)
        rig.push(URL, envelope("job-1", 2, progress(30)))
        await rig.controller.drain()
        assert rig.notifier.requests == []
        rig.controller.pause_notifications(None)
        await rig.controller.drain()
        await rig.controller.shutdown()

    run(qapp, scenario)
    statuses = [e.status for e in rig.history.query(HistoryQuery())]
    assert DeliveryStatus.PAUSED in statuses or DeliveryStatus.WITHHELD_DND in statuses
    assert len(rig.notifier.requests) == 1  # the "while paused you missed" summary
    assert paused[0] is not None and paused[-1] is None


def test_dnd_change_is_polled_and_signalled(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)
    states: list[str] = []
    rig.controller.dnd_changed.connect(states.append)

    async def scenario() -> None:
        assert await rig.controller.poll_dnd() is DndState.OFF
        rig.dnd.set(DndState.ON)
        await rig.controller.poll_dnd()
        await rig.controller.poll_dnd()

    run(qapp, scenario)
    assert states == ["off", "on"]


def test_discovery_subscribes_local_jobs_once(qapp: Any, client_factory: ClientFactory) -> None:
    class Job:
        url = URL
        token = "t"
        pid = 123
        name = "local-job"

    rig = Rig(client_factory, discover=lambda: [Job()])

    async def scenario() -> None:
        assert rig.controller.discover_now() == 1
        assert rig.controller.discover_now() == 0
        await rig.controller.shutdown()

    run(qapp, scenario)
    row = rig.controller.rows[URL]
    assert (row.local, row.pid, row.token, row.name) == (True, 123, "t", "local-job")
    assert rig.saved == []  # discovered jobs are not saved as subscriptions


def test_warnings_go_to_the_banner(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(URL, persist=False)
        warning = wire.NotificationEvent(type=wire.NotificationType.WARNING, title="loss spike", message="x6")
        rig.push(URL, envelope("job-1", 1, hello()), envelope("job-1", 2, warning))
        await rig.controller.drain()
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert rig.problems == ["⚠ loss spike: x6"]


# -- settings writes (issue 17: 1,000 URLs were 1,000 writes of a growing file) -------------------


def urls(count: int) -> list[str]:
    return [f"ws://127.0.0.1:{9000 + i % 50}/ws/notifications/job-{i}" for i in range(count)]


def test_a_thousand_urls_are_two_writes_and_quitting_writes_the_last(qapp: Any, client_factory: ClientFactory) -> None:
    rig = Rig(client_factory)
    wanted = urls(1000)

    async def scenario() -> None:
        rig.controller.start()
        for i, url in enumerate(wanted):
            assert rig.controller.subscribe(url, f"tok-{i}")
        assert len(rig.saved) == 1  # the first at once; the rest wait for SAVE_INTERVAL_S
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert len(rig.saved) == 2  # quitting wrote what was waiting
    assert [s.url for s in rig.saved[-1].subscriptions] == wanted
    assert rig.saved[-1].subscriptions[-1].token == "tok-999"


def test_a_change_is_written_soon_without_quitting(qapp: Any, client_factory: ClientFactory) -> None:
    from peft_notify.app.controller import SAVE_INTERVAL_S

    rig = Rig(client_factory)
    a, b = urls(2)

    async def scenario() -> None:
        rig.controller.start()
        rig.controller.subscribe(a)
        rig.controller.subscribe(b)
        assert [[s.url for s in saved.subscriptions] for saved in rig.saved] == [[a]]
        await asyncio.sleep(SAVE_INTERVAL_S + 0.3)
        assert [s.url for s in rig.saved[-1].subscriptions] == [a, b]  # soon after, on its own
        rig.controller.unsubscribe(a)
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert len(rig.saved) == 3  # nothing was waiting twice
    assert [s.url for s in rig.saved[-1].subscriptions] == [b]


def test_the_settings_file_keeps_every_url_and_stays_private(
    qapp: Any, client_factory: ClientFactory, tmp_path: Any
) -> None:
    """The real file: 1,000 followed URLs with tokens, written through the throttle, read back whole, 0600."""
    from peft_notify.desktop.settings import load_settings, save_settings

    path = tmp_path / "settings.toml"
    writes: list[int] = []

    def save(settings: Settings) -> None:
        writes.append(len(settings.subscriptions))
        save_settings(settings, path)

    controller = Controller(
        Settings(),
        engine=Engine(EngineConfig()),
        history=MemoryHistoryStore(),
        notifiers=[RecordingNotifier()],
        taskbar=RecordingTaskbar(),
        dnd_probe=ScriptedDndProbe([DndState.OFF]),
        client_factory=client_factory,
        save_settings=save,
    )
    wanted = urls(1000)

    async def scenario() -> None:
        controller.start()
        for i, url in enumerate(wanted):
            controller.subscribe(url, f"secret-{i}")
        await controller.shutdown()

    run(qapp, scenario)
    assert writes == [1, 1000]
    saved = load_settings(path)
    assert [(s.url, s.token) for s in saved.subscriptions] == [(u, f"secret-{i}") for i, u in enumerate(wanted)]
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the tokens


def test_a_flush_of_many_jobs_runs_in_slices_and_refreshes_every_one(qapp: Any, client_factory: ClientFactory) -> None:
    """Issue 17: 1,000 jobs' progress was refreshed in one ~20 ms piece; the loop now runs between slices."""
    from peft_notify.app.controller import FLUSH_BATCH, UI_REFRESH_S

    rig = Rig(client_factory)
    wanted = urls(2 * FLUSH_BATCH + 50)
    seen: list[str] = []

    def on_updated(key: str) -> None:
        if not seen:  # the first refresh of the flush: mark where the loop next gets a turn
            asyncio.get_running_loop().call_soon(seen.append, "loop turn")
        seen.append(key)

    async def scenario() -> None:
        rig.controller.start()
        for i, url in enumerate(wanted):
            rig.controller.subscribe(url, persist=False)
            rig.push(url, envelope(f"job-{i}", 1, hello(name=f"run-{i}")))
        await rig.controller.drain()
        rig.controller.job_updated.connect(on_updated)
        for i, url in enumerate(wanted):
            rig.push(url, envelope(f"job-{i}", 2, progress(40)))
        await asyncio.sleep(UI_REFRESH_S + 0.5)
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert seen.index("loop turn") == FLUSH_BATCH  # other work ran after the first slice
    assert sorted(k for k in seen if k != "loop turn") == sorted(wanted)  # every job once
    assert all(rig.controller.rows[url].step == 40 for url in wanted)


def test_jobs_the_window_does_not_show_are_refreshed_once_a_second(qapp: Any, client_factory: ClientFactory) -> None:
    """Issue 17: with 1,000 jobs, refreshing every row at every flush was most of the UI's work for rows
    nobody sees. The window says which jobs it shows in full; the others wait up to BACKGROUND_REFRESH_S."""
    from peft_notify.app.controller import BACKGROUND_REFRESH_S, UI_REFRESH_S

    rig = Rig(client_factory)
    shown, hidden = urls(2)
    rows = rig.controller.rows

    async def scenario() -> None:
        rig.controller.start()
        for i, url in enumerate((shown, hidden)):
            rig.controller.subscribe(url, persist=False)
            rig.push(url, envelope(f"job-{i}", 1, hello()))
        await rig.controller.drain()
        rig.controller.set_shown([shown])
        for step in (10, 20):
            for i, url in enumerate((shown, hidden)):
                rig.push(url, envelope(f"job-{i}", step, progress(step)))
            await asyncio.sleep(UI_REFRESH_S + 0.15)
        assert (rows[shown].step, rows[hidden].step) == (20, 10)  # the hidden one was refreshed just now
        await asyncio.sleep(BACKGROUND_REFRESH_S)
        assert rows[hidden].step == 20  # ... and again a second later
        rig.push(hidden, envelope("job-1", 30, progress(30)))
        await rig.controller.drain()  # draining (quitting, tests) refreshes everything at once
        assert rows[hidden].step == 30
        await rig.controller.shutdown()

    run(qapp, scenario)


def test_a_stall_found_by_a_timer_pass_updates_only_that_row(qapp: Any, client_factory: ClientFactory) -> None:
    """A timer pass reads each job's (state, stalled) and rebuilds only the rows that changed."""
    rig = Rig(client_factory)
    other = URL.replace("job-1", "job-2")
    updated: list[str] = []

    async def scenario() -> None:
        rig.controller.start()
        assert rig.controller.subscribe(URL, "tok")
        assert rig.controller.subscribe(other, "tok")
        rig.push(URL, envelope("job-1", 1, hello()), envelope("job-1", 2, progress(10)))
        rig.push(other, envelope("job-2", 1, hello()), envelope("job-2", 2, progress(10)))
        await rig.controller.drain()
        rig.controller.job_updated.connect(updated.append)
        rig.clock.advance(EngineConfig().stall_min_s - 1.5)  # job-1's deadline has passed, job-2's not
        rig.controller.tick()
        await rig.controller.drain()
        await rig.controller.shutdown()

    run(qapp, scenario)
    assert rig.controller.rows[URL].stalled and not rig.controller.rows[other].stalled
    assert URL in updated and other not in updated
