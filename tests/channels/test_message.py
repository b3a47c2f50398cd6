from __future__ import annotations

from peft_notify.channels.message import DIGEST_LINES, digest, render
from peft_notify.wire import NotificationType as K
from tests.channels.factories import event


def test_completion_names_job_host_duration_loss_and_eval_metrics() -> None:
    ev = event(
        K.COMPLETION,
        "done",
        job="llama-lora",
        title="llama-lora: training complete",
        message="llama-lora finished at step 1000.",
        host="gpu-7",
        duration_s=3725,
        step=1000,
        total_steps=1000,
        loss=0.41234,
        metrics={"eval_loss": 0.5, "eval_accuracy": 0.91},
    )
    title, body = render(ev)
    assert title == "llama-lora: training complete"
    assert body.splitlines() == [
        "llama-lora finished at step 1000.",
        "host gpu-7 · ran 1h 02m · step 1000/1000 · loss 0.4123 · eval_accuracy 0.91 · eval_loss 0.5",
    ]


def test_title_gets_the_job_name_when_missing() -> None:
    assert render(event(K.ERROR, "x", job="run-3", title="CUDA error"))[0] == "run-3: CUDA error"


def test_digest_counts_and_lists_errors_first() -> None:
    events = [event(K.WARNING, f"w{i}", job="X", title=f"X: warning {i}") for i in range(36)]
    events.insert(20, event(K.ERROR, "e", job="X", title="X: out of memory"))
    title, body = digest(events)
    assert title == "job X: 37 more events: 1 error, 36 warnings"
    lines = body.splitlines()
    assert lines[0] == "[error] X: out of memory"
    assert len(lines) == DIGEST_LINES + 1
    assert lines[-1] == f"… and {37 - DIGEST_LINES} more"


def test_digest_over_several_jobs() -> None:
    title, body = digest([event(K.WARNING, "a", job="A", title="spike"), event(K.COMPLETION, "b", job="B")])
    assert title == "2 jobs: 2 more events: 1 warning, 1 completion"
    assert "[warning] A: spike" in body.splitlines()
