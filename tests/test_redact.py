"""Secrets in job-provided text become ``[redacted]``; ordinary training output is untouched."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peft_notify.redact import REDACTED, redact

HF = "hf_" + "aB3" * 12
OPENAI = "sk-proj-" + "Xy9" * 8
GITHUB = "ghp_" + "Qw8" * 12
GITHUB_OAUTH = "gho_" + "Qw8" * 12
GITHUB_PAT = "github_pat_11ABCDEFG0_" + "z9" * 20
SLACK = "xoxb-1234567890-abcdefghijkl"
AWS = "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"python3 train.py --hf-token {HF}", HF),
        (f"token is {HF}.", HF),
        (f"OPENAI says {OPENAI}", OPENAI),
        (f"git push {GITHUB}", GITHUB),
        (f"auth {GITHUB_OAUTH}", GITHUB_OAUTH),
        (f"auth {GITHUB_PAT}", GITHUB_PAT),
        (f"slack {SLACK}", SLACK),
        (f"aws id {AWS}", AWS),
        ("train.py --token s3cr3tvalue", "s3cr3tvalue"),
        ("train.py --token=s3cr3tvalue --lr 1", "s3cr3tvalue"),
        ("train.py --password hunter2", "hunter2"),
        ("train.py --password 'correct horse'", "correct horse"),
        ('train.py --api-key "abc def"', "abc def"),
        ("train.py --api_key abc123", "abc123"),
        ("train.py --secret xyzzy", "xyzzy"),
        ("train.py --wandb-api-key=1234abcd", "1234abcd"),
        ("HF_TOKEN=abc123 python train.py", "abc123"),
        ("WANDB_API_KEY=deadbeef", "deadbeef"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"),
        ("MY_SERVICE_SECRET=s3", "s3"),
        ("PASSWORD=hunter2", "hunter2"),
        ("DB_PASSWORD = hunter2", "hunter2"),
        ("Authorization: Bearer abc.def.ghi123", "abc.def.ghi123"),
        ("authorization: token 0123456789abcdef", "0123456789abcdef"),
        ("HTTP 401 for https://x/api, header Bearer eyJhbGc1OiJIUzI1NiJ9", "eyJhbGc1OiJIUzI1NiJ9"),
        ("pip install git+https://alice:pa55w0rd@git.example.com/repo.git", "alice:pa55w0rd"),
        ("fatal: could not read from https://bob:tok@github.com", "bob:tok"),
        ("ws://127.0.0.1:8765/ws/notifications/x?token=AbC123xyz&since=4", "AbC123xyz"),
        ("http://127.0.0.1:8765/api/jobs?token=AbC123xyz", "AbC123xyz"),
        ('{"api_key": "sekrit-value", "lr": 1}', "sekrit-value"),
        ("{'password': 'hunter2'}", "hunter2"),
        ("$ wandb login 0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567"),
        ("wandb login --relogin abcdef0123", "abcdef0123"),
        ("hf auth login s3cr3tvalue", "s3cr3tvalue"),
        ("huggingface-cli login s3cr3tvalue", "s3cr3tvalue"),
        ("mysqldump -u root -phunter2 train_db > dump.sql", "hunter2"),
        ("sshpass -p hunter2 rsync -a ckpt/ gpu2:", "hunter2"),
        ("docker login -u me -p tok123abc registry.example.com", "tok123abc"),
    ],
)
def test_secret_is_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.py --token s3cr3t --lr 2e-4", "train.py --token [redacted] --lr 2e-4"),
        ("https://u:p@host/x", "https://[redacted]@host/x"),
        (
            "ws://127.0.0.1:8765/ws/notifications/x?token=abc123&since=4",
            "ws://127.0.0.1:8765/ws/notifications/x?token=[redacted]&since=4",
        ),
        ("Authorization: Bearer abc123def", "Authorization: Bearer [redacted]"),
        ("HF_TOKEN=abc OTHER=1", "HF_TOKEN=[redacted] OTHER=1"),
    ],
)
def test_redaction_keeps_the_context(text: str, expected: str) -> None:
    assert redact(text) == expected


ORDINARY = [
    "loss=0.5 lr=2e-4 step 100/1000",
    "{'loss': 1.2345, 'grad_norm': 0.87, 'learning_rate': 0.0002, 'epoch': 0.5}",
    "  5%|▌         | 50/1000 [00:10<03:10,  4.98it/s]",
    "python3 train.py --model meta-llama/Llama-2-7b-hf --max-new-tokens 512 --tokenizer gpt2",
    "--max_new_tokens 128 --num-tokens 7 --token-budget-ratio",
    "/home/alice/runs/ckpt-1000/adapter_model.safetensors",
    "C:\\Users\\bob\\peft\\out\\checkpoint-500",
    "saving to s3://bucket/path/to/model",
    "ssh://git@github.com/org/repo.git",
    "https://huggingface.co/meta-llama/Llama-2-7b-hf/resolve/main/config.json",
    "pad_token=<pad> eos_token=</s> bos_token=<s>",
    "tokenizer.pad_token = tokenizer.eos_token",
    "Token indices sequence length is longer than the specified maximum (1024 > 512)",
    "Bearer authentication required",
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "sk-learn version 1.3 and hf_transfer enabled",
    "eval_loss=0.231 eval_runtime=12.3 MONITOR=val_loss",
    "http://127.0.0.1:8765/healthz",
    "[rank0]: step 42 took 0.13s (tokens/s=81234)",
    "python serve.py -p 8080 --workers 2",
    "mysql -u root -p train_db",  # -p alone prompts: nothing to hide
    "wandb: Logged in as alice. Use `wandb login --relogin` to force relogin",
]


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_training_output_is_untouched(line: str) -> None:
    assert redact(line) == line


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SECRETS = st.sampled_from([HF, OPENAI, GITHUB, GITHUB_OAUTH, GITHUB_PAT, SLACK, AWS]) | st.builds(
    lambda n: "hf_" + n, st.text(_ALNUM, min_size=16, max_size=40)
)
_WRAPPERS = st.sampled_from(
    [
        "{}",
        "--token {}",
        "--hf-token={}",
        "HF_TOKEN={}",
        "https://user:{}@host/x",
        "Authorization: Bearer {}",
        "?token={}&x=1",
        '"api_key": "{}"',
        "({})",
        "'{}'",
        "value {}.",
    ]
)
_BENIGN = st.lists(st.sampled_from(ORDINARY), max_size=3).map(" ".join)


@given(prefix=_BENIGN, wrapper=_WRAPPERS, secret=_SECRETS, suffix=_BENIGN)
def test_embedded_secret_never_survives(prefix: str, wrapper: str, secret: str, suffix: str) -> None:
    text = f"{prefix} {wrapper.format(secret)} {suffix}"
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


@given(st.text())
def test_redact_is_idempotent_and_total(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


def test_a_login_command_without_a_key_is_untouched() -> None:
    assert redact("wandb login") == "wandb login"
    assert redact("wandb login --relogin") == "wandb login --relogin"


@given(_BENIGN)
def test_benign_combinations_are_untouched(text: str) -> None:
    assert redact(text) == text


_SAFE_WORDS = st.from_regex(r"[a-z]{1,8}(=[0-9.e-]{1,6})?", fullmatch=True)


@given(st.lists(_SAFE_WORDS, max_size=12).map(" ".join))
def test_key_value_log_lines_are_untouched(text: str) -> None:
    # Random `name=value` words (lower case, numeric values) are how trainers log metrics.
    # Names that are themselves secret keywords (`token=…`, `secret=…`) are redacted on purpose.
    words = {w.split("=")[0] for w in text.split()}
    if words & {"token", "secret", "password", "passwd", "apikey"}:
        return
    assert redact(text) == text


def test_log_lines_are_redacted_and_terminal_safe() -> None:
    # A real `peft-notify` process: its logging setup, a job's text in a warning and a traceback.
    script = (
        "import logging\n"
        "from peft_notify.cli import configure_logging\n"
        "configure_logging(0)\n"
        "log = logging.getLogger('peft_notify.desktop.client')\n"
        f"log.warning('job said %s', 'auth {HF} \\x1b]52;c;cHduZWQ=\\x07 \\x1b[2J')\n"
        "try:\n"
        f"    raise RuntimeError('https://alice:pw@host failed {GITHUB}')\n"
        "except RuntimeError:\n"
        "    log.exception('server error')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert HF not in done.stderr
    assert GITHUB not in done.stderr
    assert "alice:pw" not in done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert done.stderr.count(REDACTED) >= 3
    assert "job said auth [redacted]" in done.stderr
    assert "RuntimeError: https://[redacted]@host failed [redacted]" in done.stderr
