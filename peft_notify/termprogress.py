"""Terminal tab/taskbar progress with the OSC 9;4 escape sequence (ConEmu's, adopted widely).

``ESC ] 9 ; 4 ; STATE ; PERCENT ESC \\`` with states 0 clear, 1 value, 2 error,
3 indeterminate, 4 paused. Windows Terminal ≥ 1.6, ConEmu, iTerm2 ≥ 3.6.6, Ghostty ≥ 1.2,
VTE ≥ 0.79 and Konsole show it; kitty discards it, and iTerm2 before 3.6.6 showed it as
notification spam (pytest turned it off outside Windows for that reason), so
:func:`supports_osc_progress` allows only terminals known to handle it, never when the
stream is not a TTY, and ``PEFT_NOTIFY_OSC=0/1`` or ``--osc/--no-osc`` override it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import IntEnum
from typing import TextIO

from peft_notify.ports import TaskbarState

__all__ = ["OscProgress", "OscState", "osc_sequence", "supports_osc_progress"]


class OscState(IntEnum):
    """OSC 9;4 progress states."""

    CLEAR = 0
    VALUE = 1
    ERROR = 2
    INDETERMINATE = 3
    PAUSED = 4


_FROM_TASKBAR = {
    TaskbarState.NONE: OscState.CLEAR,
    TaskbarState.NORMAL: OscState.VALUE,
    TaskbarState.INDETERMINATE: OscState.INDETERMINATE,
    TaskbarState.PAUSED: OscState.PAUSED,
    TaskbarState.ERROR: OscState.ERROR,
}


def osc_sequence(state: OscState, percent: int = 0) -> str:
    """The escape sequence for ``state`` at ``percent`` (clamped to 0..100)."""
    return f"\x1b]9;4;{int(state)};{max(0, min(100, int(percent)))}\x1b\\"


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def supports_osc_progress(env: Mapping[str, str] | None = None, *, isatty: bool = True) -> bool:
    """Whether the terminal described by ``env`` shows OSC 9;4 progress (False when not a TTY)."""
    env = os.environ if env is None else env
    forced = env.get("PEFT_NOTIFY_OSC")
    if not isatty:
        return False
    if forced in ("0", "1"):
        return forced == "1"
    if env.get("TMUX") or env.get("TERM", "").startswith(("screen", "tmux")):
        return False  # multiplexers swallow or mangle it
    if env.get("KITTY_WINDOW_ID") or env.get("TERM") == "xterm-kitty":
        return False
    if env.get("WT_SESSION") or env.get("ConEmuANSI") == "ON":
        return True
    program = env.get("TERM_PROGRAM", "")
    version = _version(env.get("TERM_PROGRAM_VERSION", ""))
    if program == "iTerm.app":
        return version >= (3, 6, 6)
    if program == "ghostty":
        return version >= (1, 2) or not version
    vte = env.get("VTE_VERSION", "")
    if vte.isdigit():
        return int(vte) >= 7900
    return bool(env.get("KONSOLE_VERSION"))


class OscProgress:
    """Writes OSC 9;4 updates to ``stream`` when enabled; repeats are skipped; clears on close."""

    def __init__(self, stream: TextIO, enabled: bool | None = None) -> None:
        self.stream = stream
        if enabled is None:
            try:
                tty = stream.isatty()
            except (AttributeError, ValueError):
                tty = False
            enabled = supports_osc_progress(isatty=tty)
        self.enabled = enabled
        self._last: tuple[OscState, int] | None = None

    def set(self, state: OscState, fraction: float | None = None) -> None:
        """Show ``state`` at ``fraction`` (0..1); no output when disabled or unchanged."""
        percent = 0 if fraction is None else round(fraction * 100)
        if not self.enabled or self._last == (state, percent):
            return
        self._last = (state, percent)
        self.stream.write(osc_sequence(state, percent))
        self.stream.flush()

    def set_taskbar(self, state: TaskbarState, value: float) -> None:
        """Mirror a taskbar update (engine ``SetTaskbar``)."""
        self.set(_FROM_TASKBAR[state], value)

    def clear(self) -> None:
        if self._last is not None and self._last[0] is not OscState.CLEAR:
            self.set(OscState.CLEAR)
