"""``driftloop replay`` against the real broker: what is on the topics is what is in the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from producers.publisher import Publisher
from producers.replay import Pacer, Replay
from producers.replay_cli import replay_app
from streams.events import FeedbackEvent, PredictionEvent
from streams.reader import EventReader
from streams.settings import Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO_ROOT = Path(__file__).resolve().parents[2]


def _iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _traffic(n: int, *, step_s: float = 1.0) -> list[dict]:
    """``n`` requests ``step_s`` apart; every third has a label, every fifth a click."""
    return [
        {
            "ts": _iso(i * step_s),
            "rid": f"req-{i}",
            "loudness_db": -20.0 - i % 7,
            "clip_duration_s": 1.0 + (i % 5) / 10,
            "intent": ["news", "music", "weather"][i % 3],
            "confidence": round(0.5 + (i % 10) / 20, 2),
            "latency_ms": 10.0 + i % 13,
            "locale": ["en-GB", "de-DE"][i % 2],
            "truth": ["news", "music"][i % 2] if i % 3 == 0 else None,
            "clicked": (i % 2 == 0) if i % 5 == 0 else None,
        }
        for i in range(n)
    ]


MAPPING = {
    "time": "ts",
    "request_id": "rid",
    "features": ["loudness_db", "clip_duration_s"],
    "prediction_label": "intent",
    "prediction_score": "confidence",
    "segment": {"locale": "locale"},
    "label": "truth",
}


def _cli(settings: Settings, *args: str):
    return CliRunner().invoke(
        replay_app,
        [
            *args,
            "--model",
            "voice-intent",
            "--model-version",
            "4",
            "-b",
            settings.kafka_bootstrap_servers,
            "--topic-prefix",
            settings.topic_prefix,
            "--json",
        ],
    )


def _read(settings: Settings) -> list:
    with EventReader(settings, ["predictions", "feedback"]) as reader:
        return list(reader.items(until_idle_s=2, max_wait_s=30))


def _check_topics_equal_rows(settings: Settings, rows: list[dict]) -> None:
    items = _read(settings)
    assert all(item.error is None for item in items)
    predictions = [i for i in items if isinstance(i.event, PredictionEvent)]
    feedback = [i for i in items if isinstance(i.event, FeedbackEvent)]
    assert len(predictions) == len(rows)
    expected_feedback = [r for r in rows if r["truth"] is not None or r["clicked"] is not None]
    assert len(feedback) == len(expected_feedback)

    by_id = {r["rid"]: r for r in rows}
    for item in predictions:
        row, data = by_id[item.event.data.request_id], item.event.data
        assert item.event.time == datetime.fromisoformat(row["ts"])
        assert data.model == "voice-intent" and data.model_version == "4"
        assert data.features == {
            "loudness_db": row["loudness_db"],
            "clip_duration_s": row["clip_duration_s"],
        }
        assert (data.prediction.label, data.prediction.score) == (row["intent"], row["confidence"])
        assert data.latency_ms == row["latency_ms"] and data.segment == {"locale": row["locale"]}
    for item in feedback:
        row, data = by_id[item.event.data.request_id], item.event.data
        assert (data.label, data.clicked) == (row["truth"], row["clicked"])
        assert item.event.time == datetime.fromisoformat(row["ts"]) + timedelta(seconds=2)

    # Kafka keeps order within a partition: there, events must be in event-time order
    for topic in {i.topic for i in items}:
        for partition in {i.partition for i in items if i.topic == topic}:
            times = [i.event.time for i in items if (i.topic, i.partition) == (topic, partition)]
            assert times == sorted(times)


def test_csv_replay_puts_every_row_on_the_topics_in_event_time_order(topics, tmp_path):
    rows = _traffic(300)
    shuffled = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # the file is not sorted
    shuffled.to_csv(tmp_path / "traffic.csv", index=False)
    (tmp_path / "mapping.yaml").write_text(json.dumps(MAPPING))  # JSON is valid YAML
    done = _cli(
        topics,
        str(tmp_path / "traffic.csv"),
        "--mapping",
        str(tmp_path / "mapping.yaml"),
        "--feedback-delay",
        "2",
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["predictions"] == 300 and summary["acked"] == summary["sent"]
    _check_topics_equal_rows(topics, rows)


def test_jsonl_replay_with_a_bad_row_reports_its_line_and_loses_nothing_else(topics, tmp_path):
    rows = _traffic(120)
    lines = [json.dumps({k: v for k, v in r.items() if v is not None}) for r in rows]
    lines.insert(10, json.dumps(dict(rows[0], rid="bad-time", ts="tuesday")))  # line 11
    lines.insert(20, json.dumps({k: v for k, v in rows[0].items() if k != "rid"}))  # line 21
    (tmp_path / "traffic.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "mapping.json").write_text(json.dumps(MAPPING))
    done = _cli(
        topics,
        str(tmp_path / "traffic.jsonl"),
        "-m",
        str(tmp_path / "mapping.json"),
        "--feedback-delay",
        "2",
    )
    assert done.exit_code == 1, done.output  # rejected rows, everything else sent
    output = " ".join(done.output.split())
    assert "rejected line 11: time: cannot read 'tuesday'" in output
    assert "rejected line 21: request_id: missing (column 'rid')" in output
    _check_topics_equal_rows(topics, rows)


def test_from_to_replays_only_that_stretch(topics, tmp_path):
    rows = _traffic(60)
    pd.DataFrame(rows).to_csv(tmp_path / "traffic.csv", index=False)
    (tmp_path / "mapping.json").write_text(json.dumps(MAPPING))
    done = _cli(
        topics,
        str(tmp_path / "traffic.csv"),
        "-m",
        str(tmp_path / "mapping.json"),
        "--from",
        _iso(10),
        "--to",
        "2026-03-01T12:00:20",  # naive: UTC
    )
    assert done.exit_code == 0, done.output
    got = [i.event for i in _read(topics) if isinstance(i.event, PredictionEvent)]
    assert sorted(e.data.request_id for e in got) == sorted(f"req-{i}" for i in range(10, 20))


def test_speed_paces_by_event_time(topics, tmp_path):
    rows = _traffic(21, step_s=0.5)  # 10 s of event time
    pd.DataFrame(rows).drop(columns=["truth", "clicked"]).to_csv(tmp_path / "t.csv", index=False)
    replay = Replay(
        tmp_path / "t.csv",
        _mapping_without_feedback(),
        model="voice-intent",
        model_version="4",
    )
    with Publisher(topics) as publisher:
        started = time.perf_counter()
        stats = replay.run(publisher.send, pacer=Pacer(speed=10))
        elapsed = time.perf_counter() - started
    assert stats.sent == 21
    assert 0.9 <= elapsed <= 2.5, f"10 s of events at speed 10 took {elapsed:.2f} s"
    assert len([i for i in _read(topics) if i.event is not None]) == 21


def _mapping_without_feedback():
    from producers.replay import ColumnMapping

    return ColumnMapping.from_dict({k: v for k, v in MAPPING.items() if k != "label"})


def test_ctrl_c_stops_flushes_and_summarises(topics, tmp_path):
    rows = _traffic(2000, step_s=0.1)  # 200 s of event time: 20 s at speed 10
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "mapping.json").write_text(json.dumps(MAPPING))
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producers.replay_cli",
            str(tmp_path / "t.csv"),
            "-m",
            str(tmp_path / "mapping.json"),
            "--model",
            "voice-intent",
            "--model-version",
            "4",
            "--speed",
            "10",
            "-b",
            topics.kafka_bootstrap_servers,
            "--topic-prefix",
            topics.topic_prefix,
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    time.sleep(4)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted (Ctrl-C)" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] and 0 < summary["sent"] < len(rows)
    assert summary["acked"] == summary["sent"]
    assert len([i for i in _read(topics) if i.event is not None]) == summary["sent"]
