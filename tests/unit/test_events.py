"""The event schemas (streams/events.py): round trips, and errors that name the bad field."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import decode_record, encode_event
from streams.events import (
    EVENT_CLASSES,
    FeedbackEvent,
    MetricsEvent,
    ModelEventEvent,
    PredictionEvent,
    RetrainRequestEvent,
    new_event_id,
    parse_event,
)
from streams.exceptions import EventValidationError, UnknownEventTypeError
from streams.testing import SAMPLE_DATA

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

PREDICTION = {
    "request_id": "req-1",
    "model": "voice-intent",
    "model_version": "3",
    "features": {"loudness_db": -21.5, "mic": "usb", "snr_db": None},
    "prediction": {"label": "weather", "score": 0.91},
    "latency_ms": 38.0,
}

# one minimal valid ``data`` per event type
VALID_DATA: dict[str, dict[str, Any]] = {
    **SAMPLE_DATA,
    # minimal forms where the samples use optional fields
    "driftloop.prediction.v1": PREDICTION,
    "driftloop.retrain-request.v1": {
        "request_id": "rr-1",
        "model": "voice-intent",
        "reason": "concept drift on error_rate",
        "window": {"start": T0 - timedelta(days=1), "end": T0},
        "requested_by": "policy",
    },
    "driftloop.model-event.v1": {"model": "voice-intent", "version": 4, "action": "published"},
}


def _prediction(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(PREDICTION))
    data.update(changes)
    return data


def _errors(exc_info: pytest.ExceptionInfo[EventValidationError]) -> dict[str, str]:
    return {e.path: e.message for e in exc_info.value.errors}


# --------------------------------------------------------------------------- round trips


def test_every_event_class_has_a_test_case() -> None:
    assert set(VALID_DATA) == set(EVENT_CLASSES)


@pytest.mark.parametrize("type_name", sorted(EVENT_CLASSES))
def test_every_event_type_round_trips_through_the_codec(type_name: str) -> None:
    cls = EVENT_CLASSES[type_name]
    event = cls.new(VALID_DATA[type_name], id="ev-1", time=T0)

    decoded = decode_record(encode_event(event))

    assert decoded.ok, [e.reason for e in decoded.errors]
    assert not decoded.batched
    [back] = decoded.events
    assert type(back) is cls
    assert back.type == type_name
    assert (back.id, back.time, back.source) == ("ev-1", T0, event.source)
    assert back.data == event.data
    assert back == event
    assert back.key == event.key


_feature_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.none(),
)
_offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)


@settings(max_examples=150, deadline=None)
@given(
    request_id=st.text(min_size=1, max_size=40),
    model=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,30}\Z"),
    model_version=st.text(min_size=1, max_size=20),
    features=st.dictionaries(st.text(min_size=1, max_size=30), _feature_values, max_size=10),
    label=st.none() | st.text(max_size=30),
    score=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    latency=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    segment=st.none()
    | st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=30), max_size=4),
    route=st.sampled_from([None, "champion", "challenger", "shadow"]),
    time=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=_offsets,
    ),
)
def test_prediction_events_round_trip(
    request_id: str,
    model: str,
    model_version: str,
    features: dict[str, float | str | None],
    label: str | None,
    score: float | None,
    latency: float,
    segment: dict[str, str] | None,
    route: str | None,
    time: datetime,
) -> None:
    data = {
        "request_id": request_id,
        "model": model,
        "model_version": model_version,
        "features": features,
        "prediction": {"label": label, "score": score},
        "latency_ms": latency,
        "segment": segment,
        "route": route,
    }
    event = PredictionEvent.new(data, time=time)

    decoded = decode_record(encode_event(event))

    assert decoded.ok, [e.reason for e in decoded.errors]
    [back] = decoded.events
    assert back == event
    assert back.time == time
    assert back.data.features == features  # numbers stay numbers, text stays text
    assert {k: type(v) for k, v in back.data.features.items()} == {
        k: type(v) for k, v in features.items()
    }
    assert back.data.prediction.label == label
    assert back.data.latency_ms == latency


# --------------------------------------------------------------------------- errors name the field


def test_missing_request_id_is_named() -> None:
    data = _prediction()
    del data["request_id"]
    with pytest.raises(EventValidationError) as exc_info:
        PredictionEvent.new(data)
    assert _errors(exc_info) == {"data.request_id": "Field required"}
    assert "data.request_id: Field required" in str(exc_info.value)


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        pytest.param({"latency_ms": "fast"}, "data.latency_ms", "valid number", id="wrong-type"),
        pytest.param({"latency_ms": math.nan}, "data.latency_ms", "finite", id="nan-latency"),
        pytest.param({"latency_ms": math.inf}, "data.latency_ms", "finite", id="inf-latency"),
        pytest.param({"latency_ms": -1.0}, "data.latency_ms", "greater than or equal to 0",
                     id="negative-latency"),
        pytest.param({"prediction": {"label": "x", "score": math.nan}}, "data.prediction.score",
                     "finite", id="nan-score"),
        pytest.param({"model": "my model!"}, "data.model", "pattern", id="model-name-space"),
        pytest.param({"lable": "weather"}, "data.lable", "unknown field", id="typo-field"),
        pytest.param({"route": "canary"}, "data.route", "champion", id="bad-route"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_naming_the_field(
    changes: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(EventValidationError) as exc_info:
        PredictionEvent.new(_prediction(**changes))
    errors = _errors(exc_info)
    assert list(errors) == [path]
    assert words in errors[path]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_feature_values_are_refused(value: float) -> None:
    # a NaN feature is a broken featuriser; it must not reach the detectors (nor as text "nan")
    with pytest.raises(EventValidationError) as exc_info:
        PredictionEvent.new(_prediction(features={"loudness_db": value}))
    assert all(path.startswith("data.features.loudness_db") for path in _errors(exc_info))


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_non_finite_model_event_details_are_refused(value: float) -> None:
    data = dict(VALID_DATA["driftloop.model-event.v1"], details={"p_value": value})
    with pytest.raises(EventValidationError) as exc_info:
        ModelEventEvent.new(data)
    assert all(path.startswith("data.details.p_value") for path in _errors(exc_info))


def test_a_huge_number_literal_in_a_feature_is_refused() -> None:
    # JSON 1e400 parses to float inf without any NaN/Infinity literal in the text
    event = PredictionEvent.new(_prediction(), id="ev-1", time=T0)
    text = encode_event(event).replace(b'"loudness_db":-21.5', b'"loudness_db":1e400')
    decoded = decode_record(text)
    assert decoded.events == []
    assert "data.features.loudness_db" in decoded.errors[0].reason


def test_a_feature_of_the_wrong_type_is_reported_at_the_features_path() -> None:
    # the path must be a place in the user's document, not a pydantic union member (".float")
    with pytest.raises(EventValidationError) as exc_info:
        PredictionEvent.new(_prediction(features={"loudness_db": [1, 2]}))
    assert set(_errors(exc_info)) == {"data.features.loudness_db"}


def test_naive_time_is_refused() -> None:
    with pytest.raises(EventValidationError) as exc_info:
        PredictionEvent.new(_prediction(), time=datetime(2026, 1, 1, 12, 0))
    assert list(_errors(exc_info)) == ["time"]
    assert "timezone" in _errors(exc_info)["time"]


def test_time_string_without_offset_is_refused() -> None:
    raw = json.loads(encode_event(PredictionEvent.new(_prediction(), time=T0)))
    raw["time"] = "2026-01-01T12:00:00"
    with pytest.raises(EventValidationError) as exc_info:
        parse_event(raw)
    assert list(_errors(exc_info)) == ["time"]


def test_specversion_other_than_1_0_is_refused() -> None:
    raw = json.loads(encode_event(PredictionEvent.new(_prediction(), time=T0)))
    raw["specversion"] = "0.3"
    with pytest.raises(EventValidationError) as exc_info:
        parse_event(raw)
    errors = _errors(exc_info)
    assert list(errors) == ["specversion"]
    assert "'1.0'" in errors["specversion"]
    assert "0.3" in errors["specversion"]


@pytest.mark.parametrize("name", ["Foo_Bar", "trace-parent", "x" * 21, "Traceparent"])
def test_bad_extension_attribute_name_is_refused(name: str) -> None:
    with pytest.raises(EventValidationError) as exc_info:
        PredictionEvent.new(_prediction(), **{name: "x"})
    assert repr(name) in str(exc_info.value)
    raw = json.loads(encode_event(PredictionEvent.new(_prediction(), time=T0)))
    raw[name] = "x"
    with pytest.raises(EventValidationError, match="unknown attribute"):
        parse_event(raw)


def test_good_extension_attribute_is_kept_on_re_encode() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = PredictionEvent.new(_prediction(), id="ev-1", time=T0, traceparent=traceparent)

    wire = encode_event(event)
    assert json.loads(wire)["traceparent"] == traceparent

    [back] = decode_record(wire).events
    assert back.model_extra == {"traceparent": traceparent}
    assert encode_event(back) == wire


# --------------------------------------------------------------------------- parse_event


def test_unknown_type_lists_the_known_types() -> None:
    with pytest.raises(UnknownEventTypeError) as exc_info:
        parse_event({"type": "driftloop.predictoin.v1", "data": {}})
    message = str(exc_info.value)
    assert "driftloop.predictoin.v1" in message
    for type_name in EVENT_CLASSES:
        assert type_name in message


def test_newer_schema_version_is_named_as_unsupported() -> None:
    with pytest.raises(UnknownEventTypeError) as exc_info:
        parse_event({"type": "driftloop.prediction.v2", "data": {}})
    message = str(exc_info.value)
    assert "unsupported schema version" in message
    assert "driftloop.prediction.v2" in message
    assert "driftloop.prediction.v1" in message


@pytest.mark.parametrize("value", [[], [{"type": "driftloop.feedback.v1"}], "event", 42, None])
def test_non_object_is_refused(value: object) -> None:
    with pytest.raises(EventValidationError, match="must be a JSON object") as exc_info:
        parse_event(value)
    assert type(value).__name__ in str(exc_info.value)


def test_missing_type_is_named() -> None:
    raw = json.loads(encode_event(PredictionEvent.new(_prediction(), time=T0)))
    del raw["type"]
    with pytest.raises(EventValidationError) as exc_info:
        parse_event(raw)
    assert _errors(exc_info) == {"type": "Field required"}


def test_non_string_type_is_refused() -> None:
    with pytest.raises(UnknownEventTypeError, match="type must be a string"):
        parse_event({"type": 7})


# --------------------------------------------------------------------------- feedback, versions


def test_feedback_without_any_signal_is_refused() -> None:
    with pytest.raises(EventValidationError) as exc_info:
        FeedbackEvent.new({"request_id": "req-1", "model": "voice-intent"})
    assert "no signal" in str(exc_info.value)
    for signal in ("label", "redo_search", "switched_to_typing", "clicked"):
        assert signal in str(exc_info.value)


@pytest.mark.parametrize(
    "signal",
    [
        {"label": "weather"},
        {"redo_search": True},
        {"redo_search": False},
        {"switched_to_typing": True},
        {"clicked": True},
        {"clicked": False},
    ],
)
def test_each_feedback_signal_alone_is_enough(signal: dict[str, Any]) -> None:
    event = FeedbackEvent.new({"request_id": "req-1", "model": "voice-intent", **signal})
    [(name, value)] = signal.items()
    assert getattr(event.data, name) == value
    assert event.key == "req-1"


@pytest.mark.parametrize(("given_version", "expected"), [(3, "3"), (2.5, "2.5"), ("7", "7")])
def test_numeric_model_version_becomes_a_string(given_version: object, expected: str) -> None:
    event = PredictionEvent.new(_prediction(model_version=given_version))
    assert event.data.model_version == expected
    assert json.loads(encode_event(event))["data"]["model_version"] == expected


# --------------------------------------------------------------------------- event ids


def test_event_ids_are_unique() -> None:
    ids = [new_event_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_event_ids_differ_in_a_forked_child() -> None:
    parent_id = new_event_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id, and leave without running pytest's teardown
        status = 1
        try:
            os.close(read_end)
            os.write(write_end, new_event_id().encode())
            os.close(write_end)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_id = pipe.read().decode()
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert child_id
    parent_prefix, child_prefix = parent_id.rsplit("-", 1)[0], child_id.rsplit("-", 1)[0]
    assert child_prefix != parent_prefix
    assert new_event_id().rsplit("-", 1)[0] == parent_prefix  # the parent keeps its own


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=-1)], ids=["equal", "before"])
def test_metrics_window_must_end_after_it_starts(delta: timedelta) -> None:
    data = dict(VALID_DATA["driftloop.metrics.v1"], window_end=T0 + delta, window_start=T0)
    with pytest.raises(EventValidationError, match="window_end must be after window_start"):
        MetricsEvent.new(data)


def _retrain(window: dict[str, Any]) -> dict[str, Any]:
    return dict(VALID_DATA["driftloop.retrain-request.v1"], window=window)


def test_offset_range_end_before_start_is_refused() -> None:
    window = {
        "start": T0 - timedelta(hours=1),
        "end": T0,
        "offsets": [{"topic": "driftloop.outcomes", "partition": 0, "start": 10, "end": 9}],
    }
    with pytest.raises(EventValidationError) as exc_info:
        RetrainRequestEvent.new(_retrain(window))
    [(path, message)] = _errors(exc_info).items()
    assert path.startswith("data.window.offsets")
    assert "end offset is before start offset" in message


def test_empty_offset_range_is_accepted() -> None:
    window = {
        "start": T0 - timedelta(hours=1),
        "end": T0,
        "offsets": [{"topic": "driftloop.outcomes", "partition": 0, "start": 10, "end": 10}],
    }
    event = RetrainRequestEvent.new(_retrain(window))
    assert event.data.window.offsets[0].end == 10


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(hours=-1)], ids=["equal", "before"])
def test_data_window_must_end_after_it_starts(delta: timedelta) -> None:
    with pytest.raises(EventValidationError) as exc_info:
        RetrainRequestEvent.new(_retrain({"start": T0, "end": T0 + delta}))
    assert _errors(exc_info) == {"data.window": "window end must be after its start"}
