"""The main window: job list, detail pane, history tab, banner strip, status bar.

:class:`MainWindow` is built and painted from the history alone; :meth:`MainWindow.attach`
then connects it to the :class:`Controller` (the app does that after the first paint, see
docs/performance.md). It listens to the controller's signals (``on_job_updated`` …) and calls
its methods for user commands. Closing it hides it to the tray when the settings say so
(``close_requested`` lets the app decide); it never owns monitoring state itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from peft_notify.app.detail_pane import DetailPane
from peft_notify.app.group_card import GroupCards
from peft_notify.app.history_merge import PAGE, entry_order, merge_newest, unread_count
from peft_notify.app.job_list import JobList
from peft_notify.app.jobs_model import JobRow, Link
from peft_notify.app.style import style_sheet
from peft_notify.ports import HistoryEntry, HistoryQuery, HistoryStore

if TYPE_CHECKING:  # the controller (websockets, the engine) is imported after the first paint
    from peft_notify.app.controller import Controller
    from peft_notify.app.history_view import HistoryView  # imported when the tab is first shown

__all__ = ["MainWindow"]

log = logging.getLogger(__name__)

TIMELINE_LIMIT = 200  # entries of the current job the detail pane's timeline shows (newest first)
DOCS_URL = "https://github.com/peft-notify/peft-notify/blob/main/docs/app.md"


def docs_url() -> QUrl:
    """The app's documentation: the checkout's docs/app.md when present, else :data:`DOCS_URL`."""
    local = Path(__file__).resolve().parents[2] / "docs" / "app.md"
    return QUrl.fromLocalFile(str(local)) if local.is_file() else QUrl(DOCS_URL)


EMPTY_TEXT = (
    "<h3>No jobs yet</h3><p>Run <code>peft-notify simulate</code> or <code>peft-notify demo</code>,<br>"
    "or add a job's URL with <b>Add job…</b></p>"
)


class MainWindow(QMainWindow):
    """See the module docstring."""

    add_job_requested = Signal()
    settings_requested = Signal()
    about_requested = Signal()
    report_requested = Signal()  # Help → Report a problem (the shell copies doctor's report)
    quit_requested = Signal()
    close_requested = Signal()
    unread_changed = Signal(int)  # the History tab marked entries read (or re-read): the unread count

    def __init__(self, history: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller: Controller | None = None
        self.history = history
        self.setWindowTitle("peft-notify")
        self.setObjectName("MainWindow")
        self.setStyleSheet(style_sheet())
        available = self.screen().availableGeometry()  # never larger than the screen (200 % on a small one)
        self.resize(min(1080, available.width() * 9 // 10), min(680, available.height() * 9 // 10))
        self.allow_close = False  # set by the app when quitting for real
        self._events: list[HistoryEntry] = []
        self._seen: tuple[float, int] | None = None  # the newest entry read for the timeline (merge_newest)

        self.banner = QFrame()
        self.banner.setObjectName("Banner")
        self.banner_text = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)  # may quote job text
        close_banner = QToolButton(autoRaise=True)
        close_banner.setText("✕")
        close_banner.setToolTip("Dismiss")
        close_banner.setAccessibleName("Dismiss message")
        close_banner.clicked.connect(self.banner.hide)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.setContentsMargins(12, 6, 6, 6)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(close_banner)
        self.banner.hide()

        # An item per job, a card widget only for the rows in view (app/job_list.py; 1,000 jobs: issue 17).
        self.job_list = JobList(lambda key: None if self.controller is None else self.controller.rows.get(key))
        self.items = self.job_list.by_key  # every job's list item, by subscription key
        self.cards = self.job_list.cards  # the cards built now (the rows in view), by subscription key
        self.job_list.setObjectName("JobList")
        self.job_list.setAccessibleName("Jobs")
        self.job_list.setSpacing(4)
        self.job_list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.empty = QLabel(EMPTY_TEXT, alignment=Qt.AlignmentFlag.AlignCenter)
        self.empty.setObjectName("EmptyState")
        self.empty.setTextFormat(Qt.TextFormat.RichText)
        self.list_stack = QStackedWidget()
        self.list_stack.addWidget(self.empty)
        self.list_stack.addWidget(self.job_list)
        self.groups = GroupCards(self.job_list)  # a card per sweep above its trials (docs/sweeps.md)
        self.add_button = QPushButton("A&dd job…")
        self.pause_button = QPushButton("&Pause")
        self.remove_button = QPushButton("Re&move")
        self.pause_button.setToolTip("Disconnect from this job without forgetting it")
        self.remove_button.setToolTip("Stop following the selected job (Delete); its notifications stay in History")
        list_buttons = QHBoxLayout()
        for button in (self.add_button, self.pause_button, self.remove_button):
            list_buttons.addWidget(button)
        list_buttons.addStretch(1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(8, 8, 4, 8)
        left_layout.addWidget(self.list_stack, 1)
        left_layout.addLayout(list_buttons)

        self.detail = DetailPane()
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([520, 560])
        # The History tab's view is built when the tab is first shown (issue 17, idle RSS: ~2.7 MiB
        # of widgets, its model and a read of the store, for a tab most runs never open).
        self.history_view: HistoryView | None = None
        self._select_entry = 0  # "View Details" asked for this entry before the view was built
        self.history_page = QWidget()
        self.history_page.setObjectName("HistoryPage")
        self._history_layout = QVBoxLayout(self.history_page)
        self._history_layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget(documentMode=True)
        self.tabs.addTab(splitter, "Jobs")
        self.tabs.addTab(self.history_page, "History")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.banner)
        central_layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label)
        self._build_menu()

        self.add_button.clicked.connect(self.add_job_requested)
        self.remove_button.clicked.connect(self.on_remove)
        self.pause_button.clicked.connect(self.on_pause_toggle)
        self.job_list.currentItemChanged.connect(self.on_current_changed)
        self.job_list.cards_changed.connect(self.tell_shown)
        self.job_list.itemActivated.connect(self.open_detail)  # Enter on a card: into its detail
        # Right-click on a card: Pause/Resume and Remove, e.g. for a subscription that is dead.
        self.job_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.job_list.customContextMenuRequested.connect(self.on_card_menu)
        self.detail.entry_activated.connect(self.show_entry)
        self.update_buttons()
        self.update_status()

    def attach(self, controller: Controller) -> None:
        """Start showing ``controller``'s jobs and sending it the user's commands (once)."""
        self.controller = controller
        self.detail.action_requested.connect(controller.request_action)
        controller.job_updated.connect(self.on_job_updated)
        controller.job_removed.connect(self.on_job_removed)
        controller.history_changed.connect(self.on_history_changed)
        controller.problem.connect(self.on_problem)
        controller.show_job.connect(self.on_show_job)
        controller.dnd_changed.connect(self.on_state_changed)
        controller.pause_changed.connect(self.on_state_changed)
        for key in controller.rows:
            self.on_job_updated(key)
        self.tell_shown()
        self.update_buttons()
        self.update_status()

    def _on_tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.history_page:
            self.history_tab()

    def history_tab(self) -> HistoryView:
        """The History tab's view, built (and reading the store) the first time it is needed: the tab
        is shown, or Ctrl+F searches it. Until then the tab holds an empty page."""
        if self.history_view is None:
            from peft_notify.app.history_view import HistoryView

            view = self.history_view = HistoryView(self.history)
            view.entry_activated.connect(self.show_entry)
            view.unread_changed.connect(self.unread_changed)
            self._history_layout.addWidget(view)
            view.show()  # now, not when the layout's queued show runs: it is on screen at once
            if self._select_entry:
                view.select_entry(self._select_entry)
        return self.history_view

    def unread_count(self) -> int:
        """Unread entries in the whole history (the tray's count), whether or not the tab was built."""
        return unread_count(self.history)

    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        add = QAction("&Add job…", self, shortcut=QKeySequence("Ctrl+N"))
        add.triggered.connect(self.add_job_requested)
        discover = QAction("&Discover local jobs", self, shortcut=QKeySequence("F5"))
        discover.triggered.connect(self.on_discover)
        settings = QAction("&Settings…", self, shortcut=QKeySequence("Ctrl+,"))
        settings.triggered.connect(self.settings_requested)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"))
        quit_action.triggered.connect(self.quit_requested)
        for action in (add, discover, settings):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        for index, (name, key) in enumerate((("&Jobs", "Ctrl+1"), ("&History", "Ctrl+2"))):
            action = QAction(name, self, shortcut=QKeySequence(key))
            action.triggered.connect(lambda _=False, i=index: self.tabs.setCurrentIndex(i))
            view_menu.addAction(action)
        # Keyboard use (docs/app.md#keyboard-and-accessibility): Ctrl+F searches the history,
        # Delete removes the selected job (after asking), Enter opens the focused card's detail.
        find = QAction("&Search history", self, shortcut=QKeySequence(QKeySequence.StandardKey.Find))
        find.triggered.connect(self.focus_search)
        remove = QAction("&Remove job…", self, shortcut=QKeySequence(Qt.Key.Key_Delete))
        remove.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        remove.triggered.connect(self.on_remove)
        self.job_list.addAction(remove)
        view_menu.addSeparator()
        view_menu.addAction(find)
        help_menu = self.menuBar().addMenu("&Help")
        docs = QAction("&Documentation", self, shortcut=QKeySequence(QKeySequence.StandardKey.HelpContents))
        docs.triggered.connect(self.open_docs)
        report = QAction("&Report a problem…", self)
        report.triggered.connect(self.report_requested)
        about = QAction("&About peft-notify", self)
        about.triggered.connect(self.about_requested)
        for action in (docs, report):
            help_menu.addAction(action)
        help_menu.addSeparator()
        help_menu.addAction(about)

    # -- controller signals --------------------------------------------------------------

    def apply_theme(self, _theme: object = None) -> None:
        """The system switched light / dark / high contrast (style.ThemeWatcher): restyle everything."""
        self.setStyleSheet(style_sheet())
        self.job_list.restyle()
        self.refresh_detail(events=False)

    def on_job_updated(self, key: str) -> None:
        row = self.controller.rows.get(key) if self.controller is not None else None
        if row is None:
            return
        new = key not in self.items
        item = self.job_list.show_job(row)
        self.groups.on_job_updated(key, row.job_id, item, self.controller)
        if new:
            self.list_stack.setCurrentIndex(1)
        if new and self.job_list.currentItem() is None:
            self.job_list.setCurrentItem(item)  # on_current_changed shows it in the detail pane
        elif self.job_list.currentItem() is item:
            self.refresh_detail(events=False)

    def on_current_changed(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        self.job_list.mark_current(current)
        self.tell_shown()
        self.refresh_detail()

    def tell_shown(self) -> None:
        """Tell the controller which jobs are shown in full (cards in view, the detail pane's job): those
        are refreshed at every UI flush, the others less often (1,000 jobs: issue 17)."""
        if self.controller is not None:
            current = self.current_key()
            self.controller.set_shown([*self.cards, *([current] if current else [])])

    def on_job_removed(self, key: str) -> None:
        self.job_list.remove_job(key)
        self.groups.on_job_removed(key)
        self.list_stack.setCurrentIndex(1 if self.items else 0)
        self.refresh_detail()

    def on_history_changed(self) -> None:
        """After every notification: both views read only the newest entries (the history tab
        nothing while it is not on screen), so this stays small with a long history (issue 17)."""
        if self.history_view is not None:  # not built yet: it reads everything when it is
            self.history_view.on_history_changed()
        self.refresh_detail(newest=True)

    def on_problem(self, key: str, message: str) -> None:
        """Show a problem in the banner strip (and the status bar for a while)."""
        self.banner_text.setText(message)
        self.banner.show()

    def on_show_job(self, key: str, record_id: int) -> None:
        """ "View Details" on a notification: raise the window on that job."""
        self.bring_to_front()
        if key in self.items:
            self.tabs.setCurrentIndex(0)
            self.job_list.setCurrentItem(self.items[key])
        if record_id:
            if self.history_view is None:
                self._select_entry = record_id  # selected when the tab is first shown
            else:
                self.history_view.select_entry(record_id)

    # -- user commands -------------------------------------------------------------------

    def current_key(self) -> str | None:
        item = self.job_list.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def current_row(self) -> JobRow | None:
        key = self.current_key()
        return None if key is None or self.controller is None else self.controller.rows.get(key)

    def refresh_detail(self, events: bool = True, newest: bool = False) -> None:
        """Show the current job; ``events=False`` reuses its cached timeline (progress updates),
        ``newest`` reads only its newest entries into it (after a notification)."""
        row = self.current_row()
        if row is None:
            self._events = []
            self.detail.show_row(None, [])
            self.update_buttons()
            return
        if events or self.detail.key != row.key:
            try:
                # The current run's events: a relaunched job starts a fresh timeline (history keeps all).
                merged, job_id, seen = None, row.job_id, None
                if newest and self.detail.key == row.key:  # the newest of all jobs: no scan for this job's
                    read = self.history.query(HistoryQuery(limit=PAGE))
                    keep = lambda e: e.job_id == job_id  # noqa: E731
                    merged = merge_newest(self._events, read, PAGE, TIMELINE_LIMIT, keep=keep, seen=self._seen)
                    seen = entry_order(read[0]) if read else None
                if merged is None:
                    merged = self.history.query(HistoryQuery(job_id=job_id, limit=TIMELINE_LIMIT))
                self._events, self._seen = row.this_run(merged), seen
            except Exception:
                log.warning("could not read the job's history", exc_info=True)
                self._events = []
        self.detail.show_row(row, self._events)
        self.update_buttons()

    def update_buttons(self) -> None:
        row = self.current_row()
        self.remove_button.setEnabled(row is not None)
        self.pause_button.setEnabled(row is not None)
        self.pause_button.setText("&Resume" if row is not None and row.link is Link.STOPPED else "&Pause")

    def on_remove(self) -> None:
        """Remove the selected job after asking (the button, Delete on the list)."""
        row = self.current_row()
        if row is None or self.controller is None:
            return
        if self.confirm_remove(row.title) and self.controller.rows.get(row.key) is row:
            self.controller.unsubscribe(row.key)

    def confirm_remove(self, title: str) -> bool:
        """Ask before forgetting a job; the default button is No, so Enter twice removes nothing."""
        box = QMessageBox(QMessageBox.Icon.Question, "Remove job", "", parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the title comes from the job server (issue 10 item 4)
        box.setText(f"Stop following {title}? Its notifications stay in History.")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def open_detail(self, item: QListWidgetItem) -> None:
        """Enter (or a double click) on a card: make it current and move the focus into its detail."""
        self.job_list.setCurrentItem(item)
        self.detail.focus_first()

    def focus_search(self) -> None:
        """Ctrl+F: the History tab with its search field focused."""
        self.tabs.setCurrentWidget(self.history_page)
        view = self.history_tab()
        view.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        view.search.selectAll()

    def open_docs(self) -> None:
        """Help → Documentation: docs/app.md of this checkout when it is there, else the online page."""
        QDesktopServices.openUrl(docs_url())

    def card_menu(self, key: str) -> QMenu | None:
        """The context menu of the card of ``key`` (None without a controller or that job)."""
        row = None if self.controller is None else self.controller.rows.get(key)
        if row is None:
            return None
        menu = QMenu(self)
        pause = menu.addAction("Resume" if row.link is Link.STOPPED else "Pause")
        pause.triggered.connect(self.on_pause_toggle)
        remove = menu.addAction("Remove job")
        remove.setToolTip("Stop following it; its notifications stay in History")
        remove.triggered.connect(lambda: self.controller.unsubscribe(key) if self.controller is not None else None)
        return menu

    def on_card_menu(self, pos: QPoint) -> None:
        item = self.job_list.itemAt(pos)
        if item is None:
            return
        self.job_list.setCurrentItem(item)
        menu = self.card_menu(str(item.data(Qt.ItemDataRole.UserRole)))
        if menu is not None:
            menu.popup(self.job_list.viewport().mapToGlobal(pos))

    def on_pause_toggle(self) -> None:
        row = self.current_row()
        if row is not None and self.controller is not None:
            self.controller.set_job_paused(row.key, row.link is not Link.STOPPED)

    def on_discover(self) -> None:
        found = self.controller.discover_now() if self.controller is not None else 0
        self.statusBar().showMessage(f"Found {found} new local job(s)" if found else "No new local jobs found", 5000)

    def show_entry(self, job_id: str, entry_id: int) -> None:
        key = self.controller.key_for(job_id) if self.controller is not None else None
        self.on_show_job(key or "", entry_id)

    def on_state_changed(self, _value: object = None) -> None:
        self.update_status()

    def update_status(self) -> None:
        if self.controller is None:
            self.status_label.setText("Starting…")
            return
        parts = [f"Do Not Disturb: {self.controller.dnd.value}"]
        quiet_until = self.controller.quiet_until()
        if quiet_until is not None:  # quiet hours act like DND (desktop/quiet_hours.py)
            parts.insert(0, f"Quiet hours until {quiet_until:%a %H:%M}")
        if self.controller.paused_until is not None:
            parts.append("notifications paused")
        self.status_label.setText("   ".join(parts))

    def bring_to_front(self) -> None:
        self.show()
        self.setWindowState((self.windowState() & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive)
        self.raise_()
        self.activateWindow()

    # -- Qt events -----------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.controller is not None:
            self.controller.acknowledge()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.allow_close:
            event.accept()
            return
        event.ignore()
        self.close_requested.emit()
