"""The msgspec fast path (streams/frames.py) agrees with the models on good and bad records."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import frames as frames_module
from streams.codec import decode_prediction_rows
from streams.frames import _LISTS, PredictionFrame, decode_prediction_frame, fast_frame

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _event(i: int, **data_changes: Any) -> dict[str, Any]:
    data = {
        "request_id": f"r{i}",
        "model": "voice-intent",
        "model_version": "3",
        "features": {"loudness_db": -20.0 + i, "mic": "usb", "snr": None},
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


def _slow(value: bytes) -> PredictionFrame:
    return PredictionFrame.from_rows(decode_prediction_rows(value).rows)


def _assert_same(fast: PredictionFrame, slow: PredictionFrame) -> None:
    for name in _LISTS:
        if name not in ("hosts", "offsets"):
            assert getattr(fast, name) == getattr(slow, name), name
    for name in ("cpu_percent", "memory_mb"):
        np.testing.assert_array_equal(fast.host_numbers(name), slow.host_numbers(name))
    np.testing.assert_array_equal(fast.time_ms, slow.time_ms)


def _takes_fast_path(value: bytes) -> bool:
    return fast_frame(value) is not None


def test_a_valid_batch_gives_the_frame_the_models_give() -> None:
    events = [_event(i) for i in range(20)]
    events[3]["data"].pop("host")
    events[4]["data"]["segment"] = None
    events[5]["data"]["route"] = "shadow"
    events[6]["data"]["error"] = "Timeout"
    events[7]["data"]["prediction"] = {"label": None}
    events[8]["data"]["features"] = {"loudness_db": 3}  # an integer becomes a float
    value = json.dumps(events).encode()
    assert _takes_fast_path(value)
    fast = decode_prediction_frame(value, 9)
    assert not fast.errors and fast.frame.offsets == [9] * 20
    _assert_same(fast.frame, _slow(value))
    assert fast.frame.features[8] == {"loudness_db": 3.0}
    assert isinstance(fast.frame.features[8]["loudness_db"], float)


BAD_EVENTS = {
    "latency as text": {"latency_ms": "fast"},
    "negative latency": {"latency_ms": -1},
    "feature list": {"features": {"x": [1, 2]}},
    "bad model name": {"model": "has space"},
    "model name ending in a newline": {"model": "voice\n"},
    "unknown data field": {"lable": "x"},
    "score as text": {"prediction": {"label": "a", "score": "high"}},
    "route unknown": {"route": "canary"},
    "empty request id": {"request_id": ""},
    "empty feature name": {"features": {"": 1.0}},
    "number too large": {"latency_ms": 1e400},
    "cpu over the bound": {"host": {"cpu_percent": 1e9}},
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_event_takes_the_slow_path_and_gets_its_reason(case: str) -> None:
    events = [_event(0), _event(1, **BAD_EVENTS[case]), _event(2)]
    value = json.dumps(events).encode().replace(b"Infinity", b"1e400")
    assert not _takes_fast_path(value)
    decoded = decode_prediction_frame(value)
    assert decoded.frame.ids == ["e0", "e2"]
    assert len(decoded.errors) == 1 and decoded.errors[0].index == 1


def test_what_only_the_models_accept_still_gets_in() -> None:
    # a boolean feature (0/1), a numeric version, an extension attribute: the slow path
    extension = _event(3)
    extension["traceparent"] = "00-abc"
    events = [
        _event(0, features={"flag": True}),
        _event(1, model_version=7),
        _event(2),
        extension,
    ]
    value = json.dumps(events).encode()
    assert not _takes_fast_path(value)
    decoded = decode_prediction_frame(value)
    assert decoded.frame.ids == ["e0", "e1", "e2", "e3"] and not decoded.errors
    assert decoded.frame.features[0] == {"flag": 1.0} and decoded.frame.versions[1] == "7"


def test_junk_is_refused_whole() -> None:
    good = json.dumps(_event(0))
    for value in (
        b"[" + good.replace("12.5", "NaN").encode() + b"]",
        b"[" * 10_000 + b"]" * 10_000,
        bytes(random.Random(1).randrange(256) for _ in range(200)),
        b"[" + good.encode() + b",",
        b"",
    ):
        decoded = decode_prediction_frame(value)
        assert decoded.errors and not len(decoded.frame)


_TEXT = st.text(min_size=1, max_size=12)
_VALUE = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(10**6), 10**6),
    st.text(max_size=8),
)
_TIME = st.tuples(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["Z", "+00:00", "+05:30", "-08:00"]),
    st.sampled_from(["", ".1", ".123", ".123456"]),
)


@settings(max_examples=150, deadline=None)
@given(
    features=st.dictionaries(_TEXT, _VALUE, max_size=5),
    segment=st.one_of(st.none(), st.dictionaries(_TEXT, st.text(max_size=8), max_size=2)),
    label=st.one_of(st.none(), st.text(max_size=8)),
    score=st.one_of(st.none(), st.floats(0, 1)),
    latency=st.floats(0, 1e6),
    when=_TIME,
    request_id=_TEXT,
)
def test_whatever_the_fast_path_accepts_the_models_accept_alike(
    features: dict[str, Any],
    segment: dict[str, str] | None,
    label: str | None,
    score: float | None,
    latency: float,
    when: tuple[datetime, str, str],
    request_id: str,
) -> None:
    moment, offset, fraction = when
    event = _event(
        0,
        features=features,
        segment=segment,
        prediction={"label": label, "score": score},
        latency_ms=latency,
        request_id=request_id,
    )
    event["time"] = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset
    value = json.dumps([event, _event(1)]).encode()
    slow = decode_prediction_rows(value)
    if _takes_fast_path(value):
        assert not slow.errors, slow.errors[0].reason
    decoded = decode_prediction_frame(value)
    assert [e.reason for e in decoded.errors] == [e.reason for e in slow.errors]
    _assert_same(decoded.frame, PredictionFrame.from_rows(slow.rows))


def test_columns_of_a_mixed_batch() -> None:
    events = [
        _event(0, features={"x": 1.0, "mic": "usb"}),
        _event(1, features={"x": None}),
        _event(2, features={"x": "loud", "y": 2.0}),
    ]
    frame = decode_prediction_frame(json.dumps(events).encode()).frame
    columns = frame.feature_columns()
    assert sorted(columns) == ["mic", "x", "y"]
    values, present = columns["y"]
    assert present is not None and present.tolist() == [False, False, True]
    assert values[2] == 2.0
    assert columns["x"][0].dtype == object and columns["x"][1] is None
    np.testing.assert_array_equal(
        frame.numeric_matrix(["x", "y", "absent"]),
        [[1.0, np.nan, np.nan], [np.nan, np.nan, np.nan], [np.nan, 2.0, np.nan]],
    )
    assert frame.values_of("mic") == ["usb", None, None]


def test_an_all_numeric_batch_is_one_matrix() -> None:
    events = [_event(i, features={"a": float(i), "b": 2.0 * i}) for i in range(5)]
    frame = decode_prediction_frame(json.dumps(events).encode()).frame
    columns = frame.feature_columns()
    assert columns["a"][1] is None and columns["a"][0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert columns["b"][0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_concat_and_take_keep_offsets_and_order() -> None:
    first = decode_prediction_frame(json.dumps([_event(0), _event(1)]).encode(), 4).frame
    second = decode_prediction_frame(json.dumps([_event(2)]).encode(), 5).frame
    both = PredictionFrame.concat([first, second])
    assert both.ids == ["e0", "e1", "e2"] and both.offsets == [4, 4, 5]
    assert both.take([2, 0]).request_ids == ["r2", "r0"]
    assert len(PredictionFrame.empty()) == 0


# ---------------------------------------------------------------- one schema, one matrix

_NAMES = ("a b", "f1", "f0", "loudness_db", "é")  # attribute-like and odd names alike


def _numeric_record(start: int, names: tuple[str, ...], size: int = 4) -> bytes:
    events = [
        _event(i, features={name: float(i * (j + 1)) for j, name in enumerate(names)})
        for i in range(start, start + size)
    ]
    return json.dumps(events).encode()


def test_a_record_with_the_last_records_features_is_decoded_straight_into_a_matrix() -> None:
    frames_module._SCHEMAS.use(None)
    first = decode_prediction_frame(_numeric_record(0, _NAMES)).frame
    assert first._features is not None  # the dict path found the schema ...
    current = frames_module._SCHEMAS.current
    assert current is not None and current.names == tuple(sorted(_NAMES))
    value = _numeric_record(4, _NAMES)
    second = decode_prediction_frame(value, 3).frame
    assert second._features is None  # ... and the next record went straight into a matrix
    _assert_same(second, _slow(value))
    names, matrix = second.feature_matrix()  # type: ignore[misc]
    assert names == tuple(sorted(_NAMES))
    assert matrix[:, names.index("f1")].tolist() == [8.0, 10.0, 12.0, 14.0]
    assert (
        second.values_of("é") == [20.0, 25.0, 30.0, 35.0] and second.values_of("zz") == [None] * 4
    )
    assert second.features[1] == {name: 5.0 * (j + 1) for j, name in enumerate(_NAMES)}


def test_take_and_concat_keep_features_made_from_a_matrix() -> None:
    frames_module._SCHEMAS.use(tuple(sorted(_NAMES)))
    lazy = decode_prediction_frame(_numeric_record(0, _NAMES), 1).frame
    other = decode_prediction_frame(_numeric_record(4, _NAMES), 2).frame
    assert lazy._features is None and other._features is None
    both = PredictionFrame.concat([lazy, other])
    assert both._features is None and both.offsets == [1] * 4 + [2] * 4
    assert both.features == _slow(_numeric_record(0, _NAMES, 8)).features
    picked = PredictionFrame.concat([lazy, other]).take([6, 1])
    assert picked._features is None and picked.request_ids == ["r6", "r1"]
    assert picked.features == [both.features[6], both.features[1]]
    # a frame of dicts joined to one of a matrix: the dicts stay as they came
    dicts = _slow(_numeric_record(8, _NAMES, 2))
    mixed = PredictionFrame.concat([lazy, dicts])
    assert mixed._features is not None and mixed.features[4:] == dicts.features
    assert mixed.feature_matrix()[1].shape == (6, len(_NAMES))  # type: ignore[index]


_SWAPS = {
    "another name": lambda f: {**{k: v for k, v in f.items() if k != "f0"}, "g": 1.0},
    "one missing": lambda f: {k: v for k, v in f.items() if k != "f0"},
    "one more": lambda f: {**f, "extra": 2.0},
    "a null": lambda f: {**f, "f0": None},
    "a string": lambda f: {**f, "f0": "loud"},
    "an integer": lambda f: {**f, "f0": 7},
}


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from([_NAMES, _NAMES[:2], ("x",)]),
            st.integers(1, 5),
            st.one_of(st.none(), st.tuples(st.sampled_from(sorted(_SWAPS)), st.integers(0, 4))),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_records_of_changing_features_decode_as_the_models_do(
    records: list[tuple[tuple[str, ...], int, tuple[str, int] | None]],
) -> None:
    frames_module._SCHEMAS.use(None)
    for names, size, swap in records:
        events = [
            _event(i, features={name: float(i * (j + 1)) for j, name in enumerate(names)})
            for i in range(size)
        ]
        if swap is not None:
            how, at = swap
            data = events[min(at, size - 1)]["data"]
            data["features"] = _SWAPS[how](data["features"])
        value = json.dumps(events).encode()
        decoded = decode_prediction_frame(value, 5)
        assert not decoded.errors
        slow = _slow(value)
        _assert_same(decoded.frame, slow)
        for name in slow.feature_names():
            assert decoded.frame.values_of(name) == slow.values_of(name), name
        np.testing.assert_array_equal(
            decoded.frame.numeric_matrix(names), slow.numeric_matrix(names)
        )
