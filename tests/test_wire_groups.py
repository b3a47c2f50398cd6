"""``hello.group`` (issue 15): round trip, JSON Schema, strict validation, ids from free-form names."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from peft_notify import wire
from peft_notify.wire import Envelope, Group, GroupMode, Hello, ProtocolError

SCHEMA = json.loads((Path(__file__).parents[1] / "resources" / "protocol-v1.schema.json").read_text())

GROUPED = Envelope(
    "hello",
    Hello(
        name="trial-3",
        run_id="r1",
        group=Group(
            id="sweep-lr.2026",
            name="sweep lr",
            expected_jobs=40,
            metric="eval_loss",
            mode=GroupMode.MIN,
            params={"lr": 2e-4, "r": 16, "optim": "adamw", "bf16": True},
        ),
    ),
    seq=0,
    job_id="trial-3",
    ts=1_700_000_000.0,
)


def hello_frame(group: Any) -> str:
    data = {"name": "t", "run_id": "r", "group": group}
    return json.dumps({"v": 1, "seq": 0, "type": "hello", "job_id": "j", "ts": "2023-11-14T22:13:20Z", "data": data})


def test_group_round_trips_and_matches_the_schema() -> None:
    text = wire.encode(GROUPED)
    assert wire.decode(text) == GROUPED
    jsonschema.validate(json.loads(text), SCHEMA)


def test_hello_without_group_has_no_group_key() -> None:
    env = Envelope("hello", Hello(name="n", run_id="r"), seq=0, job_id="j", ts=0.0)
    assert "group" not in json.loads(wire.encode(env))["data"]
    assert wire.decode(wire.encode(env)).data == Hello(name="n", run_id="r")


def test_minimal_group_defaults() -> None:
    body = wire.decode(hello_frame({"id": "g1"})).data
    assert isinstance(body, Hello)
    assert body.group == Group(id="g1", name="g1")


@pytest.mark.parametrize(
    ("group", "field"),
    [
        ("sweep", "data.group"),
        ({"name": "x"}, "data.group.id"),
        ({"id": "../etc"}, "data.group.id"),
        ({"id": "g", "expected_jobs": 0}, "data.group.expected_jobs"),
        ({"id": "g", "expected_jobs": 10**7}, "data.group.expected_jobs"),
        ({"id": "g", "mode": "median"}, "data.group.mode"),
        ({"id": "g", "metric": ""}, "data.group.metric"),
        ({"id": "g", "params": {"lr": [1, 2]}}, "data.group.params.lr"),
        ({"id": "g", "params": {"lr": None}}, "data.group.params.lr"),
        ({"id": "g", "params": {"n": "x" * 257}}, "data.group.params.n"),
        ({"id": "g", "params": {f"p{i}": i for i in range(33)}}, "data.group.params"),
        ({"id": "g", "params": {"": 1}}, "data.group.params"),
    ],
)
def test_bad_groups_are_rejected_naming_the_field(group: Any, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        wire.decode(hello_frame(group))
    assert info.value.field == field
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(hello_frame(group)), SCHEMA)


def test_non_finite_param_is_rejected() -> None:
    # json.dumps writes NaN; the decoder refuses it (at parse time) like every other number.
    with pytest.raises(ProtocolError, match="NaN"):
        wire.decode(hello_frame({"id": "g", "params": {"lr": float("nan")}}))
    with pytest.raises(ProtocolError) as info:
        wire.group_from_mapping({"id": "g", "params": {"lr": float("inf")}})
    assert info.value.field == "group.params.lr"


def test_group_named_keeps_a_valid_name_as_id() -> None:
    assert wire.group_named("sweep-lr", expected_jobs=4) == Group(id="sweep-lr", name="sweep-lr", expected_jobs=4)


@given(st.text(min_size=1, max_size=200).filter(lambda s: s.strip()))
def test_group_named_always_gives_a_valid_id(name: str) -> None:
    try:
        group = wire.group_named(name)
    except ProtocolError:
        assert len(name.strip()) > wire.MAX_NAME  # only a too-long name is refused
        return
    assert wire.is_valid_job_id(group.id)
    assert group.name == name.strip()


def test_different_names_never_share_an_id() -> None:
    assert wire.group_named("sweep lr").id != wire.group_named("sweep/lr").id


def test_group_named_refuses_empty() -> None:
    with pytest.raises(ProtocolError):
        wire.group_named("   ")


def test_sweep_role_round_trips_and_bad_roles_are_refused() -> None:
    env = Envelope("hello", Hello(name="s", run_id="r", group=Group(id="g", name="g", role=wire.GroupRole.SWEEP)))
    env = replace(env, seq=0, job_id="g.sweep", ts=0.0)
    text = wire.encode(env)
    assert json.loads(text)["data"]["group"]["role"] == "sweep"
    assert wire.decode(text) == env
    jsonschema.validate(json.loads(text), SCHEMA)
    with pytest.raises(ProtocolError) as info:
        wire.decode(hello_frame({"id": "g", "role": "leader"}))
    assert info.value.field == "data.group.role"
