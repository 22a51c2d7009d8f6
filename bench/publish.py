"""How fast the publishing SDK puts validated events on the real broker.

Three ways of sending the same simulated voice-search predictions, each to its
own fresh topics, each waiting for every acknowledgement (acks=all):

- ``sdk``: ``Publisher.publish`` — build + validate + encode + batch + send;
- ``sdk-prebuilt``: ``Publisher.send`` of events already validated (what a
  service that builds its events elsewhere pays);
- ``bare``: kafka-python sending the same pre-encoded batch records, the
  floor of what the client library allows.

Run with ``make bench`` (which starts Kafka) or ``python bench/publish.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import uuid
from datetime import UTC, datetime

from kafka import KafkaAdminClient, KafkaProducer

from producers.publisher import Publisher, partition_for_key
from producers.simulator import VoiceSearchSimulator
from streams.admin import create_topics
from streams.codec import encode_batch
from streams.events import PredictionEvent
from streams.settings import Settings


def _fresh(settings: Settings) -> Settings:
    fresh = settings.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    create_topics(fresh, ["predictions"])
    return fresh


def _drop(settings: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    admin.delete_topics([settings.topic("predictions")], raise_errors=False)
    admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    base = Settings()
    sim = VoiceSearchSimulator(seed=1, start=datetime(2026, 1, 1, tzinfo=UTC))
    payloads = [(r.prediction, r.predicted_at) for r in sim.requests(args.events)]
    results: dict[str, float] = {}

    settings = _fresh(base)
    t0 = time.perf_counter()
    with Publisher(settings) as pub:
        for data, when in payloads:
            pub.publish("prediction", data, time=when)
    results["sdk"] = args.events / (time.perf_counter() - t0)
    _drop(settings)

    events = [PredictionEvent.new(data, time=when) for data, when in payloads]
    settings = _fresh(base)
    t0 = time.perf_counter()
    with Publisher(settings) as pub:
        for event in events:
            pub.send(event)
    results["sdk-prebuilt"] = args.events / (time.perf_counter() - t0)
    _drop(settings)

    size = base.publish_batch_events
    groups: dict[int, list[PredictionEvent]] = {}
    records: list[tuple[int, bytes]] = []
    for event in events:
        group = groups.setdefault(partition_for_key(event.data.request_id, 4), [])
        group.append(event)
        if len(group) == size:
            records.append((partition_for_key(event.data.request_id, 4), encode_batch(group)))
            group.clear()
    records += [(p, encode_batch(g)) for p, g in groups.items() if g]
    settings = _fresh(base)
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=2_000_000,
    )
    topic = settings.topic("predictions")
    t0 = time.perf_counter()
    for partition, value in records:
        producer.send(topic, value=value, partition=partition)
    producer.flush()
    results["bare"] = args.events / (time.perf_counter() - t0)
    producer.close()
    _drop(settings)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(
            json.dumps({**{k: round(v) for k, v in results.items()}, "max_rss_mb": round(rss_mb)})
        )
        return
    print(f"publishing {args.events} voice-search predictions, {size} per record, acks=all")
    for name, rate in results.items():
        print(f"  {name:<13} {rate:>10,.0f} events/s")
    print(f"  peak RSS      {rss_mb:>10,.0f} MB (all {args.events} events held in memory)")


if __name__ == "__main__":
    main()
