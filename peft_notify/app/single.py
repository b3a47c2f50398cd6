"""Single instance: a second launch hands its URLs to the first and exits.

Call :meth:`SingleInstance.forward` first: True means another instance took the message
(quit now). Otherwise call :meth:`listen`; ``message_received(dict)`` then fires with what
later launches send (``{"urls": [...], "token": ..., "show": true}``). Uses ``QLocalServer``
(a Unix socket in the runtime dir / a named pipe on Windows), one name per user.
"""

from __future__ import annotations

import getpass
import json
import logging
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["SingleInstance", "default_server_name"]

log = logging.getLogger(__name__)


def default_server_name() -> str | None:
    """A per-user name: a socket in our private runtime dir on POSIX, a named pipe on Windows.

    ``None`` on POSIX when no private runtime dir can be used: a name in the shared temp dir
    (``peft-notify-<user>``) can be created first by another user, who then receives every later
    launch's URLs and token (issue 10 item 10). The app then runs without a single instance.
    """
    if sys.platform == "win32":
        try:
            user = getpass.getuser()
        except Exception:  # no user name (containers): still one per uid
            user = "user"
        return f"peft-notify-{user}"
    from peft_notify.discovery import runtime_dir

    try:
        return str(runtime_dir() / "app.sock")
    except OSError as exc:
        log.warning("no private runtime directory (%s): each launch of the app runs on its own", exc)
        return None


class SingleInstance(QObject):
    """See the module docstring."""

    message_received = Signal(dict)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or default_server_name()  # None: no safe name, no single instance
        self.server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytearray] = {}

    def forward(self, message: dict[str, Any], timeout_ms: int = 1000) -> bool:
        """Send ``message`` to a running instance; True if one received it."""
        if self.name is None:
            return False
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(timeout_ms):
            return False
        socket.write(json.dumps(message).encode() + b"\n")
        ok = socket.waitForBytesWritten(timeout_ms)
        socket.waitForReadyRead(timeout_ms)  # the first instance answers "ok" once it has the message
        socket.disconnectFromServer()
        return ok

    def listen(self) -> bool:
        """Become the instance others forward to. A stale socket from a crash is removed first."""
        if self.name is None:
            return False
        QLocalServer.removeServer(self.name)
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            log.warning("single-instance server %s: %s", self.name, server.errorString())
            return False
        server.newConnection.connect(self._on_connection)
        self.server = server
        return True

    def _on_connection(self) -> None:
        assert self.server is not None
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            # Keep the Python side owning the socket (no deleteLater): a wrapper outliving its
            # C++ object crashes shiboken; sockets are few and closed after one message.
            socket.setParent(None)
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(lambda sock=socket: self._read(sock))
            socket.disconnected.connect(lambda sock=socket: self._buffers.pop(sock, None))
            self._read(socket)

    def _read(self, sock: QLocalSocket) -> None:
        buf = self._buffers.get(sock)
        if buf is None:
            return
        buf.extend(bytes(sock.readAll().data()))
        if not buf.endswith(b"\n"):
            return
        try:
            message = json.loads(buf)
        except ValueError:
            log.warning("ignoring a malformed message from another instance")
            message = None
        sock.write(b"ok\n")
        sock.flush()
        if isinstance(message, dict):
            self.message_received.emit(message)

    def close(self) -> None:
        for sock in list(self._buffers):
            sock.abort()
        self._buffers.clear()
        if self.server is not None:
            self.server.close()
            self.server = None
