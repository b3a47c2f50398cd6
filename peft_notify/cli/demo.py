"""``peft-notify demo``: simulated training jobs and the app following them — every feature in ~1 minute.

Starts a job server in this process with ``--jobs`` simulated jobs (the first completes, the
second fails with ``--error`` at ``--fail-at``, the third has a loss spike and runs slower, ...),
then the desktop app subscribed to them. Without a display it says so and falls back to the
headless ``watch`` of the first job.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass
from typing import Any

from peft_notify.cli.args import UsageError, count, number, port

__all__ = ["DemoJob", "demo_jobs", "register"]

_NAMES = ("llama-3-8b-lora", "mistral-7b-qlora", "phi-3-mini-dpo", "gemma-2b-sft", "qwen-1.5b-lora")


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="simulated jobs + the app: see every feature in about a minute",
        description="Serve simulated training jobs in this process and open the app subscribed to them. "
        "Milestones, a loss-spike warning, a failure and a completion arrive within a minute or two.",
    )
    p.add_argument("--jobs", type=count, default=3, metavar="N", help="simulated jobs (default 3)")
    p.add_argument("--steps", type=count, default=400, help="steps per job (default 400)")
    p.add_argument("--step-ms", type=number, default=120.0, help="milliseconds per step (default 120)")
    p.add_argument(
        "--fail-at",
        type=number,
        default=0.6,
        metavar="AT",
        help="the second job fails at this fraction/step (default 0.6)",
    )
    p.add_argument("--error", default="oom_error", help="its error type (oom_error, cuda_error, data_error, ...)")
    p.add_argument("--port", type=port, default=0, help="server port (default: a free one)")
    p.add_argument("--minimized", action="store_true", help="start the app in the tray")
    p.set_defaults(handler=run)


@dataclass(frozen=True)
class DemoJob:
    """One simulated job of the demo: its id, name and simulation settings."""

    job_id: str
    name: str
    steps: int
    step_time: float
    fail_at: float | None = None
    error_type: str = "oom_error"
    loss_spike_at: float | None = None


def demo_jobs(count: int, steps: int, step_ms: float, fail_at: float, error: str) -> list[DemoJob]:
    """The demo's jobs: 1 completes, 2 fails, 3 spikes and runs slower, others vary their pace."""
    jobs = []
    for i in range(max(1, count)):
        pace = step_ms / 1000.0 * (1.0 + 0.35 * i)
        jobs.append(
            DemoJob(
                job_id=f"demo-{i + 1}",
                name=_NAMES[i % len(_NAMES)] + (f"-{i // len(_NAMES) + 1}" if i >= len(_NAMES) else ""),
                steps=steps,
                step_time=pace,
                fail_at=fail_at if i == 1 else None,
                error_type=error,
                loss_spike_at=0.4 if i == 2 else None,
            )
        )
    return jobs


def _simulate_when_watched(server: Any, handle: Any, job: DemoJob, stop: threading.Event) -> None:
    from peft_notify.emitter.simulate import SimConfig, simulate

    for _ in range(600):  # wait up to 30 s for the app to connect, so it sees every step
        if server.subscriber_count(job.job_id) or stop.wait(0.05):
            break
    config = SimConfig(
        steps=job.steps,
        step_time=job.step_time,
        fail_at=job.fail_at,
        error_type=job.error_type,
        loss_spike_at=job.loss_spike_at,
        eval_every=max(1, job.steps // 4),
    )
    simulate(handle, config, stop)


def run(args: argparse.Namespace) -> int:
    """Handler: serve the jobs, run the app (or ``watch`` without a display) until it quits."""
    from peft_notify.cli.app import display_available
    from peft_notify.emitter import JobServer, PortInUseError

    jobs = demo_jobs(args.jobs, args.steps, args.step_ms, args.fail_at, args.error)
    try:
        server = JobServer(port=args.port, discovery_files=False).start()
    except PortInUseError as exc:
        raise UsageError(exc.strerror) from None
    stop = threading.Event()
    urls = []
    threads = []
    for job in jobs:
        handle = server.add_job(job.job_id, name=job.name, total_steps=job.steps, capabilities=["retry", "cancel"])
        urls.append(server.url_for(job.job_id))
        thread = threading.Thread(
            target=_simulate_when_watched, args=(server, handle, job, stop), daemon=True, name=f"demo-{job.job_id}"
        )
        thread.start()
        threads.append(thread)
    print("peft-notify demo: simulated jobs at")
    for url in urls:
        print(f"  {url}")
    try:
        if not display_available():
            print(
                "No display here, so the desktop app cannot open; following the first job in the terminal "
                "instead (peft-notify watch). Run the demo on a desktop to see the app."
            )
            from peft_notify.cli import watch

            def close_when_done() -> None:  # watch returns once the finished job's server closes
                threads[0].join()
                server.stop(linger=2.0)

            threading.Thread(target=close_when_done, daemon=True, name="demo-close").start()
            parser = argparse.ArgumentParser()
            watch.register(parser.add_subparsers())
            return int(watch.run(parser.parse_args(["watch", urls[0]])))
        try:
            from peft_notify.app.main import AppOptions, run_app
        except ImportError as exc:
            print(f"The desktop app is not installed ({exc}): pip install 'peft-notify[desktop]'")
            return 2

        def keep_serving() -> None:
            print("The running app follows the demo jobs now; Ctrl+C ends the demo.")
            for thread in threads:
                thread.join()

        options = AppOptions(
            urls=tuple(urls), minimized=args.minimized, local=False, persist_urls=False, on_forwarded=keep_serving
        )
        return run_app(options)
    finally:
        stop.set()
        server.stop()
