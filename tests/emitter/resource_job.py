"""Training side of the resource end-to-end tests: a real job server that reports resources.

``python -m tests.emitter.resource_job scripted --port P`` serves one job that makes steady
progress and sends a script of ``resource`` samples (one a second, as the sampler does)
through ``JobHandle.resource``: each phase breaks one rule (low disk, the next checkpoint not
fitting, host memory, swap, GPU memory, throttling, XID, ECC), and the last phase stops the
progress while the processes sit idle (a hang). Scripted samples stand in for machine states
this test machine cannot be put in (90 % of its RAM, a throttling GPU).

``python -m tests.emitter.resource_job real --output-dir DIR --param-bytes N`` starts the real
:class:`~peft_notify.emitter.resources.ResourceSampler` on this process (real psutil, the real
disk at DIR: a small tmpfs the test filled) with ``FakeNvml`` (tests/emitter/nvml_fake.py) as
its NVML, one of whose devices reports an XID error after a few seconds.

Both print the job's URL (with its token) on the first line and run until killed or
``--seconds`` pass.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from peft_notify import wire
from peft_notify.emitter import JobServer
from peft_notify.emitter.resources import ResourceSampler, start_sampler

GIB = 1 << 30


def host(mem: float = 40.0, swap: int = 0, cpu: float = 80.0) -> wire.HostSample:
    return wire.HostSample(
        mem_total=64 * GIB,
        mem_available=int(64 * GIB * (1 - mem / 100)),
        swap_total=8 * GIB,
        swap_used=swap,
        rss=10 * GIB,
        cpu_percent=cpu,
        alive=True,
    )


def gpu(used: float = 50.0, util: float = 95.0, **kw: object) -> wire.GpuSample:
    kw.setdefault("ecc_uncorrected", 0)  # the driver's count before this job: the baseline
    return wire.GpuSample(
        index=0,
        name="H100",
        mem_used=int(used / 100 * 80 * GIB),
        mem_total=80 * GIB,
        util=util,
        temperature=70.0,
        power_w=500.0,
        **kw,  # type: ignore[arg-type]
    )


def disk(free_gib: float, est_gib: float | None = 10.0) -> wire.DiskSample:
    est = None if est_gib is None else int(est_gib * GIB)
    return wire.DiskSample(path="/data/run", free=int(free_gib * GIB), total=1000 * GIB, next_checkpoint=est)


OK = wire.Resource(host=host(), disk=disk(100), gpus=(gpu(),))

# (seconds to hold, sample): one rule broken per phase; holds cover the test's 2 s thresholds.
PHASES: list[tuple[float, wire.Resource]] = [
    (2.0, OK),
    (3.0, wire.Resource(host=host(), disk=disk(14), gpus=(gpu(),))),  # low disk: < 1.5 x 10 GiB
    (3.0, wire.Resource(host=host(), disk=disk(9), gpus=(gpu(),))),  # the next checkpoint will not fit
    (4.0, wire.Resource(host=host(mem=95), disk=disk(100), gpus=(gpu(),))),  # host memory > 90 %
    (1.0, wire.Resource(host=host(mem=97, swap=GIB), disk=disk(100), gpus=(gpu(),))),
    (3.0, wire.Resource(host=host(mem=97, swap=2 * GIB), disk=disk(100), gpus=(gpu(),))),  # swap grows
    (4.0, wire.Resource(host=host(), disk=disk(100), gpus=(gpu(used=97),))),  # GPU memory > 95 %
    (4.0, wire.Resource(host=host(), disk=disk(100), gpus=(gpu(throttle=("thermal",)),))),  # throttling
    (2.0, wire.Resource(host=host(), disk=disk(100), gpus=(gpu(xid_count=1, last_xid=79),))),  # XID
    (2.0, wire.Resource(host=host(), disk=disk(100), gpus=(gpu(xid_count=1, ecc_uncorrected=2),))),  # ECC
]
HUNG = wire.Resource(host=host(cpu=0.2), disk=disk(100), gpus=(gpu(util=0.0, xid_count=1, ecc_uncorrected=2),))


def scripted(handle: object, seconds: float) -> None:
    report = handle.resource  # type: ignore[attr-defined]
    progress = handle.progress  # type: ignore[attr-defined]
    step = 0
    started = time.monotonic()
    report(wire.Resource(host=host(), disk=disk(100), gpus=(gpu(),)))
    for hold, sample in PHASES:
        end = time.monotonic() + hold
        while time.monotonic() < end:
            step += 1
            progress(step, 100_000)
            report(sample)
            time.sleep(0.25 if time.monotonic() + 0.25 < end else max(0.0, end - time.monotonic()))
    print("phase: hang", file=sys.stderr, flush=True)
    while time.monotonic() - started < seconds:  # no progress, processes idle
        report(HUNG)
        time.sleep(0.5)


def real(handle: object, args: argparse.Namespace) -> None:
    sys.path.insert(0, os.getcwd())
    from tests.emitter.nvml_fake import FakeDevice, FakeNvml

    nv = FakeNvml([FakeDevice(pids=[os.getpid()]), FakeDevice(pids=[1])])
    sampler = start_sampler(handle, output_dir=args.output_dir, param_bytes=args.param_bytes, gpu=nv)
    assert isinstance(sampler, ResourceSampler)
    progress = handle.progress  # type: ignore[attr-defined]
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < args.seconds:
        step += 1
        progress(step, 100_000)
        if step == 12:  # ~3 s in: the GPU throws an XID ("fallen off the bus")
            nv.xid(0, 79)
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["scripted", "real"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--job-id", default="res-e2e")
    parser.add_argument("--name", default="res-job")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--output-dir")
    parser.add_argument("--param-bytes", type=int)
    parser.add_argument("--token")
    args = parser.parse_args()
    server = JobServer(port=args.port, token=args.token, discovery_files=False).start()
    handle = server.add_job(args.job_id, name=args.name, total_steps=100_000)
    print(handle.url + (f"?token={server.token}" if server.token and "token=" not in handle.url else ""), flush=True)
    done = threading.Event()
    try:
        if args.mode == "scripted":
            handle.set_resources(("host_memory", "swap", "process_rss", "disk", "gpu"), ())  # type: ignore[attr-defined]
            scripted(handle, args.seconds)
        else:
            real(handle, args)
    finally:
        done.set()
        server.stop(linger=1.0)


if __name__ == "__main__":
    main()
