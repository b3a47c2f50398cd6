"""run_app start-up order: the window shows before the notifiers are chosen and before the
controller, its monitor and websockets are imported (start-up time)."""

from __future__ import annotations

from pathlib import Path

# Runs in a child process (one QApplication per process): records whether the window was
# already visible when run_app asked for the adapters, then quits.
from tests.app.app_support import run_app_child

_CHILD = """
import json, sys
from pathlib import Path
import peft_notify.app.main as m

tmp, seen, real = Path(sys.argv[1]), [], m.build_adapters

async def spy(on_action, *, tray=None, window=None, **options):
    seen.append(window.isVisible())
    return await real(on_action, tray=tray, window=window, **options)

paint = m._paint_first

def paint_spy(window, *args):
    seen.append("peft_notify.app.controller" in sys.modules or "websockets" in sys.modules)
    paint(window, *args)

m._paint_first = paint_spy

m.build_adapters = spy
status = m.run_app(m.AppOptions(local=False, settings_path=tmp / "settings.toml", history_path=tmp / "h.sqlite3",
                                instance_name=f"{tmp}/instance.sock", quit_after_s=0.5, persist_urls=False))
print(json.dumps({"status": status, "visible": seen}))
"""


def test_the_window_shows_before_adapters_are_selected(tmp_path: Path) -> None:
    # [controller or websockets imported at the first paint, window visible when adapters are chosen]
    assert run_app_child(tmp_path, _CHILD, str(tmp_path)) == {"status": 0, "visible": [False, True]}
