"""``--notify URL`` / ``--notify-level LEVEL`` for ``run``, ``simulate`` and ``watch`` (issue 13).

:func:`add_arguments` adds both flags; :func:`specs` turns them (plus ``$PEFT_NOTIFY_CHANNELS``
and ``$PEFT_NOTIFY_LEVEL``) into channel specs, raising :class:`UsageError` (one line, exit 2)
for an unknown level. Imports only the stdlib at module level, like the sub-commands.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from peft_notify.cli.args import UsageError

if TYPE_CHECKING:
    from peft_notify.channels import ChannelSpec

__all__ = ["add_arguments", "specs"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--notify`` (repeatable) and ``--notify-level``."""
    parser.add_argument(
        "--notify",
        action="append",
        metavar="URL",
        help="also send notifications to this channel: an apprise URL such as ntfys://ntfy.sh/TOPIC, "
        "discord://ID/TOKEN, mailtos://..., json://HOST/PATH (repeatable; adds to $PEFT_NOTIFY_CHANNELS)",
    )
    parser.add_argument(
        "--notify-level",
        metavar="LEVEL",
        help="what the channels get: progress, completion (default), warning or error; errors always go out",
    )


def specs(args: argparse.Namespace | Any) -> list[ChannelSpec]:
    """The channels asked for. Raises :class:`UsageError` for an unknown level."""
    from peft_notify.channels import specs_from

    try:
        return specs_from(getattr(args, "notify", None), getattr(args, "notify_level", None))
    except ValueError as exc:
        raise UsageError(f"--notify-level: {exc}") from None
