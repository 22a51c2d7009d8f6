"""Following driftloop topics from a point in time, with no consumer group.

The dashboard is a viewer: it must not take partitions from anyone nor commit
offsets, and it wants the recent past before the live tail. So it reads every
partition directly (no group, nothing committed), starting at the first
record whose timestamp is within ``since`` of now, and then follows new records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.codec import decode_record
from streams.dashboard.exceptions import DashboardError
from streams.events import CloudEvent
from streams.settings import Settings

__all__ = ["FeedBatch", "TopicFeed"]

DASHBOARD_TOPICS = ("metrics", "alerts", "model-events")


@dataclass
class FeedBatch:
    """What one fetch brought: the valid events, and how many records or events were refused."""

    events: list[CloudEvent] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


class TopicFeed:
    """Read some topics from ``since`` ago, then follow them live.

    Parameters
    ----------
    settings
        Broker address, topic prefix, connection timeout and record size limit.
    topics
        Registry names (``"metrics"``) or full names; registry names get the prefix.
    since
        How far back to start; ``None`` reads each partition from its beginning.
    topic_wait_s
        How often to look again for topics that do not exist yet.

    Examples
    --------
    Nothing is read before :meth:`start`:

    >>> feed = TopicFeed(Settings(_env_file=None), since=timedelta(minutes=5))
    >>> feed.topics, feed.status
    (['driftloop.metrics', 'driftloop.alerts', 'driftloop.model-events'], 'not started')
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str] = DASHBOARD_TOPICS,
        *,
        since: timedelta | None = timedelta(hours=1),
        topic_wait_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.topics = [t if "." in t else settings.topic(t) for t in topics]
        self.since = since
        self.topic_wait_s = topic_wait_s
        self.status = "not started"
        """One line for the page: what the feed is doing."""
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect to the broker; raises :class:`DashboardError` when it does not answer."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="driftloop-dashboard",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=max(self.settings.connect_timeout_ms, 5000),
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        try:
            await asyncio.wait_for(consumer.start(), self.settings.connect_timeout_ms / 1000)
        except (KafkaError, OSError, TimeoutError) as exc:
            await consumer.stop()
            raise DashboardError(
                f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers} "
                f"({exc.__class__.__name__}); start it with `make up` or set "
                "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        self._consumer = consumer
        self.status = "connected"

    async def stop(self) -> None:
        """Close the connection (safe to call twice)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        self.status = "stopped"

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        """Wait until every topic exists, take all their partitions, seek to ``since`` ago."""
        # The admin API, not the consumer's metadata: that only knows topics it was asked
        # about, and asking through it could make the broker auto-create a misspelt topic.
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="driftloop-dashboard-admin",
            request_timeout_ms=max(self.settings.connect_timeout_ms, 5000),
        )
        await admin.start()
        try:
            while True:
                described = await admin.describe_topics(self.topics)
                found = {
                    d["topic"]: sorted(p["partition"] for p in d["partitions"])
                    for d in described
                    if d["error_code"] == 0 and d["partitions"]
                }
                missing = [t for t in self.topics if t not in found]
                if not missing:
                    break
                self.status = (
                    f"waiting for topics {', '.join(missing)}: create them with "
                    "`driftloop topics create`"
                )
                await asyncio.sleep(self.topic_wait_s)
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p) for topic in self.topics for p in found[topic]]
        consumer.assign(partitions)
        if self.since is None:
            await consumer.seek_to_beginning(*partitions)
            return
        start_ms = int((time.time() - self.since.total_seconds()) * 1000)
        found = await consumer.offsets_for_times({tp: start_ms for tp in partitions})
        for tp in partitions:
            at = found.get(tp)
            if at is None:  # nothing that recent: only what comes next
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, at.offset)

    async def batches(self, *, max_records: int = 5000) -> AsyncIterator[FeedBatch]:
        """Decoded batches as they arrive (an empty one every half second when idle)."""
        consumer = self._consumer
        if consumer is None:
            raise DashboardError("the feed is not started: call `await feed.start()` first")
        await self._assign(consumer)
        self.status = "live"
        limit = self.settings.max_record_bytes
        while self._consumer is not None:
            try:
                fetched = await consumer.getmany(timeout_ms=500, max_records=max_records)
            except KafkaError as exc:
                self.status = f"reading failed, retrying: {exc}"
                await asyncio.sleep(1.0)
                continue
            self.status = "live"
            batch = FeedBatch()
            for records in fetched.values():
                for record in records:
                    decoded = decode_record(record.value, max_bytes=limit)
                    batch.events += decoded.events
                    batch.rejected += len(decoded.errors)
                    batch.reasons += [
                        f"{record.topic}[{record.partition}]@{record.offset}: {e.reason}"
                        for e in decoded.errors
                    ]
            yield batch
