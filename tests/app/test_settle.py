"""After start-up the app freezes what start-up built out of the garbage collector (app/main.py ``_settle``).

Issue 17: with 1,000 jobs a full collection walked ~200,000 long-lived objects (40-55 ms of the
UI thread each time, bench ``scale``); frozen, it walks only what was made since.
"""

from __future__ import annotations

from pathlib import Path

from tests.app.app_support import run_app_child

_CHILD = """
import gc, json, sys, weakref
from pathlib import Path
import peft_notify.app.main as m

tmp = Path(sys.argv[1])
m.SETTLE_S = 0.3  # the real app waits 10 s for its first connections and notifications
seen = {}

class Node:
    pass

def check(shell):
    seen["frozen"] = gc.get_freeze_count()
    seen["tracked"] = len(gc.get_objects())
    seen["sources"] = len(__import__("linecache").cache)
    a, b = Node(), Node()  # garbage made after the freeze: a reference cycle
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    seen["cycle_collected"] = gone() is None
    seen["window_visible"] = shell.window.isVisible()
    shell.window.tabs.setCurrentIndex(1)  # the app still builds and shows things after the freeze
    seen["history_built"] = shell.window.history_view is not None and shell.window.history_view.isVisible()

def started(shell):
    from PySide6.QtCore import QTimer
    seen["frozen_at_start"] = gc.get_freeze_count()
    seen["history_tab_module_at_start"] = "peft_notify.app.history_view" in sys.modules
    seen["resource_charts_module_at_start"] = "peft_notify.app.resource_charts" in sys.modules
    QTimer.singleShot(900, lambda: check(shell))

status = m.run_app(m.AppOptions(local=False, settings_path=tmp / "settings.toml", history_path=tmp / "h.sqlite3",
                                quit_after_s=1.5, persist_urls=False, on_started=started))
print(json.dumps({"status": status, **seen}))
"""


def test_start_up_objects_are_frozen_once_started_and_later_garbage_is_still_collected(tmp_path: Path) -> None:
    seen = run_app_child(tmp_path, _CHILD, str(tmp_path))
    assert seen["status"] == 0
    assert seen["frozen_at_start"] == 0  # nothing frozen while starting
    # Start-up's objects (modules, classes, the window: tens of thousands) left the generations; a
    # full collection walks only what was made since.
    assert seen["frozen"] > 20_000
    assert seen["tracked"] < seen["frozen"] // 10
    assert seen["sources"] < 20  # the module sources PySide6's import hook read are dropped too
    assert seen["cycle_collected"] is True
    assert seen["window_visible"] is True and seen["history_built"] is True
    # No job shown and the History tab never opened at start: neither is even imported (idle RSS).
    assert seen["history_tab_module_at_start"] is False
    assert seen["resource_charts_module_at_start"] is False
