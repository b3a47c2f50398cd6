"""The app's look: follows the system's light / dark / high-contrast scheme, live.

Neutral colours come from the palette (``palette(base)``, ``palette(mid)`` … in :func:`style_sheet`);
the only colours named here are the four state tones (running, completed, warning, error), one
table per scheme so each keeps a readable contrast on that scheme's background (tested in
``tests/app/test_themes.py``). Sizes are in points so 200 % scaling stays crisp.

Create one :class:`ThemeWatcher` per app (:class:`~peft_notify.app.shell.AppShell` does): it
reads ``QStyleHints.colorScheme()`` and ``QStyleHints.accessibility().contrastPreference()``,
applies the matching palette, and emits ``changed`` whenever the system switches; widgets then
ask :func:`tone_color` again. ``PEFT_NOTIFY_THEME=light|dark|high-contrast`` overrides the
system (for desktops that do not tell Qt, and for screenshots).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

__all__ = [
    "STYLE_SHEET",
    "THEMES",
    "Theme",
    "ThemeWatcher",
    "current_theme",
    "style_sheet",
    "tone_color",
]

THEME_ENV: Final = "PEFT_NOTIFY_THEME"


@dataclass(frozen=True)
class Theme:
    """One scheme: its name and the colour of each state tone (``ok done warn error idle``)."""

    name: str
    tones: dict[str, str]
    border: int = 1  # px of a card's outline (thicker in high contrast)


THEMES: Final = {
    # Tailwind's 700/800 shades: every tone reaches 4.5:1 on the light base and window.
    "light": Theme(
        "light", {"ok": "#1d4ed8", "done": "#166534", "warn": "#92400e", "error": "#b91c1c", "idle": "#4b5563"}
    ),
    # Their 300/400 shades on a dark base.
    "dark": Theme(
        "dark", {"ok": "#93c5fd", "done": "#86efac", "warn": "#fcd34d", "error": "#fca5a5", "idle": "#d1d5db"}
    ),
    # Pure, saturated colours on black, as Windows' and GNOME's high-contrast themes use.
    "high-contrast": Theme(
        "high-contrast",
        {"ok": "#00ffff", "done": "#3ff23f", "warn": "#ffff00", "error": "#ff6b6b", "idle": "#ffffff"},
        border=2,
    ),
}

_current = THEMES["light"]


def current_theme() -> Theme:
    """The theme the :class:`ThemeWatcher` applied last (light before one exists)."""
    return _current


def tone_color(tone: str) -> str:
    """The current theme's colour of a state tone (``idle`` for an unknown one)."""
    return _current.tones.get(tone, _current.tones["idle"])


def style_sheet(theme: Theme | None = None) -> str:
    """The window's style sheet for ``theme`` (default: the current one): palette roles, plus the warn tone."""
    theme = theme or _current
    warn = theme.tones["warn"]
    return f"""
QMainWindow#MainWindow, QWidget {{ font-size: 10pt; }}
QListWidget#JobList {{ border: none; background: transparent; outline: none; }}
QListWidget#JobList::item {{ border: none; padding: 0; margin: 0; }}
QListWidget#JobList::item:selected {{ background: transparent; }}
/* The list's transparent background left its scroll bar half-styled: a black groove around a pale
   handle, so the dark part seemed to move against the content. Styled whole, from the palette. */
QListWidget#JobList QScrollBar:vertical {{ background: transparent; width: 12px; margin: 0; border: none; }}
QListWidget#JobList QScrollBar::handle:vertical {{
    background: palette(mid); min-height: 32px; border-radius: 4px; margin: 2px;
}}
QListWidget#JobList QScrollBar::handle:vertical:hover {{ background: palette(dark); }}
QListWidget#JobList QScrollBar::add-line:vertical, QListWidget#JobList QScrollBar::sub-line:vertical {{
    height: 0; border: none; background: none;
}}
QListWidget#JobList QScrollBar::add-page:vertical, QListWidget#JobList QScrollBar::sub-page:vertical {{
    background: none;
}}
#JobCard {{
    background: palette(base);
    border: {theme.border}px solid palette(mid);
    border-radius: 6px;
}}
QLabel#JobName {{ font-size: 11pt; font-weight: 600; }}
QLabel#Percent {{ font-weight: 600; }}
QLabel#Muted {{ color: palette(placeholder-text); }}
QLabel#DetailTitle {{ font-size: 14pt; font-weight: 600; }}
QLabel#Section {{ font-weight: 600; margin-top: 6px; }}
QLabel#EmptyState {{ color: palette(placeholder-text); font-size: 11pt; }}
QLabel#Error {{ color: {theme.tones["error"]}; font-weight: 600; }}
QProgressBar {{ border: {theme.border - 1}px solid palette(text); border-radius: 4px; background: palette(midlight); }}
QFrame#Banner {{ background: palette(tool-tip-base); border-bottom: 2px solid {warn}; }}
QFrame#Banner QLabel {{ color: palette(tool-tip-text); }}
"""


#: High contrast, app-wide (dialogs too): Fusion draws field frames a shade off the window colour,
#: which on black is invisible, so every field, list and table gets a white outline.
HIGH_CONTRAST_FIELDS: Final = """
QLineEdit, QPlainTextEdit, QAbstractSpinBox, QListView, QTableView { border: 1px solid palette(text); }
QLineEdit:focus, QPlainTextEdit:focus, QAbstractSpinBox:focus, QListView:focus, QTableView:focus {
    border: 2px solid palette(highlight);
}
"""

STYLE_SHEET: Final = style_sheet(THEMES["light"])  # kept for importers; the window uses style_sheet()


def _dark_palette() -> QPalette:
    p = QPalette()
    roles = QPalette.ColorRole
    for role, color in (
        (roles.Window, "#1f2125"),
        (roles.WindowText, "#e8e8e8"),
        (roles.Base, "#17181b"),
        (roles.AlternateBase, "#24262b"),
        (roles.Text, "#e8e8e8"),
        (roles.Button, "#2a2d33"),
        (roles.ButtonText, "#e8e8e8"),
        (roles.ToolTipBase, "#3a3220"),
        (roles.ToolTipText, "#f5f5f5"),
        (roles.PlaceholderText, "#a8adb7"),
        (roles.Highlight, "#3b82f6"),
        (roles.HighlightedText, "#ffffff"),
        (roles.Link, "#93c5fd"),
        (roles.Light, "#3a3d44"),
        (roles.Midlight, "#32353b"),
        (roles.Mid, "#4a4e57"),
        (roles.Dark, "#111214"),
        (roles.Shadow, "#000000"),
    ):
        p.setColor(role, QColor(color))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7d828c"))
    return p


def _high_contrast_palette() -> QPalette:
    p = QPalette()
    roles = QPalette.ColorRole
    for role, color in (
        (roles.Window, "#000000"),
        (roles.WindowText, "#ffffff"),
        (roles.Base, "#000000"),
        (roles.AlternateBase, "#141414"),
        (roles.Text, "#ffffff"),
        (roles.Button, "#000000"),
        (roles.ButtonText, "#ffffff"),
        (roles.ToolTipBase, "#000000"),
        (roles.ToolTipText, "#ffffff"),
        (roles.PlaceholderText, "#e0e0e0"),
        (roles.Highlight, "#1aebff"),
        (roles.HighlightedText, "#000000"),
        (roles.Link, "#ffff00"),
        (roles.Light, "#ffffff"),
        (roles.Midlight, "#303030"),
        (roles.Mid, "#ffffff"),
        (roles.Dark, "#ffffff"),
        (roles.Shadow, "#ffffff"),
    ):
        p.setColor(role, QColor(color))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#3ff23f"))
    return p


def _light_palette() -> QPalette:
    p = QPalette(QColor("#efefef"), QColor("#f7f7f7"))  # button, window: Fusion's light defaults
    p.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    p.setColor(QPalette.ColorRole.Text, QColor("#000000"))
    p.setColor(QPalette.ColorRole.WindowText, QColor("#000000"))
    p.setColor(QPalette.ColorRole.ButtonText, QColor("#000000"))
    return p


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` draws light text on a dark window."""
    return (
        palette.color(QPalette.ColorRole.Window).lightness() < palette.color(QPalette.ColorRole.WindowText).lightness()
    )


class ThemeWatcher(QObject):
    """Follows the system's colour scheme and contrast preference (see the module docstring)."""

    changed = Signal(object)  # Theme

    def __init__(self, app: QGuiApplication, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self._app_sheet = False  # whether we set the app-wide style sheet (high contrast only)
        app.setPalette(QPalette())
        self.platform_dark = is_dark(app.palette())  # the platform's own palette, before we change it
        # Kept: PySide6 drops the wrapper of a chained app.styleHints().accessibility() at once.
        self.hints = app.styleHints()
        self.a11y = self.hints.accessibility()
        self.hints.colorSchemeChanged.connect(self.refresh)
        self.a11y.contrastPreferenceChanged.connect(self.refresh)
        self.theme = self.apply(self.wanted())

    def wanted(self) -> str:
        """The theme the system (or ``PEFT_NOTIFY_THEME``) asks for now."""
        override = os.environ.get(THEME_ENV, "").strip().lower()
        if override in THEMES:
            return override
        if self.system_contrast() is Qt.ContrastPreference.HighContrast:
            return "high-contrast"
        scheme = self.system_scheme()
        if scheme is Qt.ColorScheme.Dark:
            return "dark"
        if scheme is Qt.ColorScheme.Light:
            return "light"
        return "dark" if self.platform_dark else "light"  # Unknown: the platform's palette says

    def system_scheme(self) -> Qt.ColorScheme:
        """What the platform says: ``Unknown`` where it cannot tell (plain X11, offscreen)."""
        return self.hints.colorScheme()

    def system_contrast(self) -> Qt.ContrastPreference:
        """The platform's contrast preference (Qt 6.10+: Windows, macOS, GNOME via the portal)."""
        return self.a11y.contrastPreference()

    def refresh(self, *_args: object) -> None:
        """The system switched scheme or contrast: apply the theme it asks for now."""
        name = self.wanted()
        if name != self.theme.name:
            self.theme = self.apply(name)

    def apply(self, name: str) -> Theme:
        """Install theme ``name``'s palette (the platform's own when it already matches) and announce it."""
        global _current
        theme = THEMES[name]
        self.app.setPalette(QPalette())  # back to the platform's palette (it follows the system itself)
        platform = self.app.palette()
        self.platform_dark = is_dark(platform)
        if name == "high-contrast":
            self.app.setPalette(_high_contrast_palette())
        elif name == "dark" and not is_dark(platform):
            self.app.setPalette(_dark_palette())  # the platform has no dark palette (e.g. plain X11)
        elif name == "light" and is_dark(platform):
            self.app.setPalette(_light_palette())
        if isinstance(self.app, QApplication) and (name == "high-contrast" or self._app_sheet):
            self._app_sheet = name == "high-contrast"
            self.app.setStyleSheet(HIGH_CONTRAST_FIELDS if self._app_sheet else "")
        _current = theme
        self.changed.emit(theme)
        return theme
