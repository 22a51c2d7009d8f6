"""Reading driftloop events back from topics, validated, with bad records kept apart.

For tools, tests and the demo (tailing a topic, counting what arrived). The
streaming agents read through faust; this is the plain, synchronous way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from streams.codec import RecordError, decode_record
from streams.events import CloudEvent
from streams.exceptions import StreamsError
from streams.settings import Settings

__all__ = ["EventReader", "ReadItem"]


@dataclass(frozen=True)
class ReadItem:
    """One event read from a topic, or one error for a (part of a) record that was refused."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: CloudEvent | None = None
    error: RecordError | None = None


class EventReader:
    """Iterate over the events of some topics until they have been quiet for a while.

    Parameters
    ----------
    settings
        Broker address and topic prefix.
    topics
        Registry names (``"predictions"``) or full names; registry names get the prefix.
    from_beginning
        Start at the earliest offset (default) rather than only new records.
    group_id
        Consumer group to join and commit to; by default none: every partition
        is read directly and nothing is committed.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        group_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.topics = [t if "." in t else settings.topic(t) for t in topics]
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                client_id="driftloop-reader",
                group_id=group_id,
                enable_auto_commit=group_id is not None,
                auto_offset_reset="earliest" if from_beginning else "latest",
                bootstrap_timeout_ms=settings.connect_timeout_ms,
                max_partition_fetch_bytes=8 * 1024 * 1024,
            )
        except KafkaTimeoutError:
            raise StreamsError(
                f"cannot reach Kafka at {settings.kafka_bootstrap_servers}; start it with "
                "`make up` or set DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        if group_id is not None:
            self._consumer.subscribe(self.topics)
        else:
            # No group: take every partition at once, with no join to wait for.
            partitions = []
            for topic in self.topics:
                ids = self._consumer.partitions_for_topic(topic)
                if not ids:
                    self._consumer.close()
                    raise StreamsError(
                        f"topic {topic} does not exist; create it with `driftloop topics create`"
                    )
                partitions += [TopicPartition(topic, p) for p in sorted(ids)]
            self._consumer.assign(partitions)
            if from_beginning:
                self._consumer.seek_to_beginning()
            else:
                self._consumer.seek_to_end()

    def items(
        self, *, until_idle_s: float = 5.0, max_wait_s: float | None = None
    ) -> Iterator[ReadItem]:
        """Yield events and errors until ``until_idle_s`` pass with nothing new."""
        started = last_seen = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_seen >= until_idle_s:
                return
            if max_wait_s is not None and now - started >= max_wait_s:
                return
            try:
                batches = self._consumer.poll(timeout_ms=200, max_records=5000)
            except KafkaError as exc:
                raise StreamsError(f"reading {', '.join(self.topics)} failed: {exc}") from None
            for records in batches.values():
                for rec in records:
                    last_seen = time.monotonic()
                    decoded = decode_record(rec.value)
                    for event in decoded.events:
                        yield ReadItem(rec.topic, rec.partition, rec.offset, rec.key, event=event)
                    for error in decoded.errors:
                        yield ReadItem(rec.topic, rec.partition, rec.offset, rec.key, error=error)

    def close(self) -> None:
        """Leave the group and close the connection."""
        self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
