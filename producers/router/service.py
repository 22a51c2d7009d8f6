"""The prediction router's HTTP service (aiohttp): ``/predict``, ``/status``, ``/healthz``.

``POST /predict`` takes ``{"request_id", "model", "user_id"?, "segment"?,
"features": {...}}`` or ``{..., "audio_wav_base64": "..."}`` and answers
``{"request_id", "model", "model_version", "label", "score", "route"}``. The
route comes from the model's :class:`~online_models.routing.RoutingPolicy`,
keyed by ``user_id`` (else ``request_id``), so a user keeps their route. Every
answer is published as a prediction event with the route that answered; in
shadow, the challenger also scores the request after the answer is sent and
that is published with route ``shadow`` (same ``request_id``), never returned.

Hot swap: a model event for a served model (and, as a fallback, a timer every
``poll_interval_s``) rebuilds the model's snapshot off the event loop and
swaps it in on the loop. A handler takes the snapshot and answers without
awaiting in between, so once a swap is installed no request is answered by
the old state; after a rollback the challenger answers nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from producers.router.audio import WavClipFeaturiser
from producers.router.exceptions import (
    BadRequestError,
    ModelNotServedError,
    ModelUnavailableError,
    RouterError,
)
from producers.router.models import Candidate, LoadedModel, ServedModel, ServedModels
from producers.router.sink import PredictionSink
from producers.router.watcher import ModelEventWatcher
from streams.events import (
    FeatureName,
    FeatureValue,
    ModelEventEvent,
    ModelName,
    RequestId,
    Segment,
    validation_errors,
)
from streams.settings import Settings

__all__ = ["PredictRequest", "RouterService", "build_app"]

log = logging.getLogger("driftloop.router")

MAX_BODY_BYTES = 16 * 1024 * 1024


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: who asks, which model, and features or an audio clip.

    Examples
    --------
    >>> PredictRequest.model_validate(
    ...     {"request_id": "r1", "model": "tabular", "features": {"plan": "pro", "calls": 2}}
    ... ).features
    {'plan': 'pro', 'calls': 2.0}
    >>> try:
    ...     PredictRequest.model_validate({"request_id": "r1", "model": "tabular"})
    ... except ValidationError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, give 'features' (name -> number, string or null) or 'audio_wav_base64'
    """

    model_config = ConfigDict(extra="forbid")

    request_id: RequestId
    model: ModelName
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    features: dict[FeatureName, FeatureValue] | None = None
    audio_wav_base64: str | None = None
    segment: Segment | None = None

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if (self.features is None) == (self.audio_wav_base64 is None):
            if self.features is None:
                raise ValueError(
                    "give 'features' (name -> number, string or null) or 'audio_wav_base64'"
                )
            raise ValueError("give 'features' or 'audio_wav_base64', not both")
        return self


@dataclass
class _LastEvent:
    id: str
    action: str
    version: int
    time: str
    received_at: float
    applied_at: float | None = None


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class RouterService:
    """Answer predictions with the champion or challenger of each model, and publish them.

    Parameters
    ----------
    models
        The served models (see :class:`~producers.router.models.ServedModels`).
    sink
        Where prediction events go (a :class:`PredictionSink`); ``None`` publishes nothing.
    watcher
        The model-event consumer; ``None`` relies on the poll alone.
    poll_interval_s
        How often every model's state is re-read even without a model event.

    Examples
    --------
    >>> import asyncio
    >>> from online_models.models import train
    >>> from online_models.models.datasets import tabular_rows
    >>> from online_models.registry import ModelRegistry
    >>> from online_models.registry.testing import InMemoryRedis
    >>> redis = InMemoryRedis()
    >>> registry = ModelRegistry(redis, secret=b"an example secret, 32 bytes long")
    >>> _ = registry.register_version(
    ...     "tabular", train("tabular", tabular_rows(2_000, seed=0)), alias="champion")
    >>> service = RouterService(ServedModels(registry, redis))
    >>> async def ask():
    ...     await service.start()
    ...     try:
    ...         return await service.predict({"request_id": "r1", "model": "tabular",
    ...             "features": {"tenure_months": 1, "support_calls": 6, "plan": "basic"}})
    ...     finally:
    ...         await service.stop()
    >>> answer = asyncio.run(ask())
    >>> answer["label"], answer["model_version"], answer["route"]
    ('churn', '1', 'champion')
    """

    def __init__(
        self,
        models: ServedModels,
        *,
        sink: PredictionSink | None = None,
        watcher: ModelEventWatcher | None = None,
        poll_interval_s: float = 5.0,
        host_name: str | None = None,
    ) -> None:
        self.models = models
        self.sink = sink
        self.watcher = watcher
        if watcher is not None:
            watcher.on_event = self.on_model_event
        self.poll_interval_s = poll_interval_s
        self.host_name = host_name
        self.routes: Counter[str] = Counter()
        self.last_events: dict[str, _LastEvent] = {}
        self.audio = WavClipFeaturiser()
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="driftloop-router-io")
        self._cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftloop-router-audio")
        self._locks: dict[str, asyncio.Lock] = {}
        self._poller: asyncio.Task[None] | None = None
        self.started_at: float | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        models: Iterable[str] | None = None,
        poll_interval_s: float = 5.0,
    ) -> RouterService:
        """A router wired to the real services: Redis registry, Kafka publisher and watcher.

        Raises :class:`~producers.router.exceptions.RouterError` when the
        registry secret is not set (artifacts cannot be checked without it).
        """
        import redis

        from online_models.registry import ModelRegistry
        from producers.publisher import Publisher

        if settings.registry_secret is None:
            raise RouterError(
                "the router loads signed artifacts and needs the registry secret: set "
                "DRIFTLOOP_REGISTRY_SECRET to the secret the models were published with"
            )
        client = redis.Redis.from_url(settings.redis_url)
        registry = ModelRegistry(
            client, settings.registry_secret.get_secret_value(), settings.registry_namespace
        )
        served = ServedModels(registry, client, settings.registry_namespace, models=models)
        sink = PredictionSink(Publisher(settings, source="urn:driftloop:router"))
        return cls(
            served,
            sink=sink,
            watcher=ModelEventWatcher(settings, None),
            poll_interval_s=poll_interval_s,
            host_name=socket.gethostname(),
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start watching model events, then load every model, then start the fallback poll."""
        if self.watcher is not None:
            await self.watcher.start()  # first: an event published from now on is not missed
        await self.refresh_all()
        self._poller = asyncio.create_task(self._poll(), name="driftloop-router-poll")
        self.started_at = time.time()

    async def stop(self) -> None:
        """Stop the poll and the watcher, publish what is queued and flush."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.watcher is not None:
            await self.watcher.stop()
        if self.sink is not None:
            await asyncio.get_running_loop().run_in_executor(self._io, self.sink.close)
        self._io.shutdown(wait=False)
        self._cpu.shutdown(wait=False)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.refresh_all()
            except Exception:  # Redis down for a moment: keep serving, try again later
                log.exception("periodic refresh of the routing states failed")

    # ------------------------------------------------------------------ hot swap

    async def refresh(self, model: str, *, rolled_back: int | None = None) -> Candidate:
        """Rebuild ``model``'s snapshot off the loop and install it on the loop."""
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            candidate = await loop.run_in_executor(
                self._io, lambda: self.models.prepare(model, rolled_back=rolled_back)
            )
            before = self.models.snapshot().get(model)
            self.models.install(candidate)
            after = candidate.served
            if after is not None and (before is None or before.policy != after.policy):
                log.info(
                    "model %s now: champion v%s, challenger %s, %s %.2f (revision %d)",
                    model,
                    after.champion.version,
                    f"v{after.challenger.version}" if after.challenger else "none",
                    after.policy.status,
                    after.policy.fraction,
                    after.policy.revision,
                )
            return candidate

    async def refresh_all(self) -> None:
        """Refresh every model this router serves (and discover new ones)."""
        loop = asyncio.get_running_loop()
        names = await loop.run_in_executor(self._io, self.models.discover)
        for model in names:
            candidate = await self.refresh(model)
            if candidate.served is None and self.models.pinned is None:
                self.models.errors.pop(model, None)  # an unpinned model with nothing to serve

    async def on_model_event(self, event: ModelEventEvent) -> None:
        """Re-read the state of the event's model (if served here) and swap it in."""
        data = event.data
        if not self.models.wanted(data.model):
            return
        last = _LastEvent(event.id, data.action, data.version, event.time.isoformat(), time.time())
        self.last_events[data.model] = last
        rolled_back = data.version if data.action == "rolled_back" else None
        try:
            await self.refresh(data.model, rolled_back=rolled_back)
        finally:
            last.applied_at = time.time()  # handled: swapped in, or refused and logged

    # ------------------------------------------------------------------ answering

    async def predict(self, body: object) -> dict[str, Any]:
        """Answer one request body (already decoded JSON); raises the router's errors."""
        received = time.perf_counter()
        try:
            request = PredictRequest.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(str(e) for e in validation_errors(exc))
            raise BadRequestError(problems) from None
        if request.audio_wav_base64 is not None:
            loop = asyncio.get_running_loop()
            features: Mapping[str, Any] = await loop.run_in_executor(
                self._cpu, self.audio.features, request.audio_wav_base64
            )
        else:
            features = request.features or {}
        # from here to the return nothing awaits: the snapshot answering is the current one
        served = self.models.get(request.model)
        route, answering, shadow = served.answer(request.user_id or request.request_id)
        label, score = self._score(answering, features)
        latency_ms = (time.perf_counter() - received) * 1000.0
        version = str(answering.version)
        self.routes[route.route_name] += 1
        self._publish(request, features, version, label, score, latency_ms, route.route_name)
        if shadow is not None:
            asyncio.get_running_loop().call_soon(
                self._score_shadow, served, shadow, request, features
            )
        return {
            "request_id": request.request_id,
            "model": request.model,
            "model_version": version,
            "label": label,
            "score": score,
            "route": route.route_name,
        }

    @staticmethod
    def _score(loaded: LoadedModel, features: Mapping[str, Any]) -> tuple[str | None, float | None]:
        prediction = loaded.classifier.predict_one(features)
        label, score = prediction[0], prediction[1]
        return (None if label is None else str(label)), (None if score is None else float(score))

    def _score_shadow(
        self,
        served: ServedModel,
        shadow: LoadedModel,
        request: PredictRequest,
        features: Mapping[str, Any],
    ) -> None:
        started = time.perf_counter()
        try:
            label, score = self._score(shadow, features)
        except Exception:
            log.exception("shadow v%s of %s failed on %s", shadow.version, served.model,
                          request.request_id)  # fmt: skip
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        self.routes["shadow"] += 1
        self._publish(request, features, str(shadow.version), label, score, latency_ms, "shadow")

    def _publish(
        self,
        request: PredictRequest,
        features: Mapping[str, Any],
        version: str,
        label: str | None,
        score: float | None,
        latency_ms: float,
        route: str,
    ) -> None:
        if self.sink is None:
            return
        data: dict[str, Any] = {
            "request_id": request.request_id,
            "model": request.model,
            "model_version": version,
            "features": dict(features),
            "prediction": {"label": label, "score": score},
            "latency_ms": latency_ms,
            "route": route,
        }
        if request.segment:
            data["segment"] = request.segment
        if self.host_name:
            data["host"] = {"name": self.host_name}
        # deterministic: a retried request (same request_id) deduplicates downstream
        self.sink.submit(data, id=f"{request.request_id}:{route}")

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Per model: versions, phase, fraction, last model event; and request counts."""
        models: dict[str, Any] = {}
        for name, served in sorted(self.models.snapshot().items()):
            models[name] = served.status()
        for name, error in self.models.errors.items():
            models.setdefault(name, {})["last_error"] = error
        for name, last in self.last_events.items():
            if name in models:
                models[name]["last_model_event"] = {
                    "id": last.id,
                    "action": last.action,
                    "version": last.version,
                    "time": last.time,
                    "received_at": last.received_at,
                    "applied_at": last.applied_at,
                }
        sink = self.sink.stats if self.sink is not None else None
        return {
            "models": models,
            "requests": dict(self.routes),
            "events": vars(sink).copy() if sink is not None else None,
            "model_events_seen": self.watcher.events_seen if self.watcher else None,
            "started_at": self.started_at,
        }


def build_app(service: RouterService) -> web.Application:
    """The aiohttp application of ``service``; starting it starts the service.

    Examples
    --------
    >>> from online_models.registry import ModelRegistry
    >>> from online_models.registry.testing import InMemoryRedis
    >>> redis = InMemoryRedis()
    >>> registry = ModelRegistry(redis, secret=b"an example secret, 32 bytes long")
    >>> app = build_app(RouterService(ServedModels(registry, redis)))
    >>> sorted({r.resource.canonical for r in app.router.routes()})
    ['/healthz', '/predict', '/status']
    """
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    async def predict(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"the body is not valid JSON: {exc}")
        try:
            answer = await service.predict(body)
        except BadRequestError as exc:
            return _error(400, str(exc))
        except ModelNotServedError as exc:
            return _error(404, str(exc), known_models=service.models.names)
        except ModelUnavailableError as exc:
            return _error(503, str(exc))
        return web.json_response(answer)

    async def healthz(_: web.Request) -> web.Response:
        if service.started_at is None:
            return _error(503, "starting")
        return web.json_response({"status": "ok", "models": service.models.names})

    async def status(_: web.Request) -> web.Response:
        return web.json_response(service.status())

    async def on_startup(_: web.Application) -> None:
        await service.start()

    async def on_cleanup(_: web.Application) -> None:
        await service.stop()

    app.router.add_post("/predict", predict)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
