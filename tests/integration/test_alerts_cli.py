"""``alerts tail`` and ``retrain request`` against the real broker (this test's own topics)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from producers.publisher import Publisher
from retrain.request_cli import retrain_app
from streams.alerts_cli import alerts_app
from streams.events import AlertEvent, RetrainRequestEvent
from streams.reader import EventReader
from streams.settings import Settings

runner = CliRunner()
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def where(settings: Settings) -> list[str]:
    return ["-b", settings.kafka_bootstrap_servers, "--prefix", settings.topic_prefix]


def alert(model: str, signal: str, kind: str, severity: str, minutes: int) -> dict:
    detected = T0 + timedelta(minutes=minutes)
    return {
        "alert_id": f"{model}.{kind}.{minutes}",
        "model": model,
        "model_version": "3",
        "signal": signal,
        "kind": kind,
        "pattern": "sudden" if kind.endswith("drift") else None,
        "severity": severity,
        "status": "firing",
        "detector": "ks" if kind == "data_drift" else "static",
        "statistic": 0.41,
        "threshold": 0.2,
        "detected_at": detected,
        "evidence": {"start": detected - timedelta(minutes=5), "end": detected, "events": 900},
        "summary": f"{signal} moved",
    }


def publish_two_alerts(settings: Settings) -> list[AlertEvent]:
    with Publisher(settings) as publisher:
        sent = [
            publisher.publish(
                "alert", alert("voice-intent", "loudness_db", "data_drift", "critical", 0)
            ),
            publisher.publish(
                "alert", alert("wake-word", "latency_p99_ms", "software_metric", "warning", 1)
            ),
        ]
    return sent  # type: ignore[return-value]


def tail(settings: Settings, *args: str):
    return runner.invoke(alerts_app, ["tail", *args, "--until-idle", "2", *where(settings)])


def test_tail_prints_one_readable_line_per_alert(topics):
    publish_two_alerts(topics)
    done = tail(topics, "--from-beginning")
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert lines[0] == (
        "2026-03-01T09:30:00Z FIRING   critical voice-intent:3 data_drift sudden loudness_db "
        "ks 0.41 vs 0.2 — loudness_db moved"
    )
    assert "wake-word:3 software_metric - latency_p99_ms static 0.41 vs 0.2" in lines[1]
    assert "2 alerts" in done.stderr


def test_tail_json_and_model_filter(topics):
    sent = publish_two_alerts(topics)
    done = tail(topics, "--from-beginning", "--json")
    assert done.exit_code == 0, done.output
    events = [AlertEvent.model_validate(json.loads(line)) for line in done.stdout.splitlines()]
    assert [e.id for e in events] == [e.id for e in sent]
    assert events[0].data == sent[0].data

    only = tail(topics, "--from-beginning", "--json", "--model", "wake-word")
    assert only.exit_code == 0, only.output
    (line,) = only.stdout.splitlines()
    assert json.loads(line)["data"]["model"] == "wake-word"


def test_tail_shows_only_new_alerts_by_default(topics):
    publish_two_alerts(topics)
    done = tail(topics)
    assert done.exit_code == 0, done.output
    assert done.stdout == ""
    assert "0 alerts" in done.stderr


def test_tail_says_what_to_do_when_the_topic_is_missing(settings):
    done = tail(settings)  # this test's topics were never created
    assert done.exit_code == 1
    assert "does not exist; create it with `driftloop topics create`" in done.stderr


def test_retrain_request_publishes_a_manual_request_that_reads_back(topics):
    before = datetime.now(UTC)
    done = runner.invoke(
        retrain_app,
        [
            "request",
            "voice-intent",
            "--since",
            "2h",
            "--reason",
            "new accent in traffic",
            *where(topics),
        ],
    )
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    assert "sent retrain request manual." in done.stderr

    with EventReader(topics, ["retrain-requests"]) as reader:
        items = list(reader.items(until_idle_s=2, max_wait_s=30))
    (item,) = items
    event = item.event
    assert isinstance(event, RetrainRequestEvent)
    assert event.id == printed["id"] and event.key == "voice-intent"
    data = event.data
    assert (data.model, data.reason, data.requested_by) == (
        "voice-intent",
        "new accent in traffic",
        "manual",
    )
    assert data.window.end - data.window.start == timedelta(hours=2)
    assert before - timedelta(seconds=1) <= data.window.end <= datetime.now(UTC)


def test_retrain_request_refuses_an_unreadable_or_empty_window(settings):
    bad = runner.invoke(
        retrain_app, ["request", "voice-intent", "--since", "yesterday", *where(settings)]
    )
    assert bad.exit_code == 2
    assert "cannot read 'yesterday' as a time" in bad.stderr
    empty = runner.invoke(
        retrain_app,
        ["request", "voice-intent", "--since", "1h", "--until", "2h", *where(settings)],
    )
    assert empty.exit_code == 2 and "the window is empty" in empty.stderr
    named = runner.invoke(retrain_app, ["request", "voice intent!", *where(settings)])
    assert named.exit_code == 2 and "invalid request: model: String should match" in named.stderr
