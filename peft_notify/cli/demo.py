"""``peft-notify demo``: simulated training jobs and the app following them — every feature in ~1 minute.

Starts a job server in this process with ``--jobs`` simulated jobs (the first completes, the
second fails with ``--error`` at ``--fail-at`` and waits for *Retry*, which relaunches it as a
new run that completes; the third has a loss spike and runs slower, ...), then the desktop
app subscribed to them. *Cancel* stops only the job it was pressed for. Without a display it
says so and falls back to the headless ``watch`` of the first job.
"""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass, replace
from typing import Any

from peft_notify.cli.args import UsageError, count, number, port

__all__ = ["DemoJob", "DemoServer", "demo_jobs", "register"]

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


class DemoServer:
    """The demo's job server: one thread per simulated job, each with its own stop event.

    *Cancel* on one job stops only that job (issue 11 item 2: they shared one event). A
    failed job waits for *Retry* from the desktop (until its failure is dismissed) and then
    really relaunches: a new run (new ``run_id``) of the same job, which this time
    completes, as if the user had fixed what failed. :meth:`close` stops every job and the
    server.
    """

    def __init__(self, jobs: list[DemoJob], port: int = 0) -> None:
        from peft_notify.emitter import JobServer

        self.jobs = jobs
        self.server = JobServer(port=port, discovery_files=False)
        self.quit = threading.Event()
        self.stops = {job.job_id: threading.Event() for job in jobs}
        self.urls: list[str] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> DemoServer:
        """Listen and start the jobs; raises ``PortInUseError`` like ``JobServer.start``."""
        self.server.start()
        for job in self.jobs:
            handle = self.server.add_job(
                job.job_id, name=job.name, total_steps=job.steps, capabilities=["retry", "cancel", "dismiss"]
            )
            self.urls.append(self.server.url_for(job.job_id))
            thread = threading.Thread(target=self._run_job, args=(handle, job), daemon=True, name=f"demo-{job.job_id}")
            thread.start()
            self.threads.append(thread)
        return self

    def close(self, linger: float = 0.0) -> None:
        """Stop every job, then the server."""
        self.quit.set()
        for stop in self.stops.values():
            stop.set()
        self.server.stop(linger=linger)

    def _run_job(self, handle: Any, job: DemoJob) -> None:
        from peft_notify import wire
        from peft_notify.emitter.simulate import SimConfig, simulate

        stop = self.stops[job.job_id]
        retry, dismissed = threading.Event(), threading.Event()
        events = {"retry": retry, "dismiss": dismissed}

        def on_action(action: Any) -> None:
            if action.action in events:
                events[action.action].set()

        handle.on_action(on_action)
        for _ in range(600):  # wait up to 30 s for the app to connect, so it sees every step
            if self.server.subscriber_count(job.job_id) or stop.wait(0.05):
                break
        config = SimConfig(
            steps=job.steps,
            step_time=job.step_time,
            fail_at=job.fail_at,
            error_type=job.error_type,
            loss_spike_at=job.loss_spike_at,
            eval_every=max(1, job.steps // 4),
        )
        while True:
            retry.clear()  # Retry means "relaunch the failed run", never "restart a live one"
            dismissed.clear()
            if simulate(handle, config, stop) is not wire.JobState.FAILED:
                return
            while not retry.wait(0.1):
                if stop.is_set() or dismissed.is_set():  # the failure was dismissed: no Retry is coming
                    return
            self.server.new_run(job.job_id)
            config = replace(config, fail_at=None, nan_at=None)  # the relaunch goes through


def run(args: argparse.Namespace) -> int:
    """Handler: serve the jobs, run the app (or ``watch`` without a display) until it quits."""
    from peft_notify.cli.app import display_available
    from peft_notify.emitter import PortInUseError

    jobs = demo_jobs(args.jobs, args.steps, args.step_ms, args.fail_at, args.error)
    demo = DemoServer(jobs, port=args.port)
    try:
        demo.start()
    except PortInUseError as exc:
        raise UsageError(exc.strerror) from None
    urls, threads = demo.urls, demo.threads
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
                demo.close(linger=2.0)

            threading.Thread(target=close_when_done, daemon=True, name="demo-close").start()
            parser = argparse.ArgumentParser()
            watch.register(parser.add_subparsers())
            return int(watch.run(parser.parse_args(["watch", urls[0]])))
        try:
            from peft_notify.app.main import AppOptions, run_app
        except ImportError as exc:
            print(f"The desktop app is not installed ({exc}): pip install 'peft-notify[desktop]'", file=sys.stderr)
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
        demo.close()
