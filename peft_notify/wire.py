"""Wire protocol v1: message types, encoding, decoding and validation.

Stdlib only. Both halves of peft_notify (the training-side job server and the
desktop app) speak this protocol; ``docs/protocol.md`` is its prose spec and
``resources/protocol-v1.schema.json`` its JSON Schema.

Call :func:`decode` on every frame that arrives from the network. It returns an
:class:`Envelope` or raises :class:`ProtocolError` with a precise reason (the
offending field is in ``ProtocolError.field``) and never anything else.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, TypeAlias, TypeVar

__all__ = [
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "ActionRequest",
    "Body",
    "DiskSample",
    "Envelope",
    "GpuSample",
    "Group",
    "GroupMode",
    "GroupRole",
    "Hello",
    "HostSample",
    "JobState",
    "MessageType",
    "NotificationEvent",
    "NotificationType",
    "Progress",
    "ProtocolError",
    "Resource",
    "Status",
    "Unknown",
    "UrgencyLevel",
    "decode",
    "decode_action",
    "encode",
    "encode_action",
    "format_ts",
    "group_from_mapping",
    "group_named",
    "parse_ts",
    "peek_progress_job",
]

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 64 * 1024

# Bounds on strings and collections (characters / items). A frame that breaks
# one is rejected whole, naming the field, rather than truncated silently.
MAX_TITLE: Final = 256
MAX_MESSAGE: Final = 4096
MAX_NAME: Final = 256
MAX_ID: Final = 128
MAX_SHORT: Final = 64
MAX_REASON: Final = 1024
MAX_ACTIONS: Final = 8
MAX_CAPABILITIES: Final = 32
MAX_METRICS: Final = 64
MAX_GPUS: Final = 64
MAX_RESOURCES: Final = 16
MAX_PARAMS: Final = 32  # entries of a group's ``params`` (a trial's config)
MAX_EXPECTED_JOBS: Final = 1_000_000

_E = TypeVar("_E", bound=Enum)

_JOB_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ProtocolError(ValueError):
    """A frame that is not a valid protocol v1 (or legacy PEFT Studio) message.

    ``field`` names the offending field as a dotted path (``data.loss``), or is
    ``None`` when the frame as a whole is bad (not JSON, too large).
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class MessageType(str, Enum):
    """Server→client message types (``action`` travels client→server)."""

    HELLO = "hello"
    PROGRESS = "progress"
    NOTIFICATION = "notification"
    STATUS = "status"
    RESOURCE = "resource"
    ACTION = "action"


class NotificationType(str, Enum):
    """Kind of a notification (seed-compatible)."""

    PROGRESS = "progress"
    ERROR = "error"
    COMPLETION = "completion"
    WARNING = "warning"


class UrgencyLevel(str, Enum):
    """Urgency of a notification (seed-compatible; compares equal to its string)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class JobState(str, Enum):
    """Lifecycle state of a training job."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED: Final = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


@dataclass
class NotificationEvent:
    """A notification to show the user: the seed's format, plus ``error_type``.

    Mutable for compatibility with the seed API; the engine treats it as a
    value and never mutates one it has handed out.
    """

    type: NotificationType
    title: str
    message: str
    milestone: int | None = None
    urgency: str = "normal"
    sound: bool = False
    actions: list[str] | None = None
    taskbar_progress: float | None = None
    respect_dnd: bool = True
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """``progress`` body: where the job is now."""

    current_step: int
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Completed fraction in [0, 1], or ``None`` when the total is unknown."""
        if self.total_steps is None:
            return None
        return min(1.0, self.current_step / self.total_steps)


@dataclass(frozen=True, slots=True)
class Status:
    """``status`` body: a lifecycle change."""

    state: JobState
    reason: str | None = None


class GroupMode(str, Enum):
    """Whether a group's ``metric`` is better when lower (``min``) or higher (``max``)."""

    MIN = "min"
    MAX = "max"


class GroupRole(str, Enum):
    """A group member is one ``trial``, or the ``sweep`` itself (its driver: Ray Tune, Optuna).

    While a ``sweep`` member runs, its group stays open; when it ends, the group ends as soon as
    no trial runs (docs/sweeps.md). It is not counted among the trials.
    """

    TRIAL = "trial"
    SWEEP = "sweep"


ParamValue: TypeAlias = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Group:
    """``hello.group``: the job is one trial of a sweep (docs/sweeps.md).

    ``id`` is shared by every job of the group (job-id characters); ``name`` is what the
    user sees. Optional: ``expected_jobs`` (the group ends when that many have ended),
    ``metric`` / ``mode`` (what "best trial" means: a ``progress.metrics`` name, or
    ``loss``), ``params`` (this trial's config, shown with the best result), ``role``
    (``sweep``: this job is the sweep's driver, see :class:`GroupRole`).
    """

    id: str
    name: str
    expected_jobs: int | None = None
    metric: str | None = None
    mode: GroupMode = GroupMode.MIN
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    role: GroupRole = GroupRole.TRIAL


@dataclass(frozen=True, slots=True)
class Hello:
    """``hello`` body: always the first message on a connection.

    ``replay_gap`` is true when the client asked for ``since=N`` but the
    server's buffer no longer reaches back to N: ``progress`` and ``state``
    then carry the full current snapshot.
    """

    name: str
    run_id: str
    host: str = ""
    pid: int | None = None
    started_at: float | None = None
    total_steps: int | None = None
    last_seq: int = 0
    capabilities: tuple[str, ...] = ()
    progress: Progress | None = None
    state: JobState = JobState.RUNNING
    replay_gap: bool = False
    resources: tuple[str, ...] = ()
    resource_notes: tuple[str, ...] = ()
    group: Group | None = None


@dataclass(frozen=True, slots=True)
class HostSample:
    """Host part of a ``resource`` body: bytes, and the job's process tree (``rss``, ``cpu_percent``).

    ``cpu_percent`` is summed over the tree (100 = one core busy); ``alive`` is false once
    the watched process is gone.
    """

    mem_total: int
    mem_available: int
    swap_total: int = 0
    swap_used: int = 0
    rss: int | None = None
    cpu_percent: float | None = None
    alive: bool = True

    @property
    def mem_percent(self) -> float:
        """Host memory in use, 0-100 (``available`` counts as free, as psutil does)."""
        if self.mem_total <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (self.mem_total - self.mem_available) / self.mem_total))


@dataclass(frozen=True, slots=True)
class DiskSample:
    """Free space of the job's output directory, and the estimated size of its next checkpoint."""

    path: str
    free: int
    total: int
    next_checkpoint: int | None = None

    @property
    def free_percent(self) -> float:
        return 100.0 if self.total <= 0 else max(0.0, min(100.0, 100.0 * self.free / self.total))


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU used by the job. Counters (``ecc_uncorrected``, ``xid_count``) are cumulative,
    so a coalesced-away sample loses nothing. ``error``: this device could not be read."""

    index: int
    name: str = ""
    mem_used: int | None = None
    mem_total: int | None = None
    util: float | None = None
    temperature: float | None = None
    power_w: float | None = None
    throttle: tuple[str, ...] = ()
    ecc_uncorrected: int | None = None
    remap_pending: bool = False
    remap_failure: bool = False
    xid_count: int = 0
    last_xid: int | None = None
    error: str | None = None

    @property
    def mem_percent(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return max(0.0, min(100.0, 100.0 * self.mem_used / self.mem_total))


@dataclass(frozen=True, slots=True)
class Resource:
    """``resource`` body: one sample of what the job's machine has left (coalesced like progress)."""

    host: HostSample | None = None
    disk: DiskSample | None = None
    gpus: tuple[GpuSample, ...] = ()


@dataclass(frozen=True, slots=True)
class Unknown:
    """Body of a message whose ``type`` this version does not know (ignored)."""

    type: str


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """Client→server request, e.g. ``retry`` or ``cancel`` (``ref_seq``: the message it answers)."""

    action: str
    ref_seq: int | None = None


Body: TypeAlias = Hello | Progress | NotificationEvent | Status | Resource | Unknown


@dataclass(frozen=True, slots=True)
class Envelope:
    """One server→client message.

    ``v``, ``seq``, ``job_id`` and ``ts`` are ``None`` only for a legacy PEFT
    Studio frame (``{"type": "notification", "data": {...}}``).
    ``ts`` is seconds since the Unix epoch.
    """

    type: str
    data: Body
    seq: int | None = None
    job_id: str | None = None
    ts: float | None = None
    v: int | None = PROTOCOL_VERSION

    @property
    def legacy(self) -> bool:
        return self.v is None


# --------------------------------------------------------------------------- #
# Encoding
# --------------------------------------------------------------------------- #


def format_ts(ts: float) -> str:
    """Seconds since the epoch → ISO 8601 UTC with milliseconds (``...Z``)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> float:
    """ISO 8601 (``Z`` or offset; naive means UTC) → seconds since the epoch.

    Raises ``ValueError`` on anything else.
    """
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _progress_dict(p: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {"current_step": p.current_step, "total_steps": p.total_steps}
    for name in ("epoch", "loss", "learning_rate", "grad_norm"):
        value = getattr(p, name)
        if value is not None:
            out[name] = value
    if p.metrics:
        out["metrics"] = dict(p.metrics)
    return out


def _body_dict(body: Body) -> dict[str, Any]:
    if isinstance(body, Progress):
        return _progress_dict(body)
    if isinstance(body, NotificationEvent):
        out: dict[str, Any] = {
            "type": NotificationType(body.type).value,
            "title": body.title,
            "message": body.message,
            "urgency": UrgencyLevel(body.urgency).value,
            "sound": body.sound,
            "respect_dnd": body.respect_dnd,
        }
        if body.milestone is not None:
            out["milestone"] = body.milestone
        if body.actions:
            out["actions"] = list(body.actions)
        if body.taskbar_progress is not None:
            out["taskbar_progress"] = body.taskbar_progress
        if body.error_type is not None:
            out["error_type"] = body.error_type
        return out
    if isinstance(body, Status):
        status: dict[str, Any] = {"state": body.state.value}
        if body.reason is not None:
            status["reason"] = body.reason
        return status
    if isinstance(body, Resource):
        return _resource_dict(body)
    if isinstance(body, Hello):
        hello: dict[str, Any] = {
            "name": body.name,
            "run_id": body.run_id,
            "host": body.host,
            "pid": body.pid,
            "started_at": None if body.started_at is None else format_ts(body.started_at),
            "total_steps": body.total_steps,
            "last_seq": body.last_seq,
            "capabilities": list(body.capabilities),
            "progress": None if body.progress is None else _progress_dict(body.progress),
            "state": body.state.value,
            "replay_gap": body.replay_gap,
        }
        if body.resources:
            hello["resources"] = list(body.resources)
        if body.resource_notes:
            hello["resource_notes"] = list(body.resource_notes)
        if body.group is not None:
            hello["group"] = _group_dict(body.group)
        return hello
    raise TypeError(f"cannot encode body of type {type(body).__name__}")


def _group_dict(g: Group) -> dict[str, Any]:
    out: dict[str, Any] = {"id": g.id, "name": g.name}
    if g.expected_jobs is not None:
        out["expected_jobs"] = g.expected_jobs
    if g.metric is not None:
        out["metric"] = g.metric
        out["mode"] = GroupMode(g.mode).value
    if g.params:
        out["params"] = dict(g.params)
    if g.role is not GroupRole.TRIAL:
        out["role"] = GroupRole(g.role).value
    return out


def _resource_dict(r: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.host is not None:
        out["host"] = _drop_none(
            {
                "mem_total": r.host.mem_total,
                "mem_available": r.host.mem_available,
                "swap_total": r.host.swap_total,
                "swap_used": r.host.swap_used,
                "rss": r.host.rss,
                "cpu_percent": r.host.cpu_percent,
                "alive": r.host.alive,
            }
        )
    if r.disk is not None:
        out["disk"] = _drop_none(
            {"path": r.disk.path, "free": r.disk.free, "total": r.disk.total, "next_checkpoint": r.disk.next_checkpoint}
        )
    if r.gpus:
        out["gpus"] = [
            _drop_none(
                {
                    "index": g.index,
                    "name": g.name or None,
                    "mem_used": g.mem_used,
                    "mem_total": g.mem_total,
                    "util": g.util,
                    "temperature": g.temperature,
                    "power_w": g.power_w,
                    "throttle": list(g.throttle) or None,
                    "ecc_uncorrected": g.ecc_uncorrected,
                    "remap_pending": g.remap_pending or None,
                    "remap_failure": g.remap_failure or None,
                    "xid_count": g.xid_count or None,
                    "last_xid": g.last_xid,
                    "error": g.error,
                }
            )
            for g in r.gpus
        ]
    return out


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def to_dict(env: Envelope) -> dict[str, Any]:
    """The JSON object for ``env`` (what :func:`encode` serialises)."""
    data = _body_dict(env.data)
    if env.legacy:
        return {"type": env.type, "data": data}
    return {
        "v": env.v,
        "seq": env.seq,
        "type": env.type,
        "job_id": env.job_id,
        "ts": format_ts(env.ts if env.ts is not None else 0.0),
        "data": data,
    }


def encode(env: Envelope) -> str:
    """Serialise one message to a JSON text frame.

    Raises ``ValueError`` for non-finite numbers: we never send what we would
    reject on receipt.
    """
    return json.dumps(to_dict(env), separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def encode_action(action: ActionRequest) -> str:
    """Serialise a client→server action frame."""
    data: dict[str, Any] = {"action": action.action}
    if action.ref_seq is not None:
        data["ref_seq"] = action.ref_seq
    return json.dumps({"type": MessageType.ACTION.value, "data": data}, separators=(",", ":"))


# How encode() starts a progress frame: to_dict's key order, compact separators.
_PROGRESS_HEAD: Final = re.compile(r'\{"v":1,"seq":\d+,"type":"progress","job_id":"([^"\\]+)"')


def peek_progress_job(frame: str) -> str | None:
    """The job id of a progress frame as :func:`encode` writes it, without decoding; else ``None``.

    For the desktop client, which skips decoding progress frames that a later buffered one
    supersedes. A look at the frame's head (~0.4 µs against ~8 µs for :func:`decode`): it
    relies on :func:`encode`'s key order and separators, which ``tests/test_wire.py`` checks
    against the encoder. Frames written any other way, and progress carrying ``metrics`` (an
    evaluation, never skipped), give ``None`` and are decoded in full: a miss costs time,
    never correctness. A frame it names is still validated by :func:`decode` when delivered.
    """
    match = _PROGRESS_HEAD.match(frame)
    if match is None or '"metrics":' in frame:
        return None
    return match.group(1)


# --------------------------------------------------------------------------- #
# Decoding and validation
# --------------------------------------------------------------------------- #


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"non-finite number {name} is not allowed")


# One decoder for every frame: json.loads(..., parse_constant=...) builds a new one per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _load(frame: str | bytes) -> Any:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raw = bytes(frame)
        if len(raw) > MAX_FRAME_BYTES:
            raise ProtocolError(f"frame of {len(raw)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"frame is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    elif isinstance(frame, str):
        # Cheap bounds first: a str of N chars is N..4N bytes, so most frames need no encoding.
        too_long = len(frame) > MAX_FRAME_BYTES or (
            4 * len(frame) > MAX_FRAME_BYTES and len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES
        )
        if too_long:
            raise ProtocolError(f"frame exceeds the {MAX_FRAME_BYTES}-byte limit")
        text = frame
    else:
        raise ProtocolError(f"frame must be str or bytes, not {type(frame).__name__}")
    try:
        if text.startswith("\ufeff"):  # what json.loads rejects before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("frame is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, lone surrogates
        raise ProtocolError(f"frame is not valid JSON ({exc})") from None


class _Obj:
    """Typed accessors over one JSON object, naming fields in errors."""

    __slots__ = ("_d", "_path")

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise ProtocolError(f"must be an object, not {_json_type(value)}", path or None)
        self._d: dict[str, Any] = value
        self._path = path

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def has(self, key: str) -> bool:
        return self._d.get(key) is not None

    def raw(self, key: str) -> Any:
        return self._d.get(key)

    def obj(self, key: str) -> _Obj:
        if key not in self._d:
            raise ProtocolError("is required", self._name(key))
        return _Obj(self._d[key], self._name(key))

    def str_(self, key: str, *, limit: int, required: bool = True, empty: bool = True) -> str | None:
        value = self._d.get(key)
        if value is None:
            if required:
                raise ProtocolError("is required", self._name(key))
            return None
        if not isinstance(value, str):
            raise ProtocolError(f"must be a string, not {_json_type(value)}", self._name(key))
        if len(value) > limit:
            raise ProtocolError(f"is {len(value)} characters long; the limit is {limit}", self._name(key))
        if not empty and not value:
            raise ProtocolError("must not be empty", self._name(key))
        return value

    def req_str(self, key: str, *, limit: int, empty: bool = True) -> str:
        value = self.str_(key, limit=limit, required=True, empty=empty)
        assert value is not None
        return value

    def int_(
        self, key: str, *, required: bool = False, minimum: int | None = 0, maximum: int | None = None
    ) -> int | None:
        value = self._d.get(key)
        if value is None:
            if required:
                raise ProtocolError("is required", self._name(key))
            return None
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"must be an integer, not {_json_type(value)}", self._name(key))
        if minimum is not None and value < minimum:
            raise ProtocolError(f"must be >= {minimum}, got {value}", self._name(key))
        if maximum is not None and value > maximum:
            raise ProtocolError(f"must be <= {maximum}, got {value}", self._name(key))
        return value

    def float_(self, key: str, *, minimum: float | None = None, maximum: float | None = None) -> float | None:
        value = self._d.get(key)
        if value is None:
            return None
        return _finite(value, self._name(key), minimum, maximum)

    def bool_(self, key: str, default: bool) -> bool:
        value = self._d.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ProtocolError(f"must be a boolean, not {_json_type(value)}", self._name(key))
        return value

    def str_list(self, key: str, *, max_items: int, item_limit: int) -> tuple[str, ...] | None:
        value = self._d.get(key)
        if value is None:
            return None
        name = self._name(key)
        if not isinstance(value, list):
            raise ProtocolError(f"must be an array, not {_json_type(value)}", name)
        if len(value) > max_items:
            raise ProtocolError(f"has {len(value)} items; the limit is {max_items}", name)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ProtocolError(f"must be a string, not {_json_type(item)}", f"{name}[{i}]")
            if not item or len(item) > item_limit:
                raise ProtocolError(f"must be 1..{item_limit} characters", f"{name}[{i}]")
        return tuple(value)

    def enum(self, key: str, kind: type[_E], *, required: bool = True, default: _E | None = None) -> _E:
        value = self._d.get(key)
        if value is None:
            if required or default is None:
                raise ProtocolError("is required", self._name(key))
            return default
        if not isinstance(value, str):
            raise ProtocolError(f"must be a string, not {_json_type(value)}", self._name(key))
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise ProtocolError(f"unknown value {value[:40]!r} (expected one of {allowed})", self._name(key)) from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover - json only yields the above


def _finite(value: Any, name: str, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"must be a number, not {_json_type(value)}", name)
    try:
        number = float(value)
    except OverflowError:
        raise ProtocolError("is too large", name) from None
    if not math.isfinite(number):
        raise ProtocolError("must be finite", name)
    if minimum is not None and number < minimum:
        raise ProtocolError(f"must be >= {minimum}, got {number}", name)
    if maximum is not None and number > maximum:
        raise ProtocolError(f"must be <= {maximum}, got {number}", name)
    return number


def _decode_progress(o: _Obj) -> Progress:
    current = o.int_("current_step", required=True)
    total = o.int_("total_steps", minimum=1)
    assert current is not None
    if total is not None and current > total:
        name = o._name("current_step")
        raise ProtocolError(f"{current} exceeds total_steps {total}", name)
    metrics: dict[str, float] = {}
    raw = o.raw("metrics")
    if raw is not None:
        m = _Obj(raw, o._name("metrics"))
        if len(m._d) > MAX_METRICS:
            raise ProtocolError(f"has {len(m._d)} entries; the limit is {MAX_METRICS}", o._name("metrics"))
        for key, value in m._d.items():
            if not key or len(key) > MAX_SHORT:
                raise ProtocolError(f"metric names must be 1..{MAX_SHORT} characters", o._name("metrics"))
            metrics[key] = _finite(value, m._name(key))
    return Progress(
        current_step=current,
        total_steps=total,
        epoch=o.float_("epoch", minimum=0.0),
        loss=o.float_("loss"),
        learning_rate=o.float_("learning_rate"),
        grad_norm=o.float_("grad_norm", minimum=0.0),
        metrics=metrics,
    )


def _decode_notification(o: _Obj) -> NotificationEvent:
    kind = o.enum("type", NotificationType)
    urgency = o.enum("urgency", UrgencyLevel, required=False, default=UrgencyLevel.NORMAL)
    actions = o.str_list("actions", max_items=MAX_ACTIONS, item_limit=MAX_SHORT)
    taskbar = o.float_("taskbar_progress", minimum=-1.0, maximum=1.0)
    if taskbar is not None and taskbar < 0.0 and taskbar != -1.0:
        raise ProtocolError("must be -1 (remove) or within [0, 1]", o._name("taskbar_progress"))
    return NotificationEvent(
        type=kind,
        title=o.req_str("title", limit=MAX_TITLE),
        message=o.str_("message", limit=MAX_MESSAGE, required=False) or "",
        milestone=o.int_("milestone", minimum=0, maximum=100),
        urgency=urgency,
        sound=o.bool_("sound", False),
        actions=list(actions) if actions is not None else None,
        taskbar_progress=taskbar,
        respect_dnd=o.bool_("respect_dnd", kind is not NotificationType.ERROR),
        error_type=o.str_("error_type", limit=MAX_SHORT, required=False),
    )


def _decode_status(o: _Obj) -> Status:
    return Status(state=o.enum("state", JobState), reason=o.str_("reason", limit=MAX_REASON, required=False))


def _byte_count(o: _Obj, key: str) -> int | None:
    return o.int_(key, minimum=0, maximum=1 << 62)


def _req_bytes(o: _Obj, key: str) -> int:
    value = _byte_count(o, key)
    if value is None:
        raise ProtocolError("is required", o._name(key))
    return value


def _decode_resource(o: _Obj) -> Resource:
    host = disk = None
    if o.has("host"):
        h = o.obj("host")
        total, available = _req_bytes(h, "mem_total"), _req_bytes(h, "mem_available")
        host = HostSample(
            mem_total=total,
            mem_available=min(available, total),
            swap_total=_byte_count(h, "swap_total") or 0,
            swap_used=_byte_count(h, "swap_used") or 0,
            rss=_byte_count(h, "rss"),
            cpu_percent=h.float_("cpu_percent", minimum=0.0, maximum=1e6),
            alive=h.bool_("alive", True),
        )
    if o.has("disk"):
        d = o.obj("disk")
        free, total = _req_bytes(d, "free"), _req_bytes(d, "total")
        disk = DiskSample(
            path=d.str_("path", limit=MAX_REASON, required=False) or "",
            free=free,
            total=total,
            next_checkpoint=_byte_count(d, "next_checkpoint"),
        )
    gpus: list[GpuSample] = []
    raw = o.raw("gpus")
    if raw is not None:
        name = o._name("gpus")
        if not isinstance(raw, list):
            raise ProtocolError(f"must be an array, not {_json_type(raw)}", name)
        if len(raw) > MAX_GPUS:
            raise ProtocolError(f"has {len(raw)} items; the limit is {MAX_GPUS}", name)
        gpus = [_decode_gpu(_Obj(item, f"{name}[{i}]")) for i, item in enumerate(raw)]
    return Resource(host=host, disk=disk, gpus=tuple(gpus))


def _decode_gpu(g: _Obj) -> GpuSample:
    index = g.int_("index", required=True, maximum=1 << 16)
    assert index is not None
    return GpuSample(
        index=index,
        name=g.str_("name", limit=MAX_NAME, required=False) or "",
        mem_used=_byte_count(g, "mem_used"),
        mem_total=_byte_count(g, "mem_total"),
        util=g.float_("util", minimum=0.0, maximum=100.0),
        temperature=g.float_("temperature", minimum=-273.0, maximum=1000.0),
        power_w=g.float_("power_w", minimum=0.0),
        throttle=g.str_list("throttle", max_items=MAX_RESOURCES, item_limit=MAX_SHORT) or (),
        ecc_uncorrected=_byte_count(g, "ecc_uncorrected"),
        remap_pending=g.bool_("remap_pending", False),
        remap_failure=g.bool_("remap_failure", False),
        xid_count=_byte_count(g, "xid_count") or 0,
        last_xid=g.int_("last_xid", minimum=0, maximum=1 << 32),
        error=g.str_("error", limit=MAX_REASON, required=False),
    )


def _decode_ts_field(o: _Obj, key: str, required: bool) -> float | None:
    text = o.str_(key, limit=MAX_SHORT, required=required)
    if text is None:
        return None
    try:
        return parse_ts(text)
    except (ValueError, OverflowError, OSError):
        raise ProtocolError(f"is not an ISO 8601 timestamp: {text[:40]!r}", o._name(key)) from None


def _decode_hello(o: _Obj) -> Hello:
    total = o.int_("total_steps", minimum=1)
    progress = _decode_progress(o.obj("progress")) if o.has("progress") else None
    caps = o.str_list("capabilities", max_items=MAX_CAPABILITIES, item_limit=MAX_SHORT) or ()
    return Hello(
        name=o.req_str("name", limit=MAX_NAME),
        run_id=o.req_str("run_id", limit=MAX_ID, empty=False),
        host=o.str_("host", limit=MAX_NAME, required=False) or "",
        pid=o.int_("pid", minimum=0),
        started_at=_decode_ts_field(o, "started_at", required=False),
        total_steps=total,
        last_seq=o.int_("last_seq", minimum=0) or 0,
        capabilities=caps,
        progress=progress,
        state=o.enum("state", JobState, required=False, default=JobState.RUNNING),
        replay_gap=o.bool_("replay_gap", False),
        resources=o.str_list("resources", max_items=MAX_RESOURCES, item_limit=MAX_SHORT) or (),
        resource_notes=o.str_list("resource_notes", max_items=MAX_RESOURCES, item_limit=MAX_REASON) or (),
        group=_decode_group(o.obj("group")) if o.has("group") else None,
    )


def _decode_group(o: _Obj) -> Group:
    group_id = o.req_str("id", limit=MAX_ID, empty=False)
    if not _JOB_ID_RE.match(group_id):
        raise ProtocolError("must be 1-128 of A-Z a-z 0-9 . _ : - and start with a letter or digit", o._name("id"))
    params: dict[str, ParamValue] = {}
    raw = o.raw("params")
    if raw is not None:
        p = _Obj(raw, o._name("params"))
        if len(p._d) > MAX_PARAMS:
            raise ProtocolError(f"has {len(p._d)} entries; the limit is {MAX_PARAMS}", p._path)
        for key, value in p._d.items():
            if not key or len(key) > MAX_SHORT:
                raise ProtocolError(f"parameter names must be 1..{MAX_SHORT} characters", p._path)
            if isinstance(value, str):
                if len(value) > MAX_NAME:
                    raise ProtocolError(f"must be at most {MAX_NAME} characters", p._name(key))
                params[key] = value
            elif isinstance(value, bool):
                params[key] = value
            else:
                number = _finite(value, p._name(key))
                params[key] = value if isinstance(value, int) else number
    metric = o.str_("metric", limit=MAX_SHORT, required=False, empty=False)
    return Group(
        id=group_id,
        name=o.str_("name", limit=MAX_NAME, required=False) or group_id,
        expected_jobs=o.int_("expected_jobs", minimum=1, maximum=MAX_EXPECTED_JOBS),
        metric=metric,
        mode=o.enum("mode", GroupMode, required=False, default=GroupMode.MIN),
        params=params,
        role=o.enum("role", GroupRole, required=False, default=GroupRole.TRIAL),
    )


def group_named(name: str, *, expected_jobs: int | None = None, **fields: Any) -> Group:
    """A group for the user-given ``name`` (``run --group NAME``, ``PEFT_NOTIFY_GROUP``), validated.

    Its id is ``name`` when that is already a valid id, else a slug of it plus a short hash
    (so different names never share an id). Raises :class:`ProtocolError`.
    """
    name = name.strip()
    if _JOB_ID_RE.match(name):
        group_id = name
    else:
        slug = re.sub(r"[^A-Za-z0-9._:-]+", "-", name).strip("-._:")[:100] or "group"
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        group_id = f"{slug}-{digest}"
    values: dict[str, Any] = {"id": group_id, "name": name, **fields}
    if expected_jobs is not None:
        values["expected_jobs"] = expected_jobs
    if not name:
        raise ProtocolError("must not be empty", "group.name")
    return group_from_mapping(values)


def group_from_mapping(values: Mapping[str, Any]) -> Group:
    """Validate a ``hello.group`` given as a mapping (``job(group={...})``). Raises :class:`ProtocolError`."""
    return _decode_group(_Obj(dict(values), "group"))


_BODY_DECODERS: Final[dict[str, Callable[[_Obj], Body]]] = {
    MessageType.HELLO.value: _decode_hello,
    MessageType.PROGRESS.value: _decode_progress,
    MessageType.NOTIFICATION.value: _decode_notification,
    MessageType.STATUS.value: _decode_status,
    MessageType.RESOURCE.value: _decode_resource,
}


def decode(frame: str | bytes) -> Envelope:
    """Parse and validate one server→client frame.

    Accepts protocol v1 envelopes and legacy PEFT Studio frames (no ``v``, no
    ``seq``). A message of an unknown ``type`` decodes to an ``Unknown`` body:
    callers ignore it (and count it). Unknown fields are ignored.

    Raises :class:`ProtocolError` (only) when the frame is invalid.
    """
    top = _Obj(_load(frame), "")
    kind = top.req_str("type", limit=MAX_SHORT, empty=False)
    legacy = "v" not in top._d
    if legacy:
        version = None
        seq = None
        job_id = top.str_("job_id", limit=MAX_ID, required=False)
        ts = None
    else:
        version = top.int_("v", required=True)
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported protocol version {version} (this client speaks {PROTOCOL_VERSION})", "v")
        seq = top.int_("seq", required=True, minimum=0)
        job_id = top.req_str("job_id", limit=MAX_ID, empty=False)
        ts = _decode_ts_field(top, "ts", required=True)
    if job_id is not None and not _JOB_ID_RE.match(job_id):
        raise ProtocolError("must be 1-128 of A-Z a-z 0-9 . _ : - and start with a letter or digit", "job_id")
    decoder = _BODY_DECODERS.get(kind)
    if decoder is None:
        return Envelope(type=kind, data=Unknown(kind), seq=seq, job_id=job_id, ts=ts, v=version)
    body: Body = decoder(top.obj("data"))
    return Envelope(type=kind, data=body, seq=seq, job_id=job_id, ts=ts, v=version)


def decode_action(frame: str | bytes) -> ActionRequest:
    """Parse a client→server ``action`` frame. Raises :class:`ProtocolError`."""
    top = _Obj(_load(frame), "")
    kind = top.req_str("type", limit=MAX_SHORT)
    if kind != MessageType.ACTION.value:
        raise ProtocolError(f"expected 'action', got {kind[:40]!r}", "type")
    data = top.obj("data")
    return ActionRequest(
        action=data.req_str("action", limit=MAX_SHORT, empty=False),
        ref_seq=data.int_("ref_seq", minimum=0),
    )


def is_valid_job_id(job_id: str) -> bool:
    """Whether ``job_id`` may appear in a URL path and a message."""
    return bool(_JOB_ID_RE.match(job_id))


def progress_from_mapping(values: Mapping[str, Any]) -> Progress:
    """Validate a ``progress`` body given as a mapping (e.g. built by a producer)."""
    return _decode_progress(_Obj(dict(values), "data"))


def resource_from_mapping(values: Mapping[str, Any]) -> Resource:
    """Validate a ``resource`` body given as a mapping."""
    return _decode_resource(_Obj(dict(values), "data"))


def notification_from_mapping(values: Mapping[str, Any]) -> NotificationEvent:
    """Validate a ``notification`` body given as a mapping (seed JSON, REST payloads)."""
    return _decode_notification(_Obj(dict(values), "data"))


# --------------------------------------------------------------------------- #
# Values both sides share: error urgencies, integers in URL queries
# --------------------------------------------------------------------------- #

#: The default urgency of the protocol's error types (rule 3). The one table: the training
#: side's notification builders and the engine both read it.
ERROR_URGENCY: Final[Mapping[str, UrgencyLevel]] = {
    "oom_error": UrgencyLevel.CRITICAL,
    "cuda_error": UrgencyLevel.CRITICAL,
    "system_crash": UrgencyLevel.CRITICAL,
    "loss_divergence": UrgencyLevel.HIGH,
    "gradient_explosion": UrgencyLevel.HIGH,
    "data_error": UrgencyLevel.HIGH,
}

#: ``since=`` / ``limit=`` values have at most this many digits (seq numbers stay far below 10**18).
MAX_QUERY_DIGITS: Final = 18


def error_type_urgency(error_type: str | None) -> UrgencyLevel | None:
    """The table's urgency for ``error_type``; ``None`` for a type the table does not name."""
    return None if error_type is None else ERROR_URGENCY.get(error_type)


def parse_query_int(text: str, name: str = "since") -> int:
    """A non-negative integer from a URL query value: 1..18 ASCII digits, nothing else.

    Python's ``int()`` also takes Unicode digits (``²``, ``٣``), signs, ``_`` and spaces,
    and raises past its digit limit; both sides of the protocol parse ``since=`` with this
    instead. Raises :class:`ProtocolError` naming ``name``.
    """
    if not text or len(text) > MAX_QUERY_DIGITS or not text.isascii() or not text.isdigit():
        raise ProtocolError(f"must be 1-{MAX_QUERY_DIGITS} ASCII digits, got {text[:20]!r}", name)
    return int(text)
