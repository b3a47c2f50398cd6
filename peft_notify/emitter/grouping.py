"""Which group (sweep) a job belongs to: ``job(group=...)``, ``--group NAME``, or ``PEFT_NOTIFY_GROUP``.

Call :func:`resolve_group` once when a job starts. An explicit group wins over the
environment, so a sweep launcher that sets ``PEFT_NOTIFY_GROUP=lr-sweep`` (and optionally
``PEFT_NOTIFY_GROUP_SIZE=40``) groups every job it starts without any code change
(docs/sweeps.md). A bad value from the environment is said in one line on stderr and the
job runs ungrouped; a bad explicit value raises ``ValueError``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from peft_notify import wire
from peft_notify.redact import REDACTED, redact

__all__ = ["ENV_GROUP", "ENV_GROUP_SIZE", "GroupSpec", "redacted_params", "resolve_group"]

log = logging.getLogger(__name__)

ENV_GROUP: Final = "PEFT_NOTIFY_GROUP"
ENV_GROUP_SIZE: Final = "PEFT_NOTIFY_GROUP_SIZE"

#: What callers may pass: a name, a full group, or its fields as a mapping.
GroupSpec: TypeAlias = str | wire.Group | Mapping[str, Any]


def resolve_group(
    group: GroupSpec | None = None,
    *,
    expected_jobs: int | None = None,
    env: Mapping[str, str] | None = None,
) -> wire.Group | None:
    """The job's group: ``group`` if given, else the environment's, else ``None``.

    Raises ``ValueError`` (a :class:`~peft_notify.wire.ProtocolError`) for a bad ``group``.
    """
    if group is not None:
        return _scrubbed(_explicit(group, expected_jobs))
    env = os.environ if env is None else env
    name = env.get(ENV_GROUP, "").strip()
    if not name:
        return None
    try:
        size_text = env.get(ENV_GROUP_SIZE, "").strip()
        if size_text and not (size_text.isascii() and size_text.isdigit() and len(size_text) <= 7):
            raise wire.ProtocolError(f"must be a whole number of jobs, got {size_text[:20]!r}", ENV_GROUP_SIZE)
        size = int(size_text) if size_text else expected_jobs
        return _scrubbed(wire.group_named(name, expected_jobs=size))
    except wire.ProtocolError as exc:
        print(f"peft-notify: ignoring {ENV_GROUP}: {exc}", file=sys.stderr, flush=True)
        return None


def redacted_params(params: Mapping[str, wire.ParamValue]) -> dict[str, wire.ParamValue]:
    """``params`` with every value that looks like a secret (``hf_token=…``, an ``sk-…`` key) replaced.

    A trial's config often carries credentials (an API key for a tracker, a hub token); the
    group's params reach every desktop and its history, so they pass the same redaction as
    every other text that leaves the job.
    """
    out: dict[str, wire.ParamValue] = {}
    for key, value in params.items():
        text = f"{key}={value}"
        out[key] = REDACTED if isinstance(value, str) and redact(text) != text else value
        if redact(key) != key:
            out[key] = REDACTED
    return out


def _scrubbed(group: wire.Group) -> wire.Group:
    """``group`` with its name and params redacted (see :func:`redacted_params`), and an id that
    would carry a secret (an id made from a name with a token in it) replaced by a hash of it
    (the same in every process of the sweep)."""
    name, params = redact(group.name), redacted_params(group.params)
    group_id = group.id
    if redact(group_id) != group_id or name != group.name:
        group_id = "g-" + hashlib.sha256(group_id.encode()).hexdigest()[:16]
    if (group_id, name, params) == (group.id, group.name, dict(group.params)):
        return group
    return wire.group_from_mapping({**_group_dict(group), "id": group_id, "name": name, "params": params})


def _explicit(group: GroupSpec, expected_jobs: int | None) -> wire.Group:
    if isinstance(group, wire.Group):
        # Re-validated: a Group built in code passes the same checks as one from the wire.
        checked = wire.group_from_mapping(_group_dict(group))
    elif isinstance(group, str):
        checked = wire.group_named(group)
    else:
        values = dict(group)
        if "id" not in values and "name" in values:
            size = values.pop("expected_jobs", expected_jobs)
            return wire.group_named(str(values.pop("name")), expected_jobs=size, **values)
        checked = wire.group_from_mapping(values)
    if expected_jobs is not None and checked.expected_jobs is None:
        return wire.group_from_mapping({**_group_dict(checked), "expected_jobs": expected_jobs})
    return checked


def _group_dict(group: wire.Group) -> dict[str, Any]:
    values: dict[str, Any] = {"id": group.id, "name": group.name, "mode": wire.GroupMode(group.mode).value}
    if group.expected_jobs is not None:
        values["expected_jobs"] = group.expected_jobs
    if group.metric is not None:
        values["metric"] = group.metric
    if group.params:
        values["params"] = dict(group.params)
    if group.role is not wire.GroupRole.TRIAL:
        values["role"] = wire.GroupRole(group.role).value
    return values
