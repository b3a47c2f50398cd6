"""The first frame (app/frame.py): shown before anything heavy is imported, then replaced by the real window."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtGui import QCloseEvent
from pytestqt.qtbot import QtBot

from peft_notify.app.frame import LOADING_TEXT, MENU_TITLES, FirstFrame
from peft_notify.app.shell import AppShell
from peft_notify.desktop.settings import Settings
from peft_notify.testing import MemoryHistoryStore
from tests.app.app_support import run_app_child

# Modules that must not be loaded when the first frame paints: the connection and notification
# machinery, the widgets and the history (each costs start-up time: bench/startup.py).
HEAVY = (
    "asyncio",
    "ssl",
    "_hashlib",  # loads libcrypto
    "qasync",
    "websockets",
    "dbus_fast",
    "desktop_notifier",
    "sqlite3",
    "PySide6.QtNetwork",
    "PySide6.QtSvg",
    "peft_notify.app.window",
    "peft_notify.app.shell",
    "peft_notify.app.tray",
    "peft_notify.app.style",
    "peft_notify.app.controller",
    "peft_notify.desktop.history",
    "peft_notify.desktop.monitor",
    "peft_notify.engine.core",
    "peft_notify.redact",
)

# One app per process: records what was loaded and visible at each step of run_app, then quits.
_CHILD = """
import json, sys
from pathlib import Path
import shiboken6
from peft_notify.cli import configure_logging
import peft_notify.app.main as m

configure_logging(0)  # as `peft-notify app` does
tmp, minimized, heavy = Path(sys.argv[1]), sys.argv[2] == "1", json.loads(sys.argv[3])
seen = {"frames": [], "first_paint": None, "window_paint": None}
wait_exposed, paint_first = m._wait_exposed, m._paint_first

def wait_spy(window, limit_ms):
    if seen["first_paint"] is None:
        seen["sources_at_first_paint"] = len(__import__("linecache").cache)
        seen["first_paint"] = {"class": type(window).__name__, "visible": window.isVisible(),
                               "loaded": sorted(name for name in heavy if name in sys.modules)}
    wait_exposed(window, limit_ms)

def paint_spy(window, *args):
    paint_first(window, *args)
    frames = [f for f in seen["frames"]]
    seen["window_paint"] = {"class": type(window).__name__, "visible": window.isVisible(),
                            "frame_visible": [f.isVisible() for f in frames],
                            "same_size": [f.size() == window.size() for f in frames]}

class Frame(m.FirstFrame):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        seen["frames"].append(self)

def count_sources():
    import linecache
    seen["sources_kept"] = len(linecache.cache)
    seen["channel_modules"] = sorted(n for n in sys.modules if n.startswith(("peft_notify.channels", "apprise")))

def started(shell):
    from PySide6.QtCore import QTimer
    QTimer.singleShot(100, count_sources)  # once the start is over
    seen["started"] = {"window_visible": shell.window.isVisible(), "title": shell.window.windowTitle(),
                       "frames_visible": [shiboken6.isValid(f) and f.isVisible() for f in seen["frames"]],
                       "job_list": shell.window.job_list.accessibleName()}

m._wait_exposed, m._paint_first, m.FirstFrame = wait_spy, paint_spy, Frame
# The default single-instance name (a socket in the private runtime dir, here under the test's
# XDG_RUNTIME_DIR), as a real launch has it.
status = m.run_app(m.AppOptions(local=False, settings_path=tmp / "settings.toml", history_path=tmp / "h.sqlite3",
                                quit_after_s=0.3, persist_urls=False, minimized=minimized, on_started=started))
seen["frames"] = len(seen["frames"])
print(json.dumps({"status": status, **seen}))
"""


def _run_child(tmp_path: Path, minimized: bool) -> dict[str, object]:
    result: dict[str, object] = run_app_child(
        tmp_path, _CHILD, str(tmp_path), "1" if minimized else "0", json.dumps(HEAVY)
    )
    return result


def test_the_first_frame_paints_before_anything_heavy_then_the_window_takes_its_place(tmp_path: Path) -> None:
    seen = _run_child(tmp_path, minimized=False)
    assert seen["status"] == 0
    assert seen["frames"] == 1
    # The first paint is the frame's, with none of the heavy modules loaded yet.
    assert seen["first_paint"] == {"class": "Frame", "visible": True, "loaded": []}
    # Then the real window paints in the frame's place while the frame is still up (no gap) ...
    assert seen["window_paint"] == {
        "class": "MainWindow",
        "visible": True,
        "frame_visible": [True],
        "same_size": [True],
    }
    # ... and once the app runs the frame is gone and the real window shows its contents.
    assert seen["started"] == {
        "window_visible": True,
        "title": "peft-notify",
        "frames_visible": [False],
        "job_list": "Jobs",
    }
    # PySide6's import hook read the source of every module imported since the frame; the app
    # drops those lines once started (they were ~11 MiB of its RSS, bench/memory.py).
    assert isinstance(seen["sources_at_first_paint"], int) and seen["sources_at_first_paint"] > 20
    assert isinstance(seen["sources_kept"], int) and seen["sources_kept"] < 20
    # With no channel configured the channel layer is never loaded (~1.7 MiB: statistics, decimal).
    assert seen["channel_modules"] == []


def test_minimized_into_the_tray_shows_no_frame(tmp_path: Path) -> None:
    from PySide6.QtWidgets import QApplication, QSystemTrayIcon

    if QApplication.instance() is None:
        QApplication([])
    seen = _run_child(tmp_path, minimized=True)
    assert seen["status"] == 0
    if QSystemTrayIcon.isSystemTrayAvailable():
        assert seen["frames"] == 0
        started = {"window_visible": False, "title": "peft-notify", "frames_visible": [], "job_list": "Jobs"}
        assert seen["started"] == started
    else:  # no tray: the window shows anyway (and the frame before it)
        assert seen["frames"] == 1


def test_the_frame_looks_like_the_window_and_waits_for_it(qtbot: QtBot) -> None:
    frame = FirstFrame()
    qtbot.addWidget(frame)
    shell = AppShell(Settings(), MemoryHistoryStore())
    qtbot.addWidget(shell.window)
    # The same menu titles as the real window's menu bar (greyed out until it comes).
    assert tuple(a.text() for a in shell.window.menuBar().actions()) == MENU_TITLES
    assert tuple(a.text() for a in frame.menuBar().actions()) == MENU_TITLES
    assert not frame.menuBar().isEnabled()
    assert frame.windowTitle() == shell.window.windowTitle()
    assert frame.size() == shell.window.size()
    assert frame.loading.text() == LOADING_TEXT
    assert frame.loading.accessibleName()  # screen readers hear that it is starting
    frame.show()
    event = QCloseEvent()
    frame.closeEvent(event)  # ✕ while loading: the real window decides what closing means
    assert not event.isAccepted()
    frame.hand_over(shell.window)
    assert shell.window.size() == frame.size()
    frame.done()
    assert not frame.isVisible()
