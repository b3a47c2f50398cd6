"""Resource rules: low disk, full RAM, swapping, GPU memory, throttling, GPU errors, hangs.

Sans-I/O like the rest of the engine: :class:`ResourceRules` takes each job's ``resource``
samples (:meth:`ResourceRules.on_sample`) with the time they arrived and returns
:class:`Decision` values; ``Engine`` hands them to its gate (history, DND, dedup). Every
condition has hysteresis (it clears only clearly below its threshold), fires once until
it clears, and after clearing stays quiet for a cooldown so nothing flaps. Warnings are
``warning`` notifications (the window's banner plus a normal popup); critical ones are
errors (they bypass Do Not Disturb). Thresholds: :class:`ResourceThresholds`; the rules
and their data sources are listed in ``docs/resources.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Final

from peft_notify.engine.notices import error_event, warning_event
from peft_notify.wire import DiskSample, GpuSample, HostSample, NotificationEvent, Resource, UrgencyLevel

__all__ = ["Decision", "Level", "ResourceRules", "ResourceThresholds", "ResourceView", "format_bytes"]


class Level(Enum):
    """How bad a resource condition is."""

    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True)
class ResourceThresholds:
    """When each resource rule fires (all configurable; see docs/resources.md).

    Percentages are 0-100. ``*_for_s``: how long a level must hold before it fires.
    ``hysteresis_percent``: a percentage condition clears only this far below its threshold;
    ``disk_clear_factor``: a disk condition clears only when free space is this factor above
    the level that fired it. ``cooldown_s``: after a condition clears, it cannot fire again
    for this long.
    """

    enabled: bool = True
    disk_margin: float = 1.5
    disk_min_free_percent: float = 5.0
    disk_clear_factor: float = 1.1
    host_memory_percent: float = 90.0
    host_memory_for_s: float = 30.0
    ram_full_percent: float = 95.0
    swap_growth_bytes: int = 64 << 20
    gpu_memory_percent: float = 95.0
    gpu_memory_for_s: float = 30.0
    throttle_for_s: float = 60.0
    hysteresis_percent: float = 5.0
    cooldown_s: float = 600.0
    hang_cpu_percent: float = 5.0
    hang_gpu_util_percent: float = 5.0
    hang_idle_for_s: float = 60.0
    hang_min_s: float = 0.0  # 0: the stall rule's minimum (EngineConfig.stall_min_s)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> ResourceThresholds:
        """Thresholds from a settings table (``[resources]``). Raises ``ValueError`` naming the bad key."""
        kinds = {f.name: f.type for f in fields(cls)}
        out: dict[str, Any] = {}
        for key, value in values.items():
            kind = kinds.get(key)
            if kind is None:
                raise ValueError(f"resources.{key} is not a resource threshold")
            if kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"resources.{key} must be true or false")
                out[key] = value
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"resources.{key} must be a number >= 0")
            out[key] = int(value) if kind == "int" else float(value)
        return cls(**out)


@dataclass(frozen=True, slots=True)
class Decision:
    """One resource notification to deliver; ``key`` names the condition (dedup, history)."""

    key: str
    event: NotificationEvent
    level: Level


@dataclass(frozen=True, slots=True)
class ResourceView:
    """What the UI shows for one job: the latest sample and the conditions active now."""

    sample: Resource | None
    active: tuple[str, ...]  # condition keys, worst first
    worst: str | None  # one line naming the worst active condition
    level: Level | None
    watched: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass
class _Condition:
    since: float | None = None  # when the raw condition started holding
    active: bool = False  # fired and not cleared
    cleared_at: float | None = None
    level: Level = Level.WARNING
    text: str = ""


@dataclass
class _JobResources:
    conditions: dict[str, _Condition] = field(default_factory=dict)
    sample: Resource | None = None
    swap_base: int | None = None  # swap in use when RAM became full
    ecc_base: dict[int, int] = field(default_factory=dict)
    xid_seen: dict[int, int] = field(default_factory=dict)
    idle_since: float | None = None
    gpus_seen: set[int] = field(default_factory=set)
    watched: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def cond(self, key: str) -> _Condition:
        cond = self.conditions.get(key)
        if cond is None:
            cond = self.conditions[key] = _Condition()
        return cond


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the rules need to know about the job besides its samples."""

    name: str
    running: bool
    last_progress_at: float | None
    stall_after_s: float
    sounds: bool = True


_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
MAX_GPUS_PER_JOB: Final = 64  # the protocol's limit per sample; also the most indices tracked per job


def format_bytes(n: int | float | None) -> str:
    """``1536`` → ``"1.5 KiB"``; ``None`` → ``"?"``."""
    if n is None or not math.isfinite(n):
        return "?"
    value = float(max(0.0, n))
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover - the loop returns


def _minutes(seconds: float) -> str:
    return f"{max(1, round(seconds / 60))} min"


class ResourceRules:
    """Applies the resource rules per job; see the module docstring."""

    def __init__(self, thresholds: ResourceThresholds | None = None) -> None:
        self.t = thresholds or ResourceThresholds()
        self._jobs: dict[str, _JobResources] = {}

    # ------------------------------------------------------------------ lifecycle

    def on_hello(self, job_id: str, *, new_run: bool, watched: tuple[str, ...], notes: tuple[str, ...]) -> None:
        """A (re)connection: a new run forgets every condition; remember what the job watches."""
        if new_run:
            self._jobs.pop(job_id, None)
        state = self._state(job_id)
        state.watched, state.notes = watched, notes

    def forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def view(self, job_id: str) -> ResourceView | None:
        """The latest sample and active conditions of ``job_id`` (``None``: nothing known)."""
        state = self._jobs.get(job_id)
        if state is None:
            return None
        active = sorted(
            ((key, c) for key, c in state.conditions.items() if c.active), key=lambda kc: (-kc[1].level.value, kc[0])
        )
        worst = active[0][1] if active else None
        return ResourceView(
            sample=state.sample,
            active=tuple(key for key, _ in active),
            worst=worst.text if worst else None,
            level=worst.level if worst else None,
            watched=state.watched,
            notes=state.notes,
        )

    # ------------------------------------------------------------------ samples

    def on_sample(self, job_id: str, sample: Resource, now: float, job: JobFacts) -> list[Decision]:
        """One ``resource`` sample of ``job_id`` that arrived at ``now``; returns what to notify."""
        state = self._state(job_id)
        state.sample = sample
        if not self.t.enabled:
            return []
        out: list[Decision] = []
        if sample.disk is not None:
            out += self._disk(state, sample.disk, now, job)
        if sample.host is not None:
            out += self._host(state, sample.host, now, job)
        for gpu in sample.gpus:
            if gpu.index not in state.gpus_seen and len(state.gpus_seen) >= MAX_GPUS_PER_JOB:
                continue  # a job inventing a new GPU index per sample must not grow our state
            state.gpus_seen.add(gpu.index)
            out += self._gpu(state, gpu, now, job)
        out += self._hang(state, sample, now, job)
        return out

    # ------------------------------------------------------------------ rules

    def _disk(self, state: _JobResources, disk: DiskSample, now: float, job: JobFacts) -> list[Decision]:
        t = self.t
        est = disk.next_checkpoint
        where = disk.path or "the output directory"
        free = format_bytes(disk.free)
        out = self._level(
            state,
            "disk_full",
            now,
            on=est is not None and disk.free < est,
            off=est is None or disk.free >= est * t.disk_clear_factor,
            make=lambda: _critical(
                f"{job.name}: the next checkpoint will not fit",
                f"Only {free} free on {where}; the next checkpoint needs about {format_bytes(est)}.",
                "disk_full",
                job.sounds,
            ),
            level=Level.CRITICAL,
        )
        low_on = disk.free_percent < t.disk_min_free_percent or (est is not None and disk.free < est * t.disk_margin)
        low_off = disk.free_percent >= t.disk_min_free_percent * t.disk_clear_factor and (
            est is None or disk.free >= est * t.disk_margin * t.disk_clear_factor
        )
        if state.cond("disk_full").active:
            low_on = False  # the critical one says it already; the warning stays quiet until both clear
        reason = (
            f"the next checkpoint needs about {format_bytes(est)}"
            if est is not None and disk.free < est * t.disk_margin
            else f"{disk.free_percent:.1f} % of the disk is free"
        )
        out += self._level(
            state,
            "disk_low",
            now,
            on=low_on,
            off=low_off,
            make=lambda: warning_event(f"{free} free on {where}: {reason}.", title=f"{job.name}: low disk space"),
        )
        return out

    def _host(self, state: _JobResources, host: HostSample, now: float, job: JobFacts) -> list[Decision]:
        t = self.t
        pct = host.mem_percent
        rss = "" if host.rss is None else f" The job's processes use {format_bytes(host.rss)}."
        out = self._level(
            state,
            "host_memory",
            now,
            on=pct > t.host_memory_percent,
            off=pct < t.host_memory_percent - t.hysteresis_percent,
            for_s=t.host_memory_for_s,
            make=lambda: warning_event(
                f"{pct:.0f} % of {format_bytes(host.mem_total)} RAM in use for over "
                f"{t.host_memory_for_s:.0f} s; the out-of-memory killer may end the job.{rss}",
                title=f"{job.name}: host memory almost full",
            ),
        )
        full = pct >= t.ram_full_percent
        if not full and pct < t.ram_full_percent - t.hysteresis_percent:
            state.swap_base = None
        elif full:
            base = state.swap_base
            state.swap_base = host.swap_used if base is None else min(base, host.swap_used)
        base = state.swap_base
        grown = 0 if base is None else host.swap_used - base
        out += self._level(
            state,
            "swap",
            now,
            on=full and grown >= t.swap_growth_bytes,
            off=state.swap_base is None,
            make=lambda: warning_event(
                f"RAM is full and swap grew by {format_bytes(grown)} to {format_bytes(host.swap_used)}: "
                "the job will slow down and may be killed.",
                title=f"{job.name}: swapping",
            ),
        )
        return out

    def _gpu(self, state: _JobResources, gpu: GpuSample, now: float, job: JobFacts) -> list[Decision]:
        t = self.t
        i = gpu.index
        label = f"GPU {i}" + (f" ({gpu.name})" if gpu.name else "")
        out: list[Decision] = []
        pct = gpu.mem_percent
        if pct is not None:
            out += self._level(
                state,
                f"gpu_memory:{i}",
                now,
                on=pct > t.gpu_memory_percent,
                off=pct < t.gpu_memory_percent - t.hysteresis_percent,
                for_s=t.gpu_memory_for_s,
                make=lambda: warning_event(
                    f"{label}: {format_bytes(gpu.mem_used)} of {format_bytes(gpu.mem_total)} ({pct:.0f} %) in use "
                    f"for over {t.gpu_memory_for_s:.0f} s: close to out of memory.",
                    title=f"{job.name}: GPU {i} close to out of memory",
                ),
            )
        if gpu.error is None:  # a device that could not be read says nothing about throttling
            details = ", ".join(
                part
                for part in (
                    None if gpu.temperature is None else f"{gpu.temperature:.0f} °C",
                    None if gpu.power_w is None else f"{gpu.power_w:.0f} W",
                )
                if part
            )
            out += self._level(
                state,
                f"gpu_throttle:{i}",
                now,
                on=bool(gpu.throttle),
                off=not gpu.throttle,
                for_s=t.throttle_for_s,
                make=lambda: warning_event(
                    f"{label}: {' and '.join(gpu.throttle)} throttling for over {t.throttle_for_s:.0f} s"
                    + (f" ({details})" if details else "")
                    + ": training runs slower.",
                    title=f"{job.name}: GPU {i} is throttling",
                ),
            )
        out += self._xid(state, gpu, label, now, job)
        out += self._ecc(state, gpu, label, now, job)
        return out

    def _xid(self, state: _JobResources, gpu: GpuSample, label: str, now: float, job: JobFacts) -> list[Decision]:
        # The sampler counts XIDs since it started, so any count > 0 happened during this job.
        i = gpu.index
        seen = state.xid_seen.get(i, 0)
        if gpu.xid_count <= seen:
            return []
        key = f"gpu_xid:{i}"
        cond = state.cond(key)
        if cond.cleared_at is not None and now - cond.cleared_at < self.t.cooldown_s:
            return []  # a burst of XIDs: one notification per cooldown (the count is remembered)
        state.xid_seen[i] = gpu.xid_count
        code = "" if gpu.last_xid is None else f" {gpu.last_xid}"
        event = _critical(
            f"{job.name}: GPU {i} reported XID{code}",
            f"{label}: NVML reported XID critical error{code} ({gpu.xid_count} so far); "
            "the job may crash or compute wrong results.",
            "gpu_xid",
            job.sounds,
        )
        cond.level, cond.text, cond.active, cond.cleared_at = Level.CRITICAL, event.title, True, now
        return [Decision(key, event, Level.CRITICAL)]

    def _ecc(self, state: _JobResources, gpu: GpuSample, label: str, now: float, job: JobFacts) -> list[Decision]:
        i = gpu.index
        if gpu.ecc_uncorrected is not None:
            base = state.ecc_base.setdefault(i, gpu.ecc_uncorrected)  # counted since the driver loaded
            state.ecc_base[i] = min(base, gpu.ecc_uncorrected)
        grown = 0 if gpu.ecc_uncorrected is None else gpu.ecc_uncorrected - state.ecc_base.get(i, 0)
        bad = grown > 0 or gpu.remap_failure
        what = (
            f"{grown} uncorrectable ECC memory error{'s' if grown != 1 else ''}"
            if grown > 0
            else "a failed row remapping"
        )
        return self._level(
            state,
            f"gpu_ecc:{i}",
            now,
            on=bad,
            off=False,  # hardware memory errors do not clear while the job runs
            make=lambda: _critical(
                f"{job.name}: GPU {i} memory error",
                f"{label} reported {what}; results may be wrong and the job may crash.",
                "gpu_ecc",
                job.sounds,
            ),
            level=Level.CRITICAL,
        )

    def _hang(self, state: _JobResources, sample: Resource, now: float, job: JobFacts) -> list[Decision]:
        t = self.t
        host = sample.host
        busy_gpu = any(g.util is not None and g.util >= t.hang_gpu_util_percent for g in sample.gpus)
        idle = (
            host is not None
            and host.alive
            and host.cpu_percent is not None
            and host.cpu_percent < t.hang_cpu_percent
            and not busy_gpu
        )
        if not idle:
            state.idle_since = None
        elif state.idle_since is None:
            state.idle_since = now
        since = job.last_progress_at
        no_progress = since is not None and now - since >= job.stall_after_s
        hung = (
            job.running and no_progress and state.idle_since is not None and now - state.idle_since >= t.hang_idle_for_s
        )
        idle_for = 0.0 if since is None else now - since
        cpu = 0.0 if host is None or host.cpu_percent is None else host.cpu_percent
        return self._level(
            state,
            "hang",
            now,
            on=hung,
            off=not job.running or not no_progress or state.idle_since is None,
            make=lambda: warning_event(
                f"{job.name}: no progress for {_minutes(idle_for)} while its processes are alive but use "
                f"no CPU ({cpu:.1f} %) and no GPU: it may be deadlocked (a slow step keeps them busy).",
                title=f"{job.name} appears hung",
            ),
        )

    # ------------------------------------------------------------------ the state machine

    def _level(
        self,
        state: _JobResources,
        key: str,
        now: float,
        *,
        on: bool,
        off: bool,
        make: Callable[[], NotificationEvent],
        for_s: float = 0.0,
        level: Level = Level.WARNING,
    ) -> list[Decision]:
        """One condition with hysteresis: pending while ``on`` holds, fired after ``for_s``,
        cleared only when ``off`` holds, then quiet for the cooldown."""
        cond = state.cond(key)
        if cond.active:
            if off:
                cond.active, cond.since, cond.cleared_at = False, None, now
            return []
        if off or not on:
            if off:
                cond.since = None
            return []
        if cond.since is None:
            cond.since = now
        if now - cond.since < for_s:
            return []
        if cond.cleared_at is not None and now - cond.cleared_at < self.t.cooldown_s:
            return []
        event = make()
        cond.active, cond.level, cond.text = True, level, event.title
        return [Decision(key, event, level)]

    def _state(self, job_id: str) -> _JobResources:
        state = self._jobs.get(job_id)
        if state is None:
            state = self._jobs[job_id] = _JobResources()
        return state


def _critical(title: str, message: str, error_type: str, sound: bool) -> NotificationEvent:
    """A critical resource error: bypasses DND, "View Details" only (a retry would not help)."""
    return error_event(message, error_type, urgency=UrgencyLevel.CRITICAL, title=title, retry=False, sound=sound)
