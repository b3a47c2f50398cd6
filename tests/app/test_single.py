"""Single instance: a second launch hands its URLs to the first (a real QLocalServer socket)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from pytestqt.qtbot import QtBot

from peft_notify.app.single import SingleInstance


def test_second_launch_forwards_to_the_first(qtbot: QtBot, tmp_path: Path) -> None:
    name = str(tmp_path / "instance.sock")
    first = SingleInstance(name)
    assert not first.forward({"urls": []}, timeout_ms=200)  # nobody is listening yet
    assert first.listen()
    # The second launch is another process, as in real life (it blocks while waiting for the answer).
    script = textwrap.dedent(
        f"""
        from PySide6.QtCore import QCoreApplication
        from peft_notify.app.single import SingleInstance
        app = QCoreApplication([])
        ok = SingleInstance({name!r}).forward({{"urls": ["ws://h:1/ws/notifications/j"], "token": "t"}}, 5000)
        raise SystemExit(0 if ok else 3)
        """
    )
    with qtbot.waitSignal(first.message_received, timeout=10000) as received:
        child = subprocess.Popen([sys.executable, "-c", script])
    assert child.wait(timeout=10) == 0
    message: dict[str, Any] = received.args[0]
    assert message == {"urls": ["ws://h:1/ws/notifications/j"], "token": "t"}
    first.close()


def test_stale_socket_is_replaced(qtbot: QtBot, tmp_path: Path) -> None:
    name = str(tmp_path / "stale.sock")
    Path(name).write_text("left over by a crash")
    instance = SingleInstance(name)
    assert instance.listen()
    instance.close()
