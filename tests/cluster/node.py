"""A training "node" for the cluster tests: ``python -m tests.cluster.node --nats URL --job-id ID ...``.

Reports ``--steps`` steps, one every ``--sleep`` s, a warning at the half, an optional custom
notification, and completes (or fails with ``--fail-at``). With ``--hold-at N --hold-file F`` it
waits after step N until F exists (and touches ``F.holding`` to say so), so a test can order
"the job is past its warning" and "the desktop is back" without racing the clock. With ``--cancel`` it offers the
``cancel`` action and stops when it gets one. Prints ``step N`` lines to stdout so a test can
see that training went on, and ``done`` at the end.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import peft_notify
from peft_notify import wire


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--nats", required=True)
    p.add_argument("--job-id", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--sleep", type=float, default=0.02)
    p.add_argument("--fail-at", type=int, default=0)
    p.add_argument("--cancel", action="store_true")
    p.add_argument("--note", default="")
    p.add_argument("--hold-at", type=int, default=0, help="after this step, wait until --hold-file exists")
    p.add_argument("--hold-file", default="")
    args = p.parse_args()
    cancelled = threading.Event()
    caps = ("cancel",) if args.cancel else ()
    with peft_notify.job(
        f"node {args.job_id}", total_steps=args.steps, job_id=args.job_id, nats=args.nats, capabilities=caps, linger=0
    ) as job:

        @job.on_action
        def on_action(action: wire.ActionRequest) -> None:
            if action.action == "cancel":
                cancelled.set()

        for step in range(1, args.steps + 1):
            if cancelled.is_set():
                job.status(wire.JobState.CANCELLED, "cancelled from the desktop")
                print("cancelled", flush=True)
                return 130
            time.sleep(args.sleep)
            job.progress(step, loss=1.0 / step)
            print(f"step {step}", flush=True)
            if step == args.steps // 2:
                job.warning(f"{args.job_id}: loss plateau at step {step}")
            if args.note and step == args.steps // 3:
                job.notify(f"{args.job_id}: {args.note}", "a custom notification")
            if step == args.hold_at and args.hold_file:
                held = Path(args.hold_file)
                Path(f"{held}.holding").touch()  # the test sees that the job waits here
                give_up = time.monotonic() + 60  # never an orphan waiting forever after a failed test
                while not held.exists() and time.monotonic() < give_up:
                    time.sleep(0.02)
            if step == args.fail_at:
                raise RuntimeError(f"CUDA out of memory at step {step}")
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
