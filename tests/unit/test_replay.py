"""Replay without a broker: rows -> events, event-time order, bad rows, ranges, ids, pacing."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from producers.replay import ColumnMapping, Pacer, Replay, ReplayError, parse_speed
from producers.replay_cli import replay_app
from streams.events import FeedbackEvent, PredictionEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        labelled = rng.random() < 0.5
        rows.append(
            {
                "time": _iso(i),
                "request_id": f"req-{i}",
                "loudness_db": round(rng.gauss(-22, 3), 2),
                "device": rng.choice(["android", "ios"]),
                "prediction": rng.choice(["news", "music"]),
                "score": round(rng.random(), 3),
                "latency_ms": round(rng.uniform(10, 90), 1),
                "label": rng.choice(["news", "music"]) if labelled else None,
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _events(replay: Replay) -> list:
    return [item.event for item in replay.items() if item.event is not None]


def _keys(events: list) -> list[tuple]:
    return [(e.time, 0 if isinstance(e, PredictionEvent) else 1) for e in events]


# --------------------------------------------------------------------------- mapping


def test_mapping_file_in_yaml_or_json_renames_every_field(tmp_path):
    frame = pd.DataFrame(
        {
            "ts": [_iso(0), _iso(1)],
            "req": ["a", "b"],
            "loud": [-20.0, -21.5],
            "dur": [1.5, 2.5],
            "intent": ["news", None],
            "conf": [0.8, None],
            "ms": [12.0, 14.0],
            "loc": ["en-GB", "de-DE"],
            "truth": ["news", None],
            "typed": [None, "1"],
            "mv": ["7", "8"],
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    spec = {
        "time": "ts",
        "request_id": "req",
        "model_version": "mv",
        "features": {"loudness_db": "loud", "clip_duration_s": "dur"},
        "prediction_label": "intent",
        "prediction_score": "conf",
        "latency_ms": "ms",
        "segment": {"locale": "loc"},
        "label": "truth",
        "switched_to_typing": "typed",
    }
    (tmp_path / "m.json").write_text(json.dumps(spec))
    (tmp_path / "m.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in spec.items()))
    for name in ("m.json", "m.yaml"):
        mapping = ColumnMapping.from_file(tmp_path / name)
        events = _events(Replay(tmp_path / "t.csv", mapping, model="voice"))
        first, first_feedback, second, second_feedback = events
        assert first.data.model_dump(exclude_none=True) == {
            "request_id": "a",
            "model": "voice",
            "model_version": "7",
            "features": {"loudness_db": -20.0, "clip_duration_s": 1.5},
            "prediction": {"label": "news", "score": 0.8},
            "latency_ms": 12.0,
            "segment": {"locale": "en-GB"},
        }
        assert first_feedback.data.label == "news" and first_feedback.time == T0
        assert second.data.prediction.label is None  # an empty label is a null return
        assert second.data.model_version == "8"
        assert second_feedback.data.switched_to_typing is True
        assert second_feedback.data.label is None


def test_mapping_errors_say_what_to_fix(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _rows(3))
    with pytest.raises(ReplayError, match=r"valid keys: clicked, features"):
        ColumnMapping.from_dict({"timestamp": "time"})
    with pytest.raises(ReplayError, match=r"'ts', which the file does not have; its columns: time"):
        Replay(path, ColumnMapping(time="ts"), model="m", model_version="1")
    with pytest.raises(ReplayError, match=r"no model: pass --model NAME"):
        Replay(path, model_version="1")
    renamed = _write_csv(tmp_path / "r.csv", [{"when": _iso(0), "rid": "x", "latency_ms": 1}])
    with pytest.raises(ReplayError, match=r"no column for time.*--time-col"):
        Replay(renamed, model="m", model_version="1")
    (tmp_path / "bad.yaml").write_text("features: 3\n")
    with pytest.raises(ReplayError, match="features in the column mapping must be a list"):
        ColumnMapping.from_file(tmp_path / "bad.yaml")


def test_default_features_are_the_columns_no_other_field_uses(tmp_path):
    rows = [dict(r, model="old-name", model_version="9") for r in _rows(2)]
    path = _write_csv(tmp_path / "t.csv", rows)
    event = _events(Replay(path, model="m", model_version="1"))[0]
    assert sorted(event.data.features) == ["device", "loudness_db"]
    assert (event.data.model, event.data.model_version) == ("m", "1")  # constants win
    dotted = pd.DataFrame(rows).rename(columns={"loudness_db": "features.loudness_db"})
    dotted.to_csv(tmp_path / "d.csv", index=False)
    event = _events(Replay(tmp_path / "d.csv"))[0]
    assert event.data.features == {"loudness_db": rows[0]["loudness_db"]}
    assert (event.data.model, event.data.model_version) == ("old-name", "9")


# --------------------------------------------------------------------------- order


def test_a_shuffled_file_comes_out_in_event_time_order_like_a_full_sort(tmp_path):
    rows = _rows(400, seed=3)
    rng = random.Random(4)
    for row in rows:  # feedback a random while after its prediction
        row["feedback_time"] = _iso(int(row["request_id"][4:]) + rng.uniform(0, 40))
    rng.shuffle(rows)
    path = _write_csv(tmp_path / "t.csv", rows)
    replay = Replay(path, model="m", model_version="1", chunk_rows=37, reorder_rows=400)
    events = _events(replay)

    # oracle: every event of the file, sorted as a whole (predictions first at equal times)
    assert _keys(events) == sorted(_keys(events))
    predictions = [e for e in events if isinstance(e, PredictionEvent)]
    feedback = [e for e in events if isinstance(e, FeedbackEvent)]
    assert sorted(e.data.request_id for e in predictions) == sorted(r["request_id"] for r in rows)
    labelled = {r["request_id"] for r in rows if r["label"] is not None}
    assert {e.data.request_id for e in feedback} == labelled
    position = {(type(e), e.data.request_id): i for i, e in enumerate(events)}
    for rid in labelled:
        assert position[(PredictionEvent, rid)] < position[(FeedbackEvent, rid)]
    assert replay.stats.out_of_order == 0


def test_rows_further_out_of_order_than_the_buffer_are_sent_late_and_reported(tmp_path):
    rows = _rows(50)
    rows.append(rows.pop(3))  # line 5 of the file (req-3) now comes last
    path = _write_csv(tmp_path / "t.csv", rows)
    replay = Replay(path, model="m", model_version="1", reorder_rows=10)
    events = _events(replay)
    assert replay.stats.out_of_order == 1
    assert replay.stats.late_rows == [len(rows) + 1]
    # when it is read, rows up to req-39 have left the 10-row buffer: 36 s late
    assert replay.stats.max_lateness_s == pytest.approx(39 - 3)
    assert replay.stats.predictions == 50  # late, but not lost
    late = next(e for e in events if e.data.request_id == "req-3")
    assert late.time == T0 + timedelta(seconds=3)  # keeps its own event time


def test_feedback_waits_for_its_time_among_later_predictions(tmp_path):
    rows = [
        {"time": _iso(0), "request_id": "a", "latency_ms": 1, "label": "x"},
        {"time": _iso(1), "request_id": "b", "latency_ms": 1, "label": None},
        {"time": _iso(5), "request_id": "c", "latency_ms": 1, "label": "y"},
        {"time": _iso(6), "request_id": "d", "latency_ms": 1, "label": None},
    ]
    path = _write_csv(tmp_path / "t.csv", rows)
    events = _events(
        Replay(path, model="m", model_version="1", feedback_delay=timedelta(seconds=5))
    )
    order = [(e.data.request_id, e.type.split(".")[1]) for e in events]
    assert order == [
        ("a", "prediction"),
        ("b", "prediction"),
        ("c", "prediction"),  # at 5 s, with a's feedback: the prediction goes first
        ("a", "feedback"),
        ("d", "prediction"),
        ("c", "feedback"),
    ]


# --------------------------------------------------------------------------- rows


def test_bad_rows_are_reported_with_their_line_and_nothing_else_is_lost(tmp_path):
    text = (
        "time,request_id,x,prediction,latency_ms,label,clicked,feedback_time\n"
        f"{_iso(0)},ok-1,1.5,news,10,news,,\n"
        f"not a time,bad-time,1.5,news,10,,,\n"
        f"{_iso(2)},,1.5,news,10,,,\n"
        f"{_iso(3)},bad-latency,1.5,news,,,,\n"
        f"{_iso(4)},bad-flag,1.5,news,10,,sometimes,\n"
        f"{_iso(5)},early-feedback,1.5,news,10,news,,{_iso(1)}\n"
        f"{_iso(6)},bad-version,1.5,news,10,,,\n"
        "\n"
        f"{_iso(7)},ok-2,,,12,,true,{_iso(9)}\n"
    )
    path = tmp_path / "t.csv"
    path.write_text(text)
    replay = Replay(path, model="m", model_version="1")
    items = list(replay.items())
    errors = {i.line: i.error for i in items if i.event is None}
    assert errors == {
        3: "time: cannot read 'not a time' as a date and time "
        "(ISO 8601, or seconds since the epoch)",
        4: "request_id: missing (column 'request_id')",
        5: "latency_ms: missing (column 'latency_ms')",
        6: "clicked: cannot read 'sometimes' as true/false",
        7: f"feedback_time: '{_iso(1)}' is before the prediction time '{_iso(5)}'",
        9: "time: missing",  # the blank line
    }
    sent = [(e.data.request_id, e.type) for i in items if (e := i.event) is not None]
    assert sent == [
        ("ok-1", "driftloop.prediction.v1"),
        ("ok-1", "driftloop.feedback.v1"),
        ("bad-version", "driftloop.prediction.v1"),  # its version is the constant: fine
        ("ok-2", "driftloop.prediction.v1"),
        ("ok-2", "driftloop.feedback.v1"),
    ]
    ok2 = [i.event for i in items if i.event is not None][-2:]
    assert ok2[0].data.features == {"x": None} and ok2[0].data.prediction.label is None
    assert ok2[1].time == T0 + timedelta(seconds=9) and ok2[1].data.clicked is True
    assert replay.stats.rejected == 6 and replay.stats.rows_read == 9


def test_a_value_the_contract_refuses_names_the_field(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(f"time,request_id,prediction,latency_ms\n{_iso(0)},r1,news,-5\n")
    (item,) = list(Replay(path, model="m", model_version="1").items())
    assert item.line == 2
    assert item.error == "latency_ms: Input should be greater than or equal to 0 (got -5.0)"


def test_jsonl_nested_or_flat_with_bad_lines(tmp_path):
    lines = [
        json.dumps(
            {
                "time": _iso(1),
                "request_id": "n1",
                "features": {"a": 1, "b": "x"},
                "prediction": {"label": "news", "score": 0.5},
                "latency_ms": 3,
                "segment": {"locale": "en-GB"},
                "redo_search": True,
            }
        ),
        '{"time": "broken',
        "",
        "[1, 2]",
        json.dumps({"time": _iso(0), "request_id": 7, "features": {"a": 2}, "latency_ms": 4}),
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    replay = Replay(path, model="m", model_version="1")
    items = list(replay.items())
    errors = {i.line: i.error for i in items if i.event is None}
    assert sorted(errors) == [2, 4]
    assert errors[2].startswith("not valid JSON") and "got list" in errors[4]
    first, second, feedback = [i.event for i in items if i.event is not None]
    # a feature another line has is missing (null) here
    assert (first.data.request_id, first.data.features) == ("7", {"a": 2.0, "b": None})
    assert second.data.features == {"a": 1.0, "b": "x"}
    assert second.data.prediction.label == "news" and second.data.segment == {"locale": "en-GB"}
    assert feedback.data.redo_search is True and feedback.id.endswith("-1-f")


def test_times_as_epoch_seconds_or_naive_iso_are_utc(tmp_path):
    epoch = int(T0.timestamp())
    (tmp_path / "e.csv").write_text(f"time,request_id,latency_ms\n{epoch},r,1\n{epoch + 1.5},s,1\n")
    (tmp_path / "n.csv").write_text("time,request_id,latency_ms\n2026-03-01 12:00:00,r,1\n")
    got = _events(Replay(tmp_path / "e.csv", model="m", model_version="1"))
    assert [e.time for e in got] == [T0, T0 + timedelta(seconds=1.5)]
    (naive,) = _events(Replay(tmp_path / "n.csv", model="m", model_version="1"))
    assert naive.time == T0


def test_from_to_selects_rows_by_prediction_time_and_keeps_their_feedback(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _rows(20))
    replay = Replay(
        path,
        model="m",
        model_version="1",
        start=T0 + timedelta(seconds=5),
        end=T0 + timedelta(seconds=10),
        feedback_delay=timedelta(seconds=30),
    )
    events = _events(replay)
    predictions = [e for e in events if isinstance(e, PredictionEvent)]
    assert [e.data.request_id for e in predictions] == [f"req-{i}" for i in range(5, 10)]
    feedback_ids = {e.data.request_id for e in events if isinstance(e, FeedbackEvent)}
    assert feedback_ids == {r["request_id"] for r in _rows(20)[5:10] if r["label"]}
    assert replay.stats.skipped == 15
    with pytest.raises(ReplayError, match="time range is empty"):
        Replay(path, model="m", model_version="1", start=T0, end=T0)


def test_ids_are_deterministic_per_file_and_row_unless_fresh(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _rows(30))
    once = [e.id for e in _events(Replay(path, model="m", model_version="1"))]
    twice = [e.id for e in _events(Replay(path, model="m", model_version="1"))]
    fresh = [e.id for e in _events(Replay(path, model="m", model_version="1", fresh_ids=True))]
    assert once == twice and len(set(once)) == len(once)
    assert not set(fresh) & set(once) and len(set(fresh)) == len(fresh)
    other = _write_csv(tmp_path / "u.csv", _rows(30, seed=9))
    assert not set(once) & {e.id for e in _events(Replay(other, model="m", model_version="1"))}


def test_the_file_is_read_lazily_a_chunk_at_a_time(tmp_path):
    path = _write_csv(tmp_path / "t.csv", _rows(5000))
    replay = Replay(path, model="m", model_version="1", chunk_rows=500, reorder_rows=100)
    items = replay.items()
    next(items)
    assert replay.stats.rows_read == 500  # one chunk read, not the file
    assert sum(1 for _ in items) + 1 == replay.stats.events
    assert replay.stats.rows_read == 5000


def test_parquet_reads_through_pyarrow_or_says_it_is_missing(tmp_path):
    path = tmp_path / "t.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(ReplayError, match=r"Parquet needs the pyarrow package.*pip install"):
            Replay(path, model="m", model_version="1")
        return
    pd.DataFrame(_rows(10)).to_parquet(path)
    assert len(_events(Replay(path, model="m", model_version="1"))) >= 10


# --------------------------------------------------------------------------- pacing and run


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_speed_compresses_event_time_and_rate_caps_events_per_second():
    clock = FakeClock()
    pacer = Pacer(speed=60, clock=clock, sleep=clock.sleep)
    sent_at = []
    for minute in range(4):
        pacer.wait(T0 + timedelta(minutes=minute))
        sent_at.append(clock.now - 100)
    assert sent_at == pytest.approx([0, 1, 2, 3])

    clock = FakeClock()
    capped = Pacer(speed=None, rate=200, clock=clock, sleep=clock.sleep)
    for _ in range(1001):
        capped.wait(T0)  # all at the same event time: only the cap spaces them
    assert clock.now - 100 == pytest.approx(5.0)

    clock = FakeClock()
    both = Pacer(speed=1000, rate=1, clock=clock, sleep=clock.sleep)
    both.wait(T0)
    both.wait(T0 + timedelta(seconds=1))  # due at 1 ms by speed, at 1 s by the cap
    assert clock.now - 100 == pytest.approx(1.0)

    clock = FakeClock()
    unpaced = Pacer(clock=clock, sleep=clock.sleep)
    for second in range(100):
        unpaced.wait(T0 + timedelta(hours=second))
    assert clock.slept == []


def test_speed_option_parsing():
    assert parse_speed("MAX") is None and parse_speed("2.5") == 2.5
    for bad in ("0", "-1", "fast", "inf"):
        with pytest.raises(ReplayError, match="positive number or 'max'"):
            parse_speed(bad)


def test_run_stops_when_asked_and_says_so(tmp_path):
    path = _write_csv(tmp_path / "t.csv", [dict(r, label=None) for r in _rows(100)])
    stop = threading.Event()
    sent = []

    def send(event):
        sent.append(event)
        if len(sent) == 10:
            stop.set()

    stats = Replay(path, model="m", model_version="1").run(send, stop=stop)
    assert stats.interrupted and stats.sent == 10 == len(sent)


# --------------------------------------------------------------------------- the command


def test_cli_dry_run_counts_and_reports_rejected_lines(tmp_path):
    rows = _rows(10)
    rows[4]["time"] = "soon"
    path = _write_csv(tmp_path / "t.csv", rows)
    errors = tmp_path / "errors.jsonl"
    runner = CliRunner()
    args = [str(path), "--model", "m", "--model-version", "1", "--dry-run", "--json"]
    done = runner.invoke(replay_app, [*args, "--errors-file", str(errors)])
    assert done.exit_code == 1, done.output
    assert "rejected line 6: time: cannot read 'soon'" in done.output
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    labelled = sum(1 for r in rows if r["label"]) - (1 if rows[4]["label"] else 0)
    assert summary["predictions"] == 9 and summary["feedback"] == labelled
    assert summary["rejected"] == 1
    assert [json.loads(line)["line"] for line in errors.read_text().splitlines()] == [6]
    assert runner.invoke(replay_app, [*args, "--skip-invalid"]).exit_code == 0

    bad = runner.invoke(replay_app, [str(path), "--time-col", "ts", "--model", "m"])
    assert bad.exit_code == 2
    assert "its columns: time, request_id" in " ".join(bad.output.split())
    missing = runner.invoke(replay_app, [str(tmp_path / "nope.csv"), "--model", "m"])
    assert missing.exit_code == 2 and "no such file" in missing.output
