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


def _send(path: str, data: bytes) -> bytes | None:
    """What a launch (or anyone who can reach the socket) sends; returns the answer, b"" when the
    server hung up, None when it kept the connection open without answering for 10 s."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        try:
            sock.sendall(data)
            return sock.recv(16)
        except TimeoutError:
            return None
        except OSError:  # the server hung up on an oversized message mid-way
            return b""


def test_the_socket_is_reachable_by_its_user_only(qtbot: QtBot, tmp_path: Path) -> None:
    import os
    import stat

    name = str(tmp_path / "instance.sock")
    instance = SingleInstance(name)
    assert instance.listen()
    mode = os.stat(name).st_mode
    assert stat.S_ISSOCK(mode)
    assert mode & 0o077 == 0  # as QLocalServer's UserAccessOption
    assert [p.name for p in tmp_path.iterdir()] == ["instance.sock"]  # no staging directory left behind
    instance.close()
    assert not Path(name).exists()  # closing removes our own socket


def test_close_leaves_a_newer_instances_socket(qtbot: QtBot, tmp_path: Path) -> None:
    name = str(tmp_path / "instance.sock")
    old, new = SingleInstance(name), SingleInstance(name)
    assert old.listen()
    assert new.listen()  # replaced the socket (as after a crash)
    old.close()
    assert Path(name).exists()
    with qtbot.waitSignal(new.message_received, timeout=10000) as received:
        assert new.forward({"urls": [], "show": True})
    assert received.args[0] == {"urls": [], "show": True}
    new.close()


def test_a_socket_left_by_a_killed_instance_is_replaced(qtbot: QtBot, tmp_path: Path) -> None:
    name = str(tmp_path / "instance.sock")
    script = f"import os, socket; s = socket.socket(socket.AF_UNIX); s.bind({name!r}); s.listen(); os._exit(0)"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    instance = SingleInstance(name)
    assert not instance.forward({"urls": []}, timeout_ms=500)  # nobody behind it: we are the first
    assert instance.listen()
    with qtbot.waitSignal(instance.message_received, timeout=10000):
        child = subprocess.Popen([sys.executable, "-c", _forward_script(name)])
    assert child.wait(timeout=10) == 0
    instance.close()


def test_oversized_and_malformed_messages_are_dropped_and_the_server_keeps_working(
    qtbot: QtBot, tmp_path: Path
) -> None:
    import threading

    from peft_notify.app.single import MAX_MESSAGE

    name = str(tmp_path / "instance.sock")
    instance = SingleInstance(name)
    assert instance.listen()
    got: list[dict[str, Any]] = []
    instance.message_received.connect(got.append)
    answers: list[bytes | None] = []
    # A client that never ends its line is cut off after MAX_MESSAGE (not buffered for ever), no message.
    flood = threading.Thread(target=lambda: answers.append(_send(name, b"x" * (MAX_MESSAGE + 65536))))
    flood.start()
    qtbot.waitUntil(lambda: not flood.is_alive(), timeout=10000)
    malformed = threading.Thread(target=lambda: answers.append(_send(name, b"{not json\n")))
    malformed.start()
    qtbot.waitUntil(lambda: not malformed.is_alive(), timeout=10000)
    assert answers == [b"", b"ok\n"]  # the malformed line is answered (the sender may quit) but ignored
    assert got == []
    with qtbot.waitSignal(instance.message_received, timeout=10000) as received:
        child = subprocess.Popen([sys.executable, "-c", _forward_script(name)])
    assert child.wait(timeout=10) == 0
    assert received.args[0] == {"urls": ["ws://h:1/ws/notifications/j"], "token": "t"}
    instance.close()


def _forward_script(name: str) -> str:
    return textwrap.dedent(
        f"""
        from PySide6.QtCore import QCoreApplication
        from peft_notify.app.single import SingleInstance
        app = QCoreApplication([])
        ok = SingleInstance({name!r}).forward({{"urls": ["ws://h:1/ws/notifications/j"], "token": "t"}}, 5000)
        raise SystemExit(0 if ok else 3)
        """
    )


def test_a_long_socket_path_works_as_with_qlocalserver(qtbot: QtBot, tmp_path: Path) -> None:
    # sun_path holds 107 bytes; the socket is staged in a 6-character directory next to it (as
    # QLocalServer's QTemporaryDir), so a 98-byte name works (a launch under pytest's deep tmp dirs failed).
    base = str(tmp_path / "x")
    name = base + "d" * (98 - len(base) - len("/app.sock")) + "/app.sock"
    assert len(name) == 98
    Path(name).parent.mkdir(mode=0o700)
    instance = SingleInstance(name)
    assert instance.listen()
    with qtbot.waitSignal(instance.message_received, timeout=10000):
        assert SingleInstance(name).forward({"urls": []})
    instance.close()
