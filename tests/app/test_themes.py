"""Themes: the window follows the system's light / dark / high-contrast scheme, live; colours stay readable."""

from __future__ import annotations

import re
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from pytestqt.qtbot import QtBot

from peft_notify.app import style
from peft_notify.app.jobs_model import Link
from peft_notify.app.style import THEMES, ThemeWatcher, style_sheet, tone_color
from tests.app.test_window import add_row, make_window


def luminance(color: QColor) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture
def watcher(qapp: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv(style.THEME_ENV, raising=False)
    w = ThemeWatcher(qapp)
    yield w
    w.apply("light")


def test_the_style_sheet_takes_its_colours_from_the_palette() -> None:
    for theme in THEMES.values():
        sheet = style_sheet(theme)
        literals = set(re.findall(r"#[0-9a-fA-F]{3,8}\b", sheet))
        assert literals <= set(theme.tones.values()), literals - set(theme.tones.values())
        assert "palette(base)" in sheet and "palette(placeholder-text)" in sheet


@pytest.mark.parametrize("name", list(THEMES))
def test_every_tone_is_readable_on_its_theme(watcher: Any, qapp: Any, name: str) -> None:
    watcher.apply(name)
    palette = qapp.palette()
    for tone in ("ok", "done", "warn", "error", "idle"):
        for role in (QPalette.ColorRole.Base, QPalette.ColorRole.Window):
            ratio = contrast(QColor(tone_color(tone)), palette.color(role))
            assert ratio >= 4.5, f"{name}: {tone} on {role.name} is {ratio:.2f}:1"
    text = contrast(palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base))
    placeholder = contrast(palette.color(QPalette.ColorRole.PlaceholderText), palette.color(QPalette.ColorRole.Base))
    assert text >= (7 if name == "high-contrast" else 4.5)
    assert placeholder >= 4.5


def test_the_window_follows_the_system_scheme_live(
    qtbot: QtBot, qapp: Any, watcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform here (offscreen or plain X11, no settings portal) reports ``Unknown`` and cannot be
    switched, so the scheme the hints report is replaced; the signal and everything after it are real."""
    window = make_window()
    qtbot.addWidget(window)
    watcher.changed.connect(window.apply_theme)
    assert window.controller is not None
    add_row(window.controller, name="llama", state="failed", fraction=0.4, link=Link.CONNECTED)
    card = next(iter(window.cards.values()))
    assert tone_color("error") in card.state.styleSheet()
    assert not style.is_dark(qapp.palette())

    monkeypatch.setattr(ThemeWatcher, "system_scheme", lambda self: Qt.ColorScheme.Dark)
    with qtbot.waitSignal(watcher.changed):
        watcher.hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert watcher.theme.name == "dark"
    assert style.is_dark(qapp.palette())
    assert THEMES["dark"].tones["error"] in card.state.styleSheet()  # the card was restyled at once
    assert THEMES["dark"].tones["warn"] in window.styleSheet()

    monkeypatch.setattr(ThemeWatcher, "system_contrast", lambda self: Qt.ContrastPreference.HighContrast)
    with qtbot.waitSignal(watcher.changed):
        watcher.a11y.contrastPreferenceChanged.emit(Qt.ContrastPreference.HighContrast)
    assert watcher.theme.name == "high-contrast"
    assert qapp.palette().color(QPalette.ColorRole.Base) == QColor("#000000")
    assert "2px solid palette(mid)" in window.styleSheet()
    assert "QLineEdit" in qapp.styleSheet()  # field outlines for every dialog too (Fusion's vanish on black)

    monkeypatch.setattr(ThemeWatcher, "system_contrast", lambda self: Qt.ContrastPreference.NoPreference)
    monkeypatch.setattr(ThemeWatcher, "system_scheme", lambda self: Qt.ColorScheme.Light)
    watcher.hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert watcher.theme.name == "light"
    assert not style.is_dark(qapp.palette())
    assert THEMES["light"].tones["error"] in card.state.styleSheet()
    assert qapp.styleSheet() == ""


def test_the_environment_overrides_the_system(qapp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(style.THEME_ENV, "dark")
    w = ThemeWatcher(qapp)
    try:
        assert w.theme.name == "dark"
        assert style.is_dark(QGuiApplication.palette())
    finally:
        w.apply("light")


@pytest.mark.parametrize("name", list(THEMES))
def test_the_job_list_scroll_bar_is_styled_whole(qtbot: QtBot, watcher: Any, name: str) -> None:
    """Issue 16: the list's transparent background left its scroll bar half-styled, a black groove
    around a pale handle (the dark part seemed to move against the content). No black groove now,
    and the handle moves with the content."""
    watcher.apply(name)
    window = make_window()
    qtbot.addWidget(window)
    window.apply_theme()
    assert window.controller is not None
    for i in range(12):
        add_row(window.controller, f"ws://127.0.0.1:{9000 + i}/ws/notifications/j{i}", job_id=f"j{i}", name=f"j{i}")
    window.resize(800, 400)
    window.show()
    qtbot.waitExposed(window)
    bar = window.job_list.verticalScrollBar()
    assert bar.maximum() > 0

    def column(value: int) -> list[int]:
        """The lightness down the middle of the scroll bar, as the window paints it."""
        bar.setValue(value)
        image = window.grab().toImage()
        origin = bar.mapTo(window, QPoint(0, 0))
        x = origin.x() + bar.width() // 2
        return [QColor(image.pixel(x, y)).lightness() for y in range(origin.y(), origin.y() + bar.height())]

    top, bottom = column(0), column(bar.maximum())
    window_lightness = window.palette().color(QPalette.ColorRole.Window).lightness()
    for values in (top, bottom):
        groove = max(set(values), key=values.count)
        assert abs(groove - window_lightness) <= 15, (
            f"groove {groove}, window {window_lightness}: not the window's colour"
        )

    def handle_centre(values: list[int]) -> float:
        groove = max(set(values), key=values.count)
        ys = [y for y, v in enumerate(values) if abs(v - groove) > 20]
        return sum(ys) / len(ys)

    # The handle is near the top at the top of the list and near the bottom at its end.
    assert handle_centre(top) < len(top) / 2 < handle_centre(bottom)
