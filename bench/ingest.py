"""Ingest: progress messages/s through the whole desktop pipeline vs a bare websockets client.

Ours: the real app (``peft-notify app URL``, on its qasync loop: websockets client, decode and
validate, engine, dispatcher and history, UI coalescing) subscribed to a flood server job. The
flood ends with a marker notification; the rate is ``count / (marker reaches the D-Bus
notification server − first frame sent)``. Reference, in the same run and interleaved rep by rep:
``bench.bareclient`` (a websockets client that only receives) on a second flood server, rate =
``count / (it received the marker − first frame sent)``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.appfixture import running_app
from bench.harness import Context, Result, Row, paired_ratio, stats
from bench.session import PY, FloodServer, LineReader, isolated_env, stop_process

NAME = "ingest"
TITLE = "messages/s through the full desktop pipeline vs a bare websockets client"


def run(ctx: Context) -> Result:
    reps, count, seconds = ctx.size(7, 2), ctx.size(200_000, 2_000), ctx.size(8.0, 0.0)
    result = Result(NAME, TITLE)
    ours: list[float] = []
    sizes: list[int] = []
    ref: list[float] = []
    with running_app(ctx, jobs=reps + 1, tag="ingest") as app:
        env = isolated_env(Path(ctx.workdir / "ingest-bare"))
        with FloodServer(reps + 1, env) as bare_flood:
            clients = []
            try:
                for i in range(reps + 1):
                    proc = subprocess.Popen(
                        [PY, "-m", "bench.bareclient", bare_flood.url(i)], stdout=subprocess.PIPE, text=True, env=env
                    )
                    clients.append(LineReader(proc, f"bare{i}"))
                bare_flood.wait_connected(reps + 1)
                for rep in range(reps + 1):  # rep 0 is the warm-up
                    done = app.flood_and_wait([rep], count, duration=seconds)
                    rate = done["sent"] / ((done["t_end"] - done["t0"]) / 1e9)
                    bdone = bare_flood.command(cmd="flood", jobs=[rep], count=done["sent"], rate=0, marker=True)
                    marker = clients[rep].wait_for(lambda e: e.get("ev") == "marker", 600)
                    brate = bdone["sent"] / ((marker["t"] - bdone["t0"]) / 1e9)
                    ctx.log(f"ingest rep {rep}: app {rate:,.0f} msg/s, bare client {brate:,.0f} msg/s")
                    if rep:
                        sizes.append(done["sent"])
                        ours.append(rate)
                        ref.append(brate)
            finally:
                for lines in clients:
                    stop_process(lines.proc, 0.0, lines)
    a, b = stats(ours), stats(ref)
    pr = paired_ratio(ours, ref)
    ratios = [o / r for o, r in zip(ours, ref, strict=True)]
    result.notes.append(
        f"{reps} repetitions (after a warm-up flood) of up to {count:,} progress frames or {seconds:g} s of sending "
        f"(frames per rep: {', '.join(f'{n:,}' for n in sizes)}); the bare client gets the same number of frames "
        "as the app got in that rep; app and bare client interleaved. "
        "The flood comes from `bench/floodsrv.py`, a raw websockets server sending pre-encoded valid protocol-v1 "
        "frames as fast as it can: the real JobServer coalesces progress to 20 frames/s per job, so it cannot "
        "flood. The app runs with the engine's popup rate limit raised so the end-of-flood marker pops up."
    )
    result.rows.append(
        Row(
            benchmark=NAME,
            metric="progress messages/s",
            ours=a.median,
            reference=b.median,
            reference_name="bare websockets client",
            unit="msg/s",
            ratio=pr.ratio,
            ratio_ci=pr.ci,
            target="≥ 0.8 × reference",
            met=pr.ratio >= 0.8,
            detail=f"ours {a.span('{:,.0f}')}; reference {b.span('{:,.0f}')}; per-rep ratio "
            f"{min(ratios):.2f}–{max(ratios):.2f}",
        )
    )
    result.raw = {"ours_msg_s": ours, "reference_msg_s": ref, "frames": sizes}
    return result
