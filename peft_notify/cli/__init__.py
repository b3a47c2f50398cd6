"""``peft-notify`` command line: a thin dispatcher over sub-command modules.

Each sub-command lives in ``peft_notify/cli/<name>.py`` and exposes
``register(subparsers) -> None``, which adds its parser and sets ``handler``
(``Callable[[argparse.Namespace], int]``) as a default. ``register`` must stay
cheap: heavy imports (Qt, torch, websockets) happen inside the handler, so
``peft-notify --version`` and ``--help`` are instant on a headless server.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, cast

from peft_notify import __version__
from peft_notify.cli.args import UsageError

# Order here is the order in --help.
SUBCOMMANDS: tuple[str, ...] = ("app", "demo", "simulate", "watch", "run", "doctor", "history")
# Options of the default command (``app``) that may be given without naming it.
APP_OPTIONS: tuple[str, ...] = ("--minimized", "--token", "--local", "--no-local")

Handler = Callable[[argparse.Namespace], int]

log = logging.getLogger(__name__)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every sub-command that imports on this install, or with ``only`` that one.

    ``only`` is for :func:`main`: parsing ``peft-notify app`` need not import the other
    sub-command modules. An ``only`` that does not import gives the full parser.
    """
    parser = Parser(
        prog="peft-notify",
        description="Desktop notifications and taskbar progress for training jobs.",
        epilog="Run 'peft-notify COMMAND --help' for a command's options. With no command, starts the desktop "
        "app: 'peft-notify --minimized' and 'peft-notify URL ...' are 'peft-notify app --minimized' and "
        "'peft-notify app URL ...'.",
    )
    parser.add_argument("--version", action="version", version=f"peft-notify {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = SUBCOMMANDS if only is None else (only,)
    for name in names:
        try:
            module = importlib.import_module(f"peft_notify.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"peft_notify.cli.{name}":
                raise
            if only is not None:
                return build_parser()
            continue
        module.register(sub)
    return parser


def chosen_subcommand(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` runs (``app`` when it names none), or ``None`` when the full parser is needed.

    The full parser is needed for top-level ``--help`` (it lists every command) and for a
    first argument that is not a known command (the error lists the valid ones).
    """
    for arg in argv:
        if arg in ("-h", "--help", "--version") or (arg.startswith("--") and arg != "--verbose"):
            return None
        if arg.startswith("-"):
            continue  # -v, -vv: the only top-level options, and they take no value
        return arg if arg in SUBCOMMANDS else None
    return "app"


def _is_verbosity(arg: str) -> bool:
    return arg == "--verbose" or (len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"})


def with_default_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``app`` inserted where the user gave ``app``'s options or URLs without naming it.

    ``peft-notify --minimized`` and ``peft-notify ws://...`` run the default command, as
    ``peft-notify`` alone does. Anything else is left as it is (a wrong command name
    still gets the parser's "invalid choice" error).
    """
    args = list(argv)
    for i, arg in enumerate(args):
        if _is_verbosity(arg):
            continue
        if arg.split("=", 1)[0] in APP_OPTIONS or (not arg.startswith("-") and "://" in arg):
            return [*args[:i], "app", *args[i:]]
        break
    return args


class _SafeLogFilterOnFirstUse(logging.Filter):
    """:class:`peft_notify.redact.SafeLogFilter`, imported for the first record that reaches a handler.

    The redaction patterns take ~5 ms to compile, on the path to the app's first window
    (bench/startup.py); most runs log nothing at the default level.
    """

    def __init__(self) -> None:
        super().__init__()
        self._filter: logging.Filter | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._filter is None:
            from peft_notify.redact import SafeLogFilter

            self._filter = SafeLogFilter()
        return bool(self._filter.filter(record))


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Log lines quote job text: redacted and terminal-safe (issue 10 items 1, 4).
    for handler in logging.getLogger().handlers:
        if not any(type(f).__name__ in ("SafeLogFilter", "_SafeLogFilterOnFirstUse") for f in handler.filters):
            handler.addFilter(_SafeLogFilterOnFirstUse())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peft-notify`` console script. Returns the exit status."""
    arguments = with_default_command(sys.argv[1:] if argv is None else argv)
    parser = build_parser(chosen_subcommand(arguments))
    args = parser.parse_args(arguments)
    configure_logging(args.verbose)
    if args.command is None:
        try:
            args = parser.parse_args([*arguments, "app"])
        except SystemExit:
            parser.error(
                "no command given and the desktop app is not available here: pip install 'peft-notify[desktop]'"
            )
    handler = cast(Handler, args.handler)
    name = f"{parser.prog} {args.command}"
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `peft-notify doctor | head`: the reader left; not an error worth a line
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug or an unforeseen environment failure: one line, details with -vv
        log.debug("%s failed", name, exc_info=True)
        print(f"{name}: unexpected error: {type(exc).__name__}: {exc} (run with -vv for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
