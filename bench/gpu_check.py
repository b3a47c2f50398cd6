"""Real GPU check of the resource warnings: grow a CUDA allocation until the GPU-memory rule fires.

Run on a machine with an NVIDIA GPU, PyTorch with CUDA and nvidia-ml-py::

    python -m bench.gpu_check [--device 0] [--for-s 30] [--step-gib 4] [--timeout 300]

It serves a real job (``peft_notify.job``), samples the machine with the real
:class:`~peft_notify.emitter.resources.ResourceSampler` (the real NVML, no fake), connects a
real client over the WebSocket, and feeds what arrives to the engine with the default rules
(``--for-s`` shortens the 30 s hold). The allocation grows by ``--step-gib`` a step until
device memory passes the threshold, then holds until the warning arrives. Prints one JSON
object: the device, the memory at each step, when the threshold was crossed, when the warning
fired and its text, and whether NVML saw this process on the device (in a container with its
own PID namespace it may not; the check then watches ``--device`` directly and says so).
Exit status 0 when the warning fired, 1 when it did not, 2 when the machine cannot run it.
Nothing in the test suite depends on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

GIB = 1 << 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument(
        "--for-s", type=float, default=30.0, help="how long GPU memory must stay high (rule default 30)"
    )
    parser.add_argument("--step-gib", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print(json.dumps({"ok": False, "error": "PyTorch is not installed"}))
        return 2
    if not torch.cuda.is_available():
        print(json.dumps({"ok": False, "error": "CUDA is not available"}))
        return 2
    return asyncio.run(check(args, torch))


async def check(args: argparse.Namespace, torch: Any) -> int:
    from websockets.asyncio.client import connect

    import peft_notify
    from peft_notify import wire
    from peft_notify.emitter.resources import open_nvml
    from peft_notify.engine import Engine, EngineConfig, Notify
    from peft_notify.engine.resources import ResourceThresholds

    report: dict[str, Any] = {"device": args.device, "for_s": args.for_s, "steps": []}
    gpus, note = open_nvml()  # before any CUDA work: a machine without NVML cannot run the check
    if gpus is None:
        report.update(ok=False, error=note)
        print(json.dumps(report))
        return 2
    gpus.close()
    device = torch.device(f"cuda:{args.device}")
    torch.cuda.set_device(device)
    blocks = [torch.empty(64 << 20, dtype=torch.uint8, device=device)]  # a CUDA context on the device
    config = EngineConfig(resources=ResourceThresholds(gpu_memory_for_s=args.for_s))
    engine = Engine(config)
    with peft_notify.job("gpu-check", total_steps=10**6, print_url=False, output_dir=".") as job:
        sampler = job.sampler
        if sampler is None or sampler.gpus is None:
            report.update(ok=False, error="the sampler has no GPU part", notes=list(sampler.notes if sampler else ()))
            print(json.dumps(report))
            return 2
        time.sleep(1.5)  # let NVML list this process on the device
        seen = sampler.gpus.devices_for(sampler.host.pids())
        report["nvml_saw_this_process"] = args.device in seen
        if args.device not in seen:
            sampler.gpus.watch(args.device)
        started = time.monotonic()
        fired: Notify | None = None
        crossed_at: float | None = None
        threshold = config.resources.gpu_memory_percent
        async with connect(job.url, max_size=wire.MAX_FRAME_BYTES) as ws:
            step = 0
            while fired is None and time.monotonic() - started < args.timeout:
                view = engine.resources(job.job_id)
                gpu = _device(view.sample if view else None, args.device)
                pct = None if gpu is None else gpu.mem_percent
                if pct is not None and pct > threshold and crossed_at is None:
                    crossed_at = time.monotonic()
                    report["crossed"] = {"percent": round(pct, 2), "used": gpu.mem_used if gpu else None}
                if crossed_at is None and (pct is None or pct <= threshold + 0.5):
                    free, _total = torch.cuda.mem_get_info(device)
                    size = int(min(args.step_gib * GIB, max(free - 256 * (1 << 20), 0)))
                    if size > 0:
                        try:
                            blocks.append(torch.empty(size, dtype=torch.uint8, device=device))
                        except torch.cuda.OutOfMemoryError:
                            report.setdefault("oom_at_step", step)
                step += 1
                job.progress(step)
                try:
                    frame = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                env = wire.decode(frame)
                for action in engine.feed(env, now=time.monotonic(), job_id=job.job_id):
                    if isinstance(action, Notify) and ":gpu_memory:" in action.key:
                        fired = action
                if env.type == "resource" and isinstance(env.data, wire.Resource):
                    g = _device(env.data, args.device)
                    if g is not None:
                        report["gpu_name"] = g.name
                        report["steps"].append(
                            {
                                "t": round(time.monotonic() - started, 2),
                                "used_gib": round((g.mem_used or 0) / GIB, 2),
                                "percent": None if g.mem_percent is None else round(g.mem_percent, 2),
                                "util": g.util,
                                "throttle": list(g.throttle),
                                "xid_count": g.xid_count,
                            }
                        )
        report["steps"] = report["steps"][-40:]
        if fired is not None:
            report.update(
                ok=True,
                warning={"title": fired.event.title, "message": fired.event.message, "key": fired.key},
                seconds_from_crossing=None if crossed_at is None else round(time.monotonic() - crossed_at, 2),
                seconds_total=round(time.monotonic() - started, 2),
            )
        else:
            report.update(ok=False, error=f"no GPU-memory warning within {args.timeout:g} s")
    del blocks
    print(json.dumps(report, indent=1))
    return 0 if fired is not None else 1


def _device(sample: Any, index: int) -> Any:
    if sample is None:
        return None
    return next((g for g in sample.gpus if g.index == index), None)


if __name__ == "__main__":
    sys.exit(main())
