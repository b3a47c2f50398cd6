"""The desktop-entry hint is added in whichever hints flavour desktop-notifier chose."""

from __future__ import annotations

from dbus_fast import Variant

from peft_notify.platform.notifier_hints import add_desktop_entry_hint, with_desktop_entry


def test_variant_hints_get_a_variant() -> None:
    hints = {"urgency": Variant("y", 1)}
    out = with_desktop_entry(hints, "org.example.App")
    assert out["desktop-entry"] == Variant("s", "org.example.App")
    assert out["urgency"] == Variant("y", 1)
    assert "desktop-entry" not in hints  # the caller's dict is not changed


def test_string_hints_get_a_string_and_empty_hints_stay_empty() -> None:
    out = with_desktop_entry({"urgency": "1"}, "org.example.App")
    assert out == {"urgency": "1", "desktop-entry": "org.example.App"}
    assert with_desktop_entry({}, "org.example.App") == {}  # unsupported server: desktop-notifier sends no hints


def test_a_non_dbus_backend_is_left_alone() -> None:
    class Other:
        _backend = object()

    assert add_desktop_entry_hint(Other(), "org.example.App") is False
