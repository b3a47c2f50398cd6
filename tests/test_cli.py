"""The ``peft-notify`` dispatcher: version, help, sub-command discovery, cheap imports."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import peft_notify
from peft_notify import cli


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peft_notify", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version_flag_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"peft-notify {peft_notify.__version__}"


def test_every_registered_subcommand_sets_a_handler_and_shows_in_help() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) <= set(cli.SUBCOMMANDS)
    help_text = parser.format_help()
    for name, subparser in sub.choices.items():
        assert callable(subparser.get_default("handler")), name
        assert name in help_text


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["no-such-command"])
    assert info.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_importing_the_package_and_cli_stays_light() -> None:
    code = (
        "import sys, peft_notify, peft_notify.cli as c; c.build_parser(); "
        "heavy = sorted(m for m in ('PySide6', 'torch', 'transformers', 'qasync', 'desktop_notifier') "
        "if m in sys.modules); print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_unknown_attribute_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = peft_notify.no_such_name  # type: ignore[attr-defined]
