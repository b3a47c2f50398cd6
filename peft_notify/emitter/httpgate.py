"""The handshake gate and the small JSON HTTP API served on the WebSocket port.

``gate`` runs for every request before the WebSocket handshake (websockets'
``process_request`` hook): it rejects browser origins, checks the token in constant
time, answers ``/healthz``, ``/api/jobs`` and ``/api/notifications/{job_id}``, and lets
``/ws/notifications/{job_id}`` through to the WebSocket handler.
"""

from __future__ import annotations

import hmac
import http
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["RANK_PREFIX", "WS_PREFIX", "Route", "json_response", "parse_route", "token_ok"]

WS_PREFIX = "/ws/notifications/"
API_PREFIX = "/api/notifications/"
RANK_PREFIX = "/ws/ranks/"  # errors forwarded by the other ranks of a distributed job


@dataclass(frozen=True, slots=True)
class Route:
    """A parsed request target."""

    path: str
    job_id: str | None
    since: int | None
    token: str | None
    run_id: str | None = None


def parse_route(target: str) -> Route:
    """Split ``/ws/notifications/J?since=N&run_id=R&token=T`` into its parts (bad ``since`` → None)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    job_id = None
    for prefix in (WS_PREFIX, API_PREFIX, RANK_PREFIX):
        if parts.path.startswith(prefix):
            job_id = unquote(parts.path[len(prefix) :]) or None
    since: int | None = None
    raw_since = query.get("since", [None])[-1]
    if raw_since is not None and raw_since.isdigit():
        since = int(raw_since)
    return Route(
        path=parts.path,
        job_id=job_id,
        since=since,
        token=query.get("token", [None])[-1],
        run_id=query.get("run_id", [None])[-1],
    )


def token_ok(expected: str | None, route: Route, headers: Headers) -> bool:
    """Whether the request carries ``expected`` (query ``token`` or ``Authorization: Bearer``)."""
    if expected is None:
        return True
    given = route.token
    auth = headers.get("Authorization")
    if auth is not None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def json_response(connection: ServerConnection, status: http.HTTPStatus, payload: Any) -> Response:
    """A JSON HTTP response for ``process_request``."""
    response = connection.respond(status, json.dumps(payload, ensure_ascii=False) + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    return response


def error(connection: ServerConnection, status: http.HTTPStatus, reason: str) -> Response:
    """A JSON error ``{"error": reason}`` (the reason is what a client shows the user)."""
    return json_response(connection, status, {"error": reason, "status": status.value})


def gate(
    connection: ServerConnection,
    request: Request,
    *,
    token: str | None,
    allowed_origins: Collection[str],
    rank_token: str | None = None,
    job_exists: Callable[[str], bool],
    job_full: Callable[[str], bool],
    api: Callable[[Route], Any],
) -> Response | None:
    """Decide one request: a Response ends it, ``None`` continues to the WebSocket handshake."""
    route = parse_route(request.path)
    origin = request.headers.get("Origin")
    if origin is not None and origin not in allowed_origins:
        # Cross-site WebSocket hijacking: a web page in the user's browser must not read the job.
        return error(connection, http.HTTPStatus.FORBIDDEN, f"origin {origin!r} is not allowed")
    if route.path == "/healthz":
        return json_response(connection, http.HTTPStatus.OK, {"ok": True})
    if route.path.startswith(RANK_PREFIX):
        # Always authenticated, even on loopback: only our own ranks may inject errors.
        if rank_token is None or not token_ok(rank_token, route, request.headers):
            return error(connection, http.HTTPStatus.UNAUTHORIZED, "missing or wrong token")
        if route.job_id is None or not job_exists(route.job_id):
            return error(connection, http.HTTPStatus.NOT_FOUND, f"unknown job {route.job_id!r}")
        return None
    if not token_ok(token, route, request.headers):
        return error(connection, http.HTTPStatus.UNAUTHORIZED, "missing or wrong token")
    if route.path == "/api/jobs":
        return json_response(connection, http.HTTPStatus.OK, api(route))
    if route.path.startswith(API_PREFIX) or route.path.startswith(WS_PREFIX):
        if route.job_id is None or not job_exists(route.job_id):
            return error(connection, http.HTTPStatus.NOT_FOUND, f"unknown job {route.job_id!r}")
        if route.path.startswith(API_PREFIX):
            return json_response(connection, http.HTTPStatus.OK, api(route))
        if job_full(route.job_id):
            return error(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, "too many clients for this job")
        return None
    return error(connection, http.HTTPStatus.NOT_FOUND, f"no such endpoint {route.path[:80]!r}")
