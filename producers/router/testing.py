"""Run a router in this process, on a thread of its own, for tests, benchmarks and demos.

:class:`RouterThread` serves a :class:`~producers.router.service.RouterService`
on ``127.0.0.1`` with its own event loop, so synchronous test code can send it
HTTP requests while it consumes model events and publishes predictions.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Self

from aiohttp import web

from producers.router.exceptions import RouterError
from producers.router.service import RouterService, build_app

__all__ = ["RouterThread", "free_port"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RouterThread:
    """Serve ``service`` on ``http://127.0.0.1:<port>`` from a background thread.

    Examples
    --------
    >>> import json, urllib.request
    >>> from online_models.models import train
    >>> from online_models.models.datasets import tabular_rows
    >>> from online_models.registry import ModelRegistry
    >>> from online_models.registry.testing import InMemoryRedis
    >>> from producers.router.models import ServedModels
    >>> redis = InMemoryRedis()
    >>> registry = ModelRegistry(redis, secret=b"an example secret, 32 bytes long")
    >>> _ = registry.register_version(
    ...     "tabular", train("tabular", tabular_rows(1_000, seed=4)), alias="champion")
    >>> with RouterThread(RouterService(ServedModels(registry, redis))) as router:
    ...     body = json.dumps({"request_id": "r1", "model": "tabulr", "features": {}}).encode()
    ...     try:
    ...         urllib.request.urlopen(urllib.request.Request(router.url + "/predict", body))
    ...     except urllib.error.HTTPError as exc:
    ...         print(exc.code, json.loads(exc.read())["known_models"])
    404 ['tabular']
    """

    def __init__(self, service: RouterService, *, port: int | None = None) -> None:
        self.service = service
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="driftloop-router", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(build_app(self.service), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self, timeout_s: float = 60.0) -> Self:
        """Start serving; returns once ``/healthz`` would answer (models loaded)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RouterError(f"the router did not start within {timeout_s:g} s")
        if self._failure is not None:
            raise RouterError(f"the router failed to start: {self._failure!r}") from self._failure
        return self

    def call(self, coroutine: object, timeout_s: float = 30.0) -> object:
        """Run a coroutine on the router's loop and return its result (e.g. a refresh)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop serving: flush the prediction events, close the consumer, end the thread."""
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
