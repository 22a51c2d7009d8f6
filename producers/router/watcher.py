"""Model events as they happen: an aiokafka consumer on ``model-events``, no group, latest.

:class:`ModelEventWatcher` reads every partition of the topic from its end (no
consumer group: every router sees every event, and no group join delays the
start) and hands each :class:`~streams.events.ModelEventEvent` to a callback.
:meth:`~ModelEventWatcher.start` returns only once the end offsets are fixed,
so a router that reads the routing states after it misses nothing: an event
published later is consumed, a state written earlier is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from producers.router.exceptions import RouterError
from streams.codec import decode_record
from streams.events import ModelEventEvent
from streams.settings import Settings

__all__ = ["ModelEventWatcher"]

log = logging.getLogger("driftloop.router")


class ModelEventWatcher:
    """Call ``on_event`` for every model event published after :meth:`start`.

    Parameters
    ----------
    settings
        Broker address and topic prefix (the topic is ``settings.topic("model-events")``).
    on_event
        Awaited for each event, in order; an exception is logged, never fatal.

    Examples
    --------
    >>> watcher = ModelEventWatcher(Settings(topic_prefix="t.", _env_file=None), None)
    >>> watcher.topic
    't.model-events'
    """

    def __init__(
        self,
        settings: Settings,
        on_event: Callable[[ModelEventEvent], Awaitable[None]] | None,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic("model-events")
        self.on_event = on_event
        self.events_seen = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, take every partition at its end offset, and start consuming."""
        consumer = AIOKafkaConsumer(
            self.topic,  # subscribed without a group: every partition is assigned to us
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="driftloop-router",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
            request_timeout_ms=max(self.settings.connect_timeout_ms, 5_000),
        )
        try:
            await consumer.start()
            tps = await self._assigned(consumer)
            if not tps:
                raise RouterError(
                    f"topic {self.topic} does not exist on "
                    f"{self.settings.kafka_bootstrap_servers}; create the topics with "
                    "`driftloop topics create`"
                )
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolve now: events published from here on are not missed
                await consumer.position(tp)
        except KafkaError as exc:
            await consumer.stop()
            raise RouterError(
                f"cannot read {self.topic} from {self.settings.kafka_bootstrap_servers}: {exc}"
            ) from None
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="driftloop-router-model-events")

    async def _assigned(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # a topic created a moment ago may take a little while to appear in the metadata
        deadline = time.monotonic() + self.settings.connect_timeout_ms / 1000
        while not consumer.assignment():
            if time.monotonic() >= deadline:
                return []
            await asyncio.sleep(0.05)
        return sorted(consumer.assignment())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500)
            except KafkaError as exc:
                log.error("reading %s failed, retrying: %s", self.topic, exc)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    decoded = decode_record(record.value)
                    for error in decoded.errors:
                        log.warning("bad record on %s: %s", self.topic, error.reason)
                    for event in decoded.events:
                        if isinstance(event, ModelEventEvent):
                            self.events_seen += 1
                            await self._deliver(event)

    async def _deliver(self, event: ModelEventEvent) -> None:
        if self.on_event is None:
            return
        try:
            await self.on_event(event)
        except Exception:  # one bad event must not stop the hot swap of the next ones
            log.exception("handling model event %s failed", event.id)

    async def stop(self) -> None:
        """Stop consuming and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
