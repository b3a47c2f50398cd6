"""Tiny Transformers + PEFT CPU training runs, alternating without/with ``NotifyCallback`` (child).

``python -m bench.trainer_child --pairs N --steps S [--probes P]`` prints one JSON line per run:
``{"ev": "run", "variant": "without" | "with", "s": seconds of trainer.train(), "cpu": its process
CPU seconds (all threads), "main_cpu": the training (main) thread's CPU seconds, "pair": index}``.
A warm-up run of each variant comes first and is not reported; a full garbage collection
precedes every timed run (a collection landing inside one run but not the other is noise).

Then ``P`` probe runs with the callback (not part of the A/B pairs): ``{"ev": "probe", "s": ...,
"hooks_s": {hook: seconds the main thread spent inside NotifyCallback's hook}, "threads_cpu":
{thread name: CPU seconds}}`` — the direct measurement of what the callback costs: its hooks on
the training thread (wall clock, perf_counter) and its server and sampler threads (their CPU
from ``/proc/self/task/TID/schedstat``, read just before ``on_train_end`` stops them).

The model is a 2-layer GPT-2 with hidden size 32 built from a config (no download), wrapped in a
LoRA adapter; data is random token ids.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from typing import Any

HOOKS = ("on_train_begin", "on_step_end", "on_log", "on_save", "on_train_end")


def build(steps: int, callback: bool, outdir: str, probe: dict[str, Any] | None = None) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=256, n_positions=64)
    model = get_peft_model(
        GPT2LMHeadModel(config),
        LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"),
    )
    ids = torch.randint(0, 256, (256, 32))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = TrainingArguments(
        output_dir=outdir,
        max_steps=steps,
        per_device_train_batch_size=8,
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    callbacks: list[Any] = []
    if callback:
        from peft_notify.integrations.transformers import NotifyCallback

        callbacks.append(NotifyCallback() if probe is None else _probed(NotifyCallback(), probe))
    return Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)


def _probed(callback: Any, probe: dict[str, Any]) -> Any:
    """``callback`` with each hook timed into ``probe["hooks_s"]``, and our threads' CPU read into
    ``probe["threads_cpu"]`` just before ``on_train_end`` stops them."""
    hooks: dict[str, float] = probe.setdefault("hooks_s", {})
    threads: dict[str, float] = probe.setdefault("threads_cpu", {})

    def timed(name: str, hook: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            if name == "on_train_end":
                threads.update(_thread_cpu())
            start = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                hooks[name] = hooks.get(name, 0.0) + time.perf_counter() - start

        return run

    for name in HOOKS:
        setattr(callback, name, timed(name, getattr(callback, name)))
    return callback


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads other than the main one, by thread name."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.native_id is None:
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/schedstat") as f:
                out[thread.name] = out.get(thread.name, 0.0) + int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return out


def timed_run(steps: int, callback: bool, probe: dict[str, Any] | None = None) -> tuple[float, float, float]:
    """Wall seconds, process CPU seconds (all threads) and main-thread CPU seconds of ``trainer.train()``."""
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as outdir:
        trainer = build(steps, callback, outdir, probe)
        gc.collect()
        cpu, main_cpu = time.process_time(), time.thread_time()
        start = time.perf_counter_ns()
        with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its log dicts
            trainer.train()
        elapsed = (time.perf_counter_ns() - start) / 1e9
        cpu, main_cpu = time.process_time() - cpu, time.thread_time() - main_cpu
    return elapsed, cpu, main_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--probes", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # one core: less noise from the machine's other load
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    timed_run(args.steps, False)
    timed_run(args.steps, True)
    for pair in range(args.pairs):
        # Alternate which variant goes first, so a drift in machine load hits both equally.
        order = (False, True) if pair % 2 == 0 else (True, False)
        for callback in order:
            seconds, cpu, main_cpu = timed_run(args.steps, callback)
            variant = "with" if callback else "without"
            line = {"ev": "run", "variant": variant, "s": seconds, "cpu": cpu, "main_cpu": main_cpu, "pair": pair}
            print(json.dumps(line), flush=True)
    for index in range(args.probes):
        probe: dict[str, Any] = {}
        seconds, cpu, main_cpu = timed_run(args.steps, True, probe)
        print(json.dumps({"ev": "probe", "s": seconds, "cpu": cpu, "probe": index, **probe}), flush=True)


if __name__ == "__main__":
    main()
