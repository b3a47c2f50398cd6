"""Real services for the channel tests: a loopback HTTP receiver and an SMTP server (aiosmtpd).

``receiver`` is a ThreadingHTTPServer on 127.0.0.1 that records every request (path, headers,
body) and answers by the first path segment's mode (ntfy: the topic's first word): ``/ok`` 200,
``/fail`` 500, ``/gone`` 404, ``/limit`` 429 with ``Retry-After`` (then 200 once ``limit_times``
answers were 429), ``/hang`` never answers until the test ends. apprise's ``json://``,
``form://`` and ``ntfy://`` all post here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    hits: list[Hit] = field(default_factory=list)
    retry_after: str = "1"
    limit_times: int = 1
    release: threading.Event = field(default_factory=threading.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)
    _limited: int = 0

    def url(self, scheme: str, mode: str = "ok", extra: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{mode}{extra}"

    def wait_for(self, count: int, timeout: float = 15.0, mode: str | None = None) -> list[Hit]:
        def matching() -> list[Hit]:
            return [h for h in self.hits if mode is None or h.path.lstrip("/").startswith(mode)]

        with self.cond:
            self.cond.wait_for(lambda: len(matching()) >= count, timeout)
            return matching()


def _handler(rec: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            hit = Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            with rec.cond:
                rec.hits.append(hit)
                rec.cond.notify_all()
            mode = self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
            if not mode:  # ntfy's JSON publish goes to the root and names the topic in the body
                try:
                    mode = str(json.loads(body).get("topic", ""))
                except (ValueError, AttributeError):
                    mode = ""
            mode = mode.split("-", 1)[0]  # "fail-secret-topic" answers like "fail"
            if mode == "hang":
                rec.release.wait(30)
                return
            status, headers = 200, {}
            if mode == "fail":
                status = 500
            elif mode == "gone":
                status = 404
            elif mode == "limit":
                with rec.cond:
                    rec._limited += 1
                    if rec._limited <= rec.limit_times:
                        status, headers = 429, {"Retry-After": rec.retry_after}
            payload = b'{"id":"x"}' if status == 200 else b'{"error":"nope"}'
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_PUT = do_POST

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    rec.release.set()
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    port: int
    messages: list[Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Message]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free loopback port, recording the messages it accepts."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox(port)

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            with box.cond:
                box.messages.append(message_from_bytes(envelope.content))
                box.cond.notify_all()
            return "250 OK"

    def authenticator(server: object, session: object, envelope: object, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        ok = (auth_data.login, auth_data.password) == (b"user", b"s3cret")
        with box.cond:
            box.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    # AUTH without TLS on loopback only: the test checks the SMTP password reaches the server.
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    yield box
    controller.stop()
