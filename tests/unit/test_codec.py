"""Record values <-> events (streams/codec.py): bad records get a reason and never raise."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import decode_record, encode_batch, encode_event
from streams.events import FeedbackEvent, PredictionEvent

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _prediction(n: int = 0) -> PredictionEvent:
    return PredictionEvent.new(
        {
            "request_id": f"req-{n}",
            "model": "voice-intent",
            "model_version": "3",
            "features": {"loudness_db": -21.5 + n, "mic": "usb", "snr_db": None},
            "prediction": {"label": "weather", "score": 0.91},
            "latency_ms": 38.0,
        },
        id=f"ev-{n}",
        time=T0,
    )


def _feedback(n: int = 0) -> FeedbackEvent:
    return FeedbackEvent.new(
        {"request_id": f"req-{n}", "model": "voice-intent", "clicked": True},
        id=f"fb-{n}",
        time=T0,
    )


GOOD = encode_event(_prediction())


def _edited(edit: Any) -> bytes:
    raw = json.loads(GOOD)
    edit(raw)
    return json.dumps(raw).encode()


def _with_literal(literal: str) -> bytes:
    return GOOD.replace(b'"latency_ms":38.0', b'"latency_ms":' + literal.encode())


BAD_RECORDS = [
    pytest.param(b'{"specversion": "1.0", "id": ', {}, "not valid JSON", id="truncated-json"),
    pytest.param(b"{'type': 'x'}", {}, "not valid JSON", id="single-quotes"),
    pytest.param(b"   \n", {}, "not valid JSON", id="whitespace-only"),
    pytest.param(b'\xff\xfe{"a": 1}', {}, "UTF-8", id="invalid-utf8"),
    pytest.param(GOOD.replace(b"weather", b"w\xe9ather"), {}, "UTF-8", id="latin1-in-json"),
    pytest.param(
        _edited(lambda r: r["data"].update(latency_ms="fast")), {}, "data.latency_ms",
        id="wrong-type",
    ),
    pytest.param(
        _edited(lambda r: r["data"].pop("request_id")), {}, "data.request_id: Field required",
        id="missing-data-field",
    ),
    pytest.param(_edited(lambda r: r.pop("id")), {}, "id: Field required", id="missing-id"),
    pytest.param(_with_literal("NaN"), {}, "NaN", id="nan-literal"),
    pytest.param(_with_literal("Infinity"), {}, "Infinity", id="infinity-literal"),
    pytest.param(_with_literal("-Infinity"), {}, "-Infinity", id="minus-infinity-literal"),
    pytest.param(b"", {}, "empty", id="empty-bytes"),
    pytest.param(None, {}, "empty", id="none"),
    pytest.param(GOOD, {"max_bytes": len(GOOD) - 1}, "limit", id="oversized"),
    pytest.param(
        _edited(lambda r: r.update(type="driftloop.prediction.v2")), {}, "version",
        id="newer-version",
    ),
    pytest.param(
        _edited(lambda r: r.update(type="com.example.order")), {}, "unknown event type",
        id="foreign-type",
    ),
    pytest.param(b"[" * 100_000, {}, "nested", id="deep-open-arrays"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, {}, "nested", id="deep-closed-arrays"),
    pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, {}, "nested", id="deep-objects"),
    pytest.param(random.Random(1234).randbytes(512), {}, "UTF-8", id="binary-junk"),
    pytest.param(b"42", {}, "got int", id="json-number"),
    pytest.param(b'"an event"', {}, "got str", id="json-string"),
    pytest.param(b"null", {}, "got NoneType", id="json-null"),
    pytest.param(b"[42]", {}, "event 0: an event must be a JSON object", id="array-of-number"),
    pytest.param(b"[[]]", {}, "event 0: an event must be a JSON object", id="array-of-array"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "kwargs", "reason"), BAD_RECORDS)
def test_bad_records_are_refused_with_a_reason(
    value: bytes | None, kwargs: dict[str, Any], reason: str
) -> None:
    decoded = decode_record(value, **kwargs)

    assert decoded.events == []
    assert not decoded.ok
    assert len(decoded.errors) == 1
    assert reason in decoded.errors[0].reason


def test_random_bytes_never_raise() -> None:
    rng = random.Random(20260102)
    for _ in range(500):
        value = rng.randbytes(rng.randint(1, 2048))
        decoded = decode_record(value)
        assert decoded.events == [], value
        assert len(decoded.errors) == 1, value
        assert decoded.errors[0].reason, value


def test_the_size_limit_is_inclusive() -> None:
    assert decode_record(GOOD, max_bytes=len(GOOD)).ok


def test_mixed_batch_keeps_the_good_events_in_order_and_indexes_the_bad() -> None:
    items = [
        json.loads(encode_event(_prediction(0))),
        {"type": "driftloop.prediction.v9"},
        json.loads(encode_event(_feedback(1))),
        42,
        json.loads(encode_event(_prediction(2))),
        dict(json.loads(encode_event(_prediction(3))), specversion="0.3"),
    ]
    decoded = decode_record(json.dumps(items).encode())

    assert decoded.batched
    assert [e.id for e in decoded.events] == ["ev-0", "fb-1", "ev-2"]
    assert [e.index for e in decoded.errors] == [1, 3, 5]
    reasons = [e.reason for e in decoded.errors]
    assert reasons[0].startswith("event 1: ") and "version" in reasons[0]
    assert reasons[1].startswith("event 3: ") and "JSON object" in reasons[1]
    assert reasons[2].startswith("event 5: ") and "specversion" in reasons[2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), max_size=30))
def test_any_mix_of_good_and_bad_events_splits_by_index(pattern: list[bool]) -> None:
    items = [
        json.loads(encode_event(_prediction(i))) if good else {"type": "driftloop.nope.v1"}
        for i, good in enumerate(pattern)
    ]
    decoded = decode_record(json.dumps(items).encode())

    assert [e.id for e in decoded.events] == [f"ev-{i}" for i, good in enumerate(pattern) if good]
    assert [e.index for e in decoded.errors] == [i for i, good in enumerate(pattern) if not good]


@pytest.mark.parametrize("n", [1, 2, 50])
def test_encoded_batch_decodes_to_the_same_events(n: int) -> None:
    events = [_prediction(i) if i % 2 else _feedback(i) for i in range(n)]

    decoded = decode_record(encode_batch(events))

    assert decoded.batched
    assert decoded.ok
    assert decoded.events == events


def test_single_event_record_is_not_batched() -> None:
    decoded = decode_record(encode_event(_feedback()))
    assert not decoded.batched
    assert decoded.events == [_feedback()]
    assert decoded.errors == []


def test_empty_array_is_an_empty_batch() -> None:
    decoded = decode_record(b"[]")
    assert decoded.events == []
    assert decoded.errors == []
    assert decoded.ok
    assert decode_record(encode_batch([])).events == []


def test_unset_optional_attributes_are_left_out_and_set_ones_kept() -> None:
    plain = json.loads(encode_event(_feedback()))
    assert "subject" not in plain and "dataschema" not in plain

    event = FeedbackEvent.new(
        {"request_id": "req-1", "model": "voice-intent", "clicked": True},
        subject="req-1",
        dataschema="urn:driftloop:schema:driftloop.feedback.v1",
    )
    [back] = decode_record(encode_event(event)).events
    assert back.subject == "req-1"
    assert back.dataschema == "urn:driftloop:schema:driftloop.feedback.v1"
