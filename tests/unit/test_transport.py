"""The worker's consumer fetches with our settings, not faust's fixed ones (no broker needed)."""

from __future__ import annotations

import asyncio

from streams.app import create_app
from streams.settings import Settings
from streams.transport import fetch_settings


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
