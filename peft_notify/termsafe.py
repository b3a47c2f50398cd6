"""Make job-provided text safe to write to a terminal.

A job server controls job names, titles, messages and HTTP error bodies. Written raw to a
terminal, escape sequences in them act: OSC 52 writes the clipboard, OSC 0 sets the window
title, ``ESC [2J`` clears the screen, ``\\r`` and bidi overrides make a line read differently
than it is. Call :func:`printable` on every piece of such text before it reaches a terminal
(``watch``, ``history``, ``doctor``, ``run``, error messages); :func:`json_safe` on JSON text
printed to one. Pure and stdlib only; never raises.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["json_safe", "printable"]

# Whole escape sequences are dropped (they are formatting or attacks, never content):
# ECMA-48 OSC / DCS / SOS / PM / APC strings up to their terminator (BEL, ST = ESC \ or 0x9c;
# an unterminated one runs to the end), CSI sequences, and the other two-byte ESC sequences.
# Both the 7-bit (ESC x) and the 8-bit (C1) introducers are covered.
_SEQUENCE: Final = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # string commands
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|\x1b[ -/]*[0-~]"  # ESC Fe/Fs/Fp/nF (ESC c reset, ESC ( B ...)
)

# What is left that a terminal (or a reader) would not show as itself: C0 and C1 controls, DEL,
# Unicode bidi embeddings/overrides/isolates and marks (the "Trojan Source" characters), and
# the line/paragraph separators. They are shown as visible escapes instead.
_BIDI: Final = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSAFE_MULTILINE: Final = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_ONELINE: Final = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_IN_JSON: Final = re.compile(f"[\x7f-\x9f{_BIDI}]")  # json.dumps already escapes C0
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = False) -> str:
    """``text`` with terminal escape sequences removed and other controls shown as ``\\xNN``.

    ``multiline=True`` keeps newlines and tabs (``\\r\\n`` becomes ``\\n``); otherwise they are
    shown as ``\\n`` / ``\\t`` so the text stays on one line. Accepts any object (``str()``-ed).
    """
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # the common case: nothing to do
        return s
    s = _SEQUENCE.sub("", s)
    if multiline:
        s = s.replace("\r\n", "\n")
        return _UNSAFE_MULTILINE.sub(_visible, s)
    return _UNSAFE_ONELINE.sub(_visible, s)


def json_safe(json_text: str) -> str:
    """JSON text (from ``json.dumps``) with C1 controls, DEL and bidi characters ``\\u``-escaped.

    ``json.dumps(..., ensure_ascii=False)`` escapes C0 controls (ESC becomes ``\\u001b``) but
    writes C1 controls (0x9b is an 8-bit CSI) and bidi overrides raw; the result stays valid,
    equal JSON because those characters can only occur inside strings.
    """
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)
