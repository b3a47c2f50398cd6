"""What the app shows of a job's resources: the card's compact line, the detail pane's facts and
charts, and the tray tooltip's worst condition.

Pure text helpers over :class:`~peft_notify.engine.resources.ResourceView` (from
``Engine.resources(job_id)``), plus :class:`ResourceHistory`, the bounded per-job series of
GPU memory and host RAM that the detail pane charts. Call :meth:`ResourceHistory.add` for each
``resource`` sample as it arrives. Qt-free; the charts are in :mod:`peft_notify.app.resource_charts`.
"""

from __future__ import annotations

from collections.abc import Iterable

from peft_notify.desktop.curve import Curve
from peft_notify.engine.resources import Level, ResourceView, format_bytes
from peft_notify.wire import Resource

__all__ = ["ResourceHistory", "card_text", "detail_text", "worst_condition"]

HISTORY_POINTS = 900  # 15 min at one sample a second


class ResourceHistory:
    """Recent GPU memory (highest of the job's GPUs) and host RAM, in percent, per second.

    Each series is a :class:`~peft_notify.desktop.curve.Curve`, 16 bytes a point: tuples in a deque
    were ~180 KiB a job after 15 minutes, ~175 MiB for 1,000 sampling jobs (issue 17).
    """

    def __init__(self, maxlen: int = HISTORY_POINTS) -> None:
        self.gpu = Curve(maxlen)
        self.ram = Curve(maxlen)
        self._t0: float | None = None

    def add(self, t: float, sample: Resource) -> None:
        if self._t0 is None:
            self._t0 = t
        x = int(t - self._t0)
        if sample.host is not None:
            _put(self.ram, x, sample.host.mem_percent)
        gpu = [g.mem_percent for g in sample.gpus if g.mem_percent is not None]
        if gpu:
            _put(self.gpu, x, max(gpu))


def _put(series: Curve, x: int, value: float) -> None:
    if series and series[-1][0] == x:
        series[-1] = (x, value)  # two samples in one second (a replay burst): keep the later
    else:
        series.append((x, value))


def card_text(view: ResourceView | None) -> str:
    """``GPU 97% mem · 88% util · disk 12.0 GiB free`` (empty when nothing was sampled)."""
    if view is None or view.sample is None:
        return ""
    sample = view.sample
    parts: list[str] = []
    mems = [g.mem_percent for g in sample.gpus if g.mem_percent is not None]
    utils = [g.util for g in sample.gpus if g.util is not None]
    if mems:
        label = "GPU" if len(sample.gpus) == 1 else f"{len(sample.gpus)} GPUs"
        util = f" · {max(utils):.0f}% util" if utils else ""
        parts.append(f"{label} {max(mems):.0f}% mem{util}")
    if sample.disk is not None:
        parts.append(f"disk {format_bytes(sample.disk.free)} free")
    if not parts and sample.host is not None:
        parts.append(f"RAM {sample.host.mem_percent:.0f}%")
    text = " · ".join(parts)
    if view.worst:
        text = f"{'✖' if view.level is Level.CRITICAL else '⚠'} {text}"
    return text


def detail_text(view: ResourceView | None) -> str:
    """Multi-line facts for the detail pane (host, disk, each GPU, what is not watched)."""
    if view is None:
        return "—"
    lines: list[str] = []
    sample = view.sample
    if sample is not None and sample.host is not None:
        h = sample.host
        line = f"RAM {h.mem_percent:.0f}% of {format_bytes(h.mem_total)}"
        if h.rss is not None:
            line += f", job {format_bytes(h.rss)}"
        if h.swap_total:
            line += f", swap {format_bytes(h.swap_used)}"
        if h.cpu_percent is not None:
            line += f", CPU {h.cpu_percent:.0f}%"
        lines.append(line)
    if sample is not None and sample.disk is not None:
        d = sample.disk
        est = "" if d.next_checkpoint is None else f", next checkpoint ≈ {format_bytes(d.next_checkpoint)}"
        lines.append(f"Disk {format_bytes(d.free)} free of {format_bytes(d.total)}{est}")
    for g in () if sample is None else sample.gpus:
        if g.error:
            lines.append(f"GPU {g.index}: {g.error}")
            continue
        bits = [f"GPU {g.index}"]
        if g.mem_used is not None and g.mem_total:
            bits.append(f"{format_bytes(g.mem_used)}/{format_bytes(g.mem_total)}")
        if g.util is not None:
            bits.append(f"{g.util:.0f}% util")
        if g.temperature is not None:
            bits.append(f"{g.temperature:.0f} °C")
        if g.throttle:
            bits.append(f"throttling ({', '.join(g.throttle)})")
        lines.append(" · ".join(bits))
    if view.worst:
        lines.append(f"{'✖' if view.level is Level.CRITICAL else '⚠'} {view.worst}")
    lines += list(view.notes)
    return "\n".join(lines) or "—"


def worst_condition(views: Iterable[ResourceView | None]) -> str | None:
    """The worst active condition over all jobs (critical before warning), for the tray tooltip."""
    best: tuple[int, str] | None = None
    for view in views:
        if view is None or view.worst is None or view.level is None:
            continue
        if best is None or view.level.value > best[0]:
            best = (view.level.value, view.worst)
    return None if best is None else best[1]
