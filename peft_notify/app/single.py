"""Single instance: a second launch hands its URLs to the first and exits.

Call :meth:`SingleInstance.forward` first: True means another instance took the message
(quit now). Otherwise call :meth:`listen`; ``message_received(dict)`` then fires with what
later launches send (``{"urls": [...], "token": ..., "show": true}``): one JSON line, answered
with ``ok``. One name per user: a Unix socket in our private runtime dir (Linux, macOS) or a
named pipe (Windows, ``QLocalServer``).

On POSIX the socket is the one ``QLocalServer`` would make (a relative name lives in
``$TMPDIR``, else ``/tmp``; user-only permissions), served with the standard library and a
``QSocketNotifier``: the check runs before the app's first window, and QtNetwork (the only
thing it needed from it) costs ~7 ms to load and ~2 MiB to keep (bench/startup.py, bench/memory.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSocketNotifier, Signal

if TYPE_CHECKING:
    import socket

    from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["MAX_MESSAGE", "SingleInstance", "default_server_name", "socket_path"]

log = logging.getLogger(__name__)

#: The longest message accepted from another launch (a command line of URLs is far shorter).
MAX_MESSAGE = 1 << 20


def default_server_name() -> str | None:
    """A per-user name: a socket in our private runtime dir on POSIX, a named pipe on Windows.

    ``None`` on POSIX when no private runtime dir can be used: a name in the shared temp dir
    (``peft-notify-<user>``) can be created first by another user, who then receives every later
    launch's URLs and token (issue 10 item 10). The app then runs without a single instance.
    """
    if sys.platform == "win32":
        import getpass

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


def socket_path(name: str) -> str:
    """Where ``QLocalServer``/``QLocalSocket`` put the Unix socket of ``name`` (qlocalserver_unix.cpp)."""
    if name.startswith("/"):
        return name
    temp = os.environ.get("TMPDIR") or "/tmp"  # QDir::tempPath() on Unix
    return os.path.join(os.path.normpath(temp), name)


def _private_dir(parent: str) -> str:
    """A new 0700 directory in ``parent`` with a random 6-character name, as QLocalServer's
    QTemporaryDir (a socket path has ~108 bytes: the staged one is only 9 longer). Raises OSError."""
    for _ in range(20):
        path = os.path.join(parent, os.urandom(3).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free private directory name in {parent}")


class SingleInstance(QObject):
    """See the module docstring."""

    message_received = Signal(dict)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or default_server_name()  # None: no safe name, no single instance
        self.server: QLocalServer | None = None  # Windows
        self._buffers: dict[QLocalSocket, bytearray] = {}  # Windows
        self._listener: socket.socket | None = None  # POSIX
        self._notifier: QSocketNotifier | None = None
        self._peers: dict[int, tuple[socket.socket, QSocketNotifier, bytearray]] = {}
        self._retired: list[QSocketNotifier] = []
        self._bound: os.stat_result | None = None  # the socket file we made (removed on close)

    # -- the second launch ----------------------------------------------------------------

    def forward(self, message: dict[str, Any], timeout_ms: int = 1000) -> bool:
        """Send ``message`` to a running instance; True if one received it."""
        if self.name is None:
            return False
        data = json.dumps(message).encode() + b"\n"
        if sys.platform == "win32":
            return self._forward_qt(data, timeout_ms)
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_ms / 1000)
            try:
                sock.connect(socket_path(self.name))
                sock.sendall(data)
            except OSError:  # nobody listening (or a stale socket): we are the first
                return False
            with contextlib.suppress(OSError):
                sock.recv(16)  # the first instance answers "ok" once it has the message
        return True

    def _forward_qt(self, data: bytes, timeout_ms: int) -> bool:
        from PySide6.QtNetwork import QLocalSocket

        assert self.name is not None
        sock = QLocalSocket()
        sock.connectToServer(self.name)
        if not sock.waitForConnected(timeout_ms):
            return False
        sock.write(data)
        ok = sock.waitForBytesWritten(timeout_ms)
        sock.waitForReadyRead(timeout_ms)
        sock.disconnectFromServer()
        return bool(ok)

    # -- the first instance ---------------------------------------------------------------

    def listen(self) -> bool:
        """Become the instance others forward to. A stale socket from a crash is replaced."""
        if self.name is None:
            return False
        if sys.platform == "win32":
            return self._listen_qt()
        import socket

        path = socket_path(self.name)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Bound in a private directory and moved into place, so the socket is never
            # reachable by others, not even between bind() and chmod() (as QLocalServer's
            # UserAccessOption does); the rename replaces a stale socket of a crashed instance.
            private = _private_dir(os.path.dirname(path) or ".")
            staged = os.path.join(private, "s")
            try:
                listener.bind(staged)
                os.chmod(staged, 0o700)
                os.replace(staged, path)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(staged)
                os.rmdir(private)
            listener.listen(16)
            listener.setblocking(False)
            self._bound = os.stat(path)
        except OSError as exc:
            listener.close()
            log.warning("single-instance server %s: %s", path, exc)
            return False
        self._listener = listener
        self._notifier = QSocketNotifier(listener.fileno(), QSocketNotifier.Type.Read)
        self._notifier.activated.connect(self._accept)
        return True

    def _accept(self, *_args: object) -> None:
        assert self._listener is not None
        while True:
            try:
                peer, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("single-instance server: %s", exc)
                return
            peer.setblocking(False)
            self._retired.clear()  # notifiers dropped in their own signal: deleted here, outside it
            fd = peer.fileno()
            notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read)
            self._peers[fd] = (peer, notifier, bytearray())
            notifier.activated.connect(lambda *_a, fd=fd: self._read(fd))
            self._read(fd)

    def _read(self, fd: int) -> None:
        entry = self._peers.get(fd)
        if entry is None:
            return
        peer, _notifier, buf = entry
        while True:
            try:
                chunk = peer.recv(65536)
            except (BlockingIOError, InterruptedError):
                return  # more later
            except OSError:
                chunk = b""
            if not chunk:  # the other launch went away before finishing its line
                self._drop(fd)
                return
            buf.extend(chunk)
            if len(buf) > MAX_MESSAGE:
                log.warning("ignoring an oversized message from another instance")
                self._drop(fd)
                return
            if buf.endswith(b"\n"):
                break
        try:
            message = json.loads(buf)
        except ValueError:
            log.warning("ignoring a malformed message from another instance")
            message = None
        with contextlib.suppress(OSError):
            peer.send(b"ok\n")
        self._drop(fd)
        if isinstance(message, dict):
            self.message_received.emit(message)

    def _drop(self, fd: int) -> None:
        entry = self._peers.pop(fd, None)
        if entry is not None:
            peer, notifier, _ = entry
            notifier.setEnabled(False)
            self._retired.append(notifier)  # Python-owned: deleting it inside its own activated() crashes
            peer.close()

    # -- Windows: QLocalServer (a named pipe) ----------------------------------------------

    def _listen_qt(self) -> bool:
        from PySide6.QtNetwork import QLocalServer

        assert self.name is not None
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
            sock = self.server.nextPendingConnection()
            # Keep the Python side owning the socket (no deleteLater): a wrapper outliving its
            # C++ object crashes shiboken; sockets are few and closed after one message.
            sock.setParent(None)
            self._buffers[sock] = bytearray()
            sock.readyRead.connect(lambda s=sock: self._read_qt(s))
            sock.disconnected.connect(lambda s=sock: self._buffers.pop(s, None))
            self._read_qt(sock)

    def _read_qt(self, sock: QLocalSocket) -> None:
        buf = self._buffers.get(sock)
        if buf is None:
            return
        buf.extend(bytes(sock.readAll().data()))
        if len(buf) > MAX_MESSAGE:
            log.warning("ignoring an oversized message from another instance")
            self._buffers.pop(sock, None)
            sock.abort()
            return
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
        for fd in list(self._peers):
            self._drop(fd)
        if self._notifier is not None:
            self._notifier.setEnabled(False)
            self._notifier = None
        if self._listener is not None and self.name is not None:
            path = socket_path(self.name)
            with contextlib.suppress(OSError):  # ours only: a later instance may have replaced it
                now = os.stat(path)
                if self._bound is not None and (now.st_dev, now.st_ino) == (self._bound.st_dev, self._bound.st_ino):
                    os.unlink(path)
            self._listener.close()
            self._listener = None
        for sock in list(self._buffers):
            sock.abort()
        self._buffers.clear()
        if self.server is not None:
            self.server.close()
            self.server = None
