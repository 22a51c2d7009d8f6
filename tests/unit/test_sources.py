"""Reading events to publish from JSON Lines and CSV (producers/sources.py)."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from producers.sources import SourceLine, detect_format, open_input, read_events
from streams.codec import encode_event
from streams.events import FeedbackEvent, PredictionEvent

PREDICTION: dict[str, Any] = {
    "request_id": "r1",
    "model": "voice-intent",
    "model_version": "3",
    "features": {"loudness_db": -21.5},
    "prediction": {"label": "weather", "score": 0.9},
    "latency_ms": 12.0,
}


def _line(**changes: Any) -> str:
    return json.dumps({**PREDICTION, **changes})


def _read(kind: str, text: str, fmt: str = "jsonl") -> list[SourceLine]:
    return list(read_events(kind, io.StringIO(text), fmt))  # type: ignore[arg-type]


def _by_line(results: list[SourceLine]) -> dict[int, SourceLine]:
    return {r.line: r for r in results}


# --------------------------------------------------------------------------- JSON Lines


def test_jsonl_good_and_bad_lines_keep_their_line_numbers() -> None:
    full_event = encode_event(
        PredictionEvent.new(PREDICTION, id="ev-full", time=datetime(2026, 1, 1, tzinfo=UTC))
    ).decode()
    lines = [
        _line(request_id="r1"),  # 1
        "",  # 2 blank
        "   \t",  # 3 blank
        '{"request_id": "r4", "model": "voice-int',  # 4 truncated
        "[1, 2, 3]",  # 5 an array, not an object
        _line(request_id="r6").replace("12.0", "NaN"),  # 6 NaN literal
        full_event,  # 7 a whole CloudEvent
        _line(request_id="r8"),  # 8
    ]
    results = _read("prediction", "\n".join(lines) + "\n")

    assert [r.line for r in results] == [1, 4, 5, 6, 7, 8]
    by_line = _by_line(results)
    assert by_line[1].event is not None and by_line[1].event.data.request_id == "r1"
    assert by_line[4].event is None and "not valid JSON" in by_line[4].error
    assert by_line[5].event is None and "expected a JSON object, got list" in by_line[5].error
    assert by_line[6].event is None and "NaN" in by_line[6].error
    assert by_line[7].event is not None and by_line[7].event.id == "ev-full"
    assert by_line[8].event is not None and by_line[8].event.data.request_id == "r8"
    assert all((r.event is None) != (r.error is None) for r in results)


def test_a_full_event_of_another_kind_is_refused_naming_type() -> None:
    feedback = FeedbackEvent.new({"request_id": "r1", "model": "voice-intent", "clicked": True})
    [result] = _read("prediction", encode_event(feedback).decode())
    assert result.event is None
    assert result.error.startswith("type: ")
    assert "driftloop.feedback.v1" in result.error
    assert "driftloop.prediction.v1" in result.error


def test_bare_data_lifts_id_time_and_source_into_the_envelope() -> None:
    text = _line(id="my-id", time="2026-01-02T03:04:05+01:00", source="urn:my-service")
    [result] = _read("prediction", text)

    event = result.event
    assert event is not None, result.error
    assert event.id == "my-id"
    assert event.time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert event.source == "urn:my-service"
    assert "id" not in event.data.model_dump()


def test_bare_data_without_envelope_keys_gets_a_fresh_id_and_time() -> None:
    before = datetime.now(UTC)
    results = _read("prediction", _line(request_id="a") + "\n" + _line(request_id="b"))
    ids = [r.event.id for r in results]
    assert len(set(ids)) == 2
    assert all(r.event.time >= before for r in results)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"latency_ms": "fast"}, "latency_ms: Input should be a valid number"),
        ({"prediction": {"label": "x", "score": "high"}}, "prediction.score: "),
        ({"lable": "x"}, "lable: unknown field"),
        ({"model": "my model!"}, "model: String should match pattern"),
        ({"time": "2026-01-02T03:04:05"}, "time: Input should have timezone info"),
    ],
)
def test_bare_data_errors_name_fields_as_the_user_wrote_them(
    changes: dict[str, Any], expected: str
) -> None:
    text = "\n".join([_line(request_id="ok"), "", _line(**changes)])
    results = _read("prediction", text)

    assert [r.line for r in results] == [1, 3]
    bad = results[1]
    assert bad.event is None
    assert bad.error.startswith(expected), bad.error
    assert "data." not in bad.error


def test_bare_data_missing_field_is_named() -> None:
    data = dict(PREDICTION)
    del data["request_id"]
    [result] = _read("prediction", json.dumps(data))
    assert result.error == "request_id: Field required"


def test_bare_feedback_without_signal_is_refused() -> None:
    [result] = _read("feedback", '{"request_id": "r1", "model": "voice-intent"}')
    assert result.event is None
    assert "no signal" in result.error


# --------------------------------------------------------------------------- CSV

PREDICTION_CSV = (
    "request_id,model,model_version,features.loudness_db,features.mic,features.snr_db,"
    "prediction.label,prediction.score,latency_ms,segment.locale\n"
    "r1,voice-intent,3,-21.5,usb,,weather,0.9,12,en-GB\n"
    "r2,voice-intent,3,1e3,usb,7,music,0.8,40.5,de-DE\n"
)


def test_csv_dotted_columns_nest_and_features_become_numbers() -> None:
    results = _read("prediction", PREDICTION_CSV, "csv")

    assert [r.line for r in results] == [2, 3]  # the header is line 1
    first, second = (r.event.data for r in results)
    # an empty feature cell is a missing value: null, as in JSON
    assert first.features == {"loudness_db": -21.5, "mic": "usb", "snr_db": None}
    assert isinstance(first.features["loudness_db"], float)
    assert first.prediction.label == "weather"
    assert first.prediction.score == 0.9
    assert first.latency_ms == 12.0
    assert first.segment == {"locale": "en-GB"}
    assert first.model_version == "3"
    assert second.features == {"loudness_db": 1000.0, "mic": "usb", "snr_db": 7.0}


@pytest.mark.parametrize("cell", ["usb", "nan", "inf", "-21.5dB"])
def test_csv_non_numeric_or_non_finite_feature_cells_stay_text(cell: str) -> None:
    header = "request_id,model,model_version,features.x,prediction.label,latency_ms"
    text = f"{header}\nr1,m,1,{cell},a,5\n"
    [result] = _read("prediction", text, "csv")
    assert result.event is not None, result.error
    assert result.event.data.features == {"x": cell}


def test_csv_feedback_booleans_and_empty_cells() -> None:
    text = (
        "request_id,model,redo_search,switched_to_typing,clicked,label\n"
        "r1,voice-intent,true,false,,\n"
        "r2,voice-intent,,,,weather\n"
        "r3,voice-intent,,,,\n"
        "r4,voice-intent,maybe,,,\n"
    )
    by_line = _by_line(_read("feedback", text, "csv"))

    r1 = by_line[2].event.data
    assert (r1.redo_search, r1.switched_to_typing) == (True, False)
    assert (r1.clicked, r1.label) == (None, None)
    r2 = by_line[3].event.data
    assert (r2.redo_search, r2.label) == (None, "weather")
    assert by_line[4].event is None and "no signal" in by_line[4].error
    assert by_line[5].event is None and by_line[5].error.startswith("redo_search: ")


def test_csv_row_with_too_many_cells_is_refused_with_its_line_number() -> None:
    text = PREDICTION_CSV + "r3,voice-intent,3,-20,usb,,news,0.7,30,en-US,surplus\n"
    by_line = _by_line(_read("prediction", text, "csv"))
    assert by_line[2].event is not None and by_line[3].event is not None
    assert by_line[4].event is None
    assert "11 cells" in by_line[4].error and "10 columns" in by_line[4].error


def test_csv_line_numbers_count_blank_lines() -> None:
    text = "request_id,model,clicked\nr1,m,true\n\nr2,m,false\n"
    results = _read("feedback", text, "csv")
    assert [(r.line, r.event.data.request_id) for r in results] == [(2, "r1"), (4, "r2")]


def test_csv_with_only_a_header_or_nothing_yields_nothing() -> None:
    assert _read("feedback", "request_id,model,clicked\n", "csv") == []
    assert _read("feedback", "", "csv") == []


# --------------------------------------------------------------------------- formats and files


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("traffic.csv", "csv"),
        ("TRAFFIC.CSV", "csv"),
        ("data/traffic.csv.gz", "csv"),
        ("traffic.jsonl", "jsonl"),
        ("traffic.json", "jsonl"),
        ("traffic.ndjson", "jsonl"),
        ("csv", "jsonl"),
        ("-", "jsonl"),
    ],
)
def test_detect_format(path: str, fmt: str) -> None:
    assert detect_format(path) == fmt


def test_open_input_reads_a_file_with_undecodable_bytes_replaced(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(b'{"request_id": "r1", "model": "m", "label": "caf\xe9"}\n')
    with open_input(str(path)) as stream:
        [result] = list(read_events("feedback", stream))
    assert result.event.data.label == "caf\ufffd"


def test_a_gzipped_csv_detected_as_csv_is_read(tmp_path: Path) -> None:
    # detect_format promises .csv.gz is CSV, so the file must be decompressed when read
    path = tmp_path / "feedback.csv.gz"
    path.write_bytes(gzip.compress(b"request_id,model,clicked\nr1,voice-intent,true\n"))
    with open_input(str(path)) as stream:
        results = list(read_events("feedback", stream, detect_format(str(path))))
    assert [(r.line, r.error) for r in results] == [(2, None)]
    assert results[0].event.data.request_id == "r1"


def test_csv_empty_prediction_cells_are_a_null_return_and_other_empty_cells_are_left_out() -> None:
    text = (
        "request_id,model,model_version,features.x,prediction.label,prediction.score,"
        "latency_ms,route\n"
        "n1,voice-intent,1,0.5,,,9,\n"
    )
    (result,) = _read("prediction", text, "csv")
    assert result.error is None, result.error
    assert result.event.data.prediction.label is None
    assert result.event.data.prediction.score is None
    assert result.event.data.route is None  # empty top-level cell: the field is left out
