"""The ``peft-notify`` dispatcher: version, help, sub-command discovery, cheap imports."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

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


def test_building_the_parser_imports_no_sub_command_dependencies() -> None:
    """``register`` stays cheap: only argparse and the stdlib, whatever the command (startup time)."""
    code = (
        "import sys, peft_notify.cli as c; before = set(sys.modules); c.build_parser(); "
        "print(sorted(m for m in set(sys.modules) - before "
        "if m.startswith(('peft_notify', 'websockets', 'platformdirs', 'dbus_fast')) "
        "and not m.startswith('peft_notify.cli.') or m == 'peft_notify.cli.run_child'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "chosen"),
    [
        ([], "app"),
        (["-v"], "app"),
        (["-vv", "watch", "ws://h:1/ws/notifications/j"], "watch"),
        (["--verbose", "history", "--json"], "history"),
        (["run", "--", "python", "--help"], "run"),
        (["--help"], None),
        (["-h", "watch"], None),
        (["--version"], None),
        (["no-such-command"], None),
        (["--minimized"], None),
    ],
)
def test_main_registers_only_the_chosen_sub_command(argv: list[str], chosen: str | None) -> None:
    assert cli.chosen_subcommand(argv) == chosen


def test_top_level_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in cli.SUBCOMMANDS:
        assert name in result.stdout


def test_a_chosen_command_does_not_import_the_others(tmp_path: Path) -> None:
    code = (
        "import sys, peft_notify.cli as c; "
        f"c.main(['history', '--json', '--db', {str(tmp_path / 'h.db')!r}]); "
        "print(sorted(m for m in sys.modules if m.startswith('peft_notify.cli.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    imported = result.stdout.strip().splitlines()[-1]
    # peft_notify.cli.args (argument types shared by every command) is not a sub-command
    assert imported.replace("'peft_notify.cli.args', ", "") == "['peft_notify.cli.history']"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--minimized"], ["app", "--minimized"]),
        (["ws://h:1/ws/notifications/j"], ["app", "ws://h:1/ws/notifications/j"]),
        (
            ["-v", "--token=t", "http://h:1/ws/notifications/j"],
            ["-v", "app", "--token=t", "http://h:1/ws/notifications/j"],
        ),
        (["--no-local"], ["app", "--no-local"]),
        (["watch", "ws://h:1/ws/notifications/j"], ["watch", "ws://h:1/ws/notifications/j"]),
        (["no-such-command"], ["no-such-command"]),
        (["--help"], ["--help"]),
        ([], []),
    ],
)
def test_app_options_and_urls_without_a_command_run_the_default_command(argv: list[str], expected: list[str]) -> None:
    assert cli.with_default_command(argv) == expected


@pytest.mark.parametrize("argv", [["--minimized"], ["ws://127.0.0.1:9/ws/notifications/x", "--minimized"]])
def test_peft_notify_minimized_and_url_reach_the_app_handler(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 item 3: these were rejected ("unrecognized arguments" / "invalid choice")."""
    from peft_notify.cli import app

    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(app, "display_available", lambda: False)
    original = app.run

    def spy(args: argparse.Namespace) -> int:
        seen.append(args)
        return original(args)

    monkeypatch.setattr(app, "run", spy)
    assert cli.main(argv) == 2  # no display in this test: the app handler says so
    assert "no display found" in capsys.readouterr().err
    [args] = seen
    assert args.command == "app"
    assert args.minimized
    assert args.urls == [a for a in argv if "://" in a]
