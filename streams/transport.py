"""faust's Kafka transport: the consumer's fetch settings made ours, and a producer flush
that does not give up.

**Flush.** faust acknowledges records by committing offsets, and before a
commit (and when partitions are revoked) it flushes the producer, so that
what the records caused (table changelog writes, sent events) is out before
they count as read. But faust-streaming 0.15's ``ProducerBuffer.flush``
returns as soon as one message takes more than 0.1 s to be handed to aiokafka,
with the rest still in the buffer, and a changelog write made just before the
commit can be the one still waiting. Under load the commit then got ahead of
the tables: a worker that took the partition over recovered window states
older than the committed offset and never counted the records in between.
:class:`FlushingProducer` flushes until the buffer is empty and the last
buffered message has been delivered.

**Fetch.**
faust-streaming builds its aiokafka consumer with ``fetch_min_bytes=1`` and
``fetch_max_wait_ms=1500`` and offers no setting for either. With
``fetch_min_bytes=1`` the broker answers a fetch as soon as any partition has
one new record, so at a few hundred events per second the consumer sends a
fetch request for every record or two, and building and parsing those requests
(one entry per assigned partition, in Python) costs more CPU than the events
themselves. Asking for at least ``fetch_min_bytes`` and waiting at most
``fetch_max_wait_ms`` for them makes a fetch carry many records at low rates,
at the price of at most ``fetch_max_wait_ms`` of extra latency; at high rates
the bytes are there at once and nothing changes.

The two values are set on the consumer after faust created it and before it
starts: private attributes of aiokafka's ``AIOKafkaConsumer`` (the versions are
pinned in ``pyproject.toml``; :func:`fetch_settings` reads them back so a test
notices when an upgrade moves them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["FetchTunedTransport", "FlushingProducer", "fetch_settings", "use_fetch_settings"]

log = logging.getLogger(__name__)
FLUSH_WARN_S = 10.0


def fetch_settings(consumer: aiokafka.AIOKafkaConsumer) -> tuple[int, int]:
    """``(fetch_min_bytes, fetch_max_wait_ms)`` a consumer will use when it starts.

    >>> import asyncio
    >>> async def made() -> tuple[int, int]:
    ...     consumer = aiokafka.AIOKafkaConsumer(fetch_min_bytes=7, fetch_max_wait_ms=9)
    ...     return fetch_settings(consumer)
    >>> asyncio.run(made())
    (7, 9)
    """
    return consumer._fetch_min_bytes, consumer._fetch_max_wait_ms


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        tuned = getattr(self.transport, "fetch", None)
        if tuned is not None:
            consumer._fetch_min_bytes, consumer._fetch_max_wait_ms = tuned
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    async def seek_to_committed(self) -> Mapping[Any, int]:
        offsets = await super().seek_to_committed()
        hook = getattr(self.transport, "on_sought", None)
        if hook is not None:
            await hook(offsets)
        return offsets

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FlushingProducer(faust_aiokafka.Producer):
    """faust's aiokafka producer whose :meth:`flush` empties the buffer (see the module
    docstring)."""

    _last_buffered: asyncio.Future[Any] | None = None

    def send_soon(self, fut: Any) -> None:
        """Buffer ``fut`` (a table's changelog write), remembering it as the latest."""
        self._last_buffered = fut
        super().send_soon(fut)

    async def flush(self) -> None:
        """Hand every buffered message to aiokafka, then wait until all are delivered."""
        buffer = self.buffer
        started = time.monotonic()
        warned = False
        while buffer.size:
            await buffer.flush()  # returns early when one send takes over 0.1 s: go on
            if not warned and time.monotonic() - started > FLUSH_WARN_S:
                warned = True
                log.warning("producer flush: %s messages still buffered after %.0f s",
                            buffer.size, FLUSH_WARN_S)  # fmt: skip
        last = self._last_buffered
        if last is not None and not last.done():
            # taken from the queue but perhaps not yet handed over: wait for its delivery
            # (or failure, which faust reports where the message was sent)
            await asyncio.wait([last])
        await super().flush()


class FetchTunedTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport; its worker consumer uses ``fetch`` (min bytes, max wait ms),
    its producer is a :class:`FlushingProducer`."""

    Consumer = _Consumer
    Producer = FlushingProducer
    fetch: tuple[int, int] | None = None
    #: awaited with the offsets of every seek to the committed ones (after each assignment)
    on_sought: Callable[[Mapping[Any, int | None]], Awaitable[None]] | None = None


def use_fetch_settings(app: faust.App, *, min_bytes: int, max_wait_ms: int) -> None:
    """Make ``app``'s consumer fetch at least ``min_bytes``, waiting at most ``max_wait_ms``.

    Call it before the app starts (its consumer is created on start).

    >>> app = faust.App("doc-fetch", broker="kafka://127.0.0.1:9092")
    >>> use_fetch_settings(app, min_bytes=65536, max_wait_ms=100)
    >>> app.transport.fetch
    (65536, 100)
    """
    transport = FetchTunedTransport(app.conf.broker_consumer, app)
    transport.fetch = (min_bytes, max_wait_ms)
    app.transport = transport
