"""The training side's resource sampler (peft_notify/emitter/resources.py).

Host metrics come from real psutil on a real process tree; the disk from a real small
tmpfs (mounted as root, skipped where that is not permitted). The GPU part runs against
``FakeNvml`` (tests/emitter/nvml_fake.py), a stand-in for nvidia-ml-py's ``pynvml`` at its
function boundary, because no NVIDIA GPU or driver exists on the test machines; the real
"no NVML here" path runs against the real nvidia-ml-py.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from peft_notify import wire
from peft_notify.emitter import resources
from peft_notify.emitter.resources import (
    DiskWatch,
    HostWatch,
    NvmlGpus,
    ResourceSampler,
    checkpoint_size,
    describe_gpu,
    open_nvml,
    throttle_reasons,
)
from tests.emitter.nvml_fake import HW_THERMAL, SW_POWER_CAP, SW_THERMAL, FakeDevice, FakeNvml
from tests.emitter.resource_support import busy_tree, fill, small_tmpfs

# ----------------------------------------------------------------------------- host (real psutil)


def test_host_sample_covers_the_whole_process_tree_with_real_psutil() -> None:
    with busy_tree() as (parent, grandchild):
        watch = HostWatch(parent.pid)
        assert grandchild in watch.pids()
        spinner = psutil.Process(grandchild)
        t0, cpu0 = time.monotonic(), sum(spinner.cpu_times()[:2])
        watch.sample(t0)
        time.sleep(1.0)
        t1, cpu1 = time.monotonic(), sum(spinner.cpu_times()[:2])
        sample = watch.sample(t1)
        spinner_percent = 100 * (cpu1 - cpu0) / (t1 - t0)  # what the busy grandchild alone used
        assert sample.alive
        assert sample.rss is not None
        assert sample.rss >= 48 << 20  # the parent's block, plus two interpreters
        assert sample.cpu_percent is not None
        assert sample.cpu_percent >= 0.8 * spinner_percent > 5  # the tree's CPU includes the spinning grandchild
        vm = psutil.virtual_memory()
        assert sample.mem_total == vm.total
        assert 0 < sample.mem_available <= sample.mem_total
    gone = watch.sample(time.monotonic())
    assert not gone.alive
    assert gone.rss is None


def test_first_host_sample_has_no_cpu_figure_and_a_new_process_counts_from_now() -> None:
    watch = HostWatch(os.getpid())
    assert watch.sample(time.monotonic()).cpu_percent is None
    time.sleep(0.2)
    assert watch.sample(time.monotonic()).cpu_percent is not None


def test_a_pid_that_does_not_exist_is_a_dead_tree_not_an_error() -> None:
    sample = HostWatch(2**22 + 12345).sample(time.monotonic())
    assert not sample.alive
    assert sample.mem_total > 0


def test_the_tree_from_the_kernels_children_lists_is_the_one_psutil_walks() -> None:
    with busy_tree() as (parent, grandchild):
        watch = HostWatch(parent.pid)
        expected = {parent.pid} | {p.pid for p in psutil.Process(parent.pid).children(recursive=True)}
        assert grandchild in expected
        assert watch.pids() == expected
        sample = watch.sample(time.monotonic())
        rss = sum(psutil.Process(pid).memory_info().rss for pid in expected)
        assert sample.rss is not None and abs(sample.rss - rss) <= 0.05 * rss  # same pages as psutil counts
        assert watch.last_pids == expected
        swap = psutil.swap_memory()  # /proc/meminfo read directly: the figures psutil gives
        assert (sample.mem_total, sample.swap_total) == (psutil.virtual_memory().total, swap.total)
        assert abs(sample.swap_used - swap.used) <= 64 << 20


def test_a_child_started_by_another_thread_is_in_the_tree() -> None:
    """The kernel lists a child under the thread that forked it: every thread's list is read."""
    started: list[subprocess.Popen[bytes]] = []
    spawned, checked = threading.Event(), threading.Event()

    def spawn() -> None:  # stays alive while the tree is read (a dead thread's children move to another)
        started.append(subprocess.Popen(["sleep", "30"]))
        spawned.set()
        checked.wait(30)

    thread = threading.Thread(target=spawn)
    thread.start()
    try:
        assert spawned.wait(30)
        assert started[0].pid in HostWatch(os.getpid()).pids()
    finally:
        checked.set()
        thread.join()
        started[0].kill()
        started[0].wait()


@pytest.mark.parametrize("children_lists", [True, False], ids=["proc-children", "psutil"])
def test_the_tree_is_walked_again_every_refresh_period_and_the_dead_drop_out_at_once(
    children_lists: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both paths on real trees. ``psutil``: kernels without CONFIG_PROC_CHILDREN (and other
    systems); the kernel feature is switched off by replacing its probe, the one substitution here."""
    if not children_lists:
        monkeypatch.setattr(resources, "_procfs_children", lambda: False)
    with busy_tree() as (parent, grandchild):
        tree = HostWatch(parent.pid)
        assert tree.sample(100.0).alive
        assert grandchild in tree.last_pids
    assert not tree.sample(101.0).alive  # a dead root: at once, not at the next walk
    watch = HostWatch(os.getpid())
    watch.sample(100.0)
    late = subprocess.Popen(["sleep", "30"])
    try:
        watch.sample(100.0 + resources.TREE_REFRESH_S / 2)
        assert late.pid not in watch.last_pids  # membership is kept between walks
        watch.sample(100.0 + resources.TREE_REFRESH_S)
        assert late.pid in watch.last_pids  # walked again
    finally:
        late.kill()
        late.wait()
    watch.sample(101.0 + resources.TREE_REFRESH_S)
    assert late.pid not in watch.last_pids  # a process that ended drops out at once
    watch.close()


def test_proc_files_kept_open_are_closed_when_their_process_ends_and_at_close() -> None:
    """The Linux path re-reads /proc files it keeps open: none may leak."""
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    before = fds()
    with busy_tree() as (parent, _grandchild):
        watch = HostWatch(parent.pid)
        for now in (100.0, 101.0):
            assert watch.sample(now).alive
        assert before < fds() <= before + resources.MAX_OPEN_FILES
    assert not watch.sample(102.0).alive
    assert fds() == before  # the tree is gone: its files are closed
    own = HostWatch(os.getpid())
    own.sample(100.0)
    own.close()
    assert fds() == before


# ----------------------------------------------------------------------------- disk (real tmpfs)


def test_disk_sample_reports_the_real_free_space_of_a_filled_tmpfs(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs") as fs:
        out = fs / "run"
        out.mkdir()
        before = DiskWatch(out).sample(0.0)
        assert before.total <= 8 << 20
        fill(out / "ballast.bin", 5 << 20)
        after = DiskWatch(out).sample(0.0)
        assert before.free - after.free >= 5 << 20
        assert after.path == str(out)


def test_next_checkpoint_estimate_is_the_newest_checkpoint_on_disk(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs") as fs:
        old = fs / "checkpoint-100"
        old.mkdir()
        fill(old / "adapter_model.safetensors", 1 << 20)
        time.sleep(0.01)
        new = fs / "checkpoint-200"
        (new / "nested").mkdir(parents=True)
        fill(new / "adapter_model.safetensors", 2 << 20)
        fill(new / "nested" / "optimizer.pt", 1 << 20)
        assert checkpoint_size(fs) == 3 << 20
        watch = DiskWatch(fs, param_bytes=123)
        assert watch.sample(0.0).next_checkpoint == 3 << 20


def test_without_a_checkpoint_the_estimate_is_the_parameter_bytes(tmp_path: Path) -> None:
    assert DiskWatch(tmp_path, param_bytes=4096).sample(0.0).next_checkpoint == 4096
    assert DiskWatch(tmp_path).sample(0.0).next_checkpoint is None


def test_lightning_style_ckpt_files_count_as_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x" * 100_000)
    (tmp_path / "epoch=1.ckpt").write_bytes(b"\1" * 50_000)
    size = checkpoint_size(tmp_path)
    assert size is not None
    assert 50_000 <= size < 100_000


def test_attack_symlinked_checkpoint_is_not_followed(tmp_path: Path) -> None:
    # A checkpoint-* symlink to / (or a loop) must neither be walked nor counted.
    (tmp_path / "checkpoint-999").symlink_to("/")
    (tmp_path / "big.ckpt").symlink_to("/proc/kcore")
    assert checkpoint_size(tmp_path) is None
    loop = tmp_path / "checkpoint-1"
    loop.mkdir()
    (loop / "self").symlink_to(loop)
    (loop / "w.bin").write_bytes(b"x" * 10)
    assert checkpoint_size(tmp_path) == (checkpoint_size(loop.parent) or 0)  # finite, no loop
    assert (checkpoint_size(tmp_path) or 0) >= 10


def test_an_output_dir_not_created_yet_reports_its_nearest_parent(tmp_path: Path) -> None:
    sample = DiskWatch(tmp_path / "not" / "yet").sample(0.0)
    assert sample.total > 0
    assert sample.next_checkpoint is None


def test_the_checkpoint_scan_is_bounded(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint-1"
    ckpt.mkdir()
    for i in range(50):
        (ckpt / f"f{i}").write_bytes(b"x")
    full = checkpoint_size(tmp_path)
    capped = checkpoint_size(tmp_path, limit=10)
    assert full is not None
    assert capped is not None
    assert capped < full


# ----------------------------------------------------------------------------- GPU (fake NVML)


def devices() -> list[FakeDevice]:
    return [
        FakeDevice(pids=[4242], used=40 << 30, reasons=SW_THERMAL | SW_POWER_CAP),
        FakeDevice(pids=[999], used=1 << 30),  # another user's job: not ours
        FakeDevice(pids=[4243], lost=False),
    ]


def test_gpus_are_those_of_the_process_tree_and_report_every_field() -> None:
    nv = FakeNvml(devices())
    gpus = NvmlGpus(nv)
    assert gpus.open() == 3
    assert gpus.devices_for({4242, 4243}) == [0, 2]
    s0 = gpus.sample(0)
    assert s0 == wire.GpuSample(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        mem_used=40 << 30,
        mem_total=80 << 30,
        util=90.0,
        temperature=65.0,
        power_w=400.0,
        throttle=("thermal", "power"),
        ecc_uncorrected=0,
    )
    # A device the tree used stays watched after its processes left it.
    nv.devices[0].pids = []
    assert gpus.devices_for({4242, 4243}) == [0, 2]


def test_one_failing_device_does_not_stop_the_others() -> None:
    devs = devices()
    devs[2].lost = True
    nv = FakeNvml(devs)
    gpus = NvmlGpus(nv)
    gpus.open()
    assert gpus.devices_for({4242}) == [0]  # a lost device cannot list its processes
    devs[2].lost = False
    assert gpus.devices_for({4243}) == [0, 2]
    devs[2].lost = True
    samples = [gpus.sample(i) for i in (0, 2)]
    assert samples[0].error is None
    assert samples[1].error == "GPU is lost"


def test_unsupported_fields_are_left_out() -> None:
    dev = FakeDevice(pids=[1], ecc_supported=False)
    gpus = NvmlGpus(FakeNvml([dev]))
    gpus.open()
    assert gpus.sample(0).ecc_uncorrected is None


def test_xid_critical_errors_are_counted_from_the_event_set() -> None:
    nv = FakeNvml(devices())
    gpus = NvmlGpus(nv)
    gpus.open()
    assert nv.registered == {0: 0x0A, 1: 0x0A, 2: 0x0A}  # XID critical + double-bit ECC only
    gpus.poll_events()
    assert gpus.sample(0).xid_count == 0
    nv.xid(0, 79)  # "GPU has fallen off the bus"
    nv.xid(0, 48)
    gpus.poll_events()
    sample = gpus.sample(0)
    assert sample.xid_count == 2
    assert sample.last_xid == 48
    assert all(call == "wait:0" for call in nv.calls)  # never blocks the sampler


def test_throttle_reason_bits() -> None:
    assert throttle_reasons(0) == ()
    assert throttle_reasons(0x1) == ()  # idle is not throttling
    assert throttle_reasons(HW_THERMAL) == ("thermal",)
    assert throttle_reasons(SW_POWER_CAP) == ("power",)
    assert throttle_reasons(0x08) == ("hardware",)


def test_absent_nvml_library_means_no_gpu_part_and_one_note() -> None:
    nv = FakeNvml([], library=False)
    gpus, note = open_nvml(nv)
    assert gpus is None
    assert note == "gpu: not watched: NVML is not available (NVML Shared Library Not Found)"


def test_real_nvidia_ml_py_without_a_driver_is_a_note_not_an_error() -> None:
    pytest.importorskip("pynvml", reason="nvidia-ml-py is a dev dependency")
    gpus, note = open_nvml()
    if gpus is not None:  # a machine with a driver: fine, just release it
        gpus.close()
        pytest.skip("this machine has NVML")
    assert note is not None
    assert note.startswith("gpu: not watched:")


def test_doctor_line_names_the_gpus_or_says_why_not() -> None:
    assert describe_gpu(FakeNvml(devices()[:2])) == (
        "resource warnings, gpu: NVML sees 2 GPUs (NVIDIA H100 80GB HBM3, NVIDIA H100 80GB HBM3)"
    )
    assert describe_gpu(FakeNvml([], library=False)) == (
        "resource warnings, gpu: not watched: NVML is not available (NVML Shared Library Not Found)"
    )


def test_no_gpus_at_all_is_a_note() -> None:
    gpus, note = open_nvml(FakeNvml([]))
    assert gpus is None
    assert note == "gpu: not watched: NVML found no NVIDIA GPU"


# ----------------------------------------------------------------------------- the sampler


def test_sampler_reports_what_it_watches_and_why_not(tmp_path: Path) -> None:
    s = ResourceSampler(lambda r: None, output_dir=tmp_path, gpu=FakeNvml([], library=False))
    assert s.watched == ("host_memory", "swap", "process_rss", "disk")
    assert s.notes == ("gpu: not watched: NVML is not available (NVML Shared Library Not Found)",)
    s2 = ResourceSampler(lambda r: None, gpu=FakeNvml(devices()))
    assert s2.watched == ("host_memory", "swap", "process_rss", "gpu")
    assert s2.notes == ("disk: not watched: no output directory given",)
    s2.stop()


def test_sample_once_combines_host_disk_and_the_trees_gpus(tmp_path: Path) -> None:
    devs = devices()
    devs[1].pids = [os.getpid()]
    nv = FakeNvml(devs)
    s = ResourceSampler(lambda r: None, output_dir=tmp_path, gpu=nv)
    nv.xid(1, 79)
    sample = s.sample_once()
    assert sample is not None
    assert sample.host is not None
    assert sample.host.alive
    assert sample.disk is not None
    assert [g.index for g in sample.gpus] == [1]
    assert sample.gpus[0].xid_count == 1
    s.stop()
    assert nv.shutdowns == 1


def test_sampler_thread_sends_at_most_one_sample_a_second_and_survives_a_failing_sink() -> None:
    got: list[wire.Resource] = []
    first = threading.Event()

    def sink(resource: wire.Resource) -> None:
        got.append(resource)
        first.set()
        if len(got) == 1:
            raise RuntimeError("a broken sink must not stop sampling")

    s = ResourceSampler(sink, interval=0.01, gpu=False).start()  # asked for 100/s: clamped to 1/s
    assert first.wait(5)
    time.sleep(2.3)
    s.stop()
    assert 2 <= len(got) <= 4


def test_an_unreadable_part_is_left_out_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = ResourceSampler(lambda r: None, output_dir=tmp_path, gpu=False)

    def io_error(path: object) -> object:  # simulated: a dead NFS mount cannot be made on demand
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("peft_notify.emitter.resources.shutil.disk_usage", io_error)
    for _ in range(3):
        sample = s.sample_once()
        assert sample is not None
        assert sample.disk is None
        assert sample.host is not None
    assert sum("cannot read disk" in r.message for r in caplog.records) == 1


# ----------------------------------------------------------------------------- job(): served samples


def _first_resource(url: str, timeout: float = 10.0) -> tuple[dict[str, object], dict[str, object]]:
    """Connect a real WebSocket client; the hello and the first resource message."""
    import asyncio

    from websockets.asyncio.client import connect

    from tests.emitter.ws_helpers import recv_json, recv_until

    async def main() -> tuple[dict[str, object], dict[str, object]]:
        async with connect(url) as ws:
            hello = await recv_json(ws)
            got = await recv_until(ws, lambda m: m["type"] == "resource", timeout=timeout)
            return hello, got[-1]

    return asyncio.run(main())


def test_job_with_an_output_dir_serves_samples_and_its_hello_says_what_is_watched(tmp_path: Path) -> None:
    import peft_notify

    with peft_notify.job("res", output_dir=tmp_path, param_bytes=1234, print_url=False, linger=0) as ctx:
        assert ctx.sampler is not None
        hello, sample = _first_resource(ctx.url)
        ctx.progress(1, 10)
    assert not (ctx.sampler._thread and ctx.sampler._thread.is_alive())  # stopped with the job
    data = hello["data"]
    assert isinstance(data, dict)
    assert data["resources"][:4] == ["host_memory", "swap", "process_rss", "disk"]
    if "gpu" not in data["resources"]:  # this machine has no NVIDIA GPU: said once, in the hello
        assert data["resource_notes"][0].startswith("gpu: not watched: ")
    body = sample["data"]
    assert isinstance(body, dict)
    assert body["disk"]["path"] == str(tmp_path)
    assert body["disk"]["next_checkpoint"] == 1234
    assert body["host"]["alive"] is True
    wire.decode(json.dumps(sample))  # valid protocol


def test_no_sample_follows_the_terminal_status(tmp_path: Path) -> None:
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    import peft_notify
    from tests.emitter.ws_helpers import recv_json, recv_until

    with peft_notify.job("res", output_dir=tmp_path, print_url=False, linger=0) as ctx:

        async def main() -> list[dict[str, object]]:
            got: list[dict[str, object]] = []
            async with connect(ctx.url) as ws:
                await recv_json(ws)
                await recv_until(ws, lambda m: m["type"] == "resource", timeout=5)
                ctx.handle.status(wire.JobState.COMPLETED)
                try:
                    async with asyncio.timeout(2.5):  # two more sampler ticks
                        while True:
                            got.append(json.loads(await ws.recv()))
                except (TimeoutError, ConnectionClosed):
                    pass
            return got

        got = asyncio.run(main())
    kinds = [m["type"] for m in got]
    assert "status" in kinds
    assert "resource" not in kinds[kinds.index("status") :]


def test_resources_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import peft_notify

    monkeypatch.setenv("PEFT_NOTIFY_RESOURCES", "0")
    with peft_notify.job("res", output_dir=tmp_path, print_url=False, linger=0) as ctx:
        assert ctx.sampler is None
