"""faust's Kafka transport with the consumer's fetch settings made ours to choose.

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

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["FetchTunedTransport", "fetch_settings", "use_fetch_settings"]


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
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchTunedTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport; its worker consumer uses ``fetch`` (min bytes, max wait ms)."""

    Consumer = _Consumer
    fetch: tuple[int, int] | None = None


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
