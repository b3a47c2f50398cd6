"""Accessibility: every focusable widget is named and has the right role, Tab goes round, shortcuts work.

Runs the real widgets (offscreen unless a display is there). The AT-SPI smoke test at the end
reads the main window over the real accessibility bus as a screen reader would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QAccessible, QDesktopServices, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabBar,
    QTableView,
    QToolButton,
    QWidget,
)
from pytestqt.qtbot import QtBot

from peft_notify.app.accessibility import (
    card_name,
    focusables,
    loss_summary,
    spoken_duration,
    spoken_name,
    unnamed_focusables,
)
from peft_notify.app.dialogs import AddJobDialog, ReportDialog, SettingsDialog
from peft_notify.app.jobs_model import JobRow, Link
from peft_notify.app.window import MainWindow
from peft_notify.desktop.settings import Settings
from tests.app.test_window import add_row, make_window

URL2 = "ws://127.0.0.1:9/ws/notifications/job-2"

# The role a screen reader must hear for each kind of focusable widget.
ROLES: list[tuple[type[QWidget], QAccessible.Role]] = [
    (QCheckBox, QAccessible.Role.CheckBox),
    (QPushButton, QAccessible.Role.Button),
    (QToolButton, QAccessible.Role.Button),
    (QLineEdit, QAccessible.Role.EditableText),
    (QDoubleSpinBox, QAccessible.Role.SpinBox),
    (QComboBox, QAccessible.Role.ComboBox),
    (QListWidget, QAccessible.Role.List),
    (QTableView, QAccessible.Role.Table),
    (QTabBar, QAccessible.Role.PageTabList),
    (QPlainTextEdit, QAccessible.Role.EditableText),
]


def expected_role(widget: QWidget) -> QAccessible.Role | None:
    for cls, role in ROLES:
        if isinstance(widget, cls):
            return role
    return None


def role_problems(root: QWidget) -> list[str]:
    problems = []
    for widget in focusables(root):
        want = expected_role(widget)
        iface = QAccessible.queryAccessibleInterface(widget)
        got = iface.role() if iface is not None else None
        if want is None:
            problems.append(f"no expected role known for {type(widget).__name__} {spoken_name(widget)!r}")
        elif got != want and not (want is QAccessible.Role.Button and got is QAccessible.Role.ButtonMenu):
            problems.append(f"{type(widget).__name__} {spoken_name(widget)!r}: role {got}, want {want}")
    return problems


def describe(widgets: list[QWidget]) -> list[str]:
    return [f"{type(w).__name__}({w.objectName() or spoken_name(w)})" for w in widgets]


def tab_round(qtbot: QtBot, root: QWidget, start: QWidget) -> list[QWidget]:
    """Press Tab from ``start`` until the focus comes back to it; the widgets visited (real key presses)."""
    start.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is start)
    visited: list[QWidget] = []
    for _ in range(200):
        current = QApplication.focusWidget()
        assert current is not None
        qtbot.keyClick(current, Qt.Key.Key_Tab)
        now = QApplication.focusWidget()
        assert now is not None, "Tab lost the focus"
        if now is start:
            return visited
        visited.append(now)
    raise AssertionError(f"Tab never came back around to {describe([start])}: {describe(visited[:40])}")


def assert_keyboard_complete(qtbot: QtBot, root: QWidget) -> None:
    """Every focusable widget is named, has its role, and Tab reaches each one and comes back around."""
    assert not describe(unnamed_focusables(root)), f"unnamed: {describe(unnamed_focusables(root))}"
    assert not role_problems(root)
    tabbable = [w for w in focusables(root) if w.focusPolicy() & Qt.FocusPolicy.TabFocus]
    visited = tab_round(qtbot, root, tabbable[0])
    missed = [w for w in tabbable[1:] if w not in visited]
    assert not missed, f"Tab never reaches {describe(missed)}"


# -- text alternatives -----------------------------------------------------------------------


def test_card_names_say_name_state_percent_and_eta() -> None:
    row = JobRow(key="k", job_id="j", name="llama-3-8b-lora", state="running", link=Link.CONNECTED)
    row.fraction, row.eta_s = 0.13, 35.0
    assert card_name(row) == "llama-3-8b-lora: running, 13 %, ETA 35 s"
    row.state, row.fraction = "completed", 1.0
    assert card_name(row) == "llama-3-8b-lora: completed, 100 %"
    assert spoken_duration(200) == "3 min 20 s"
    assert spoken_duration(3720) == "1 h 2 min"


def test_loss_chart_text_alternative() -> None:
    assert loss_summary([(0, 2.6), (200, 1.2), (400, 0.46)]) == "loss 2.6 → 0.46 over 400 steps, falling"
    assert loss_summary([(0, 0.4), (10, 0.9)]).endswith("rising")
    assert loss_summary([(0, 0.5), (10, 0.5)]).endswith("flat")
    assert loss_summary([]) == "no loss reported yet"


def window_with_jobs(qtbot: QtBot) -> MainWindow:
    win = make_window()
    qtbot.addWidget(win)
    assert win.controller is not None
    row = add_row(
        win.controller,
        name="llama-3-8b-lora",
        state="running",
        fraction=0.13,
        eta_s=35.0,
        step=52,
        total=400,
        link=Link.CONNECTED,
        capabilities=("retry", "cancel"),
    )
    row.add_loss(0, 2.6)
    row.add_loss(400, 0.46)
    win.controller.job_updated.emit(row.key)
    add_row(win.controller, URL2, job_id="job-2", name="mistral", state="failed", fraction=0.5)
    win.show()
    qtbot.waitExposed(win)
    activate(qtbot, win)
    return win


def activate(qtbot: QtBot, win: QWidget) -> None:
    """Make ``win`` the active window (shortcuts only reach the active window)."""
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)


def test_cards_chart_and_bar_are_named_for_screen_readers(qtbot: QtBot) -> None:
    win = window_with_jobs(qtbot)
    key = next(iter(win.cards))
    card = win.cards[key]
    assert card.accessibleName() == "llama-3-8b-lora: running, 13 %, ETA 35 s"
    assert win.items[key].text() == card.accessibleName()  # the list item a screen reader reads
    assert card.bar.accessibleName() == "llama-3-8b-lora progress"
    assert win.detail.chart.accessibleName() == "loss 2.6 → 0.46 over 400 steps, falling"
    # The list's children, as assistive technology sees them: each names its job and state.
    iface = QAccessible.queryAccessibleInterface(win.job_list)
    assert iface is not None
    names = [iface.child(i).text(QAccessible.Text.Name) for i in range(iface.childCount())]
    assert "mistral: failed, 50 %" in names


def test_every_control_of_the_main_window_is_named_and_tab_goes_round(qtbot: QtBot) -> None:
    win = window_with_jobs(qtbot)
    for index in range(win.tabs.count()):
        win.tabs.setCurrentIndex(index)
        assert_keyboard_complete(qtbot, win)


@pytest.mark.parametrize("which", ["add", "settings", "report"])
def test_every_dialog_is_named_and_tab_goes_round(qtbot: QtBot, which: str) -> None:
    local = [
        type(
            "Local", (), {"name": "sim", "job_id": "sim", "url": "ws://127.0.0.1:1/ws/notifications/sim", "token": None}
        )
    ]
    dialog: QDialog
    if which == "add":
        dialog = AddJobDialog(local)
    elif which == "settings":
        dialog = SettingsDialog(Settings())
    else:
        dialog = ReportDialog([sys.executable, "-c", "print('doctor says hi')"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    if isinstance(dialog, ReportDialog):
        qtbot.waitUntil(lambda: "doctor says hi" in dialog.report, timeout=10_000)
        assert QApplication.clipboard().text() == dialog.report
    pages = dialog.pages.count() if isinstance(dialog, SettingsDialog) else 1
    for page in range(pages):
        if isinstance(dialog, SettingsDialog):
            dialog.pages.setCurrentIndex(page)
        assert_keyboard_complete(qtbot, dialog)
    # Labels are buddies of their fields (Alt+letter jumps there).
    if isinstance(dialog, AddJobDialog):
        qtbot.keyClick(dialog, Qt.Key.Key_T, Qt.KeyboardModifier.AltModifier)
        assert QApplication.focusWidget() is dialog.token


def test_about_box_is_reachable_and_closes_with_the_keyboard(qtbot: QtBot) -> None:
    box = QMessageBox(QMessageBox.Icon.Information, "About", "peft-notify")
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    assert not unnamed_focusables(box)
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    assert not box.isVisible()


# -- shortcuts -------------------------------------------------------------------------------


def test_shortcuts_search_arrows_enter_and_delete(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    win = window_with_jobs(qtbot)
    assert win.controller is not None
    first, second = list(win.items)
    win.job_list.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is win.job_list)
    assert win.current_key() == first
    qtbot.keyClick(win.job_list, Qt.Key.Key_Down)  # arrow keys move between cards
    assert win.current_key() == second
    qtbot.keyClick(win.job_list, Qt.Key.Key_Up)
    assert win.current_key() == first
    qtbot.keyClick(win.job_list, Qt.Key.Key_Return)  # Enter: into the focused card's detail
    assert QApplication.focusWidget() is win.detail.timeline
    assert win.detail.key == first

    # Delete asks first; No keeps the job, Yes removes it.
    win.job_list.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is win.job_list)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(10, answer)
            return
        asked.append(box.text())
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.No)
        button = box.button(answers.pop(0))
        assert isinstance(button, QAbstractButton)
        button.click()

    removed: list[str] = []  # the controller's removal itself: test_dead_ends.py; here the keyboard path to it
    monkeypatch.setattr(win.controller, "unsubscribe", removed.append)
    QTimer.singleShot(0, answer)
    qtbot.keyClick(win.job_list, Qt.Key.Key_Delete)
    assert removed == []
    activate(qtbot, win)
    QTimer.singleShot(0, answer)
    qtbot.keyClick(win.job_list, Qt.Key.Key_Delete)
    assert removed == [first]
    assert asked == ["Stop following llama-3-8b-lora? Its notifications stay in History."] * 2

    activate(qtbot, win)
    QTest.keySequence(win, QKeySequence("Ctrl+F"))  # Ctrl+F: search the history
    assert win.tabs.currentWidget() is win.history_page and win.history_view is not None
    assert win.history_view.isVisible()
    assert QApplication.focusWidget() is win.history_view.search


def test_menu_shortcuts_and_mnemonics(qtbot: QtBot) -> None:
    win = window_with_jobs(qtbot)
    shortcuts = {
        a.text().replace("&", ""): a.shortcut().toString() for a in win.findChildren(type(win.menuBar().actions()[0]))
    }
    assert shortcuts["Settings…"] == "Ctrl+,"
    assert shortcuts["Quit"] == "Ctrl+Q"
    assert shortcuts["Search history"] == "Ctrl+F"
    with qtbot.waitSignal(win.settings_requested):
        QTest.keySequence(win, QKeySequence("Ctrl+,"))
    with qtbot.waitSignal(win.quit_requested):
        QTest.keySequence(win, QKeySequence("Ctrl+Q"))
    # Every labelled button and menu has a mnemonic (Alt+letter).
    buttons = [b for b in win.findChildren(QPushButton) if b.text()]
    assert all("&" in b.text() for b in buttons), [b.text() for b in buttons if "&" not in b.text()]
    assert all("&" in a.text() for a in win.menuBar().actions())


def test_progress_bars_are_named(qtbot: QtBot) -> None:
    win = window_with_jobs(qtbot)
    bars = [b for b in win.findChildren(QProgressBar) if b.isVisibleTo(win)]
    assert bars and all(b.accessibleName() for b in bars)


def test_tray_states_differ_in_shape_not_only_colour(qapp: object) -> None:
    """Each tray state draws its own mark: the grayscale icons (colour removed) all differ."""
    from PySide6.QtGui import QImage

    from peft_notify.app.tray import draw_icon

    def gray(tone: str) -> bytes:
        image = draw_icon(tone, 0.5, 0).pixmap(64, 64).toImage().convertToFormat(QImage.Format.Format_Alpha8)
        return bytes(image.constBits())

    shapes = {tone: gray(tone) for tone in ("idle", "ok", "done", "warn", "error")}
    assert len(set(shapes.values())) == len(shapes)


# -- a screen reader's view over AT-SPI ------------------------------------------------------

AT_SPI_LAUNCHER = Path("/usr/libexec/at-spi-bus-launcher")
SYSTEM_PYTHON = "/usr/bin/python3"  # pyatspi is Debian's python3-pyatspi: the system Python's

A11Y_APP = """
import os
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
app.setApplicationName(sys.argv[1])
from peft_notify.app.jobs_model import Link
from tests.app.test_window import add_row, make_window
w = make_window()
row = add_row(w.controller, name="llama-3-8b-lora", state="running", fraction=0.13, eta_s=35.0, link=Link.CONNECTED)
row.add_loss(0, 2.6)
row.add_loss(400, 0.46)
w.controller.job_updated.emit(row.key)
w.show()
w.tabs.setCurrentIndex(1)  # the History tab's view is built when the tab is first shown (issue 17)
w.tabs.setCurrentIndex(0)  # back on the Jobs tab: the reader sees both tabs' controls, as before


def later():  # the test touches this file once it has read the tree: the job moves on
    if not os.path.exists(sys.argv[2]):
        return
    poll.stop()
    row.fraction, row.eta_s = 0.5, 20.0
    row.add_loss(800, 0.3)
    w.controller.job_updated.emit(row.key)


poll = QTimer(interval=100)
poll.timeout.connect(later)
poll.start()
QTimer.singleShot(60_000, app.quit)
app.exec()
"""

UPDATED = ("llama-3-8b-lora: running, 50 %, ETA 20 s", "loss 2.6 → 0.3 over 800 steps, falling")

READER = """
import json, sys, time
import pyatspi
want, deadline, app = sys.argv[1], time.time() + 20, None
while app is None and time.time() < deadline:
    desktop = pyatspi.Registry.getDesktop(0)
    apps = [desktop.getChildAtIndex(i) for i in range(desktop.childCount)]
    app = next((a for a in apps if a is not None and a.name == want), None)
    if app is None:
        time.sleep(0.3)
if app is None:
    sys.exit("application not found on the accessibility bus")
def walk(node, depth, nodes):
    nodes.append([node.getRoleName(), node.name, node.description])
    for i in range(node.childCount if depth < 40 else 0):
        child = node.getChildAtIndex(i)
        if child is not None:
            walk(child, depth + 1, nodes)
    return nodes
wait_for = set(json.loads(sys.argv[2])) if len(sys.argv) > 2 else set()
deadline = time.time() + 15
while True:  # with names to wait for: read again until they are there (what an update event changes)
    nodes = walk(app, 0, [])
    if wait_for <= {n[1] for n in nodes} or time.time() > deadline:
        break
    time.sleep(0.3)
print(json.dumps(nodes))
"""


def _atspi_missing() -> str | None:
    if not os.environ.get("DESKTOP_SESSION_DIR") or not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "needs the desktop session's D-Bus (source scripts/desktop-env.sh)"
    if not AT_SPI_LAUNCHER.exists():
        return "at-spi2-core is not installed (apt-get install at-spi2-core)"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import pyatspi"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "pyatspi is not installed for /usr/bin/python3 (apt-get install python3-pyatspi)"
    return None


def _a11y_bus_owned(env: dict[str, str]) -> bool:
    """Whether org.a11y.Bus has an owner on the session bus (NameHasOwner never activates it)."""
    reply = subprocess.run(
        [
            "dbus-send",
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.a11y.Bus",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return "boolean true" in reply.stdout


@pytest.mark.desktop
def test_a_screen_reader_reads_the_main_window_over_at_spi(tmp_path: Path) -> None:
    """The real accessibility stack: the AT-SPI bus (at-spi-bus-launcher on the session's D-Bus), the app
    with Qt's AT-SPI bridge on, and pyatspi in the system Python walking the tree as Orca would."""
    reason = _atspi_missing()
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, QT_LINUX_ACCESSIBILITY_ALWAYS_ON="1", QT_ACCESSIBILITY="1", QT_QPA_PLATFORM="xcb")
    env.pop("PYTHONPATH", None)
    name = f"peft-notify-a11y-{os.getpid()}"
    # Its own process group: the bus's dbus-daemon and the registry it activates go with it at the end.
    launcher = subprocess.Popen(
        [str(AT_SPI_LAUNCHER), "--launch-immediately"], env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )
    # Only once it owns org.a11y.Bus may the app and the reader ask for it: asked earlier, the session
    # bus would activate a second launcher of its own, outside this test's process group.
    deadline = time.monotonic() + 10
    while not _a11y_bus_owned(env):
        assert time.monotonic() < deadline, "at-spi-bus-launcher never took org.a11y.Bus"
        time.sleep(0.1)
    root = Path(__file__).resolve().parents[2]
    log = (tmp_path / "app.log").open("wb")
    go = tmp_path / "go"
    app = subprocess.Popen([sys.executable, "-c", A11Y_APP, name, str(go)], env=env, cwd=root, stderr=log)

    def read_tree(*wait_for: str) -> list[tuple[str, str, str]]:
        read = subprocess.run(
            [SYSTEM_PYTHON, "-c", READER, name, json.dumps(wait_for)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert read.returncode == 0, read.stderr[-2000:] + (tmp_path / "app.log").read_text(errors="replace")[-2000:]
        return [(str(r), str(n), str(d)) for r, n, d in json.loads(read.stdout)]

    try:
        nodes = read_tree()
        go.touch()  # the job moves on to 50 % and a lower loss: the reader must hear the new names
        later = {n for _, n, _ in read_tree(*UPDATED)}
    finally:
        app.terminate()
        app.wait(10)
        os.killpg(launcher.pid, signal.SIGTERM)
        launcher.wait(10)
        log.close()
    roles_names = {(role, node_name) for role, node_name, _ in nodes}
    assert ("frame", "peft-notify") in roles_names
    assert ("list", "Jobs") in roles_names
    assert ("list item", "llama-3-8b-lora: running, 13 %, ETA 35 s") in roles_names
    for button in ("Add job…", "Pause", "Remove", "Dismiss message", "Clear search"):
        assert ("push button", button) in roles_names, button
    assert ("page tab", "Jobs") in roles_names and ("page tab", "History") in roles_names
    assert ("text", "Search history") in roles_names
    charts = {n: d for role, n, d in nodes if d == "Loss curve"}
    assert "loss 2.6 → 0.46 over 400 steps, falling" in charts
    assert set(UPDATED) <= later, f"names did not update over AT-SPI: {set(UPDATED) - later}"
    unnamed = [role for role, node_name, _ in nodes if role in ("push button", "check box", "text") and not node_name]
    assert not unnamed, f"unnamed controls a screen reader would announce as just their role: {unnamed}"


def test_the_tray_menu_is_reachable_from_the_window_menu_bar(qtbot: QtBot) -> None:
    """A tray host's menu may not take the keyboard: everything it offers is in the menu bar too."""
    from peft_notify.app.shell import AppShell
    from peft_notify.testing import MemoryHistoryStore

    shell = AppShell(Settings(), MemoryHistoryStore())
    qtbot.addWidget(shell.window)

    def reachable(actions: list[Any]) -> list[Any]:
        found = []
        for action in actions:
            found.append(action)
            if action.menu() is not None:
                found += reachable(action.menu().actions())
        return found

    in_window = reachable(shell.window.menuBar().actions())
    titles = [a.text() for a in shell.window.menuBar().actions()]
    assert titles == ["&File", "&View", "&Notifications", "&Help"]
    tray = shell.tray
    for action in (tray.pause_menu.menuAction(), tray.mute_action, tray.all_jobs_action, tray.dnd_action):
        assert action in in_window, action.text()
    pause_entries = [a.text() for a in tray.pause_menu.actions() if a.text()]
    assert all(a in in_window for a in tray.pause_menu.actions()), pause_entries
    # The window's Quit and Show (it is the window) cover the rest; jobs are the job list itself.
    assert any(a.text() == "&Quit" for a in in_window)
    shell.close()


def test_every_tray_menu_entry_has_its_own_alt_letter(qtbot: QtBot) -> None:
    """Keyboard users open the tray menu and press a letter: each entry of each (sub)menu has one,
    none shared within a menu (the disabled DND status line and the job rows aside)."""
    from peft_notify.app.tray import Tray

    tray = Tray()

    def letters(menu: Any) -> list[str]:
        found = []
        for action in menu.actions():
            text = action.text()
            if action.isSeparator() or not action.isEnabled() or not text:
                continue
            assert "&" in text.replace("&&", ""), f"no Alt-letter: {text!r}"
            found.append(text.replace("&&", "")[text.replace("&&", "").index("&") + 1].lower())
        return found

    for menu in (tray.menu, tray.pause_menu):
        keys = letters(menu)
        assert len(keys) == len(set(keys)), keys
    tray.hide()


# -- Help menu -------------------------------------------------------------------------------


class _UrlCatcher(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_help_documentation_opens_the_docs_with_f1(qtbot: QtBot) -> None:
    """Qt's own hook for opening URLs records the URL instead of starting a browser."""
    win = window_with_jobs(qtbot)
    catcher = _UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    QDesktopServices.setUrlHandler("https", catcher, "open")
    try:
        QTest.keySequence(win, QKeySequence(QKeySequence.StandardKey.HelpContents))
    finally:
        QDesktopServices.unsetUrlHandler("file")
        QDesktopServices.unsetUrlHandler("https")
    [url] = catcher.urls
    assert url.toLocalFile().endswith("docs/app.md") and Path(url.toLocalFile()).is_file()


def test_report_a_problem_runs_the_real_doctor_and_copies_its_report(qtbot: QtBot) -> None:
    """Under the desktop session doctor exits 0; without one it exits 1 (no native notifier) — either
    way its whole report is shown and copied."""
    from peft_notify.app.shell import doctor_command

    dialog = ReportDialog(doctor_command())
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.report != "", timeout=30_000)
    assert dialog.report.startswith("peft-notify doctor (exit ")
    assert "notifier:" in dialog.report and "dnd probe:" in dialog.report
    assert QApplication.clipboard().text() == dialog.report
    assert "clipboard" in dialog.status.text()


def test_no_token_on_screen_or_in_what_a_screen_reader_hears(qtbot: QtBot) -> None:
    """Screens are shared and screenshotted (docs/screenshots): a job URL's token is never shown.
    Before: the detail pane's URL line and the card's tooltip showed ?token=…"""
    secret = "s3cr3t-T0KEN-value"
    win = make_window()
    qtbot.addWidget(win)
    assert win.controller is not None
    key = f"ws://127.0.0.1:9/ws/notifications/job-1?token={secret}"
    add_row(win.controller, key, name="llama", state="running", fraction=0.5, link=Link.CONNECTED)
    win.show()
    qtbot.waitExposed(win)
    assert win.detail.facts["URL"].text() == "ws://127.0.0.1:9/ws/notifications/job-1"
    seen = [w.toolTip() for w in win.findChildren(QWidget)]
    seen += [w.accessibleName() + w.accessibleDescription() for w in win.findChildren(QWidget)]
    seen += [label.text() for label in win.findChildren(QLabel)]
    seen += [win.items[key].text()]
    assert not [text for text in seen if secret in text]
