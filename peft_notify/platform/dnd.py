"""Do-Not-Disturb probe building blocks: fail-open base, cache, composite, null.

Every probe answers :class:`~peft_notify.ports.DndState` and never raises: any
error or a read slower than its timeout is ``UNKNOWN`` (which the engine treats
as off, so a broken probe never silences an error). The first failure of a probe
is logged as a warning, later ones at debug level.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from peft_notify.ports import DndProbe, DndState

__all__ = [
    "BaseDndProbe",
    "CachedDndProbe",
    "CompositeDndProbe",
    "NullDndProbe",
    "ProbeError",
    "ReprobingDndProbe",
    "parse_bool_word",
]

log = logging.getLogger(__name__)


class ProbeError(Exception):
    """A probe could not read or understand the OS state (becomes ``UNKNOWN``)."""


def parse_bool_word(text: str, source: str = "output") -> bool:
    """``"true"``/``"false"`` (also ``1``/``0``, ``yes``/``no``) as printed by gsettings, dunstctl, xfconf-query.

    Raises :class:`ProbeError` for anything else.
    """
    word = text.strip().lower()
    if word in {"true", "1", "yes", "on"}:
        return True
    if word in {"false", "0", "no", "off"}:
        return False
    raise ProbeError(f"unexpected {source}: {text.strip()[:80]!r}")


class BaseDndProbe:
    """Fail-open wrapper: subclasses implement :meth:`_read`, which may raise anything."""

    name = "base"

    def __init__(self, timeout: float = 1.0) -> None:
        self.timeout = timeout
        self.last_error: str | None = None
        self._warned = False

    async def _read(self) -> DndState:
        raise NotImplementedError

    async def state(self) -> DndState:
        """The current state; ``UNKNOWN`` on any failure or after ``timeout`` seconds."""
        try:
            result = await asyncio.wait_for(self._read(), self.timeout)
        except TimeoutError:
            return self._failed(f"no answer within {self.timeout:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed(str(exc) or type(exc).__name__)
        self.last_error = None
        return result

    def _failed(self, reason: str) -> DndState:
        self.last_error = reason
        if not self._warned:
            self._warned = True
            log.warning("DND probe %s failed (treating DND as unknown/off): %s", self.name, reason)
        else:
            log.debug("DND probe %s failed: %s", self.name, reason)
        return DndState.UNKNOWN


class NullDndProbe:
    """Always ``UNKNOWN``: the last candidate, for systems with no readable DND state."""

    name = "none"

    async def state(self) -> DndState:
        return DndState.UNKNOWN


class CompositeDndProbe:
    """Asks several probes.

    ``mode="first"``: the first definite answer wins (Linux: the running
    notification server's own probe comes first). ``mode="any"``: ``ON`` if any
    probe says on, else ``OFF`` if any says off, else ``UNKNOWN`` (Windows and
    macOS, where each probe sees a different switch).
    """

    def __init__(self, probes: Sequence[DndProbe], mode: Literal["first", "any"] = "first") -> None:
        self.probes = tuple(probes)
        self.mode = mode
        self.name = "+".join(p.name for p in self.probes) or "none"
        self.last_source: str | None = None

    async def state(self) -> DndState:
        seen_off = None
        for probe in self.probes:
            try:
                answer = await probe.state()
            except Exception:  # a third-party probe broke its promise; stay fail-open
                log.warning("DND probe %s raised", probe.name, exc_info=True)
                continue
            if answer is DndState.ON or (answer is DndState.OFF and self.mode == "first"):
                self.last_source = probe.name
                return answer
            if answer is DndState.OFF and seen_off is None:
                seen_off = probe.name
        self.last_source = seen_off
        return DndState.OFF if seen_off is not None else DndState.UNKNOWN


class ReprobingDndProbe:
    """A probe that could not answer at start (``UNKNOWN``): asked again every ``interval`` seconds.

    Dropping such a probe for the whole run would leave DND unread forever after a fix the
    user makes later (granting macOS Full Disk Access, a notification daemon that starts after
    the app). Between retries it answers ``UNKNOWN`` (= off) without asking; once it answers it
    is asked on every poll like any other probe.
    """

    def __init__(self, probe: DndProbe, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.probe = probe
        self.interval = interval
        self.name = probe.name
        self.answered = False
        self._clock = clock
        self._asked_at = clock()  # it was just asked (and could not answer) by the selection

    @property
    def last_error(self) -> str | None:
        return getattr(self.probe, "last_error", None)

    async def state(self) -> DndState:
        if not self.answered:
            now = self._clock()
            if now - self._asked_at < self.interval:
                return DndState.UNKNOWN
            self._asked_at = now
        answer = await self.probe.state()
        if answer is not DndState.UNKNOWN and not self.answered:
            self.answered = True
            log.info("DND probe %s answers now (%s)", self.name, answer.value)
        return answer


class CachedDndProbe:
    """Caches another probe's answer for ``ttl`` seconds; concurrent callers share one read."""

    def __init__(self, probe: DndProbe, ttl: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.probe = probe
        self.ttl = ttl
        self.name = probe.name
        self._clock = clock
        self._value: DndState | None = None
        self._at = 0.0
        self._pending: asyncio.Future[DndState] | None = None

    def invalidate(self) -> None:
        """Forget the cached answer (e.g. after the user toggled DND from our tray)."""
        self._value = None

    async def state(self) -> DndState:
        now = self._clock()
        if self._value is not None and now - self._at < self.ttl:
            return self._value
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        pending = self._pending
        return await asyncio.shield(pending)

    async def _refresh(self) -> DndState:
        try:
            value = await self.probe.state()
        except Exception:
            log.warning("DND probe %s raised", self.probe.name, exc_info=True)
            value = DndState.UNKNOWN
        finally:
            self._pending = None
        self._value = value
        self._at = self._clock()
        return value
