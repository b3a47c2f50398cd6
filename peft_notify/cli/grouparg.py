"""``--group NAME [--group-size N] [--group-param KEY=VALUE ...]`` for ``run`` and ``simulate``.

Call :func:`add_arguments` when registering the sub-command and :func:`group_from_args` in
its handler; without ``--group`` the environment's ``PEFT_NOTIFY_GROUP`` applies
(docs/sweeps.md). A bad value is a :class:`~peft_notify.cli.args.UsageError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from peft_notify.cli.args import UsageError, count

if TYPE_CHECKING:
    from peft_notify.wire import Group

__all__ = ["add_arguments", "group_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the group options to a sub-command's parser."""
    g = p.add_argument_group("sweeps (docs/sweeps.md)")
    g.add_argument("--group", metavar="NAME", help="this job is one trial of the sweep NAME (env PEFT_NOTIFY_GROUP)")
    g.add_argument("--group-size", type=count, metavar="N", help="the sweep has N jobs (env PEFT_NOTIFY_GROUP_SIZE)")
    g.add_argument(
        "--group-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="this trial's config, shown with the best result (repeatable)",
    )
    g.add_argument("--group-metric", metavar="NAME", help="what 'best' means: a metric name (default eval_loss/loss)")


def group_from_args(args: argparse.Namespace) -> Group | None:
    """The job's group from the options, else from the environment; ``None`` when neither says."""
    from peft_notify import wire
    from peft_notify.emitter.grouping import resolve_group

    name = getattr(args, "group", None)
    extras: dict[str, Any] = {}
    if args.group_param:
        extras["params"] = dict(_param(text) for text in args.group_param)
    if args.group_metric:
        extras["metric"] = args.group_metric
    try:
        if name is None:
            group = resolve_group(expected_jobs=args.group_size)
            if group is None:
                if extras:
                    raise UsageError("--group-param/--group-metric need --group NAME (or PEFT_NOTIFY_GROUP)")
                return None
            name, size = group.name, group.expected_jobs
        else:
            size = args.group_size
        # resolve_group redacts what could carry a secret (a token in a name or a param).
        return resolve_group(wire.group_named(name, expected_jobs=size, **extras))
    except wire.ProtocolError as exc:
        raise UsageError(f"--group: {exc}") from None


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--group-param wants KEY=VALUE, got {text[:40]!r}")
    return key.strip(), _value(value.strip())


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        if isinstance(number, float) and not math.isfinite(number):
            return text
        return number
    return text
