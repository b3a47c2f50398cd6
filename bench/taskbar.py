"""Taskbar rate: LauncherEntry ``Update`` signals/s on the bus while the app takes a 50k msg/s flood.

The recorder on the bench's private bus subscribes to ``com.canonical.Unity.LauncherEntry``
signals, so it sees what a dock would. Target: no 1-second window holds more signals than the
configured rate (``taskbar_max_hz``, default 10), and the last value shown is the last progress.
"""

from __future__ import annotations

import time

from bench.appfixture import running_app
from bench.harness import Context, Result, Row

NAME = "taskbar"
TITLE = "LauncherEntry signals/s during a 50k msg/s flood"
CONFIGURED_HZ = 10.0  # EngineConfig.taskbar_max_hz default, also the Settings default


def run(ctx: Context) -> Result:
    rate, seconds = 50_000, ctx.size(5.0, 1.0)
    count = int(rate * seconds)
    result = Result(NAME, TITLE)
    total = count * 5 // 4  # the flood ends at 80 %: a value that is easy to check
    with running_app(ctx, jobs=1, tag="taskbar", engine={"taskbar_max_hz": CONFIGURED_HZ}, total=total) as app:
        start = app.bus.count()
        done = app.flood_and_wait([0], count, rate=rate, duration=seconds)
        time.sleep(2.0)  # the trailing edge: the last value goes out at most 1/rate s after the flood
        events = app.bus.events("launcher", start)
    values = [e for e in events if e.get("progress") is not None]
    t0, t1 = done["t0"], done["t_end"]
    during = [e for e in values if t0 <= e["t"] <= t1]
    achieved = done["sent"] / ((t1 - t0) / 1e9)  # what the app actually took
    windows = [sum(1 for e in values if s["t"] <= e["t"] < s["t"] + 1_000_000_000) for s in values]
    peak = max(windows, default=0)
    mean_hz = len(during) / ((t1 - t0) / 1e9)
    expected_last = float(done["last_fraction"]["0"])
    last = float(values[-1]["progress"]) if values else None
    last_ok = last is not None and abs(last - expected_last) <= 1e-3
    result.notes.append(
        f"Progress frames offered at {rate:,} msg/s for {seconds:g} s; the app took {done['sent']:,} frames in "
        f"{(t1 - t0) / 1e9:.1f} s (until the end-of-flood marker reached the notification server: "
        f"{achieved:,.0f} msg/s), configured rate {CONFIGURED_HZ:g} Hz. Peak = most signals in any 1 s window "
        "starting at a signal. The last value must match the flood's last fraction (± 0.001)."
    )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="LauncherEntry signals/s (peak 1 s window)",
            ours=float(peak),
            reference=CONFIGURED_HZ,
            reference_name="configured rate",
            unit="signals/s",
            ratio=peak / CONFIGURED_HZ,
            target="≤ configured rate",
            met=peak <= CONFIGURED_HZ + 1,  # +1: a window may hold both edges of 1 s
            detail=f"mean {mean_hz:.1f}/s during the flood, {len(values)} progress signals",
        )
    )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="last value delivered",
            ours=last,
            reference=expected_last,
            reference_name="last progress sent",
            unit="fraction",
            ratio=None if last is None else last / expected_last,
            target="equal",
            met=last_ok,
            detail="" if values else "no LauncherEntry signal seen",
        )
    )
    result.raw = {"signals": [(e["t"], e["progress"]) for e in values], "t0": t0, "t1": t1, "achieved": achieved}
    return result
