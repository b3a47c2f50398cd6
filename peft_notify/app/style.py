"""The app's style sheet: light, calm, readable; sizes in points so 200 % scaling stays crisp."""

from __future__ import annotations

__all__ = ["STYLE_SHEET"]

STYLE_SHEET = """
QMainWindow#MainWindow, QWidget { font-size: 10pt; }
QListWidget#JobList { border: none; background: transparent; outline: none; }
QListWidget#JobList::item { border: none; padding: 0; margin: 0; }
QListWidget#JobList::item:selected { background: transparent; }
#JobCard {
    background: palette(base);
    border: 1px solid palette(mid);
    border-radius: 6px;
}
QLabel#JobName { font-size: 11pt; font-weight: 600; }
QLabel#Percent { font-weight: 600; }
QLabel#Muted { color: palette(placeholder-text); }
QLabel#DetailTitle { font-size: 14pt; font-weight: 600; }
QLabel#Section { font-weight: 600; margin-top: 6px; }
QLabel#EmptyState { color: palette(placeholder-text); font-size: 11pt; }
QProgressBar { border: none; border-radius: 4px; background: palette(midlight); }
QFrame#Banner { background: #fef3c7; border-bottom: 1px solid #f59e0b; }
QFrame#Banner QLabel { color: #78350f; }
"""
