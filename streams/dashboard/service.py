"""The dashboard web service: one page, its state as JSON, and live updates.

Routes (aiohttp, on 127.0.0.1 by default):

``GET /``
    The page: one self-contained HTML file (``static/index.html``: inline CSS,
    vanilla JavaScript drawing on ``<canvas>``; nothing fetched from elsewhere).
``GET /api/state``
    :meth:`~streams.dashboard.state.DashboardState.snapshot` plus the feed status.
``GET /api/stream``
    Server-sent events: a ``state`` event with the same JSON whenever it
    changed (at most every ``push_interval_s``), a comment every 15 s otherwise.
``GET /healthz``
    ``ok``.

The state is fed by a :class:`~streams.dashboard.feed.TopicFeed` running in
the same event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import timedelta
from importlib.resources import files

from aiohttp import web

from streams.dashboard.exceptions import DashboardError
from streams.dashboard.feed import DASHBOARD_TOPICS, TopicFeed
from streams.dashboard.state import DashboardState
from streams.settings import Settings

__all__ = ["DashboardService", "page_html"]

log = logging.getLogger(__name__)

_KEEPALIVE_S = 15.0
_MAX_LOGGED_REJECTS = 20


def page_html() -> str:
    """The dashboard page, as served on ``/``.

    Examples
    --------
    >>> html = page_html()
    >>> html.startswith("<!doctype html>"), "http://" in html or "https://" in html
    (True, False)
    """
    return files("streams.dashboard").joinpath("static/index.html").read_text("utf-8")


class DashboardService:
    """Serve the dashboard of the metrics, alerts and model events on the broker.

    Parameters
    ----------
    settings
        Broker address and topic prefix.
    state
        Where events are folded (a default :class:`DashboardState` if not given).
    since
        How far back to read when starting; ``None`` = from the beginning.
    host, port
        Where to listen; port 0 picks a free one (see :attr:`url` after :meth:`start`).
    push_interval_s
        Least time between two live updates sent to a page.

    Examples
    --------
    The service builds its routes without touching the broker:

    >>> service = DashboardService(Settings(_env_file=None), port=0)
    >>> sorted({r.resource.canonical for r in service.build_app().router.routes()})
    ['/', '/api/state', '/api/stream', '/favicon.ico', '/healthz']

    With a broker (see ``make up``)::

        service = DashboardService(Settings(), port=8090)
        await service.start()   # raises DashboardError when Kafka does not answer
        print(service.url)      # http://127.0.0.1:8090/
        ...
        await service.stop()
    """

    def __init__(
        self,
        settings: Settings,
        *,
        state: DashboardState | None = None,
        since: timedelta | None = timedelta(hours=1),
        host: str = "127.0.0.1",
        port: int = 8090,
        push_interval_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.state = state if state is not None else DashboardState()
        self.since = since
        self.host = host
        self.port = port
        self.push_interval_s = push_interval_s
        self.feed = TopicFeed(settings, DASHBOARD_TOPICS, since=since)
        self.url = ""
        """``http://host:port/`` once started."""
        self.failure: str | None = None
        """Why the feed stopped, if it did."""
        self._page = page_html()
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._cache_key: tuple[int, str] | None = None
        self._cache_body = b""
        self._logged_rejects = 0

    # ------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        """The aiohttp application with its routes."""
        app = web.Application()
        app.router.add_get("/", self._page_view)
        app.router.add_get("/api/state", self._state_view)
        app.router.add_get("/api/stream", self._stream_view)
        app.router.add_get("/healthz", self._health_view)
        app.router.add_get("/favicon.ico", self._no_icon_view)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> str:
        """Connect to Kafka, start following the topics, and listen; returns the page's URL."""
        await self.feed.start()
        self._task = asyncio.create_task(self._follow(), name="driftloop-dashboard-feed")
        runner = web.AppRunner(self.build_app(), handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self._stop_feed()
            raise DashboardError(
                f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                "choose another port with --port"
            ) from None
        self._runner = runner
        sockets = site._server.sockets if site._server else []  # the real port when 0 was asked
        port = sockets[0].getsockname()[1] if sockets else self.port
        self.url = f"http://{self.host}:{port}/"
        return self.url

    async def stop(self) -> None:
        """Close the live streams, stop listening and disconnect from Kafka."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._stop_feed()

    async def _stop_feed(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.feed.stop()

    async def _follow(self) -> None:
        try:
            async for batch in self.feed.batches():
                self.state.apply_many(batch.events)
                self.state.rejected += batch.rejected
                for reason in batch.reasons:
                    if self._logged_rejects < _MAX_LOGGED_REJECTS:
                        log.warning("refused: %s", reason)
                        self._logged_rejects += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # shown on the page rather than lost in a dead task
            self.failure = f"the feed stopped: {exc.__class__.__name__}: {exc}"
            log.exception("dashboard feed stopped")

    # ------------------------------------------------------------------ views

    def status(self) -> dict[str, object]:
        """Where the data comes from and what the feed is doing."""
        return {
            "feed": self.failure or self.feed.status,
            "bootstrap_servers": self.settings.kafka_bootstrap_servers,
            "topics": self.feed.topics,
            "since_s": self.since.total_seconds() if self.since is not None else None,
        }

    def _body(self) -> bytes:
        status = self.status()
        key = (self.state.revision, str(status["feed"]))
        if key != self._cache_key:
            payload = {**self.state.snapshot(), "status": status, "served_at": time.time()}
            self._cache_body = json.dumps(payload, separators=(",", ":")).encode()
            self._cache_key = key
        return self._cache_body

    async def _page_view(self, request: web.Request) -> web.Response:
        return web.Response(text=self._page, content_type="text/html", charset="utf-8")

    async def _state_view(self, request: web.Request) -> web.Response:
        return web.Response(body=self._body(), content_type="application/json")

    async def _health_view(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _no_icon_view(self, request: web.Request) -> web.Response:
        return web.Response(status=204)  # browsers ask; a 404 would log an error on the page

    async def _stream_view(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        sent: tuple[int, str] | None = None
        quiet_since = time.monotonic()
        try:
            while not self._closing.is_set():
                body = self._body()
                if self._cache_key != sent:
                    await response.write(b"event: state\ndata: " + body + b"\n\n")
                    sent = self._cache_key
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= _KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    quiet_since = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.push_interval_s)
        except ConnectionResetError:
            pass  # the page went away
        return response

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()
