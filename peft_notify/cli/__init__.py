"""``peft-notify`` command line: a thin dispatcher over sub-command modules.

Each sub-command lives in ``peft_notify/cli/<name>.py`` and exposes
``register(subparsers) -> None``, which adds its parser and sets ``handler``
(``Callable[[argparse.Namespace], int]``) as a default. ``register`` must stay
cheap: heavy imports (Qt, torch, websockets) happen inside the handler, so
``peft-notify --version`` and ``--help`` are instant on a headless server.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import cast

from peft_notify import __version__

# Order here is the order in --help.
SUBCOMMANDS: tuple[str, ...] = ("app", "demo", "simulate", "watch", "run", "doctor", "history")

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every sub-command that imports on this install."""
    parser = argparse.ArgumentParser(
        prog="peft-notify",
        description="Desktop notifications and taskbar progress for training jobs.",
        epilog="Run 'peft-notify COMMAND --help' for a command's options. With no command, starts the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"peft-notify {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"peft_notify.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"peft_notify.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peft-notify`` console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.command is None:
        try:
            args = parser.parse_args([*(sys.argv[1:] if argv is None else argv), "app"])
        except SystemExit:
            parser.error(
                "no command given and the desktop app is not available here: pip install 'peft-notify[desktop]'"
            )
    handler = cast(Handler, args.handler)
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
