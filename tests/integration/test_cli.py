"""The ``driftloop`` command as a user runs it: a real process against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis
from kafka import KafkaAdminClient

from driftloop.infra import status
from streams.reader import EventReader
from streams.settings import Settings

DRIFTLOOP = str(Path(sys.executable).with_name("driftloop"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def run(settings: Settings, *args: str, stdin: str | None = None, timeout: float = 120):
    env = {
        **os.environ,
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DRIFTLOOP_REDIS_URL": settings.redis_url,
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [DRIFTLOOP, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def prediction(request_id: str, **overrides: object) -> dict:
    data = {
        "request_id": request_id,
        "model": "voice-intent",
        "model_version": "1",
        "features": {"loudness_db": -22.0, "clip_duration_s": 2.1},
        "prediction": {"label": "music", "score": 0.7},
        "latency_ms": 35.0,
    }
    data.update(overrides)
    return data


def read_back(settings: Settings, *topics: str) -> list:
    with EventReader(settings, list(topics)) as reader:
        return list(reader.items(until_idle_s=2, max_wait_s=30))


def test_publish_sends_good_lines_and_names_each_bad_line_and_field(topics, tmp_path):
    lines = [
        json.dumps(prediction("ok-1")),
        '{"request_id": "broken", "model": "voice-intent"',  # malformed JSON
        json.dumps({k: v for k, v in prediction("no-id").items() if k != "request_id"}),
        json.dumps(prediction("bad-type", latency_ms="fast")),
        "",
        json.dumps(prediction("ok-2")),
    ]
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(lines) + "\n")

    done = run(topics, "publish", "predictions", str(path))
    assert done.returncode == 1, done.stderr
    assert "line 2: not valid JSON" in done.stderr
    assert "line 3: request_id: Field required" in done.stderr
    assert "line 4: latency_ms: Input should be a valid number" in done.stderr
    assert "(got 'fast')" in done.stderr
    assert "sent      2 events" in done.stderr and "rejected  3 lines" in done.stderr

    items = read_back(topics, "predictions")
    assert sorted(i.event.data.request_id for i in items) == ["ok-1", "ok-2"]
    assert all(i.error is None for i in items), "nothing malformed may reach the topic"


def test_skip_invalid_exits_zero_but_still_reports(topics, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(prediction("ok")) + "\n{oops\n")
    done = run(topics, "publish", "predictions", str(path), "--skip-invalid")
    assert done.returncode == 0
    assert "line 2: not valid JSON" in done.stderr


def test_errors_file_and_dry_run(topics, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(prediction("a")) + "\n" + json.dumps(prediction("b", model="a b")))
    errors = tmp_path / "errors.jsonl"
    done = run(
        topics, "publish", "predictions", str(path), "--dry-run", "--errors-file", str(errors)
    )
    assert done.returncode == 1
    rejected = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2]
    assert rejected[0]["error"].startswith("model: String should match pattern")
    assert read_back(topics, "predictions") == [], "--dry-run sends nothing"


def test_publish_feedback_from_csv_and_from_stdin(topics, tmp_path):
    csv_path = tmp_path / "feedback.csv"
    csv_path.write_text(
        "request_id,model,label,redo_search,switched_to_typing\n"
        "c1,voice-intent,weather,false,\n"
        "c2,voice-intent,,yes-please,true\n"
        "c3,voice-intent,,true,false\n"
    )
    done = run(topics, "publish", "feedback", str(csv_path))
    assert done.returncode == 1
    assert "line 3: redo_search: Input should be a valid boolean" in done.stderr

    stdin = json.dumps(
        {
            "request_id": "s1",
            "model": "voice-intent",
            "clicked": True,
            "id": "from-stdin-1",
            "time": "2026-11-01T08:00:00+01:00",
        }
    )
    done = run(topics, "publish", "feedback", "-", stdin=stdin + "\n")
    assert done.returncode == 0, done.stderr

    events = {i.event.data.request_id: i.event for i in read_back(topics, "feedback")}
    assert sorted(events) == ["c1", "c3", "s1"]
    assert events["c1"].data.label == "weather" and events["c1"].data.redo_search is False
    assert events["s1"].id == "from-stdin-1"
    assert events["s1"].time.isoformat() == "2026-11-01T08:00:00+01:00"


def test_publish_to_missing_topics_or_broker_fails_clearly(settings, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(prediction("x")) + "\n")
    done = run(settings, "publish", "predictions", str(path))  # topics never created
    assert done.returncode == 3
    assert "driftloop topics create" in done.stderr

    down = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    done = run(down, "publish", "predictions", str(path))
    assert done.returncode == 3
    assert "cannot reach Kafka at 127.0.0.1:1" in done.stderr

    done = run(settings, "publish", "predictions", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2 and "no such file" in done.stderr


def test_topics_create_is_idempotent_and_uses_the_registry_partitions(settings):
    first = run(settings, "topics", "create")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == 8
    second = run(settings, "topics", "create")
    assert second.returncode == 0 and "created" not in second.stdout
    assert second.stdout.count("exists") == 8

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        described = {
            d["name"]: len(d["partitions"])
            for d in admin.describe_topics([settings.topic(n) for n in ("predictions", "alerts")])
        }
        admin.delete_topics(
            [
                settings.topic(n)
                for n in (
                    "predictions",
                    "feedback",
                    "outcomes",
                    "metrics",
                    "alerts",
                    "retrain-requests",
                    "model-events",
                    "dead-letters",
                )
            ],
            raise_errors=False,
        )
    finally:
        admin.close()
    assert described == {settings.topic("predictions"): 4, settings.topic("alerts"): 1}


def test_help_reads_well(settings):
    for args in (
        [],
        ["publish"],
        ["publish", "predictions"],
        ["topics", "create"],
        ["schemas", "export"],
        ["infra", "up"],
        ["demo"],
    ):
        done = run(settings, *args, "--help")
        assert done.returncode == 0, (args, done.stderr)
        assert "Usage: driftloop" in done.stdout
        assert "Traceback" not in done.stdout + done.stderr
    top = run(settings, "--help").stdout
    for command in ("publish", "topics", "schemas", "infra", "demo"):
        assert command in top


def test_demo_publishes_reads_back_counts_and_monitors(settings):
    demo_prefix = f"{settings.topic_prefix}demo."
    done = run(
        settings, "demo", "--requests", "120", "--seed", "3", "--prefix", demo_prefix, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every event published was read back" in done.stdout
    row = next(
        line
        for line in done.stdout.splitlines()
        if "│" in line and line.split("│")[1].strip().endswith(".predictions")
    )
    assert row.split("│")[2].strip() == "120" and row.split("│")[3].strip() == "120"
    assert "the worker counted all 3000 predictions" in done.stdout

    again = run(settings, "demo", "--requests", "50", "--prefix", demo_prefix, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "topics of earlier demo runs" in again.stdout  # each run starts clean

    refused = run(settings, "demo", "--prefix", settings.topic_prefix)
    assert refused.returncode == 2 and "prefix of its own" in refused.stdout


def test_redis_is_real_and_persistent(redis_client, services):
    client, namespace = redis_client
    client.set(namespace + "greeting", "hello")
    client.hset(namespace + "model:1", mapping={"sha256": "abc", "version": 1})
    assert client.get(namespace + "greeting") == b"hello"
    assert client.hgetall(namespace + "model:1") == {b"sha256": b"abc", b"version": b"1"}
    local = status(Settings(state_dir=REPO_ROOT / ".driftloop"))["redis"]
    if local.running and services.redis_url.startswith(f"redis://{local.address}/"):
        # the server driftloop starts must persist with an append-only file
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert redis.Redis.from_url(services.redis_url).ping()
