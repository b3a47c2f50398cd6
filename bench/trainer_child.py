"""Tiny Transformers + PEFT CPU training runs, alternating without/with ``NotifyCallback`` (child).

``python -m bench.trainer_child --pairs N --steps S`` prints one JSON line per run:
``{"ev": "run", "variant": "without" | "with", "s": seconds of trainer.train(), "cpu": its process
CPU seconds, "pair": index}``. A warm-up run
of each variant comes first and is not reported. The model is a 2-layer GPT-2 with hidden size
32 built from a config (no download), wrapped in a LoRA adapter; data is random token ids.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import warnings
from typing import Any


def build(steps: int, callback: bool, outdir: str) -> Any:
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

        callbacks.append(NotifyCallback())
    return Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)


def timed_run(steps: int, callback: bool) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads) of ``trainer.train()``."""
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as outdir:
        trainer = build(steps, callback, outdir)
        cpu = time.process_time()
        start = time.perf_counter_ns()
        trainer.train()
        elapsed = (time.perf_counter_ns() - start) / 1e9
        cpu = time.process_time() - cpu
        for cb in trainer.callback_handler.callbacks:
            close = getattr(cb, "close", None)
            if callable(close) and type(cb).__name__ == "NotifyCallback":
                close()
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
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
            seconds, cpu = timed_run(args.steps, callback)
            variant = "with" if callback else "without"
            print(json.dumps({"ev": "run", "variant": variant, "s": seconds, "cpu": cpu, "pair": pair}), flush=True)


if __name__ == "__main__":
    main()
