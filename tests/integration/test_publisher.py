"""The publishing SDK against the real broker: what is sent arrives where it should, or fails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaConsumer

from producers.exceptions import DeliveryError, PublishError
from producers.publisher import Publisher, partition_for_key
from producers.simulator import VoiceSearchSimulator
from streams.codec import BATCH_CONTENT_TYPE, EVENT_CONTENT_TYPE, decode_record
from streams.exceptions import EventValidationError
from streams.reader import EventReader
from streams.settings import Settings


def _consume_all(settings: Settings, topic: str, expected_events: int) -> list:
    consumer = KafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=5000,
    )
    records, events = [], 0
    try:
        for record in consumer:
            records.append(record)
            events += len(decode_record(record.value).events)
            if events >= expected_events:
                break
    finally:
        consumer.close()
    return records


def test_batched_events_arrive_once_on_the_partition_their_request_id_hashes_to(topics):
    settings = topics
    sim = VoiceSearchSimulator(seed=11, start=datetime(2026, 1, 1, tzinfo=UTC))
    requests = list(sim.requests(1200))
    with Publisher(settings) as pub:
        for r in requests:
            pub.publish("prediction", r.prediction, time=r.predicted_at)
            pub.publish("feedback", r.feedback, time=r.feedback_at)
    assert pub.stats.events_acked == 2400
    assert pub.stats.records_sent < 2400 / 10, "events should travel several to a record"

    for topic in ("predictions", "feedback"):
        records = _consume_all(settings, topic, 1200)
        ids = []
        for record in records:
            assert dict(record.headers)["content-type"] == BATCH_CONTENT_TYPE.encode()
            decoded = decode_record(record.value)
            assert decoded.ok and decoded.batched
            for event in decoded.events:
                # co-partitioning: the batch sits where a record keyed by request_id would
                assert record.partition == partition_for_key(event.data.request_id, 4)
                ids.append(event.data.request_id)
        assert sorted(ids) == sorted(r.prediction["request_id"] for r in requests)


def test_unbatched_records_are_keyed_by_request_id(topics):
    settings = topics.model_copy(update={"publish_batch_events": 1})
    with Publisher(settings) as pub:
        for i in range(20):
            pub.publish(
                "feedback", {"request_id": f"req-{i}", "model": "voice-intent", "clicked": True}
            )
    records = _consume_all(settings, "feedback", 20)
    assert len(records) == 20
    for record in records:
        event = decode_record(record.value).events[0]
        assert record.key == event.data.request_id.encode()
        assert dict(record.headers)["content-type"] == EVENT_CONTENT_TYPE.encode()
        assert record.partition == partition_for_key(event.data.request_id, 4)


def test_event_time_and_id_survive_the_trip(topics):
    when = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
    with Publisher(topics) as pub:
        sent = pub.publish(
            "feedback",
            {"request_id": "r-1", "model": "voice-intent", "label": "weather"},
            id="fixed-id-1",
            time=when,
        )
    with EventReader(topics, ["feedback"]) as reader:
        got = [item.event for item in reader.items(until_idle_s=2, max_wait_s=20) if item.event]
    assert [(e.id, e.time, e.data.label) for e in got] == [("fixed-id-1", when, "weather")]
    assert got[0] == sent


def test_invalid_event_is_refused_before_it_leaves(topics):
    with Publisher(topics) as pub:
        with pytest.raises(EventValidationError) as info:
            pub.publish("prediction", {"request_id": "r1", "model": "m", "latency_ms": "fast"})
        fields = {e.path for e in info.value.errors}
        assert {"data.latency_ms", "data.features", "data.prediction"} <= fields
        with pytest.raises(EventValidationError):
            pub.send({"specversion": "1.0", "type": "driftloop.feedback.v1"})
    assert pub.stats.events_sent == 0
    with EventReader(topics, ["predictions", "feedback"]) as reader:
        assert list(reader.items(until_idle_s=2, max_wait_s=10)) == []


def test_broker_refusal_is_reported_not_swallowed(settings):
    """A record over the topic's max.message.bytes is refused by the broker: flush raises."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    admin.create_topics(
        {
            settings.topic("feedback"): {
                "num_partitions": 1,
                "replication_factor": 1,
                "configs": {"max.message.bytes": "2000"},
            }
        },
        wait_for_metadata=True,
    )
    admin.close()
    failures = []
    pub = Publisher(settings, on_delivery_error=failures.append)
    for i in range(40):  # ~60 bytes of label each: the batch outgrows 2000 bytes
        pub.publish("feedback", {"request_id": f"r{i}", "model": "m", "label": "x" * 60})
    with pytest.raises(DeliveryError) as info:
        pub.flush()
    assert info.value.failures and failures
    assert sum(len(f.event_ids) for f in info.value.failures) == 40
    assert "MessageSizeTooLarge" in info.value.failures[0].error
    pub.close()


def test_missing_topic_is_a_clear_error(settings):
    with Publisher(settings) as pub, pytest.raises(PublishError, match="topics create"):
        pub.publish("feedback", {"request_id": "r1", "model": "m", "clicked": False})


def test_unreachable_broker_is_a_clear_error():
    settings = Settings(
        kafka_bootstrap_servers="127.0.0.1:1", connect_timeout_ms=1500, _env_file=None
    )
    with pytest.raises(PublishError, match=r"cannot reach Kafka at 127\.0\.0\.1:1.*make up"):
        Publisher(settings)
