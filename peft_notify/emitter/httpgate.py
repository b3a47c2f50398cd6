"""The handshake gate and the small JSON HTTP API served on the WebSocket port.

:func:`gate` runs for every request before the WebSocket handshake (websockets'
``process_request`` hook), in this order: a ``Host`` that is not a loopback name or
address (or the configured bind name) is refused (DNS rebinding); a browser ``Origin``
not explicitly allowed is refused (cross-site WebSocket hijacking); ``/healthz`` is
answered; every other request needs the job's token (compared in constant time) —
*before* a bad query is parsed further or a connection slot is looked at; then
``/api/jobs`` and ``/api/notifications/{job_id}`` (paged: ``?since=N&limit=M``) are
answered and ``/ws/notifications/{job_id}`` goes on to the WebSocket handler.
"""

from __future__ import annotations

import hmac
import http
import ipaddress
import json
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from peft_notify import wire

__all__ = [
    "API_MAX_WAIT",
    "API_PREFIX",
    "API_RATE",
    "RANK_PREFIX",
    "WS_PREFIX",
    "Pacer",
    "Page",
    "RawJson",
    "Route",
    "error",
    "gate",
    "host_allowed",
    "json_response",
    "parse_route",
    "token_ok",
    "too_many",
]

WS_PREFIX = "/ws/notifications/"
API_PREFIX = "/api/notifications/"
RANK_PREFIX = "/ws/ranks/"  # errors forwarded by the other ranks of a distributed job

PAGE_DEFAULT = 100
PAGE_MAX = 1000


@dataclass(frozen=True, slots=True)
class Route:
    """A parsed request target. ``bad`` names a query value that is not valid (answered 400)."""

    path: str
    job_id: str | None
    since: int | None
    token: str | None
    run_id: str | None = None
    limit: int | None = None
    bad: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """Which ``/api/notifications`` entries a request asks for."""

    job_id: str
    since: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class RawJson:
    """An already encoded JSON body (built once, cached by the caller)."""

    text: str


def parse_route(target: str) -> Route:
    """Split ``/ws/notifications/J?since=N&run_id=R&token=T`` into its parts.

    ``since`` / ``limit`` are parsed strictly (:func:`peft_notify.wire.parse_query_int`);
    a bad one sets :attr:`Route.bad` instead of raising.
    """
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    job_id = None
    for prefix in (WS_PREFIX, API_PREFIX, RANK_PREFIX):
        if parts.path.startswith(prefix):
            job_id = unquote(parts.path[len(prefix) :]) or None
    numbers: dict[str, int | None] = {"since": None, "limit": None}
    bad = None
    for name in numbers:
        raw = query.get(name, [None])[-1]
        if raw is None:
            continue
        try:
            numbers[name] = wire.parse_query_int(raw, name)
        except wire.ProtocolError as exc:
            bad = str(exc)
    return Route(
        path=parts.path,
        job_id=job_id,
        since=numbers["since"],
        token=query.get("token", [None])[-1],
        run_id=query.get("run_id", [None])[-1],
        limit=numbers["limit"],
        bad=bad,
    )


def token_ok(expected: str, route: Route, headers: Headers) -> bool:
    """Whether the request carries ``expected`` (query ``token`` or ``Authorization: Bearer``)."""
    given = route.token
    auth = _single(headers, "Authorization")
    if auth is not None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def _single(headers: Headers, name: str) -> str | None:
    """The one value of header ``name`` (``None`` when absent); raises ``ValueError`` when repeated.

    ``Headers.get`` raises ``MultipleValuesError`` for a repeated header: unhandled, that
    was an HTTP 500 and a traceback per request, from anyone (issue 10 items 2 and 9).
    """
    values = headers.get_all(name)
    if len(values) > 1:
        raise ValueError(f"more than one {name} header")
    return values[0] if values else None


def host_allowed(host_header: str | None, allowed_names: Collection[str]) -> bool:
    """Whether a ``Host`` header may reach the server (the DNS-rebinding check).

    An IP address (any: a rebinding attack needs a name), ``localhost`` and
    ``*.localhost``, and the names in ``allowed_names`` (the bind name) pass; any other
    name, and a missing header, does not.
    """
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:port
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:  # name:port or v4:port (a bare IPv6 address has several colons)
        host = host.rsplit(":", 1)[0]
    host = host.rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return host in {name.lower().rstrip(".") for name in allowed_names}


def json_response(connection: ServerConnection, status: http.HTTPStatus, payload: Any) -> Response:
    """A JSON HTTP response for ``process_request`` (a :class:`RawJson` is sent as it is)."""
    text = payload.text if isinstance(payload, RawJson) else json.dumps(payload, ensure_ascii=False)
    response = connection.respond(status, text + "\n")
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    return response


API_RATE: Final = 20.0  # authenticated /api/ answers per second, all clients together
API_MAX_WAIT: Final = 2.0  # a request that would wait longer is told to come back (429)


class Pacer:
    """Spaces answers ``1 / rate`` seconds apart (a virtual-time queue; Sans-I/O: the caller sleeps).

    :meth:`delay` returns how long the caller waits before answering, or ``None`` when the queue is
    already ``max_wait`` seconds long (answer 429 instead: the client comes back later).
    """

    def __init__(self, rate: float = API_RATE, max_wait: float = API_MAX_WAIT) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.max_wait = max_wait
        self._next = float("-inf")

    def delay(self, now: float) -> float | None:
        slot = max(now, self._next)
        if slot - now > self.max_wait:
            return None
        self._next = slot + self.interval
        return slot - now


def too_many(connection: ServerConnection, retry_after: float) -> Response:
    """429 with ``Retry-After`` (whole seconds, at least 1)."""
    response = error(connection, http.HTTPStatus.TOO_MANY_REQUESTS, "too many API requests; retry later")
    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def error(connection: ServerConnection, status: http.HTTPStatus, reason: str) -> Response:
    """A JSON error ``{"error": reason}`` (the reason is what a client shows the user)."""
    return json_response(connection, status, {"error": reason, "status": status.value})


def gate(
    connection: ServerConnection,
    request: Request,
    *,
    token: str,
    allowed_origins: Collection[str],
    allowed_hosts: Collection[str],
    rank_token: str,
    job_exists: Callable[[str], bool],
    job_full: Callable[[str], bool],
    jobs: Callable[[], Any],
    notifications: Callable[[Page], RawJson],
) -> Response | None:
    """Decide one request: a Response ends it, ``None`` continues to the WebSocket handshake."""
    try:
        host, origin = _single(request.headers, "Host"), _single(request.headers, "Origin")
        _single(request.headers, "Authorization")
    except ValueError as exc:
        return error(connection, http.HTTPStatus.BAD_REQUEST, str(exc))
    if not host_allowed(host, allowed_hosts):
        return error(connection, http.HTTPStatus.FORBIDDEN, "host not allowed")
    route = parse_route(request.path)
    if origin is not None and origin not in allowed_origins:
        # Cross-site WebSocket hijacking: a web page in the user's browser must not read the job.
        return error(connection, http.HTTPStatus.FORBIDDEN, f"origin {origin[:80]!r} is not allowed")
    if route.path == "/healthz":
        return json_response(connection, http.HTTPStatus.OK, {"ok": True})
    expected = rank_token if route.path.startswith(RANK_PREFIX) else token
    if not token_ok(expected, route, request.headers):
        return error(connection, http.HTTPStatus.UNAUTHORIZED, "missing or wrong token")
    if route.bad is not None:
        return error(connection, http.HTTPStatus.BAD_REQUEST, route.bad)
    if route.path == "/api/jobs":
        return json_response(connection, http.HTTPStatus.OK, jobs())
    if route.path.startswith((API_PREFIX, WS_PREFIX, RANK_PREFIX)):
        if route.job_id is None or not job_exists(route.job_id):
            return error(connection, http.HTTPStatus.NOT_FOUND, f"unknown job {(route.job_id or '')[:80]!r}")
        if route.path.startswith(API_PREFIX):
            limit = PAGE_DEFAULT if route.limit is None else max(1, min(route.limit, PAGE_MAX))
            return json_response(connection, http.HTTPStatus.OK, notifications(Page(route.job_id, route.since, limit)))
        if route.path.startswith(WS_PREFIX) and job_full(route.job_id):
            return error(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, "too many clients for this job")
        return None
    return error(connection, http.HTTPStatus.NOT_FOUND, f"no such endpoint {route.path[:80]!r}")
