"""The first frame: a light stand-in for the main window, on screen while the real one is built.

:func:`peft_notify.app.main.run_app` shows a :class:`FirstFrame` as soon as the single-instance
check has passed, before the widgets, the history, the tray and the controller are imported
(launch → first window is a benchmark, bench/startup.py). It looks like the main window before
its jobs arrive: the same title, size and menu titles, "Loading…" where the job list will be and
the status line "Starting…"; the app's icon reaches it just after its first paint (run_app).
Once the real window is built, :meth:`FirstFrame.hand_over` puts it where the frame is, and
:meth:`FirstFrame.done` closes the frame after the real window is on screen.

Only QtWidgets/QtGui classes are used, and no ``Qt`` enum namespace: PySide6 builds every enum
class of ``Qt`` on its first use (~90 of them, ~10 ms), which the real window pays later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QWidget

if TYPE_CHECKING:  # QIcon's first use builds its ~100-member ThemeIcon enum (~1.5 ms)
    from PySide6.QtGui import QIcon

__all__ = ["MENU_TITLES", "FirstFrame", "first_size"]

#: The main window's menu titles (window.py builds them; the shell adds "Notifications").
MENU_TITLES = ("&File", "&View", "&Notifications", "&Help")
LOADING_TEXT = "Loading…"


def first_size(available_width: int, available_height: int) -> tuple[int, int]:
    """The main window's first size: 1080×680, never more than 90 % of the screen (as window.py)."""
    return min(1080, available_width * 9 // 10), min(680, available_height * 9 // 10)


class FirstFrame(QMainWindow):
    """See the module docstring. Refuses to close until it has handed over (the real window follows)."""

    def __init__(self, icon: QIcon | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("peft-notify")
        self.setObjectName("FirstFrame")
        if icon is not None:
            self.setWindowIcon(icon)
        available = self.screen().availableGeometry()
        self.resize(*first_size(available.width(), available.height()))
        bar = self.menuBar()
        for title in MENU_TITLES:
            bar.addMenu(title)
        bar.setEnabled(False)  # nothing to do yet: the real menus come with the window
        self.loading = QLabel(LOADING_TEXT)
        self.loading.setObjectName("Loading")
        self.loading.setAccessibleName("peft-notify is starting")
        # Centred through the style sheet (a qproperty) rather than Qt.AlignmentFlag: see the module docstring.
        self.loading.setStyleSheet(
            "qproperty-alignment: AlignCenter; color: palette(placeholder-text); font-size: 11pt;"
        )
        self.setCentralWidget(self.loading)
        self.status = QLabel("Starting…")
        self.statusBar().addPermanentWidget(self.status)
        self.handed_over = False

    def hand_over(self, window: QWidget) -> None:
        """Give ``window`` the frame's place (size and position) before it is shown; see :meth:`done`."""
        window.resize(self.size())
        if self.isVisible():
            window.move(self.pos())

    def done(self) -> None:
        """The real window is on screen: close and delete the frame."""
        self.handed_over = True
        self.close()
        self.deleteLater()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.handed_over:
            event.accept()
        else:
            event.ignore()  # a click on ✕ in the first ~100 ms: the real window decides what closing means
