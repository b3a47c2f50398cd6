"""printable()/json_safe(): job-provided text can never drive the terminal."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peft_notify.termsafe import json_safe, printable

ATTACKS = [
    "\x1b]52;c;ZWNobyBwd25lZA==\x07",  # OSC 52: write the clipboard
    "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\",  # ... ST-terminated
    "\x1b]0;you have been pwned\x07",  # OSC 0: window title
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x1b[2J\x1b[H",  # clear the screen, home the cursor
    "\x1b[31mred\x1b[0m",
    "\x9b2J",  # 8-bit CSI
    "\x9d0;title\x9c",  # 8-bit OSC
    "\x1bPq#0;2;0;0;0\x1b\\",  # DCS (sixel)
    "\x1bc",  # full reset
    "\x1b]52;c;unterminated",
    "fake\rCRITICAL overwritten",
    "back\x08\x08space",
    "\u202eevil\u202c",  # bidi override
    "lone escape \x1b",
]
_DANGEROUS = set("\x1b\x07\x08\r\x9b\x9c\x9d\u202e\u202c\u2066\u2069")


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_lose_their_control_characters(attack: str) -> None:
    for multiline in (False, True):
        out = printable(f"job {attack} name", multiline=multiline)
        assert not (_DANGEROUS & set(out)), repr(out)
        assert out.isprintable()


def test_sequences_are_dropped_and_text_kept() -> None:
    assert printable("\x1b[31mred\x1b[0m loss") == "red loss"
    assert printable("\x1b]0;title\x07after") == "after"
    assert printable("a\x07b") == "a\\x07b"
    assert printable("\u202eabc") == "\\u202eabc"


def test_newlines() -> None:
    assert printable("a\nb\tc") == "a\\nb\\tc"
    assert printable("a\r\nb\tc", multiline=True) == "a\nb\tc"
    assert printable("a\rb", multiline=True) == "a\\rb"


@pytest.mark.parametrize("text", ["loss=0.5 lr=2e-4 step 100/1000", "llama-7b 🎉 Größe 50 %", "", "日本語"])
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert printable(text) == text


_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def _unsafe(ch: str, allowed: str = "") -> bool:
    code = ord(ch)
    return ch not in allowed and (code < 0x20 or 0x7F <= code <= 0x9F or ch in _BIDI)


@given(st.lists(st.text() | st.sampled_from(ATTACKS)).map("".join))
def test_output_never_holds_a_control_character(text: str) -> None:
    assert not any(_unsafe(ch) for ch in printable(text))
    assert not any(_unsafe(ch, "\n\t") for ch in printable(text, multiline=True))


@given(st.text())
def test_json_safe_is_equal_json_without_raw_controls(text: str) -> None:
    dumped = json_safe(json.dumps({"title": text}, ensure_ascii=False))
    assert json.loads(dumped) == {"title": text}
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u202e\u2066" for ch in dumped)
