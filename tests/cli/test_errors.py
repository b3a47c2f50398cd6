"""Every user-input error on every command: one clear line on stderr, exit status 2, no traceback (issue 11 item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from peft_notify.cli import main

URL = "ws://127.0.0.1:9/ws/notifications/x"

# (argv, a phrase the one line must contain)
MALFORMED: list[tuple[list[str], str]] = [
    (["watch", "localhost:8765"], "not a job URL: 'localhost:8765'"),
    (["watch", "ws://localhost:99999/ws/notifications/x"], "Port out of range"),
    (["watch", "ws://[::1/ws"], "Invalid IPv6 URL"),
    (["watch", "ws://:8765/ws/notifications/x"], "not a job URL"),
    (["watch", "ftp://h/ws/notifications/x"], "not a job URL"),
    (["watch"], "give a job URL or --local"),
    (["watch", URL, "--local"], "give a job URL or --local"),
    (["watch", URL, "--since", "-5"], "must be at least 0"),
    (["watch", URL, "--give-up", "abc"], "not a number: 'abc'"),
    (["watch", URL, "--give-up", "nan"], "must be a number >= 0"),
    (["watch", URL, "--give-up-lost", "-1"], "must be a number >= 0"),
    (["watch", URL, "--bogus"], "unrecognized arguments: --bogus"),
    (["run"], "no command given"),
    (["run", "--port", "99999", "--", "true"], "port 99999 is out of range"),
    (["run", "--port", "-1", "--", "true"], "port -1 is out of range"),
    (["run", "--port", "eighty", "--", "true"], "not a port number"),
    (["run", "--job-id", "bad id/x", "--", "true"], "invalid job id 'bad id/x'"),
    (["run", "--linger", "-1", "--", "true"], "must be a number >= 0"),
    (["run", "--retry-wait", "-5", "--", "true"], "must be a number >= 0"),
    (["run", "--host", "999.1.1.1", "--", "true"], "cannot listen on 999.1.1.1:0"),
    (["simulate", "--steps", "0"], "must be at least 1, not 0"),
    (["simulate", "--steps", "-5"], "must be at least 1"),
    (["simulate", "--port", "99999"], "out of range"),
    (["simulate", "--job-id", "a b"], "invalid job id"),
    (["simulate", "--step-ms", "-1"], "must be a number >= 0"),
    (["simulate", "--fail-at", "inf"], "must be a finite number"),
    (["simulate", "--resume-from", "-3"], "must be at least 0"),
    (["simulate", "--host", "999.1.1.1"], "cannot listen on 999.1.1.1:0"),
    (["demo", "--jobs", "0"], "must be at least 1, not 0"),
    (["demo", "--port", "99999"], "out of range"),
    (["demo", "--steps", "0"], "must be at least 1"),
    (["demo", "--step-ms", "-1"], "must be a number >= 0"),
    (["history", "--limit", "-1"], "must be at least 1"),
    (["history", "--limit", "x"], "not a whole number"),
    (["history", "--kind", "bogus"], "invalid choice: 'bogus'"),
    (["doctor", "--bogus"], "unrecognized arguments: --bogus"),
    (["app", "not a url"], "not a job URL: 'not a url'"),
    (["app", "ws://localhost:99999/ws/notifications/x"], "Port out of range"),
    (["not a url"], "invalid choice: 'not a url'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
]


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may touch the user's files: settings, history and discovery go to ``tmp_path``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))


@pytest.mark.parametrize(("argv", "phrase"), MALFORMED, ids=[" ".join(a) or "-" for a, _ in MALFORMED])
def test_malformed_arguments_get_one_line_and_exit_2(
    argv: list[str], phrase: str, capfd: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capfd.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert phrase in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("peft-notify")


def test_the_issues_examples_print_no_traceback_as_real_processes(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "PEFT_NOTIFY_RUNTIME_DIR": str(tmp_path / "rt")}
    for url in ("localhost:8765", "ws://localhost:99999/ws/notifications/x"):
        result = subprocess.run(
            [sys.executable, "-m", "peft_notify", "watch", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        assert result.returncode == 2
        assert "Traceback" not in result.stdout + result.stderr
        assert result.stderr.startswith("peft-notify watch: not a job URL")
        assert len(result.stderr.splitlines()) == 1


def test_a_token_in_a_malformed_url_is_not_echoed(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "ws://user:hunter2@localhost:99999/ws/notifications/x?token=s3cret"]) == 2
    err = capfd.readouterr().err
    assert "s3cret" not in err
    assert "hunter2" not in err


def test_an_unexpected_failure_is_one_line_with_the_traceback_only_under_debug(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from peft_notify.cli import doctor

    def broken(_args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "run_doctor", broken)
    monkeypatch.setattr(doctor, "register", _register_with(broken))
    assert main(["doctor"]) == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "peft-notify doctor: unexpected error: RuntimeError: boom (run with -vv for details)" in err


def _register_with(handler: object) -> object:
    def register(subparsers: object) -> None:
        subparsers.add_parser("doctor").set_defaults(handler=handler)  # type: ignore[attr-defined]

    return register
