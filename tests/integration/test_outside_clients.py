"""Clients that are not driftloop (kcat, on librdkafka) work with the same broker and contract."""

from __future__ import annotations

import json
import shutil
import subprocess

from producers.publisher import Publisher
from streams.reader import EventReader

KCAT = shutil.which("kcat") or "kcat"  # missing kcat fails below with a clear FileNotFoundError


def _kcat(*args: str, stdin: str | None = None, timeout: float = 30) -> str:
    done = subprocess.run(
        [KCAT, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"kcat {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def test_kcat_lists_the_broker_and_the_driftloop_topics(topics):
    listing = _kcat("-b", topics.kafka_bootstrap_servers, "-L")
    assert f"broker 1 at {topics.kafka_bootstrap_servers}" in listing
    for name in ("predictions", "feedback", "outcomes", "alerts", "dead-letters"):
        assert f'topic "{topics.topic(name)}"' in listing
    assert f'topic "{topics.topic("predictions")}" with 4 partitions' in listing


def test_a_prediction_written_by_kcat_is_read_and_validated_by_driftloop(topics):
    event = {
        "specversion": "1.0",
        "id": "kcat-1",
        "source": "urn:kcat",
        "type": "driftloop.prediction.v1",
        "time": "2026-11-28T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "request_id": "req-kcat-1",
            "model": "voice-intent",
            "model_version": "3",
            "features": {"loudness_db": -19.5, "locale": "en-GB", "noise": None},
            "prediction": {"label": "weather", "score": 0.82},
            "latency_ms": 44.5,
        },
    }
    bad_line = '{"specversion": "1.0", "type": "driftloop.prediction.v1", "data": {}}'
    _kcat(
        "-b",
        topics.kafka_bootstrap_servers,
        "-P",
        "-t",
        topics.topic("predictions"),
        "-k",
        "req-kcat-1",
        stdin=json.dumps(event) + "\n",
    )
    _kcat(
        "-b",
        topics.kafka_bootstrap_servers,
        "-P",
        "-t",
        topics.topic("predictions"),
        stdin=bad_line + "\n",
    )

    with EventReader(topics, ["predictions"]) as reader:
        items = list(reader.items(until_idle_s=2, max_wait_s=30))
    good = [i for i in items if i.event is not None]
    bad = [i for i in items if i.error is not None]
    assert len(good) == 1 and good[0].key == b"req-kcat-1"
    got = good[0].event
    assert (got.id, got.data.request_id, got.data.model_version) == ("kcat-1", "req-kcat-1", "3")
    assert got.data.features == {"loudness_db": -19.5, "locale": "en-GB", "noise": None}
    assert got.data.prediction.label == "weather"
    # the malformed line is not an event: the reader says what is wrong with it
    assert len(bad) == 1 and "data.request_id: Field required" in bad[0].error.reason


def test_kcat_reads_what_the_sdk_wrote(topics):
    with Publisher(topics.model_copy(update={"publish_batch_events": 1})) as pub:
        for i in range(5):
            pub.publish(
                "feedback",
                {"request_id": f"r-{i}", "model": "voice-intent", "switched_to_typing": True},
            )
    out = _kcat(
        "-b",
        topics.kafka_bootstrap_servers,
        "-C",
        "-t",
        topics.topic("feedback"),
        "-e",
        "-q",
        "-f",
        "%k\t%s\n",
    )
    rows = [line.split("\t", 1) for line in out.splitlines() if line]
    assert sorted(k for k, _ in rows) == [f"r-{i}" for i in range(5)]
    for key, value in rows:
        doc = json.loads(value)
        assert doc["type"] == "driftloop.feedback.v1"
        assert doc["data"]["request_id"] == key
        assert doc["data"]["switched_to_typing"] is True
