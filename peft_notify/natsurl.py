"""NATS addresses and names shared by the training side and the desktop side (issue 15 part 2).

Stdlib only, like :mod:`peft_notify.wire`. :func:`parse` is the one check of a
``nats://`` / ``tls://`` URL: ``[token@ | user:password@]HOST[:PORT][/SUBJECT-FILTER]`` with
optional ``?creds=FILE`` (a NATS credentials file) and ``?ca=FILE`` (the CA that signed the
server's TLS certificate). A plain ``nats://`` URL to a host that is not loopback is refused
unless ``insecure`` is given: the token and every notification would cross the network in
clear text. The subject, stream and key-value names used by both sides live here too.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from peft_notify import wire

__all__ = [
    "ACTION_PREFIX",
    "DEFAULT_FILTER",
    "DEFAULT_PORT",
    "KV_BUCKET",
    "STREAM",
    "SUBJECT_PREFIX",
    "NatsTarget",
    "action_subject",
    "is_nats_url",
    "job_id_of",
    "kv_key",
    "parse",
    "shown",
    "subject_for",
    "subject_matches",
]

STREAM = "PEFT_JOBS"
SUBJECT_PREFIX = "peft.jobs."
ACTION_PREFIX = "peft.actions."
KV_BUCKET = "peft-jobs"
DEFAULT_FILTER = "peft.jobs.>"
DEFAULT_PORT = 4222
SCHEMES = ("nats", "tls")
_HINT = "expected nats://[TOKEN@]HOST:PORT[/peft.jobs.>] or tls://..."
_TOKEN_RE = re.compile(r"^[^\s.*>]+$")


@dataclass(frozen=True, slots=True)
class NatsTarget:
    """A checked NATS URL (from :func:`parse`). Credentials never appear in ``repr`` or :attr:`address`."""

    scheme: str
    host: str
    port: int
    subject: str = DEFAULT_FILTER
    token: str | None = field(default=None, repr=False)
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    creds: str | None = None
    ca: str | None = None

    @property
    def server(self) -> str:
        """``nats://HOST:PORT`` or ``tls://HOST:PORT``, without credentials: what the client dials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def address(self) -> str:
        """The server and the subject filter, without credentials (logs, status lines, keys)."""
        return f"{self.server}/{self.subject}"

    @property
    def job_id(self) -> str | None:
        """The one job the filter names (``peft.jobs.JOB``, no wildcard), else ``None``."""
        return job_id_of(self.subject)

    def tls_context(self) -> ssl.SSLContext | None:
        """A verifying client context for ``tls://`` (with ``ca`` when given), else ``None``."""
        if self.scheme != "tls":
            return None
        return ssl.create_default_context(cafile=self.ca)


def is_nats_url(url: str) -> bool:
    """Whether ``url`` names a NATS server (``nats://`` or ``tls://``); says nothing about its validity."""
    head, sep, _ = url.strip().partition("://")
    return bool(sep) and head.lower() in SCHEMES


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shown(url: str) -> str:
    """``url`` without ``user:password@`` / ``token@`` and its query: what may be shown back."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.strip().split("@")[-1][:200]
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"[:200]


def parse(url: str, *, insecure: bool = False) -> NatsTarget:
    """Check a NATS URL (see the module docstring). Raises ``ValueError`` with one line for the user."""
    text = url.strip()
    show = shown(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a NATS URL: {show!r} ({exc}; {_HINT})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        raise ValueError(f"not a NATS URL: {show!r} ({_HINT})")
    host = parts.hostname.lower()
    if scheme == "nats" and not insecure and not _loopback(host):
        raise ValueError(
            f"refusing {show}: nats:// to a host that is not this machine sends the token and every "
            "notification in clear text; use tls://HOST:PORT, an SSH tunnel to 127.0.0.1, or --insecure "
            "on a network you trust"
        )
    token = user = password = None
    if parts.username is not None:
        if parts.password is not None:
            user, password = unquote(parts.username), unquote(parts.password)
        else:
            token = unquote(parts.username)
    subject = unquote(parts.path.lstrip("/")) or DEFAULT_FILTER
    check_filter(subject)
    creds = ca = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "creds" and value:
            creds = value
        elif key == "ca" and value:
            ca = value
        else:
            raise ValueError(f"not a NATS URL: {show!r} (unknown option {key[:20]!r}; only creds= and ca=)")
    return NatsTarget(scheme, host, port or DEFAULT_PORT, subject, token, user, password, creds, ca)


def check_filter(subject: str) -> None:
    """A subject filter inside ``peft.jobs.>``: tokens, ``*`` for one, ``>`` last. Raises ``ValueError``."""
    tokens = subject.split(".")
    if not subject.startswith(SUBJECT_PREFIX) or len(tokens) < 3:
        raise ValueError(f"subject filter {subject[:80]!r} must start with {SUBJECT_PREFIX!r} (e.g. {DEFAULT_FILTER})")
    for i, tok in enumerate(tokens):
        if tok in ("*", ">"):
            if tok == ">" and i != len(tokens) - 1:
                raise ValueError(f"subject filter {subject[:80]!r}: '>' may only be the last token")
        elif not _TOKEN_RE.match(tok):
            raise ValueError(f"subject filter {subject[:80]!r} has an empty or invalid token")


def subject_for(job_id: str) -> str:
    """``peft.jobs.JOB``. Raises ``ValueError`` for a job id that is not a valid subject (``a..b``)."""
    if not wire.is_valid_job_id(job_id) or any(not tok for tok in job_id.split(".")):
        raise ValueError(f"job id {job_id!r} cannot be a NATS subject (no leading, trailing or double dots)")
    return SUBJECT_PREFIX + job_id


def action_subject(job_id: str) -> str:
    """Where actions (retry, cancel) for ``job_id`` are sent: ``peft.actions.JOB`` (core NATS, not stored)."""
    return ACTION_PREFIX + job_id


def job_id_of(subject: str) -> str | None:
    """The job a ``peft.jobs.JOB`` subject names (``None``: another subject or a wildcard)."""
    if not subject.startswith(SUBJECT_PREFIX):
        return None
    job_id = subject[len(SUBJECT_PREFIX) :]
    if "*" in job_id or ">" in job_id or not wire.is_valid_job_id(job_id):
        return None
    return job_id


def kv_key(job_id: str) -> str:
    """The job's key in the ``peft-jobs`` bucket (KV keys allow ``-/_=.`` but not ``:``)."""
    return job_id.replace(":", "=")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` one token, ``>`` one or more trailing tokens."""
    want, got = pattern.split("."), subject.split(".")
    for i, tok in enumerate(want):
        if tok == ">":
            return len(got) > i
        if i >= len(got) or (tok != "*" and tok != got[i]):
            return False
    return len(got) == len(want)
