"""The app's resource texts and charts (peft_notify/app/resources_view.py), from real engine views."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from peft_notify.app.resource_charts import ResourceCharts
from peft_notify.app.resources_view import ResourceHistory, card_text, detail_text, worst_condition
from peft_notify.engine import Engine
from peft_notify.engine.resources import ResourceView
from peft_notify.wire import DiskSample, Envelope, GpuSample, Hello, HostSample, Resource

GIB = 1 << 30
T0 = 1_700_000_000.0


def engine_with(sample: Resource, job: str = "j1", notes: tuple[str, ...] = ()) -> Engine:
    engine = Engine()
    hello = Hello(name=job, run_id="r", resources=("host_memory",), resource_notes=notes)
    engine.feed(Envelope(type="hello", data=hello, seq=0, job_id=job, ts=T0), now=T0)
    engine.feed(Envelope(type="resource", data=sample, seq=1, job_id=job, ts=T0), now=T0)
    return engine


def view_of(sample: Resource, notes: tuple[str, ...] = ()) -> ResourceView | None:
    return engine_with(sample, notes=notes).resources("j1")


HOST = HostSample(mem_total=64 * GIB, mem_available=16 * GIB, swap_total=GIB, swap_used=0, rss=8 * GIB, cpu_percent=99)
GPU = GpuSample(0, "H100", mem_used=60 * GIB, mem_total=80 * GIB, util=88, temperature=70, throttle=("power",))


def test_card_shows_gpu_memory_util_and_disk_free_compactly() -> None:
    view = view_of(Resource(host=HOST, disk=DiskSample("/o", free=500 * GIB, total=1000 * GIB), gpus=(GPU,)))
    assert card_text(view) == "GPU 75% mem · 88% util · disk 500 GiB free"
    assert card_text(None) == ""


def test_card_marks_a_critical_condition() -> None:
    view = view_of(Resource(disk=DiskSample("/o", free=GIB, total=1000 * GIB, next_checkpoint=2 * GIB)))
    assert card_text(view) == "✖ disk 1.0 GiB free"


def test_detail_text_lists_host_disk_gpus_and_what_is_not_watched() -> None:
    failing = GpuSample(1, error="GPU is lost")
    view = view_of(Resource(host=HOST, gpus=(GPU, failing)), notes=("gpu: not watched: x",))
    text = detail_text(view)
    assert text.splitlines() == [
        "RAM 75% of 64.0 GiB, job 8.0 GiB, swap 0 B, CPU 99%",
        "GPU 0 · 60.0 GiB/80.0 GiB · 88% util · 70 °C · throttling (power)",
        "GPU 1: GPU is lost",
        "gpu: not watched: x",
    ]


def test_worst_condition_prefers_critical() -> None:
    warn = view_of(Resource(disk=DiskSample("/o", free=14 * GIB, total=1000 * GIB, next_checkpoint=10 * GIB)))
    crit = view_of(Resource(disk=DiskSample("/o", free=GIB, total=1000 * GIB, next_checkpoint=10 * GIB)))
    assert worst_condition([None, warn]) == "j1: low disk space"
    assert worst_condition([warn, crit, None]) == "j1: the next checkpoint will not fit"
    assert worst_condition([]) is None


def test_history_keeps_one_point_a_second_and_the_highest_gpu() -> None:
    history = ResourceHistory(maxlen=3)
    low = GpuSample(1, mem_used=10, mem_total=100)
    for t in (0.0, 0.5, 1.0, 2.0, 3.0):
        history.add(T0 + t, Resource(host=HOST, gpus=(GPU, low)))
    assert [x for x, _ in history.gpu] == [1, 2, 3]
    assert history.gpu[-1][1] == 75.0
    assert history.ram[-1][1] == 75.0


def test_a_full_history_costs_16_bytes_a_point() -> None:
    """Issue 17: two deques of (int, float) tuples were ~180 KiB a job after 15 minutes (~175 MiB for
    1,000 jobs sampling their machines); the series are Curves now."""
    import tracemalloc

    from peft_notify.app.resources_view import HISTORY_POINTS

    sample = Resource(host=HOST, gpus=(GPU,))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        histories = [ResourceHistory() for _ in range(20)]
        for history in histories:
            for t in range(HISTORY_POINTS + 100):
                history.add(T0 + t, sample)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(len(h.gpu) == len(h.ram) == HISTORY_POINTS for h in histories)
    assert [x for x, _ in histories[0].gpu][:2] == [100, 101]  # the last 15 minutes
    assert used / (20 * 2 * HISTORY_POINTS) < 16 * 1.3 + 10


def test_charts_show_only_with_data(qtbot: QtBot) -> None:
    charts = ResourceCharts()
    qtbot.addWidget(charts)
    charts.show()
    charts.show_history(None)
    assert not charts.isVisible()
    history = ResourceHistory()
    history.add(T0, Resource(host=HOST, gpus=(GPU,)))
    history.add(T0 + 1, Resource(host=HOST, gpus=(GPU,)))
    charts.show_history(history)
    assert charts.isVisible()


def test_resource_messages_reach_the_row_card_detail_tray_and_history(qtbot: QtBot, qapp: object) -> None:
    import asyncio

    from peft_notify import wire
    from peft_notify.app.detail_pane import DetailPane
    from peft_notify.app.job_card import JobCard
    from peft_notify.app.tray import Tray
    from peft_notify.ports import DeliveryStatus, HistoryQuery
    from tests.app.app_support import ClientFactory, envelope, hello
    from tests.app.test_controller import URL, Rig

    rig = Rig(ClientFactory())
    low = Resource(host=HOST, disk=DiskSample("/o", free=14 * GIB, total=1000 * GIB, next_checkpoint=10 * GIB))
    full = Resource(host=HOST, disk=DiskSample("/o", free=9 * GIB, total=1000 * GIB, next_checkpoint=10 * GIB))

    async def scenario() -> None:
        rig.controller.start()
        assert rig.controller.subscribe(URL, "tok")
        rig.push(URL, envelope("job-1", 1, hello()), envelope("job-1", 2, low), envelope("job-1", 3, full))
        await rig.controller.drain()
        await rig.controller.shutdown()

    asyncio.run(scenario())
    row = rig.controller.rows[URL]
    assert row.resources is not None
    assert row.resources.worst == "llama: the next checkpoint will not fit"
    assert [x for x, _ in row.resource_history.ram] == [0, 1]
    # Warning: the banner and a normal popup; critical: an error popup. Both in the history.
    assert any(p.startswith("⚠ llama: low disk space") for p in rig.problems)
    entries = {e.title: e for e in rig.history.query(HistoryQuery())}
    assert entries["llama: low disk space"].kind == "warning"
    assert entries["llama: the next checkpoint will not fit"].urgency == "critical"
    assert all(e.status is DeliveryStatus.SHOWN for e in entries.values())
    assert [r.event.type for r in rig.notifier.requests] == [wire.NotificationType.WARNING, wire.NotificationType.ERROR]

    card = JobCard()
    qtbot.addWidget(card)
    card.show_row(row)
    assert card.resources.text() == "✖ disk 9.0 GiB free"
    pane = DetailPane()
    qtbot.addWidget(pane)
    pane.show_row(row, [])
    assert "Disk 9.0 GiB free of 1000 GiB, next checkpoint ≈ 10.0 GiB" in pane.facts["Resources"].text()
    tray = Tray()
    tray.refresh([row], 0)
    assert "⚠ llama: the next checkpoint will not fit" in tray.icon.toolTip()
