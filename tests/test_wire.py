"""Wire protocol v1: round trips, validation errors naming the field, legacy frames, fuzzing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peft_notify import wire
from peft_notify.wire import (
    MAX_FRAME_BYTES,
    ActionRequest,
    Envelope,
    Hello,
    JobState,
    NotificationEvent,
    NotificationType,
    Progress,
    ProtocolError,
    Status,
    Unknown,
    UrgencyLevel,
)

SCHEMA = json.loads((Path(__file__).parents[1] / "resources" / "protocol-v1.schema.json").read_text())
TS = 1_700_000_000.25


def frame(type_: str, data: Any, **top: Any) -> str:
    msg: dict[str, Any] = {"v": 1, "seq": 1, "type": type_, "job_id": "job-1", "ts": "2023-11-14T22:13:20.250Z"}
    msg.update(top)
    msg["data"] = data
    return json.dumps(msg)


def reason_of(raw: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        wire.decode(raw)
    return info.value


# --------------------------------------------------------------------------- round trips

SAMPLES: list[Envelope] = [
    Envelope(
        "hello",
        Hello(
            name="llama-lora",
            run_id="r1",
            host="gpu-01",
            pid=4242,
            started_at=TS,
            total_steps=1000,
            last_seq=7,
            capabilities=("retry", "cancel"),
            progress=Progress(250, 1000, loss=1.25),
            state=JobState.RUNNING,
            replay_gap=True,
        ),
        seq=0,
        job_id="job-1",
        ts=TS,
    ),
    Envelope(
        "progress",
        Progress(10, None, epoch=0.5, loss=2.0, learning_rate=1e-4, grad_norm=0.3, metrics={"acc": 0.9}),
        seq=1,
        job_id="job-1",
        ts=TS,
    ),
    Envelope(
        "notification",
        NotificationEvent(
            type=NotificationType.ERROR,
            title="Training Error",
            message="CUDA out of memory",
            urgency=UrgencyLevel.CRITICAL,
            sound=True,
            actions=["View Details", "Retry"],
            taskbar_progress=-1.0,
            respect_dnd=False,
            error_type="oom_error",
        ),
        seq=2,
        job_id="job-1",
        ts=TS,
    ),
    Envelope("status", Status(JobState.FAILED, reason="exit code 1"), seq=3, job_id="job-1", ts=TS),
    Envelope(
        "resource",
        wire.Resource(
            host=wire.HostSample(64 << 30, 5 << 30, 8 << 30, 1 << 20, rss=20 << 30, cpu_percent=104.5),
            disk=wire.DiskSample("/data/out", free=12 << 30, total=500 << 30, next_checkpoint=9 << 30),
            gpus=(
                wire.GpuSample(0, "H100", 70 << 30, 80 << 30, 97.0, 71, 612.3, ("power",), 0, xid_count=2, last_xid=9),
                wire.GpuSample(1, error="GPU is lost"),
            ),
        ),
        seq=4,
        job_id="job-1",
        ts=TS,
    ),
    Envelope(
        "hello",
        Hello(name="n", run_id="r", resources=("host_memory", "disk"), resource_notes=("gpu: no NVML",)),
        seq=5,
        job_id="job-1",
        ts=TS,
    ),
]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"host": {"mem_total": 1}}, "data.host.mem_available"),
        ({"host": {"mem_total": -1, "mem_available": 0}}, "data.host.mem_total"),
        ({"disk": {"free": "lots", "total": 1}}, "data.disk.free"),
        ({"gpus": {"index": 0}}, "data.gpus"),
        ({"gpus": [{"index": 0, "util": 101}]}, "data.gpus[0].util"),
        ({"gpus": [{"index": 0}] * 65}, "data.gpus"),
        ({"host": {"mem_total": 2**70, "mem_available": 0}}, "data.host.mem_total"),
        ({"disk": {"free": 1, "total": 1, "path": "p" * 1025}}, "data.disk.path"),
        ({"gpus": [{"index": 0, "error": "e" * 1025}]}, "data.gpus[0].error"),
        ({"gpus": [{"index": 0, "throttle": ["x" * 65]}]}, "data.gpus[0].throttle[0]"),
    ],
)
def test_bad_resource_bodies_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        wire.decode(frame("resource", data))
    assert info.value.field == field


@pytest.mark.parametrize("env", SAMPLES, ids=lambda e: e.type)
def test_encode_decode_round_trip(env: Envelope) -> None:
    assert wire.decode(wire.encode(env)) == env


@pytest.mark.parametrize("env", SAMPLES, ids=lambda e: e.type)
def test_encoder_output_matches_published_json_schema(env: Envelope) -> None:
    jsonschema.validate(json.loads(wire.encode(env)), SCHEMA)


def test_schema_rejects_what_the_decoder_rejects() -> None:
    bad = json.loads(frame("progress", {"current_step": -1}))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    reason_of(json.dumps(bad))


def test_action_round_trip_and_schema() -> None:
    text = wire.encode_action(ActionRequest("retry", ref_seq=12))
    jsonschema.validate(json.loads(text), SCHEMA["$defs"]["action"])
    assert wire.decode_action(text) == ActionRequest("retry", ref_seq=12)
    assert wire.decode_action(wire.encode_action(ActionRequest("cancel"))) == ActionRequest("cancel")


def test_decode_action_rejects_other_types() -> None:
    with pytest.raises(ProtocolError) as info:
        wire.decode_action('{"type": "progress", "data": {}}')
    assert info.value.field == "type"


def test_hello_with_minimal_fields_round_trips() -> None:
    env = Envelope("hello", Hello(name="n", run_id="r"), seq=0, job_id="j", ts=TS)
    assert wire.decode(wire.encode(env)) == env


def test_encode_refuses_bodies_it_cannot_send() -> None:
    with pytest.raises(TypeError, match="Unknown"):
        wire.encode(Envelope("telemetry", Unknown("telemetry"), seq=1, job_id="j", ts=TS))


def test_decode_refuses_non_text_frames() -> None:
    with pytest.raises(ProtocolError, match="str or bytes, not int"):
        wire.decode(123)  # type: ignore[arg-type]


def test_encode_refuses_non_finite_numbers() -> None:
    env = Envelope("progress", Progress(1, 10, loss=math.nan), seq=1, job_id="j", ts=TS)
    with pytest.raises(ValueError):
        wire.encode(env)


def test_timestamps_are_iso8601_utc_with_z() -> None:
    assert wire.format_ts(TS) == "2023-11-14T22:13:20.250Z"
    assert wire.parse_ts("2023-11-14T22:13:20.250Z") == TS
    assert wire.parse_ts("2023-11-14T23:13:20.250+01:00") == TS
    assert wire.parse_ts("2023-11-14T22:13:20.250") == TS  # naive means UTC


# --------------------------------------------------------------------------- legacy PEFT Studio frames


def test_legacy_peft_studio_frame_is_a_notification() -> None:
    legacy = {
        "type": "notification",
        "data": {
            "type": "progress",
            "title": "Training 25% Complete",
            "message": "Step 250 of 1000",
            "milestone": 25,
            "urgency": "normal",
            "sound": False,
            "actions": None,
            "taskbar_progress": 0.25,
            "respect_dnd": True,
        },
    }
    env = wire.decode(json.dumps(legacy))
    assert env.legacy and env.seq is None and env.job_id is None
    assert isinstance(env.data, NotificationEvent)
    assert env.data.milestone == 25 and env.data.taskbar_progress == 0.25
    assert json.loads(wire.encode(env)) == {
        **legacy,
        "data": {k: v for k, v in legacy["data"].items() if v is not None},
    }


def test_error_notification_defaults_to_bypassing_dnd() -> None:
    env = wire.decode(frame("notification", {"type": "error", "title": "boom"}))
    assert isinstance(env.data, NotificationEvent)
    assert env.data.respect_dnd is False and env.data.urgency == UrgencyLevel.NORMAL and env.data.message == ""


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (frame("progress", {"current_step": -1}), "data.current_step", ">= 0"),
        (frame("progress", {"current_step": 11, "total_steps": 10}), "data.current_step", "exceeds total_steps"),
        (frame("progress", {"current_step": 0, "total_steps": 0}), "data.total_steps", ">= 1"),
        (frame("progress", {"current_step": "3"}), "data.current_step", "integer, not string"),
        (frame("progress", {"current_step": 1, "loss": "x"}), "data.loss", "number, not string"),
        (frame("progress", {"current_step": 1, "loss": 7}).replace("7", "1e400"), "data.loss", "finite"),
        (frame("progress", {"current_step": 1, "metrics": {"acc": True}}), "data.metrics.acc", "number"),
        (frame("progress", {"current_step": True}), "data.current_step", "integer, not boolean"),
        (frame("notification", {"type": "progress", "title": "t" * 257}), "data.title", "limit is 256"),
        (frame("notification", {"type": "progress", "title": "t", "message": "m" * 4097}), "data.message", "4096"),
        (frame("notification", {"type": "party", "title": "t"}), "data.type", "unknown value 'party'"),
        (frame("notification", {"type": "error", "title": "t", "urgency": "asap"}), "data.urgency", "expected one of"),
        (frame("notification", {"type": "error", "title": "t", "sound": "yes"}), "data.sound", "boolean"),
        (frame("notification", {"type": "error", "title": "t", "actions": "Retry"}), "data.actions", "array"),
        (frame("notification", {"type": "error", "title": "t", "actions": [1]}), "data.actions[0]", "string"),
        (
            frame("notification", {"type": "error", "title": "t", "taskbar_progress": -0.5}),
            "data.taskbar_progress",
            "-1",
        ),
        (frame("notification", {"type": "error"}), "data.title", "required"),
        (frame("notification", {"type": "progress", "title": "t", "milestone": 101}), "data.milestone", "<= 100"),
        (frame("notification", {"type": "error", "title": "t", "actions": ["a"] * 9}), "data.actions", "limit is 8"),
        (frame("notification", {"type": "error", "title": "t", "actions": [""]}), "data.actions[0]", "1..64"),
        (
            frame("notification", {"type": "error", "title": "t", "taskbar_progress": 1.5}),
            "data.taskbar_progress",
            "<=",
        ),
        (frame("progress", {"current_step": 1, "epoch": -1}), "data.epoch", ">= 0.0"),
        (frame("progress", {"current_step": 1, "loss": 7}).replace("7", "9" * 400), "data.loss", "too large"),
        (
            frame("progress", {"current_step": 1, "metrics": {str(i): 1 for i in range(65)}}),
            "data.metrics",
            "limit is 64",
        ),
        (frame("progress", {"current_step": 1, "metrics": {"": 1}}), "data.metrics", "metric names"),
        (frame("status", {"state": "exploded"}), "data.state", "expected one of"),
        (frame("hello", {"name": "n", "run_id": ""}), "data.run_id", "empty"),
        (frame("hello", {"name": "n", "run_id": "r", "started_at": "yesterday"}), "data.started_at", "ISO 8601"),
        (frame("progress", {"current_step": 1}, v=2), "v", "unsupported protocol version 2"),
        (frame("progress", {"current_step": 1}, seq=-5), "seq", ">= 0"),
        (frame("progress", {"current_step": 1}, job_id="../etc"), "job_id", "A-Z"),
        (frame("progress", {"current_step": 1}, ts="soon"), "ts", "ISO 8601"),
        (frame("progress", None), "data", "object, not null"),
        ('{"v": 1, "seq": 1, "type": "progress", "job_id": "j", "ts": "2023-11-14T22:13:20Z"}', "data", "required"),
        ("[1, 2]", None, "object, not array"),
        ('{"data": {}}', "type", "required"),
    ],
)
def test_invalid_frames_raise_protocol_error_naming_the_field(raw: str, field: str | None, words: str) -> None:
    err = reason_of(raw)
    assert err.field == field
    assert words in str(err)
    if field:
        assert field in str(err)


def test_nan_and_infinity_literals_are_rejected() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        err = reason_of(
            frame("progress", {"current_step": 1}).replace('"current_step": 1', f'"loss": {literal}, "current_step": 1')
        )
        assert "non-finite" in str(err)


def test_oversized_frames_are_rejected_before_parsing() -> None:
    big = frame("notification", {"type": "warning", "title": "t", "message": "x" * MAX_FRAME_BYTES})
    assert "exceeds" in str(reason_of(big))
    assert "exceeds" in str(reason_of(big.encode()))


def test_the_byte_limit_counts_utf8_bytes_of_str_frames() -> None:
    def warning(message: str) -> str:
        text = frame("notification", {"type": "warning", "title": "t", "message": message})
        return text.replace("\\u00e9", "é")  # as a server with ensure_ascii=False sends it

    fits = warning("é" * 4000)  # 2 bytes each: well under the limit in bytes and in characters
    assert wire.decode(fits).data.message == "é" * 4000  # type: ignore[union-attr]
    over = warning("é" * (MAX_FRAME_BYTES // 2))  # under the limit in characters, over it in bytes
    assert len(over) < MAX_FRAME_BYTES
    assert "exceeds" in str(reason_of(over))


def test_a_str_frame_with_a_byte_order_mark_is_not_json() -> None:
    assert "UTF-8 BOM" in str(reason_of("\ufeff" + frame("progress", {"current_step": 1})))


def test_non_utf8_and_non_json_frames() -> None:
    assert "UTF-8" in str(reason_of(b"\xff\xfe{}"))
    assert "not valid JSON" in str(reason_of("{not json"))
    deep = "[" * 30_000 + "]" * 30_000  # under the byte limit, over the parser's recursion limit
    assert "nested too deeply" in str(reason_of(deep))


def test_unknown_fields_ignored_and_unknown_types_decoded_as_unknown() -> None:
    env = wire.decode(frame("progress", {"current_step": 3, "shiny": [1, 2]}, extra=True))
    assert env.data == Progress(3)
    unknown = wire.decode(frame("telemetry", {"anything": 1}))
    assert unknown.data == Unknown("telemetry") and unknown.seq == 1


def test_integral_floats_are_accepted_as_steps() -> None:
    env = wire.decode(frame("progress", {"current_step": 5.0, "total_steps": 10.0}))
    assert env.data == Progress(5, 10)
    assert "integer" in str(reason_of(frame("progress", {"current_step": 5.5})))


def test_progress_fraction_and_mapping_helpers() -> None:
    assert Progress(250, 1000).fraction == 0.25
    assert Progress(5).fraction is None
    assert wire.progress_from_mapping({"current_step": 2, "total_steps": 4}).fraction == 0.5
    with pytest.raises(ProtocolError):
        wire.progress_from_mapping({"current_step": 5, "total_steps": 4})
    assert wire.notification_from_mapping({"type": "warning", "title": "w"}).type is NotificationType.WARNING


def test_job_id_validation() -> None:
    assert wire.is_valid_job_id("run-2024.11:a_b")
    assert not wire.is_valid_job_id("")
    assert not wire.is_valid_job_id("-leading")
    assert not wire.is_valid_job_id("a/b")
    assert not wire.is_valid_job_id("x" * 129)


def test_job_state_finished() -> None:
    assert {s for s in JobState if s.finished} == {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

FIELDS = ["v", "seq", "type", "job_id", "ts", "data", "current_step", "total_steps", "title", "state", "name", "run_id"]


@st.composite
def near_valid_frames(draw: st.DrawFn) -> str:
    """Frames shaped like real messages with random values in random fields."""
    base = json.loads(wire.encode(draw(st.sampled_from(SAMPLES))))
    target = base if draw(st.booleans()) else base["data"]
    key = draw(st.sampled_from(FIELDS) | st.text(max_size=8))
    if draw(st.booleans()):
        target[key] = draw(json_values)
    else:
        target.pop(key, None)
    return json.dumps(base)


def _decodes_or_protocol_error(raw: str | bytes) -> None:
    try:
        env = wire.decode(raw)
    except ProtocolError as exc:
        assert str(exc)
    else:
        assert isinstance(env, Envelope)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _decodes_or_protocol_error(raw)


@settings(max_examples=300)
@given(json_values)
def test_fuzz_arbitrary_json(value: object) -> None:
    _decodes_or_protocol_error(json.dumps(value))


@settings(max_examples=500)
@given(near_valid_frames())
def test_fuzz_near_valid_frames(raw: str) -> None:
    _decodes_or_protocol_error(raw)


@settings(max_examples=200)
@given(
    st.integers(min_value=0, max_value=10**6),
    st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)
def test_valid_progress_always_round_trips(step: int, total: int | None, loss: float | None) -> None:
    if total is not None and step > total:
        step = total
    env = Envelope("progress", Progress(step, total, loss=loss), seq=1, job_id="j", ts=TS)
    assert wire.decode(wire.encode(env)) == env


# ------------------------------------------------------------ the progress peek (desktop coalescing)

_job_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,40}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    job_id=_job_ids,
    seq=st.integers(min_value=0, max_value=2**53),
    step=st.integers(min_value=0, max_value=10**9),
    metrics=st.dictionaries(st.sampled_from(["eval_loss", "accuracy"]), st.floats(0, 10), max_size=2),
    name=st.text(max_size=30),
)
def test_peek_progress_job_agrees_with_the_encoder(
    job_id: str, seq: int, step: int, metrics: dict[str, float], name: str
) -> None:
    """Every progress frame encode() writes peeks as its job (None with metrics); nothing else does."""
    progress = Envelope("progress", Progress(current_step=step, metrics=metrics), seq=seq, job_id=job_id, ts=TS)
    frame = wire.encode(progress)
    assert wire.peek_progress_job(frame) == (None if metrics else wire.decode(frame).job_id)
    others = [
        Envelope("hello", Hello(name=name, run_id="r"), seq=seq, job_id=job_id, ts=TS),
        Envelope("status", Status(state=JobState.PAUSED, reason=f'"type":"progress" {name}'), seq=seq, job_id=job_id),
        Envelope(
            "notification",
            NotificationEvent(
                type=NotificationType.WARNING, title='{"v":1,"seq":1,"type":"progress","job_id":"x"', message=""
            ),
            seq=seq,
            job_id=job_id,
            ts=TS,
        ),
        Envelope(
            "notification", NotificationEvent(type=NotificationType.COMPLETION, title=name, message=""), ts=TS, v=None
        ),
    ]
    for env in others:
        assert wire.peek_progress_job(wire.encode(env)) is None


def test_peek_progress_job_misses_other_producers_safely() -> None:
    """Frames written differently (spaces, key order) are not peeked: they are decoded in full."""
    compact = wire.encode(Envelope("progress", Progress(current_step=1), seq=1, job_id="j", ts=TS))
    spaced = json.dumps(json.loads(compact))
    reordered = json.dumps({"type": "progress", **json.loads(compact)}, separators=(",", ":"))
    assert wire.peek_progress_job(compact) == "j"
    assert wire.peek_progress_job(spaced) is None
    assert wire.peek_progress_job(reordered) is None
    assert wire.decode(spaced).job_id == wire.decode(reordered).job_id == "j"
