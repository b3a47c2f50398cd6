"""``peft-notify simulate``: serve a simulated training job (for demos, ``watch`` and tests).

``simulate --port P --job-id J [--name N] [--steps N] [--step-ms MS] [--fail-at FRACTION
--error TYPE] [--nan-at FRACTION] [--stall-at FRACTION] [--token T] [--host H]
[--resume-from STEP]``; points also accept a step number. Kept aliases: ``--error-type``,
``--step-time`` / ``--rate``; extras: ``--loss-spike``, ``--eval-every``, ``--seed``,
``--wait-client``, ``--linger``, ``--no-discovery``.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from peft_notify.cli import grouparg, natsarg
from peft_notify.cli import notify as notify_args
from peft_notify.cli.args import (
    UsageError,
    count,
    index,
    job_id,
    number,
    port,
    seconds,
    url_with_token,
    warn_token_in_argv,
)


def register(subparsers: Any) -> None:
    """Add the ``simulate`` sub-command."""
    p = subparsers.add_parser(
        "simulate",
        help="serve a simulated training job",
        description="Serve a realistic simulated training job over protocol v1 and print its URL.",
    )
    p.add_argument("--steps", type=count, default=200, help="total steps (default 200)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--step-ms", type=number, help="milliseconds per step (default 50)")
    rate.add_argument("--step-time", type=number, help="seconds per step")
    rate.add_argument("--rate", type=number, help="steps per second")
    p.add_argument("--fail-at", type=number, metavar="AT", help="fail at this fraction (0.4) or step (400)")
    p.add_argument(
        "--error",
        "--error-type",
        dest="error_type",
        default="oom_error",
        metavar="TYPE",
        help="error type for --fail-at",
    )
    p.add_argument("--nan-at", type=number, metavar="AT", help="NaN loss (loss_divergence) at this point")
    p.add_argument("--loss-spike", type=number, metavar="AT", help="a loss spike warning at this point")
    p.add_argument("--stall-at", type=number, metavar="AT", help="stop making progress at this point")
    p.add_argument("--resume-from", type=index, default=0, metavar="STEP", help="start as if resumed at STEP")
    p.add_argument("--eval-every", type=index, default=50, metavar="K", help="eval metrics every K steps (default 50)")
    p.add_argument("--seed", type=int, help="random seed for the loss noise")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=0, help="port (default: a free one)")
    p.add_argument("--token", help="require this token (generated for non-loopback binds)")
    p.add_argument("--name", default="simulated-lora", help="job name")
    p.add_argument("--job-id", type=job_id, default="sim", help="job id in the URL (default 'sim')")
    p.add_argument("--linger", type=seconds, default=2.0, help="seconds to keep serving after the end (default 2)")
    p.add_argument("--wait-client", type=seconds, default=0.0, metavar="S", help="wait up to S s for a client first")
    p.add_argument("--no-discovery", action="store_true", help="do not write a discovery job file")
    notify_args.add_arguments(p)
    grouparg.add_arguments(p)
    natsarg.add_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: serve and simulate; exit 0 when the simulated job completes, 1 otherwise."""
    from peft_notify import wire
    from peft_notify.emitter import JobServer, PortInUseError
    from peft_notify.emitter.simulate import SimConfig, simulate

    step_time = 0.05
    if args.step_ms is not None:
        step_time = args.step_ms / 1000.0
    elif args.step_time is not None:
        step_time = args.step_time
    elif args.rate:
        step_time = 1.0 / args.rate
    config = SimConfig(
        steps=args.steps,
        step_time=step_time,
        fail_at=args.fail_at,
        error_type=args.error_type,
        nan_at=args.nan_at,
        loss_spike_at=args.loss_spike,
        stall_at=args.stall_at,
        eval_every=args.eval_every,
        resume_from=args.resume_from,
        seed=args.seed,
    )
    group = grouparg.group_from_args(args)  # before serving: a bad --group is a usage error
    channels = notify_args.specs(args)  # --notify / $PEFT_NOTIFY_CHANNELS (issue 13); before serving
    nats = natsarg.target(args)  # --nats / $PEFT_NOTIFY_NATS (issue 15); before serving
    if args.token is not None:
        warn_token_in_argv("simulate")  # a generated token (the default) is never on a command line
    server = JobServer(host=args.host, port=args.port, token=args.token, discovery_files=not args.no_discovery)
    try:
        server.start()
    except PortInUseError as exc:
        raise UsageError(exc.strerror) from None
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    relay = publisher = None
    try:
        if channels:
            from peft_notify.emitter import channels as job_channels
        handle = server.add_job(
            args.job_id,
            name=args.name,
            total_steps=args.steps,
            capabilities=job_channels.with_capability(["cancel"], channels) if channels else ["cancel"],
            # A resumed run announces where it starts, so milestones it had passed never fire again.
            start_step=args.resume_from or None,
            group=group,
        )
        if channels:
            relay = job_channels.attach(server, handle, channels)
        publisher = natsarg.publish(server, handle, nats)
        url = url_with_token(handle.url, server.token)
        print(url, flush=True)
        waited = _wait_for_client(server, args.job_id, args.wait_client, stop)
        try:
            state = simulate(handle, config, stop)
        except KeyboardInterrupt:
            handle.status(wire.JobState.CANCELLED, "interrupted")
            state = wire.JobState.CANCELLED
        if not waited:  # nobody connected yet: give a late watcher the chance to see the end
            stop.wait(args.linger)
    finally:
        server.stop(linger=args.linger)
        if relay is not None:  # the last channel messages get ~15 s
            relay.close()
        natsarg.close(publisher)
        signal.signal(signal.SIGTERM, previous)
    return 0 if state is wire.JobState.COMPLETED else 1


def _wait_for_client(server: Any, job_id: str, timeout: float, stop: threading.Event) -> bool:
    """Wait until a client is connected (or ``timeout``); True when one is."""
    for _ in range(int(timeout / 0.05)):
        if server.subscriber_count(job_id) or stop.wait(0.05):
            break
    return bool(server.subscriber_count(job_id))
