"""The publishing SDK: validated events onto driftloop topics, batched and acknowledged.

Events are validated before anything leaves the process, grouped by the
partition their key hashes to (Kafka's default murmur2 partitioner, so a
batched record lands exactly where a keyed one would and the feedback join
stays co-partitioned), packed several to a record (CloudEvents batched mode)
and sent with ``acks=all`` and idempotent retries. Failures are reported, never
swallowed: :meth:`Publisher.flush` raises :class:`DeliveryError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner.default import murmur2

from producers.exceptions import DeliveryError, DeliveryFailure, PublishError
from streams.codec import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    EVENT_CONTENT_TYPE,
    encode_event,
)
from streams.events import CloudEvent, event_class, parse_event
from streams.settings import Settings
from streams.topics import topic_for_event

__all__ = ["PublishStats", "Publisher", "partition_for_key"]

_BATCH_HEADERS = [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE.encode())]
_EVENT_HEADERS = [(CONTENT_TYPE_HEADER, EVENT_CONTENT_TYPE.encode())]


def partition_for_key(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key (murmur2, as the Java client).

    Examples
    --------
    >>> [partition_for_key(k, 4) for k in ("req-1", "req-2", "req-3")]
    [3, 1, 0]
    """
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class PublishStats:
    """Counts since the publisher was opened."""

    events_sent: int = 0
    records_sent: int = 0
    events_acked: int = 0
    events_failed: int = 0
    bytes_sent: int = 0


@dataclass
class _Buffer:
    events: list[str] = field(default_factory=list)  # ids, for failure reports
    chunks: list[bytes] = field(default_factory=list)
    size: int = 2  # the brackets
    opened_at: float = 0.0


class Publisher:
    """Publish driftloop events to Kafka.

    Parameters
    ----------
    settings
        Where the broker is, the topic prefix, and batching limits
        (``publish_batch_events`` events per record, ``publish_linger_ms``,
        ``publish_max_record_bytes``).
    source
        The CloudEvents ``source`` of events built by :meth:`publish`.
    on_delivery_error
        Called from the producer's I/O thread for every record the broker
        refused; the failure is also raised by the next :meth:`flush`.

    Examples
    --------
    Validation happens before anything is sent, so a bad event never leaves:

    >>> from streams.exceptions import EventValidationError
    >>> try:
    ...     Publisher.build_event("prediction", {"request_id": "r1", "model": "m"})
    ... except EventValidationError as exc:
    ...     print(exc)
    data.model_version: Field required; data.features: Field required; \
data.prediction: Field required; data.latency_ms: Field required

    With a broker (see ``make up``)::

        with Publisher(Settings()) as pub:
            pub.publish("prediction", {"request_id": "r1", "model": "voice-intent",
                                       "model_version": "3", "features": {"loudness_db": -21.5},
                                       "prediction": {"label": "weather", "score": 0.91},
                                       "latency_ms": 38.0})
        # leaving the block flushes and raises DeliveryError if anything was not acknowledged
    """

    def __init__(
        self,
        settings: Settings,
        *,
        source: str = "urn:driftloop:publisher",
        on_delivery_error: Callable[[DeliveryFailure], None] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.stats = PublishStats()
        self._on_delivery_error = on_delivery_error
        self._failures: list[DeliveryFailure] = []
        self._buffers: dict[tuple[str, int], _Buffer] = {}
        self._partitions: dict[str, int] = {}
        self._lock = threading.RLock()
        # Delivery callbacks run on the producer's I/O thread. They must never wait
        # for self._lock: its holder may be inside producer.send(), itself waiting
        # for that I/O thread to fetch metadata (a deadlock until max_block_ms).
        self._outcome_lock = threading.Lock()
        self._closed = False
        self._admin: KafkaAdminClient | None = None
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                client_id="driftloop-publisher",
                acks="all",
                enable_idempotence=True,
                retries=2**31 - 1,
                delivery_timeout_ms=settings.delivery_timeout_ms,
                request_timeout_ms=min(settings.delivery_timeout_ms // 2, 30_000),
                linger_ms=5,
                batch_size=256 * 1024,
                max_request_size=max(settings.publish_max_record_bytes + 4096, 1_048_576),
                max_block_ms=settings.connect_timeout_ms,
                bootstrap_timeout_ms=settings.connect_timeout_ms,
                allow_auto_create_topics=False,
            )
        except KafkaTimeoutError as exc:
            raise PublishError(
                f"cannot reach Kafka at {settings.kafka_bootstrap_servers} "
                f"({exc.__class__.__name__}). Start the local broker with `make up`, or set "
                "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS."
            ) from None
        self._stop = threading.Event()
        self._lingerer = threading.Thread(
            target=self._linger_loop, name="driftloop-publisher-linger", daemon=True
        )
        if settings.publish_batch_events > 1 and settings.publish_linger_ms > 0:
            self._lingerer.start()

    # ------------------------------------------------------------------ building

    @staticmethod
    def build_event(
        kind: str,
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        time: datetime | None = None,
        source: str = "urn:driftloop:publisher",
    ) -> CloudEvent:
        """Wrap ``data`` in a validated CloudEvent of ``kind`` (``"prediction"``, ``"feedback"``…).

        Raises :class:`~streams.exceptions.EventValidationError` naming every bad field.
        """
        return event_class(kind).new(data, id=id, time=time, source=source)

    # ------------------------------------------------------------------ sending

    def publish(
        self,
        kind: str,
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        time: datetime | None = None,
    ) -> CloudEvent:
        """Validate ``data`` as an event of ``kind`` and queue it; returns the event sent."""
        event = self.build_event(kind, data, id=id, time=time, source=self.source)
        self.send(event)
        return event

    def send(self, event: CloudEvent | Mapping[str, Any]) -> CloudEvent:
        """Queue one event (a typed event, or a dict that is validated first).

        The event goes to the topic of its type, to the partition its key hashes
        to. Raises :class:`~streams.exceptions.EventValidationError` for an
        invalid dict and :class:`PublishError` when it cannot be queued.
        """
        if not isinstance(event, CloudEvent):
            event = parse_event(event)
        payload = encode_event(event)
        limit = self.settings.publish_max_record_bytes
        if len(payload) + 2 > limit:
            raise PublishError(
                f"event {event.id} is {len(payload)} bytes, over the {limit}-byte record limit "
                "(DRIFTLOOP_PUBLISH_MAX_RECORD_BYTES)"
            )
        topic = self.settings.topic(topic_for_event(event.type).name)
        key = event.key
        with self._lock:
            if self._closed:
                raise PublishError("the publisher is closed")
            partition = partition_for_key(key, self._partition_count(topic))
            if self.settings.publish_batch_events == 1:
                self._produce(topic, partition, key, payload, [event.id], batched=False)
                return event
            buffer = self._buffers.get((topic, partition))
            if buffer is not None and buffer.size + len(payload) + 1 > limit:
                self._drain(topic, partition)
                buffer = None
            if buffer is None:
                buffer = self._buffers[(topic, partition)] = _Buffer(opened_at=time.monotonic())
            buffer.events.append(event.id)
            buffer.chunks.append(payload)
            buffer.size += len(payload) + 1
            if len(buffer.events) >= self.settings.publish_batch_events:
                self._drain(topic, partition)
        return event

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait for the broker's acknowledgements.

        Raises :class:`DeliveryError` listing the records that were not
        acknowledged since the previous flush.
        """
        with self._lock:
            for topic, partition in list(self._buffers):
                self._drain(topic, partition)
        wait = timeout if timeout is not None else self.settings.delivery_timeout_ms / 1000 + 5
        try:
            self._producer.flush(timeout=wait)
        except KafkaTimeoutError:
            raise PublishError(
                f"records were not acknowledged within {wait:.0f} s; is the broker at "
                f"{self.settings.kafka_bootstrap_servers} still up?"
            ) from None
        with self._outcome_lock:
            failures, self._failures = self._failures, []
        if failures:
            raise DeliveryError(failures)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then release the connection; raises like :meth:`flush`."""
        if self._closed:
            return
        self._stop.set()
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            self._producer.close(timeout=5)
            if self._admin is not None:
                self._admin.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _partition_count(self, topic: str) -> int:
        """Partitions of an existing topic, looked up once per topic.

        Asked through the admin API because a producer's metadata request makes
        the broker auto-create a missing topic with one partition (kafka-python
        3.0 does not pass ``allow_auto_create_topics`` on): a misspelt prefix
        would then silently break the co-partitioning of the feedback join.
        """
        count = self._partitions.get(topic)
        if count is None:
            try:
                if self._admin is None:
                    self._admin = KafkaAdminClient(
                        bootstrap_servers=self.settings.kafka_bootstrap_servers,
                        client_id="driftloop-publisher-admin",
                        bootstrap_timeout_ms=self.settings.connect_timeout_ms,
                    )
                (described,) = self._admin.describe_topics([topic])
            except KafkaError as exc:
                raise PublishError(f"could not look up topic {topic}: {exc}") from None
            if described["error_code"] != 0 or not described["partitions"]:
                raise PublishError(
                    f"topic {topic} does not exist on {self.settings.kafka_bootstrap_servers}; "
                    "create the topics with `driftloop topics create`"
                )
            count = self._partitions[topic] = len(described["partitions"])
        return count

    def _drain(self, topic: str, partition: int) -> None:
        buffer = self._buffers.pop((topic, partition), None)
        if buffer is None or not buffer.events:
            return
        value = b"[" + b",".join(buffer.chunks) + b"]"
        self._produce(topic, partition, None, value, buffer.events, batched=True)

    def _produce(
        self,
        topic: str,
        partition: int | None,
        key: str | None,
        value: bytes,
        event_ids: list[str],
        *,
        batched: bool,
    ) -> None:
        try:
            future = self._producer.send(
                topic,
                value=value,
                key=key.encode() if key is not None else None,
                partition=partition,
                headers=_BATCH_HEADERS if batched else _EVENT_HEADERS,
            )
        except KafkaTimeoutError:
            raise PublishError(
                f"topic {topic} does not exist or the broker does not answer; "
                "create the topics with `driftloop topics create`"
            ) from None
        except KafkaError as exc:
            raise PublishError(f"could not queue a record for {topic}: {exc}") from None
        count = len(event_ids)
        self.stats.events_sent += count
        self.stats.records_sent += 1
        self.stats.bytes_sent += len(value)
        future.add_callback(self._acked, count)
        future.add_errback(self._failed, topic, partition, tuple(event_ids))

    def _acked(self, count: int, _metadata: object) -> None:
        with self._outcome_lock:
            self.stats.events_acked += count

    def _failed(
        self, topic: str, partition: int | None, event_ids: tuple[str, ...], error: BaseException
    ) -> None:
        failure = DeliveryFailure(
            topic, -1 if partition is None else partition, event_ids, f"{error!r}"
        )
        with self._outcome_lock:
            self.stats.events_failed += len(event_ids)
            self._failures.append(failure)
        if self._on_delivery_error is not None:
            self._on_delivery_error(failure)

    def _linger_loop(self) -> None:
        interval = self.settings.publish_linger_ms / 1000
        while not self._stop.wait(interval):
            now = time.monotonic()
            with self._lock:
                for (topic, partition), buffer in list(self._buffers.items()):
                    if now - buffer.opened_at < interval:
                        continue
                    try:
                        self._drain(topic, partition)
                    except PublishError as exc:
                        # no caller to raise to on this thread: report it at the next flush
                        self._failed(topic, partition, tuple(buffer.events), exc)
