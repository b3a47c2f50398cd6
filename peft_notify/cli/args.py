"""Argument types shared by the sub-commands, and the one way a user-input error is reported.

Each type function is given to ``add_argument(type=...)``: a bad value becomes argparse's
one-line error and exit status 2 (see :class:`~peft_notify.cli.Parser`). Handlers raise
:class:`UsageError` for what argparse cannot check (a URL the server side must accept, an
option that contradicts another); ``peft_notify.cli.main`` prints it as one line, exit 2.
Stays stdlib-only and cheap: registering the sub-commands imports it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Sequence

__all__ = [
    "TOKEN_ENV",
    "UsageError",
    "client_token",
    "count",
    "index",
    "job_id",
    "job_url",
    "number",
    "port",
    "seconds",
    "url_with_token",
    "warn_token_in_argv",
]


class UsageError(Exception):
    """A user-input error: ``peft-notify CMD: <message>`` on stderr, exit status 2."""


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0-65535)")
    return value


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
    return value


def count(text: str) -> int:
    """A whole number of at least 1 (steps, jobs, entries)."""
    return _whole(text, 1)


def index(text: str) -> int:
    """A whole number of at least 0 (a sequence number, a step)."""
    return _whole(text, 0)


def number(text: str) -> float:
    """A number >= 0 (a fraction or a step, a rate); no NaN, no infinity, no negative values."""
    value = seconds(text)
    if math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def seconds(text: str) -> float:
    """A duration in seconds, >= 0 (``inf`` allowed: forever); no NaN, no negative values."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text!r}")
    return value


def job_id(text: str) -> str:
    """A job id that can appear in a URL path (protocol rule: 1-128 of ``A-Z a-z 0-9 . _ : -``)."""
    from peft_notify.wire import is_valid_job_id  # on use only: building the parser stays cheap

    if not is_valid_job_id(text):
        raise argparse.ArgumentTypeError(f"invalid job id {text!r}: use 1-128 of A-Z a-z 0-9 . _ : -")
    return text


def job_url(text: str) -> str:
    """A job URL as given (``ws://``, ``wss://``, ``http://``, ``https://``); :class:`UsageError` when malformed.

    Checked by the desktop client's own rule (``desktop.client.normalize_url``), so what
    passes here connects; call from a handler, where importing it is allowed. The message
    never repeats a token or password the URL carried.
    """
    from peft_notify.desktop.client import normalize_url

    try:
        normalize_url(text)
    except ValueError as exc:
        message = str(exc)
        for form in (text, text.strip()):
            message = message.replace(repr(form), repr(_without_secrets(form)))
        # Whatever form of the URL the message quotes: no user:password@, no token value.
        message = re.sub(r"//[^/@\s']*@", "//", message)
        message = re.sub(r"(token=)[^&#\s']*", r"\1…", message)
        raise UsageError(message) from None
    return text


def _without_secrets(url: str) -> str:
    """``url`` without its query, fragment and ``user:password@``: what may be shown back to the user."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = head.partition("//")
    if not sep:
        return head
    netloc, slash, path = rest.partition("/")
    return f"{scheme}//{netloc.rpartition('@')[2]}{slash}{path}"


def url_with_token(url: str, token: str | None) -> str:
    """The URL to paste into the app: with ``?token=`` unless it already carries one."""
    if not token or "token=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}token={token}"


TOKEN_ENV = "PEFT_NOTIFY_TOKEN"


def warn_token_in_argv(prog: str) -> None:
    """One line: a token on the command line is readable by every local user (``ps``, ``/proc/PID/cmdline``)."""
    print(
        f"peft-notify {prog}: warning: a token on the command line is visible to other users of this machine "
        f"(ps); set ${TOKEN_ENV} instead",
        file=sys.stderr,
        flush=True,
    )


def client_token(prog: str, given: str | None, urls: Sequence[str]) -> str | None:
    """The token for the URLs a client follows: ``--token``, else ``$PEFT_NOTIFY_TOKEN`` (issue 10 item 1).

    Warns (one line) when a token is on the command line, as ``--token`` or ``?token=`` in a URL.
    """
    if given is not None or any(re.search(r"[?&]token=", url) for url in urls):
        warn_token_in_argv(prog)
    return given if given is not None else (os.environ.get(TOKEN_ENV) or None)
