"""``peft-notify app [URL ...] [--token T] [--minimized] [--local/--no-local]``: the desktop app."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from peft_notify.cli import natsarg
from peft_notify.cli.args import client_token


def register(subparsers: Any) -> None:
    """Add the ``app`` sub-command (the default when no command is given)."""
    p = subparsers.add_parser(
        "app",
        help="start the desktop app (the default)",
        description="Start the desktop app and follow the given job URLs, saved subscriptions and local jobs. "
        "If the app is already running, the URLs are passed to it.",
    )
    p.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="job URL, e.g. ws://127.0.0.1:8765/ws/notifications/JOB, or nats://HOST:4222 (every job published there)",
    )
    p.add_argument(
        "--token",
        help="bearer token for the URLs given here (default $PEFT_NOTIFY_TOKEN; others can read a command line)",
    )
    p.add_argument("--minimized", action="store_true", help="start in the tray without showing the window")
    local = p.add_mutually_exclusive_group()
    local.add_argument(
        "--local",
        dest="local",
        action="store_true",
        default=None,
        help="follow jobs started on this machine (this run only)",
    )
    local.add_argument(
        "--no-local", dest="local", action="store_false", help="do not follow local jobs (this run only)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: start the app; one clear line (exit 2) for a malformed URL or when Qt or a display is missing.

    URLs are checked before anything starts or is saved: a typo is refused, never kept.
    """
    urls = tuple(natsarg.checked_url(url) for url in args.urls)
    token = client_token("app", args.token, urls)
    if not display_available():
        print(
            "peft-notify app: no display found (DISPLAY/WAYLAND_DISPLAY unset), so the desktop app cannot start; "
            "use 'peft-notify watch URL' in a terminal instead",
            file=sys.stderr,
        )
        return 2
    try:
        from peft_notify.app.main import AppOptions, run_app
    except ImportError as exc:
        print(
            f"peft-notify app: the desktop app is not installed here ({exc}); "
            "install it with: pip install 'peft-notify[desktop]'",
            file=sys.stderr,
        )
        return 2
    return run_app(AppOptions(urls=urls, token=token, minimized=args.minimized, local=args.local))


def display_available() -> bool:
    """Whether a GUI can open here (always on Windows/macOS; X11/Wayland or an explicit Qt platform on Linux)."""
    import os

    if sys.platform in ("win32", "darwin"):
        return True
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal", "vnc")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
