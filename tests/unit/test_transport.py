"""The worker's consumer fetches with our settings, not faust's fixed ones (no broker needed)."""

from __future__ import annotations

import asyncio

from faust.types.tuples import FutureMessage, PendingMessage

from streams.app import create_app
from streams.settings import Settings
from streams.transport import FlushingProducer, fetch_settings


def _worker_consumer_fetch(settings: Settings) -> tuple[int, int]:
    monitor = create_app(settings)

    async def made() -> tuple[int, int]:
        # what faust's consumer thread builds on start (nothing connects yet)
        thread = monitor.app.consumer._thread
        consumer = thread._create_worker_consumer(monitor.app.transport)
        return fetch_settings(consumer)

    return asyncio.run(made())


def test_worker_consumer_uses_the_configured_fetch_settings(tmp_path):
    settings = Settings(state_dir=tmp_path, fetch_min_bytes=12_345, fetch_max_wait_ms=77)
    assert _worker_consumer_fetch(settings) == (12_345, 77)


def test_defaults_ask_for_many_records_per_fetch_and_wait_briefly(tmp_path):
    min_bytes, max_wait_ms = _worker_consumer_fetch(Settings(state_dir=tmp_path))
    # faust alone would use (1, 1500): a fetch per record at low rates
    assert min_bytes >= 16_384
    assert max_wait_ms <= 200


def test_a_flush_waits_for_every_buffered_message_even_when_sends_are_slow(tmp_path):
    # faust's own flush gives up once one message takes over 0.1 s to be handed to aiokafka;
    # a commit after it then counted records whose changelog writes were still buffered
    handed_over: list[int] = []

    async def slow_send(fut: FutureMessage) -> None:
        await asyncio.sleep(0.15)
        handed_over.append(fut.message.partition)
        fut.set_result(None)

    async def run() -> tuple[int, int]:
        # built in the running loop: faust's services keep the loop they were made in
        producer = create_app(Settings(state_dir=tmp_path)).app.producer
        assert isinstance(producer, FlushingProducer)
        buffer = producer.buffer
        buffer._send_pending = slow_send
        await buffer.start()
        try:
            for n in range(4):
                message = PendingMessage(
                    channel=None, key=None, value=b"x", partition=n, timestamp=None,
                    headers=None, key_serializer=None, value_serializer=None, callback=None,
                    topic="t", offset=None, generation_id=None,
                )  # fmt: skip
                producer.send_soon(FutureMessage(message))
            await producer.flush()
            return len(handed_over), buffer.size
        finally:
            await buffer.stop()

    assert asyncio.run(run()) == (4, 0)
