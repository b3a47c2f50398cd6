"""Resource rules (peft_notify/engine/resources.py), through the Engine and as properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from peft_notify.engine import Engine, EngineConfig, MergeRepeat, Notify, Record
from peft_notify.engine.resources import JobFacts, Level, ResourceRules, ResourceThresholds, format_bytes
from peft_notify.ports import DndState
from peft_notify.wire import (
    DiskSample,
    Envelope,
    GpuSample,
    Hello,
    HostSample,
    NotificationType,
    Resource,
    UrgencyLevel,
)

from .factories import JOB, T0, hello, notifies, progress

GIB = 1 << 30


def res(
    *,
    free: int | None = None,
    total: int = 100 * GIB,
    est: int | None = None,
    mem: float | None = None,
    swap: int = 0,
    cpu: float | None = 50.0,
    alive: bool = True,
    gpus: tuple[GpuSample, ...] = (),
) -> Envelope:
    disk = None if free is None else DiskSample("/out", free=free, total=total, next_checkpoint=est)
    host = None
    if mem is not None:
        host = HostSample(
            mem_total=100 * GIB,
            mem_available=int(100 * GIB * (1 - mem / 100)),
            swap_total=8 * GIB,
            swap_used=swap,
            rss=GIB,
            cpu_percent=cpu,
            alive=alive,
        )
    return Envelope(type="resource", data=Resource(host=host, disk=disk, gpus=gpus), seq=2, job_id=JOB, ts=T0)


def gpu(i: int = 0, *, used: float = 50, util: float = 90, throttle: tuple[str, ...] = (), **kw: object) -> GpuSample:
    return GpuSample(
        index=i,
        name="H100",
        mem_used=int(used * GIB),
        mem_total=100 * GIB,
        util=util,
        temperature=84,
        power_w=700,
        throttle=throttle,
        **kw,
    )  # type: ignore[arg-type]


def started(config: EngineConfig | None = None) -> Engine:
    engine = Engine(config)
    engine.feed(hello(step=10), now=T0)
    return engine


def feed(engine: Engine, env: Envelope, now: float, dnd: DndState = DndState.OFF) -> list[Notify]:
    return notifies(engine.feed(env, now=now, dnd=dnd))


# ----------------------------------------------------------------------------- disk


def test_disk_below_one_and_a_half_checkpoints_warns_once() -> None:
    engine = started()
    assert feed(engine, res(free=20 * GIB, est=10 * GIB), T0) == []
    (n,) = feed(engine, res(free=14 * GIB, est=10 * GIB), T0 + 1)
    assert n.event.type is NotificationType.WARNING
    assert n.event.title == "llama-lora: low disk space"
    assert n.event.message == "14.0 GiB free on /out: the next checkpoint needs about 10.0 GiB."
    assert n.key == "resource:run-1:disk_low"
    assert feed(engine, res(free=13 * GIB, est=10 * GIB), T0 + 2) == []  # once until it clears


def test_disk_below_five_percent_warns_without_an_estimate() -> None:
    engine = started()
    (n,) = feed(engine, res(free=4 * GIB), T0)
    assert "4.0 % of the disk is free" in n.event.message


def test_disk_below_the_checkpoint_is_critical_and_bypasses_dnd() -> None:
    engine = started()
    (n,) = feed(engine, res(free=9 * GIB, est=10 * GIB), T0, dnd=DndState.ON)
    assert n.event.type is NotificationType.ERROR
    assert n.event.urgency == UrgencyLevel.CRITICAL
    assert not n.event.respect_dnd
    assert n.event.title == "llama-lora: the next checkpoint will not fit"
    assert n.event.error_type == "disk_full"
    assert n.event.actions == ["View Details"]
    view = engine.resources(JOB)
    assert view is not None
    assert view.level is Level.CRITICAL
    assert view.worst == "llama-lora: the next checkpoint will not fit"
    assert view.active == ("disk_full",)


def test_disk_condition_clears_with_hysteresis_then_cools_down() -> None:
    engine = started()
    assert len(feed(engine, res(free=14 * GIB, est=10 * GIB), T0)) == 1
    # Just above 1.5x is inside the band: not cleared, so a dip does not fire again.
    assert feed(engine, res(free=int(15.5 * GIB), est=10 * GIB), T0 + 10) == []
    assert feed(engine, res(free=14 * GIB, est=10 * GIB), T0 + 20) == []
    # Clearly clear (>= 1.5 x 1.1), then low again within the cooldown: quiet.
    assert feed(engine, res(free=17 * GIB, est=10 * GIB), T0 + 30) == []
    assert feed(engine, res(free=14 * GIB, est=10 * GIB), T0 + 40) == []
    # After the cooldown it may fire again.
    assert len(feed(engine, res(free=14 * GIB, est=10 * GIB), T0 + 700)) == 1


# ----------------------------------------------------------------------------- host


def test_host_memory_above_90_percent_for_30_s_warns() -> None:
    engine = started()
    assert feed(engine, res(mem=95), T0) == []
    assert feed(engine, res(mem=93), T0 + 29) == []
    (n,) = feed(engine, res(mem=92), T0 + 30)
    assert n.event.title == "llama-lora: host memory almost full"
    assert n.event.message.startswith("92 % of 100 GiB RAM in use for over 30 s")


def test_a_short_memory_peak_does_not_warn() -> None:
    engine = started()
    assert feed(engine, res(mem=95), T0) == []
    assert feed(engine, res(mem=50), T0 + 10) == []
    assert feed(engine, res(mem=95), T0 + 35) == []


def test_swap_growing_while_ram_is_full_warns() -> None:
    engine = started()
    assert feed(engine, res(mem=97, swap=GIB), T0) == []
    assert feed(engine, res(mem=97, swap=GIB + (10 << 20)), T0 + 1) == []
    found = feed(engine, res(mem=97, swap=GIB + (100 << 20)), T0 + 2)
    assert [n.event.title for n in found] == ["llama-lora: swapping"]
    assert "swap grew by 100 MiB" in found[0].event.message


def test_swap_in_use_without_full_ram_is_fine() -> None:
    engine = started()
    feed(engine, res(mem=50, swap=GIB), T0)
    assert feed(engine, res(mem=50, swap=4 * GIB), T0 + 5) == []


# ----------------------------------------------------------------------------- GPU


def test_gpu_memory_above_95_percent_for_30_s_warns_per_device() -> None:
    engine = started()
    assert feed(engine, res(gpus=(gpu(0, used=97), gpu(1, used=50))), T0) == []
    (n,) = feed(engine, res(gpus=(gpu(0, used=98), gpu(1, used=50))), T0 + 30)
    assert n.event.title == "llama-lora: GPU 0 close to out of memory"
    assert n.key == "resource:run-1:gpu_memory:0"


def test_throttling_for_60_s_warns() -> None:
    engine = started()
    assert feed(engine, res(gpus=(gpu(throttle=("thermal",)),)), T0) == []
    assert feed(engine, res(gpus=(gpu(throttle=("thermal",)),)), T0 + 59) == []
    (n,) = feed(engine, res(gpus=(gpu(throttle=("thermal",)),)), T0 + 60)
    assert n.event.title == "llama-lora: GPU 0 is throttling"
    assert "thermal throttling for over 60 s (84 °C, 700 W)" in n.event.message


def test_xid_error_is_critical_once_per_cooldown() -> None:
    engine = started()
    assert feed(engine, res(gpus=(gpu(),)), T0) == []
    (n,) = feed(engine, res(gpus=(gpu(xid_count=1, last_xid=79),)), T0 + 1, dnd=DndState.ON)
    assert n.event.type is NotificationType.ERROR
    assert n.event.urgency == UrgencyLevel.CRITICAL
    assert n.event.title == "llama-lora: GPU 0 reported XID 79"
    assert feed(engine, res(gpus=(gpu(xid_count=5, last_xid=79),)), T0 + 2) == []
    (again,) = feed(engine, res(gpus=(gpu(xid_count=6, last_xid=48),)), T0 + 700)
    assert "(6 so far)" in again.event.message


def test_uncorrectable_ecc_growth_is_critical_but_old_errors_are_not() -> None:
    engine = started()
    assert feed(engine, res(gpus=(gpu(ecc_uncorrected=3),)), T0) == []  # from before this job
    (n,) = feed(engine, res(gpus=(gpu(ecc_uncorrected=4),)), T0 + 1)
    assert n.event.error_type == "gpu_ecc"
    assert "1 uncorrectable ECC memory error" in n.event.message


def test_a_failed_row_remapping_is_critical() -> None:
    engine = started()
    (n,) = feed(engine, res(gpus=(gpu(remap_failure=True),)), T0)
    assert "a failed row remapping" in n.event.message


# ----------------------------------------------------------------------------- hang


def hang_engine() -> Engine:
    engine = Engine(EngineConfig(stall_min_s=60.0))
    engine.feed(hello(step=10), now=T0)
    engine.feed(progress(11), now=T0 + 1)
    return engine


def test_no_progress_while_the_process_is_idle_appears_hung() -> None:
    engine = hang_engine()
    assert feed(engine, res(mem=10, cpu=0.5, gpus=(gpu(util=0),)), T0 + 30) == []
    stalled = notifies(engine.tick(now=T0 + 61))
    assert [n.event.title for n in stalled] == ["Training appears stalled"]
    assert feed(engine, res(mem=10, cpu=0.5, gpus=(gpu(util=0),)), T0 + 89) == []  # idle only 59 s
    (n,) = feed(engine, res(mem=10, cpu=0.5, gpus=(gpu(util=0),)), T0 + 90)
    assert n.event.title == "llama-lora appears hung"
    assert n.key == "resource:run-1:hang"
    assert "no CPU (0.5 %)" in n.event.message


def test_a_slow_step_that_keeps_the_cpu_or_gpu_busy_is_not_a_hang() -> None:
    engine = hang_engine()
    for t in range(30, 400, 10):
        assert feed(engine, res(mem=10, cpu=0.5, gpus=(gpu(util=99),)), T0 + t) == []
        assert feed(engine, res(mem=10, cpu=100.0), T0 + t + 5) == []


def test_a_dead_process_is_not_a_hang() -> None:
    engine = hang_engine()
    for t in range(30, 400, 10):
        assert feed(engine, res(mem=10, cpu=0.0, alive=False), T0 + t) == []


def test_progress_clears_the_hang() -> None:
    engine = hang_engine()
    feed(engine, res(mem=10, cpu=0.0), T0 + 30)
    assert len(feed(engine, res(mem=10, cpu=0.0), T0 + 90)) == 1
    engine.feed(progress(12), now=T0 + 100)
    assert feed(engine, res(mem=10, cpu=0.0), T0 + 101) == []
    view = engine.resources(JOB)
    assert view is not None
    assert "hang" not in view.active


# ----------------------------------------------------------------------------- delivery, config


def test_warnings_respect_dnd_and_go_to_history() -> None:
    engine = started()
    actions = engine.feed(res(free=14 * GIB, est=10 * GIB), now=T0, dnd=DndState.ON)
    (rec,) = [a for a in actions if isinstance(a, Record)]
    assert rec.key == "resource:run-1:disk_low"


def test_thresholds_are_configurable_and_rules_can_be_off() -> None:
    strict = started(EngineConfig(resources=ResourceThresholds(disk_margin=3.0)))
    assert len(feed(strict, res(free=25 * GIB, est=10 * GIB), T0)) == 1
    off = started(EngineConfig(resources=ResourceThresholds(enabled=False)))
    assert feed(off, res(free=1, est=10 * GIB, mem=99), T0) == []
    assert off.resources(JOB) is not None  # the sample is still kept for the UI


def test_a_new_run_forgets_fired_conditions_and_hello_says_what_is_watched() -> None:
    engine = started()
    assert len(feed(engine, res(free=9 * GIB, est=10 * GIB), T0)) == 1
    body = Hello(name="llama-lora", run_id="run-2", resources=("host_memory", "disk"), resource_notes=("gpu: x",))
    engine.feed(Envelope(type="hello", data=body, seq=0, job_id=JOB, ts=T0), now=T0 + 1)
    view = engine.resources(JOB)
    assert view is not None
    assert view.watched == ("host_memory", "disk")
    assert view.notes == ("gpu: x",)
    assert view.active == ()
    assert len(feed(engine, res(free=9 * GIB, est=10 * GIB), T0 + 2)) == 1


def test_resource_messages_are_not_counted_as_unknown() -> None:
    engine = started()
    engine.feed(res(mem=10), now=T0)
    assert engine.unknown_count == 0


def test_format_bytes() -> None:
    assert format_bytes(None) == "?"
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(150 * GIB) == "150 GiB"


# ----------------------------------------------------------------------------- properties

FACTS = JobFacts(name="j", running=True, last_progress_at=None, stall_after_s=300.0)
T = ResourceThresholds()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.1, 40)), min_size=1, max_size=80))
def test_host_memory_fires_at_most_once_between_clears_and_cooldowns(steps: list[tuple[float, float]]) -> None:
    rules = ResourceRules(T)
    now = 0.0
    fired_at: list[float] = []
    cleared_between = True
    for mem, dt in steps:
        now += dt
        sample = Resource(host=HostSample(mem_total=1000, mem_available=int(1000 - mem * 10)))
        pct = sample.host.mem_percent if sample.host else 0.0
        if pct < T.host_memory_percent - T.hysteresis_percent:
            cleared_between = True
        for d in rules.on_sample("j", sample, now, FACTS):
            if d.key != "host_memory":
                continue
            assert pct > T.host_memory_percent  # never fires while the condition does not hold
            assert cleared_between  # once until it clears
            assert not fired_at or now - fired_at[-1] >= T.cooldown_s
            fired_at.append(now)
            cleared_between = False


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(T.host_memory_percent - T.hysteresis_percent + 0.01, 100), min_size=1, max_size=200))
def test_flapping_inside_the_hysteresis_band_fires_at_most_once(levels: list[float]) -> None:
    rules = ResourceRules(T)
    fired = 0
    for i, mem in enumerate(levels):
        sample = Resource(host=HostSample(mem_total=10_000, mem_available=int(10_000 - mem * 100)))
        fired += sum(d.key == "host_memory" for d in rules.on_sample("j", sample, float(i), FACTS))
    assert fired <= 1


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1 << 40), st.integers(1, 1 << 40), st.integers(1, 1 << 40))
def test_disk_level_matches_the_rule_on_first_sight(free: int, total: int, est: int) -> None:
    free = min(free, total)
    disk = DiskSample("/o", free=free, total=total, next_checkpoint=est)
    decisions = ResourceRules(T).on_sample("j", Resource(disk=disk), 0.0, FACTS)
    levels = {d.key: d.level for d in decisions}
    if free < est:
        assert levels == {"disk_full": Level.CRITICAL}
    elif free < est * T.disk_margin or disk.free_percent < T.disk_min_free_percent:
        assert levels == {"disk_low": Level.WARNING}
    else:
        assert levels == {}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=50))
def test_xid_never_notifies_more_than_once_per_cooldown(increments: list[int]) -> None:
    rules = ResourceRules(T)
    count = 0
    fired: list[float] = []
    for i, inc in enumerate(increments):
        count += inc
        sample = Resource(gpus=(GpuSample(index=0, xid_count=count),))
        now = i * 30.0
        for d in rules.on_sample("j", sample, now, FACTS):
            assert d.level is Level.CRITICAL
            assert not fired or now - fired[-1] >= T.cooldown_s
            fired.append(now)
    assert bool(fired) == (count > 0)


def test_merge_repeat_never_hides_a_first_critical() -> None:
    # A critical resource error goes to the gate without a bucket: never rate limited.
    engine = started()
    for i in range(10):
        engine.feed(res(free=20 * GIB, est=10 * GIB), now=T0 + i)
    actions = engine.feed(res(free=1, est=10 * GIB), now=T0 + 11)
    assert [type(a) for a in actions if isinstance(a, (Notify, Record, MergeRepeat))] == [Notify]


def test_hang_has_its_own_minimum_when_configured() -> None:
    config = EngineConfig(resources=ResourceThresholds(hang_min_s=5.0, hang_idle_for_s=2.0))
    engine = Engine(config)
    engine.feed(hello(step=10), now=T0)
    engine.feed(progress(11), now=T0 + 1)
    # Steps came 1 s apart: the threshold is max(hang_min_s 5 s, 10 x 1 s) = 10 s, not stall_min_s 300 s.
    assert feed(engine, res(mem=10, cpu=0.0), T0 + 4) == []
    assert feed(engine, res(mem=10, cpu=0.0), T0 + 10.5) == []
    (n,) = feed(engine, res(mem=10, cpu=0.0), T0 + 11.5)
    assert n.event.title == "llama-lora appears hung"


def test_thresholds_from_a_settings_table() -> None:
    t = ResourceThresholds.from_mapping({"throttle_for_s": 2, "enabled": False, "swap_growth_bytes": 1e6})
    assert (t.throttle_for_s, t.enabled, t.swap_growth_bytes) == (2.0, False, 1_000_000)
    for bad, words in [
        ({"nope": 1}, "resources.nope is not a resource threshold"),
        ({"enabled": 1}, "resources.enabled must be true or false"),
        ({"cooldown_s": -1}, "resources.cooldown_s must be a number >= 0"),
        ({"cooldown_s": float("inf")}, "resources.cooldown_s must be a number >= 0"),
        ({"cooldown_s": True}, "resources.cooldown_s must be a number >= 0"),
    ]:
        try:
            ResourceThresholds.from_mapping(bad)
        except ValueError as exc:
            assert str(exc) == words
        else:
            raise AssertionError(bad)


def test_attack_a_new_gpu_index_per_sample_does_not_grow_the_state() -> None:
    # A hostile job server sends 2,000 samples, each naming a GPU never seen before.
    rules = ResourceRules(T)
    for i in range(2000):
        sample = Resource(gpus=(GpuSample(index=i, mem_used=99, mem_total=100, throttle=("thermal",)),))
        rules.on_sample("j", sample, float(i), FACTS)
    state = rules._jobs["j"]
    assert len(state.gpus_seen) == 64
    assert len(state.conditions) <= 64 * 4
