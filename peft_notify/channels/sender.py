"""Sends one message through apprise and returns the service's answer. Blocking; I/O.

Call :meth:`AppriseSender.send` from a channel's own worker thread (never the training or
UI thread): it returns within about ``timeout_s`` whatever the service does, because
apprise's own ``timeout=`` stops waiting on a hanging service and the socket timeouts are
lowered to match. It never raises: a bad URL or a crashing plugin is a failed
:class:`SendResult` with the reason. URLs appear only in apprise's privacy form.

apprise 2.x reports success / failure / timeout per service (``AppriseResult``) but not the
HTTP status or the ``Retry-After`` header; :func:`_install_response_probe` wraps
``requests.Session.send`` to copy those two values into a context variable that only our
sends set (every other caller in the process passes straight through).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import email.utils
import logging
import math
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from peft_notify.channels.events import Outgoing, SendResult
from peft_notify.channels.message import defang
from peft_notify.redact import redact
from peft_notify.wire import NotificationType

__all__ = ["AppriseSender", "InvalidChannel", "parse_retry_after", "privacy_url"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 10.0
MAX_RETRY_AFTER_S: Final = 86_400.0

_ANSWERS: contextvars.ContextVar[list[tuple[int, str | None]] | None] = contextvars.ContextVar(
    "peft_notify_channel_answers", default=None
)
_probe_lock = threading.Lock()
_probe_installed = False


class InvalidChannel(ValueError):
    """The URL is not one apprise can send to (unknown scheme, missing parts)."""


def _apprise() -> Any:
    import apprise

    return apprise


def privacy_url(url: str) -> str:
    """``url`` in apprise's privacy form, tightened; a placeholder when apprise cannot parse it."""
    try:
        service = _apprise().Apprise.instantiate(url)
    except Exception:  # a plugin that raises on a bad URL: never show the URL itself
        service = None
    if service is None:
        scheme = url.split("://", 1)[0][:20] if "://" in url else "?"
        return f"{scheme}://(invalid URL hidden)"
    return tighten(str(service.url(privacy=True)))


def secret_pieces(url: str, display: str) -> tuple[str, ...]:
    """The parts of ``url`` its display form hides (password, tokens, topic, query values), longest first."""
    pieces = set(re.split(r"[:/@?&=#,;]+", url)) - set(re.split(r"[:/@?&=#,;]+", display))
    return tuple(sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True))


def scrub(text: str, pieces: tuple[str, ...]) -> str:
    """``text`` (a service's answer, apprise's log line) without any of the URL's hidden ``pieces``."""
    for piece in pieces:
        text = text.replace(piece, "…")
    return text


def tighten(private: str) -> str:
    """Also mask what apprise's privacy form leaves readable but is often a secret: an ntfy topic,
    a token in a webhook path (long path segments keep first and last character), and the query."""
    head, _, _query = private.partition("?")
    scheme, sep, rest = head.partition("://")
    if not sep:
        return head
    netloc, slash, path = rest.partition("/")
    masked = [s if len(s) <= 6 or "..." in s or "*" in s else f"{s[0]}…{s[-1]}" for s in path.split("/")]
    return f"{scheme}://{netloc}{slash}{'/'.join(masked)}".rstrip("/")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) → seconds from now, or ``None`` when unusable."""
    if value is None:
        return None
    text = value.strip()[:64]
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, delta), MAX_RETRY_AFTER_S) if math.isfinite(delta) else None


def _install_response_probe() -> None:
    global _probe_installed
    with _probe_lock:
        if _probe_installed:
            return
        import requests

        original = requests.Session.send

        def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            response = original(self, request, **kwargs)
            box = _ANSWERS.get()
            if box is not None:
                box.append((response.status_code, response.headers.get("Retry-After")))
            return response

        requests.Session.send = send  # type: ignore[method-assign]
        _probe_installed = True


_TYPES: Final = {
    NotificationType.ERROR: "failure",
    NotificationType.WARNING: "warning",
    NotificationType.COMPLETION: "success",
    NotificationType.PROGRESS: "info",
}


class AppriseSender:
    """One channel's connection to its service. Raises :class:`InvalidChannel` for a bad URL."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        apprise = _apprise()
        try:
            service = apprise.Apprise.instantiate(url)
        except Exception as exc:
            raise InvalidChannel(f"not a usable channel URL ({type(exc).__name__})") from None
        if service is None:
            scheme = url.split("://", 1)[0][:20] if "://" in url else "(none)"
            raise InvalidChannel(f"not a usable channel URL (scheme {scheme!r} unknown or parts missing)")
        self.timeout_s = timeout_s
        # Socket timeouts no longer than the send's: an abandoned request ends soon after.
        for attr in ("socket_read_timeout", "socket_connect_timeout"):
            if hasattr(service, attr):
                setattr(service, attr, min(float(getattr(service, attr)), timeout_s))
        self.name = str(getattr(service, "service_name", "service"))
        self.display = tighten(str(service.url(privacy=True)))
        self._hidden = secret_pieces(url, self.display)
        # apprise's own log lines can carry what the privacy form hides (ntfy logs the topic at
        # WARNING); its records stay inside apprise, our lines and results carry scrubbed text.
        apprise_log = logging.getLogger("apprise")
        if all(isinstance(h, logging.NullHandler) for h in apprise_log.handlers):  # nobody asked for them
            apprise_log.propagate = False
        self.attachments = bool(getattr(service, "attachment_support", False))
        self._apobj = apprise.Apprise()
        self._apobj.add(service)
        _install_response_probe()

    def send(self, out: Outgoing) -> SendResult:
        """Send ``out``; never raises, returns within about ``timeout_s``."""
        started = time.monotonic()
        try:
            return self._send(out, started)
        except Exception as exc:  # a plugin bug must never take the channel's thread down
            # No traceback: exception texts (requests') can carry the URL's path, i.e. a token.
            log.warning("channel %s: send crashed (%s)", self.display, type(exc).__name__)
            return SendResult(False, "error", f"{type(exc).__name__}", elapsed_s=time.monotonic() - started)

    def _send(self, out: Outgoing, started: float) -> SendResult:
        apprise = _apprise()
        answers: list[tuple[int, str | None]] = []
        token = _ANSWERS.set(answers)
        attach_path: Path | None = None
        try:
            attach = None
            if out.attachment is not None and self.attachments:
                # A temporary 0600 file rather than apprise's AttachMemory: apprise 2.3's form://
                # opens attachments by path, so a memory attachment fails the whole send there.
                attach_path = _temp_png(out.attachment)
                attach = apprise.AppriseAttachment(str(attach_path))
            # Our text is plain: apprise escapes it for Markdown/HTML services (a job's "[x](url)" or
            # "<b>" stays literal), chat-wide mentions from a job are made inert, and secrets a job
            # let slip (an HF token in a stderr tail) are redacted as in every other notification.
            result = self._apobj.notify(
                body=defang(redact(out.body or out.title)),
                title=defang(redact(out.title)),
                body_format=apprise.NotifyFormat.TEXT,
                notify_type=_TYPES[out.kind],
                attach=attach,
                timeout=self.timeout_s,
            )
        finally:
            _ANSWERS.reset(token)
            if attach_path is not None:
                with contextlib.suppress(OSError):
                    attach_path.unlink()
                    attach_path.parent.rmdir()
        answer = _answer(result, answers, time.monotonic() - started, self.timeout_s)
        return dataclasses.replace(answer, detail=scrub(answer.detail, self._hidden))


def _temp_png(data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="peft-notify-chart-"))  # 0700
    path = folder / "loss-curve.png"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def _answer(result: Any, answers: list[tuple[int, str | None]], elapsed: float, timeout_s: float) -> SendResult:
    status = str(result.status.name).lower()
    http_status, retry_after = (answers[-1][0], parse_retry_after(answers[-1][1])) if answers else (None, None)
    messages = [str(entry.message) for entry in result.logs() if getattr(entry, "message", "")]
    detail = messages[-1][:300] if messages else ""
    ok = bool(result)
    # The socket timeouts equal the send's, so a hanging service can end as a connection error.
    if status == "timeout" or (not ok and http_status is None and elapsed >= 0.9 * timeout_s):
        status, detail = "timeout", f"no answer within {timeout_s:g}s"
    permanent = http_status is not None and 400 <= http_status < 500 and http_status not in (408, 425, 429)
    if retry_after is not None and http_status not in (429, 503):
        retry_after = None
    return SendResult(ok, status, detail, http_status, retry_after, elapsed, permanent=not ok and permanent)
