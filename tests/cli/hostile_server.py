"""A malicious job server for the terminal-injection tests (run as a script; prints its port).

``/ws/notifications/evil`` sends a hello, notifications, progress and a failed status whose
texts carry OSC 52 (clipboard), OSC 0 (window title), a screen clear, an 8-bit CSI, BEL,
backspaces, a carriage return and a bidi override; ``/ws/notifications/denied`` answers the
handshake with HTTP 403 and such a JSON error body. Frames are encoded with the real
protocol encoder, so only the texts are hostile.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from peft_notify import wire

EVIL = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;pwned\x07\x1b[2J\x9b2J\x08\x08\rFAKE\u202eevil"


def envelope(seq: int, body: wire.Body, kind: str) -> str:
    return wire.encode(wire.Envelope(type=kind, data=body, seq=seq, job_id="evil", ts=time.time()))


async def handler(ws: ServerConnection) -> None:
    frames = [
        envelope(
            0,
            wire.Hello(name=f"job{EVIL}", run_id="r1", host=f"h{EVIL}", pid=1, started_at=time.time(), total_steps=10),
            "hello",
        ),
        envelope(1, wire.Progress(current_step=3, total_steps=10, loss=1.0), "progress"),
        envelope(
            2,
            wire.NotificationEvent(type=wire.NotificationType.WARNING, title=f"w{EVIL}", message=f"m{EVIL}"),
            "notification",
        ),
        envelope(
            3,
            wire.NotificationEvent(
                type=wire.NotificationType.ERROR, title=f"e{EVIL}", message=f"m{EVIL}", error_type="oom_error"
            ),
            "notification",
        ),
        envelope(4, wire.Status(state=wire.JobState.FAILED, reason=f"r{EVIL}"), "status"),
    ]
    for frame in frames:
        await ws.send(frame)
    await asyncio.sleep(0.5)
    await ws.close(4000, "bye\x1b[2J")


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.startswith("/ws/notifications/denied"):
        return connection.respond(HTTPStatus.FORBIDDEN, json.dumps({"error": f"no{EVIL}"}) + "\n")
    return None


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)


if __name__ == "__main__":
    asyncio.run(main())
