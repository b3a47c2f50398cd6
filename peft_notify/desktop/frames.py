"""Sans-I/O side of following a job: the job URL check, connection states, frame bookkeeping.

No sockets, no event loop, no clock (like python-websockets' protocol objects): the I/O loop
:class:`peft_notify.desktop.client.JobClient` feeds :class:`FrameTracker` every frame it
receives and delivers what the tracker lets through; tests feed it frames directly.

- :func:`parse_job_url` is the one check of a job URL (the app's "Add job", settings,
  discovery, ``watch`` and the client all use it); :class:`JobUrl` names the connection's job
  key (``JOB@HOST:PORT``), the job's identity in the engine and the history.
- :class:`FrameTracker` decides, frame by frame, whether a frame is new and for this
  connection's job: bad frames, replayed sequence numbers and frames naming another job (a
  server posing as another job, issue 10 item 3) are skipped and counted; a new ``run_id``
  replays from the start.
- :func:`backoff` is the retry policy: a generator of delays the I/O loop consumes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from peft_notify import wire

__all__ = [
    "ClientState",
    "ConnectionEvent",
    "FrameTracker",
    "JobUrl",
    "backoff",
    "normalize_url",
    "parse_job_url",
    "shown_url",
]

log = logging.getLogger(__name__)

_WS_PATH = "/ws/notifications/"
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
_URL_HINT = "expected ws://HOST:PORT/ws/notifications/JOB"


class ClientState(Enum):
    """Where a JobClient is in its life."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    AUTH_REFUSED = "auth_refused"
    PROTOCOL_ERROR = "protocol_error"
    FINISHED = "finished"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self in (ClientState.AUTH_REFUSED, ClientState.PROTOCOL_ERROR, ClientState.FINISHED, ClientState.STOPPED)


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A state change; ``retry_in`` is the delay before the next attempt when reconnecting."""

    state: ClientState
    detail: str = ""
    retry_in: float | None = None


def backoff(base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random) -> Iterator[float]:
    """Delays for successive retries: exponential growth capped at ``cap``, with full jitter."""
    attempt = 0
    while True:
        yield rng() * min(cap, base * 2.0**attempt)
        attempt = min(attempt + 1, 62)


# ---------------------------------------------------------------- job URLs


@dataclass(frozen=True, slots=True)
class JobUrl:
    """A checked job URL (from :func:`parse_job_url`).

    ``url`` is the ws(s) form; ``job_id`` the job named by its ``/ws/notifications/JOB`` path
    (``None`` for another path: the first hello names the job then); ``job_key`` names the
    connection in the engine and the history, ``JOB@HOST:PORT``, so two jobs that share an id
    on different ports stay two jobs.
    """

    url: str
    job_id: str | None
    host: str
    port: int
    since: int | None

    @property
    def job_key(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.label}@{host}:{self.port}"

    @property
    def address(self) -> str:
        """``url`` without its ``token=`` (what logs and terminal lines show: tokens are secrets)."""
        return _without_token(self.url)

    @property
    def label(self) -> str:
        """What to call the job before its hello names it."""
        return self.job_id or urlsplit(self.url).path.rstrip("/").rsplit("/", 1)[-1] or self.host


def parse_job_url(url: str) -> JobUrl:
    """Check a job URL: ws://, wss://, http:// or https://, a host, a valid port, a valid job id
    in ``/ws/notifications/JOB`` and a strict ``since=`` (ASCII digits, bounded).

    The one URL check of the desktop side. Raises ``ValueError`` with a message for the user.
    """
    text = url.strip()
    shown = _shown(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a job URL: {shown!r} ({exc}; {_URL_HINT})") from None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(f"not a job URL: {shown!r} ({_URL_HINT})")
    job_id: str | None = None
    if parts.path.startswith(_WS_PATH):
        job_id = parts.path[len(_WS_PATH) :].rstrip("/")
        if not wire.is_valid_job_id(job_id):
            raise ValueError(f"not a job URL: {shown!r} (the job id {job_id[:40]!r} is not valid; {_URL_HINT})")
    since = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "since":
            try:  # strict, as the server parses it (int() takes "²", "٣", "+1" and 5,000 digits)
                since = wire.parse_query_int(value, "since")
            except wire.ProtocolError as exc:
                raise ValueError(f"not a job URL: {shown!r} (since= {exc})") from None
    default_port = 443 if scheme == "wss" else 80
    return JobUrl(
        url=urlunsplit((scheme, parts.netloc, parts.path, parts.query, "")),
        job_id=job_id,
        host=parts.hostname.lower(),
        port=port if port is not None else default_port,
        since=since,
    )


def normalize_url(url: str) -> str:
    """The ws(s) form of a job URL (see :func:`parse_job_url`, which raises ``ValueError``)."""
    return parse_job_url(url).url


def _without_token(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def _shown(text: str) -> str:
    try:
        return _without_token(text)[:200]
    except ValueError:
        return text[:200]


def shown_url(url: str) -> str:
    """``url`` without its ``token=`` query, for logs and terminal lines (tokens are secrets)."""
    from peft_notify import natsurl

    if natsurl.is_nats_url(url):  # nats://TOKEN@HOST: the secret is in the user part
        return natsurl.shown(url)
    return _without_token(url)


def _with_since(url: str, since: int | None, run_id: str | None = None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("since", "run_id")]
    if since is not None:
        query.append(("since", str(since)))
        if run_id is not None:
            query.append(("run_id", run_id))  # a restarted job replays from its start
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


class FrameTracker:
    """Which received frames are new and for this connection's job. No sockets, no loop.

    ``job_id`` is the job the URL names (``None``: the first hello names it). Call
    :meth:`receive` with every frame in arrival order; it returns the envelope to deliver or
    ``None`` for a frame that is skipped and counted in :attr:`bad_frames` (does not decode),
    :attr:`duplicates` (a sequence number already seen) or :attr:`foreign` (names another job:
    a server posing as another job, issue 10 item 3). :attr:`last_seq` and :attr:`hello` are
    what a reconnect asks for (:meth:`resume_url`).
    """

    def __init__(self, job_id: str | None = None, since: int | None = None, *, label: str = "") -> None:
        self.job_id = job_id
        self.label = label or job_id or "job"
        self.last_seq: int | None = since
        self.hello: wire.Hello | None = None
        self.finished = False  # a terminal state was seen (hello or status)
        self.bad_frames = 0
        self.duplicates = 0
        self.foreign = 0

    def receive(self, frame: str | bytes) -> wire.Envelope | None:
        """Decode ``frame`` and update the bookkeeping; the envelope to deliver, or ``None``."""
        try:
            env = wire.decode(frame)
        except wire.ProtocolError as exc:
            self.bad_frames += 1
            if self.bad_frames == 1 or self.bad_frames % 1000 == 0:  # one line, not one per frame (item 8)
                log.warning("skipping a bad frame from %s (%d so far): %s", self.label, self.bad_frames, exc)
            return None
        return self.receive_envelope(env)

    def receive_envelope(self, env: wire.Envelope) -> wire.Envelope | None:
        """:meth:`receive` for an envelope that is already decoded."""
        if env.job_id is not None and env.job_id != self.job_id:
            if self.job_id is None and isinstance(env.data, wire.Hello):
                self.job_id = env.job_id  # a URL without /ws/notifications/JOB: the first hello names it
            else:
                self.foreign += 1
                if self.foreign == 1 or self.foreign % 1000 == 0:  # one line, not one per frame
                    log.warning(
                        "%s: refused %d frame(s) naming job %r (this connection is job %r)",
                        self.label,
                        self.foreign,
                        env.job_id,
                        self.job_id,
                    )
                return None
        if isinstance(env.data, wire.Hello):
            if self.hello is not None and self.hello.run_id != env.data.run_id:
                log.info("%s: new run %s; replaying it from the start", self.label, env.data.run_id)
                self.last_seq = 0
            self.hello = env.data
            if self.last_seq is None:
                self.last_seq = env.data.last_seq
            self.finished = env.data.state.finished
            return env
        if env.seq is not None:
            if self.last_seq is not None and env.seq <= self.last_seq:
                self.duplicates += 1
                return None
            self.last_seq = env.seq
        if isinstance(env.data, wire.Status):
            self.finished = env.data.state.finished
        return env

    def resume_url(self, url: str) -> str:
        """``url`` with the ``since=`` (and ``run_id=``) that resumes after the last frame seen."""
        return _with_since(url, self.last_seq, self.hello.run_id if self.hello else None)
