"""A running app subscribed to flood-server jobs on a private D-Bus, for the desktop benchmarks.

``with running_app(ctx, jobs=1) as run:`` yields an :class:`AppRun` once the app's window is
shown and every job is connected. Raises :class:`~bench.session.BenchError` (with the app's log
tail) when the app is not available, does not show a window or does not connect.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.harness import Context
from bench.session import AppChild, BenchError, FloodServer, PrivateBus, app_available, isolated_env

__all__ = ["BIG_RATE_LIMIT", "AppRun", "running_app"]

# The markers that end a flood are warnings: keep the engine's popup rate limit and its dedup (which
# masks numbers, so "bench-marker c1 j0" and "bench-marker c2 j0" are one notification) out of the way.
BIG_RATE_LIMIT: dict[str, Any] = {"rate_capacity": 1_000_000, "dedup_window_s": 0.0}


def text_has(needle: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: a recorded notification whose summary or body contains ``needle``."""
    return lambda event: needle in event.get("summary", "") or needle in event.get("body", "")


@dataclass
class AppRun:
    bus: PrivateBus
    flood: FloodServer
    app: AppChild
    shown_ns: int

    def flood_and_wait(
        self, jobs: list[int] | str, count: int, rate: float = 0.0, duration: float = 0.0, timeout: float = 900
    ) -> dict[str, Any]:
        """Flood ``jobs`` and wait until the app shows each job's end marker; adds ``t_end`` (ns).

        ``duration`` > 0 stops sending after that many seconds (``done["sent"]`` says how many went).
        """
        start = self.bus.count()
        done = self.flood.command(cmd="flood", jobs=jobs, count=count, rate=rate, duration=duration, marker=True)
        cmd_id = str(done["id"])
        targets = list(done["last_fraction"])
        t_end = 0
        for j in targets:
            needle = f"bench-marker {cmd_id} j{j}"
            event = self.bus.wait_notify(text_has(needle), timeout, start)
            t_end = max(t_end, int(event["t"]))
        done["t_end"] = t_end
        return done

    def lag(self, start_ns: int, end_ns: int) -> list[float]:
        time.sleep(0.5)  # the child writes lag samples in batches of 20 (~200 ms)
        return self.app.lag_samples(start_ns, end_ns)


@contextlib.contextmanager
def running_app(
    ctx: Context, jobs: int = 1, engine: dict[str, Any] | None = None, tag: str = "app", total: int = 10_000_000
) -> Iterator[AppRun]:
    reason = app_available()
    if reason:
        raise BenchError(reason)
    workdir = ctx.workdir / f"{tag}-{time.perf_counter_ns()}"
    with PrivateBus() as bus, FloodServer(jobs, total=total) as flood:
        env = isolated_env(workdir, bus.address)
        overrides = {**BIG_RATE_LIMIT, **(engine or {})}
        with AppChild(env, ["app", *flood.urls()], engine_overrides=overrides) as app:
            shown = app.wait_shown(90)
            try:
                flood.wait_connected(jobs, timeout=60 + jobs)
            except BenchError as exc:
                raise BenchError(f"{exc}\napp log:\n{app.log_tail()}") from exc
            ctx.log(f"app up: window after {(shown - app.launched_ns) / 1e6:.0f} ms, {jobs} job(s) connected")
            yield AppRun(bus, flood, app, shown)
