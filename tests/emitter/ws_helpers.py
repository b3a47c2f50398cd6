"""Test helpers: a real WebSocket reader for a JobServer (no mocks)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    result: dict[str, Any] = json.loads(frame)
    return result


async def recv_until(ws: ClientConnection, pred: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Receive messages until one satisfies ``pred``; returns all of them."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            got.append(message)
            if pred(message):
                return got
