"""The prediction fast path (streams/rows.py) agrees with the models on good and bad records."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import decode_prediction_rows, decode_record
from streams.rows import PREDICTION_ROWS, prediction_row
from streams.telemetry import Telemetry

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _event(i: int, **data_changes: Any) -> dict[str, Any]:
    data = {
        "request_id": f"r{i}",
        "model": "voice-intent",
        "model_version": "3",
        "features": {"loudness_db": -20.0 + i, "mic": "usb", "snr": None, "flag": True},
        "prediction": {"label": "weather", "score": 0.5},
        "latency_ms": 12.5,
        "segment": {"locale": "en-GB"},
        "host": {"cpu_percent": 30.0, "memory_mb": 512.0},
    }
    data.update(data_changes)
    return {
        "specversion": "1.0",
        "id": f"e{i}",
        "source": "urn:test",
        "type": "driftloop.prediction.v1",
        "time": (T0 + timedelta(seconds=i)).isoformat(),
        "data": data,
    }


def _without_nulls(value: Any) -> Any:
    # a model dump carries unset optional fields as None; a row leaves them out
    if isinstance(value, dict):
        return {
            k: _without_nulls(v)
            for k, v in value.items()
            if v is not None and k != "datacontenttype"  # the model fills in its default
        }
    return value


def _slow_rows(value: bytes) -> list[dict[str, Any]]:
    return [prediction_row(e) for e in decode_record(value).events]


def test_a_valid_batch_gives_the_rows_the_models_give() -> None:
    value = json.dumps([_event(i) for i in range(20)]).encode()
    fast = PREDICTION_ROWS.validate_json(value)
    assert [_without_nulls(r) for r in fast] == [_without_nulls(r) for r in _slow_rows(value)]
    assert fast[0]["data"]["features"]["flag"] == 1.0  # a boolean feature is 0/1, as in the model


BAD_EVENTS = {
    "latency as text": {"latency_ms": "fast"},
    "negative latency": {"latency_ms": -1},
    "feature list": {"features": {"x": [1, 2]}},
    "bad model name": {"model": "has space"},
    "unknown data field": {"lable": "x"},
    "score over the float range": {"prediction": {"label": "a", "score": "high"}},
    "route unknown": {"route": "canary"},
    "empty request id": {"request_id": ""},
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_event_takes_the_slow_path_and_gets_its_reason(case: str) -> None:
    events = [_event(0), _event(1, **BAD_EVENTS[case]), _event(2)]
    value = json.dumps(events).encode()  # json.dumps writes NaN as the literal NaN
    decoded = decode_prediction_rows(value)
    assert [row["id"] for row in decoded.rows] == ["e0", "e2"]
    assert len(decoded.errors) == 1 and decoded.errors[0].index == 1


def test_literals_and_junk_the_json_parser_refuses_are_refused_too() -> None:
    good = json.dumps(_event(0))
    for value in (
        b"[" + good.replace("12.5", "NaN").encode() + b"]",
        b"[" + good.replace("12.5", "Infinity").encode() + b"]",
        b"[" * 10_000 + b"]" * 10_000,
        bytes(random.Random(1).randrange(256) for _ in range(200)),
        b"[" + good.encode() + b",",
    ):
        decoded = decode_prediction_rows(value)
        assert decoded.errors and not decoded.rows


def test_an_extension_attribute_takes_the_slow_path_and_is_kept_valid() -> None:
    event = _event(0)
    event["traceparent"] = "00-abc"
    decoded = decode_prediction_rows(json.dumps([event]).encode())
    assert [row["id"] for row in decoded.rows] == ["e0"] and not decoded.errors


def test_other_event_types_are_set_apart() -> None:
    feedback = {
        "specversion": "1.0",
        "id": "fb",
        "source": "urn:test",
        "type": "driftloop.feedback.v1",
        "time": T0.isoformat(),
        "data": {"request_id": "r0", "model": "voice-intent", "clicked": True},
    }
    decoded = decode_prediction_rows(json.dumps([_event(0), feedback]).encode())
    assert [row["id"] for row in decoded.rows] == ["e0"]
    assert [e.id for e in decoded.others] == ["fb"]


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(
    features=st.dictionaries(st.text(min_size=0, max_size=4), _scalars, max_size=4),
    latency=_scalars,
    version=_scalars,
    label=_scalars,
)
def test_fast_and_slow_paths_agree_on_generated_events(features, latency, version, label):
    event = _event(0, features=features, latency_ms=latency, model_version=version)
    event["data"]["prediction"] = {"label": label}
    value = json.dumps([event]).encode()
    slow = decode_record(value)
    fast = decode_prediction_rows(value)
    assert bool(slow.events) == bool(fast.rows)
    if slow.events:
        assert _without_nulls(fast.rows[0]) == _without_nulls(prediction_row(slow.events[0]))


def test_many_latencies_at_once_fill_the_histogram_as_one_at_a_time() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.lognormal(3, 1.5, 2_000), [5.0, 10.0, 2500.0, 0.0]])
    one, many = Telemetry(), Telemetry()
    for value in values:
        one.latency.observe(value / 1000)
    many.observe_latencies(values)
    samples = [
        [
            (s.name, s.labels.get("le"), round(s.value, 9))
            for s in t.latency.collect()[0].samples
            if not s.name.endswith("_created")
        ]
        for t in (one, many)
    ]
    assert samples[0] == samples[1]
