"""Async subprocess runs with a hard timeout, for DND probes and ``doctor``.

Call :func:`run_command`; it raises :class:`CommandError` when the program is
missing, fails to start, or outlives its timeout (the process is killed). Probes
take a :data:`CommandRunner` so tests can replay captured outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CommandError", "CommandResult", "CommandRunner", "run_command"]

log = logging.getLogger(__name__)


class CommandError(Exception):
    """A command could not run to completion (missing, crashed on start, or timed out)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a finished command printed and returned."""

    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


CommandRunner = Callable[[Sequence[str], float], Awaitable[CommandResult]]


async def run_command(
    argv: Sequence[str], timeout: float = 1.0, *, env: Mapping[str, str] | None = None
) -> CommandResult:
    """Run ``argv`` without a shell and collect its output; never blocks the loop.

    Raises :class:`CommandError` if it cannot start or runs longer than ``timeout`` seconds.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=None if env is None else {**os.environ, **env},
        )
    except OSError as exc:  # FileNotFoundError, PermissionError
        raise CommandError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()
        raise CommandError(f"{argv[0]} did not answer within {timeout:g} s") from None
    return CommandResult(
        returncode=proc.returncode if proc.returncode is not None else -1,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
    )
