"""The models a router serves: champion and challenger loaded from the registry, hot-swapped.

The rollout state of a model lives in Redis at ``<namespace>routing:<model>``
as :meth:`RoutingPolicy.to_json` (written by the rollout controller only). A
:class:`ServedModel` is an immutable snapshot of one model: its policy and the
loaded artifacts of the versions that policy names. :class:`ServedModels`
builds a new snapshot from Redis and the registry (:meth:`~ServedModels.prepare`,
blocking I/O, run off the event loop) and swaps it in with one assignment
(:meth:`~ServedModels.install`, on the event loop), so a request sees either the
old state or the new one, never a mix.

Artifacts are loaded through :meth:`ModelRegistry.load`, which checks the HMAC
signature before unpickling: a tampered or unsigned artifact is refused, the
router logs it at ERROR and keeps serving what it served before (dropping a
challenger the new state no longer names, so a rollback always takes effect).
A model without a routing state serves its registry ``champion`` alias alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from online_models.registry import CHAMPION, ModelRegistry, RegistryError, UnknownModelError
from online_models.routing import Route, RoutingError, RoutingPolicy
from producers.router.exceptions import ModelNotServedError, ModelUnavailableError

__all__ = ["Candidate", "LoadedModel", "ServedModel", "ServedModels", "routing_key"]

log = logging.getLogger("driftloop.router")


def routing_key(namespace: str, model: str) -> str:
    """The Redis key of a model's routing state.

    Examples
    --------
    >>> routing_key("driftloop:", "voice_intent")
    'driftloop:routing:voice_intent'
    """
    return f"{namespace}routing:{model}"


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, signature-checked version: anything with ``predict_one(features)``."""

    version: int
    classifier: Any
    sha256: str


@dataclass(frozen=True)
class ServedModel:
    """What answers one model's requests right now: its policy and loaded versions.

    Examples
    --------
    >>> class Constant:
    ...     def __init__(self, label): self.label = label
    ...     def predict_one(self, features): return (self.label, 1.0)
    >>> policy = RoutingPolicy("m", champion=1).start_shadow(2).start_canary(0.5)
    >>> served = ServedModel(
    ...     "m", policy, LoadedModel(1, Constant("a"), ""), LoadedModel(2, Constant("b"), ""),
    ...     source="routing-state", applied_at=0.0)
    >>> answers = [served.answer(f"user-{i}") for i in range(1_000)]
    >>> sum(route.route_name == "challenger" for route, _, _ in answers)
    495
    >>> served.answer("user-1")[1].version in (1, 2)
    True
    """

    model: str
    policy: RoutingPolicy
    champion: LoadedModel
    challenger: LoadedModel | None
    source: Literal["routing-state", "registry-alias"]
    applied_at: float

    def answer(self, key: str) -> tuple[Route, LoadedModel, LoadedModel | None]:
        """The route of ``key``, the version that answers it, and the one scoring in shadow."""
        route = self.policy.route(key)
        if route.route_name == "challenger":
            if self.challenger is None:  # cannot happen for a snapshot built by ServedModels
                raise ModelUnavailableError(f"challenger of {self.model!r} is not loaded")
            return route, self.challenger, None
        shadow = self.challenger if route.shadow_version is not None else None
        return route, self.champion, shadow

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` shows of this model."""
        policy = self.policy
        return {
            "champion": self.champion.version,
            "challenger": self.challenger.version if self.challenger else None,
            "phase": policy.phase,
            "status": policy.status,
            "fraction": policy.fraction,
            "revision": policy.revision,
            "rolled_back": list(policy.rolled_back),
            "source": self.source,
            "applied_at": self.applied_at,
        }


@dataclass(frozen=True)
class Candidate:
    """The outcome of :meth:`ServedModels.prepare`: a snapshot to install, or why there is none."""

    model: str
    served: ServedModel | None
    error: str | None = None


class ServedModels:
    """The table of served models, rebuilt from Redis and the registry and swapped atomically.

    Parameters
    ----------
    registry
        Where the artifacts are (with the secret: loading checks signatures).
    client
        The Redis client that holds the routing states (the registry's own client).
    namespace
        The registry namespace; routing states are at :func:`routing_key`.
    models
        Serve only these models; ``None`` serves every model in the registry
        that has a champion (new ones are picked up by :meth:`discover`).
    clock
        Unix time of a swap (for ``applied_at``).

    Examples
    --------
    >>> from online_models.models import train
    >>> from online_models.models.datasets import tabular_rows
    >>> from online_models.registry.testing import InMemoryRedis
    >>> redis = InMemoryRedis()
    >>> registry = ModelRegistry(redis, secret=b"an example secret, 32 bytes long")
    >>> v1 = registry.register_version(
    ...     "m", train("tabular", tabular_rows(300, seed=0)), alias="champion")
    >>> v2 = registry.register_version(
    ...     "m", train("tabular", tabular_rows(300, seed=1)), alias="challenger")
    >>> served = ServedModels(registry, redis, "driftloop:", clock=lambda: 0.0)
    >>> served.refresh_all()
    ['m']
    >>> served.get("m").champion.version, served.get("m").challenger  # no routing state yet
    (1, None)
    >>> policy = RoutingPolicy("m", champion=1).start_shadow(2).start_canary(0.05)
    >>> _ = redis.set(routing_key("driftloop:", "m"), policy.to_json())
    >>> served.refresh("m").served.policy.phase
    'canary'
    >>> routes = [served.get("m").answer(f"r-{i}")[0].route_name for i in range(2_000)]
    >>> routes.count("challenger")
    92
    >>> _ = redis.set(routing_key("driftloop:", "m"), policy.rollback("worse").to_json())
    >>> served.refresh("m").served.challenger is None
    True
    >>> try:
    ...     served.get("nope")
    ... except ModelNotServedError as exc:
    ...     print(exc)
    model 'nope' is not served here; served models: m
    """

    def __init__(
        self,
        registry: ModelRegistry,
        client: Any,
        namespace: str = "driftloop:",
        *,
        models: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.client = client
        self.namespace = namespace
        self.pinned: tuple[str, ...] | None = tuple(models) if models is not None else None
        self._clock = clock
        self._served: dict[str, ServedModel] = {}
        self.errors: dict[str, str] = {}

    # ------------------------------------------------------------------ reading

    @property
    def names(self) -> list[str]:
        """The models that answer requests now, by name."""
        return sorted(self._served)

    def get(self, model: str) -> ServedModel:
        """The current snapshot of ``model``; raises listing the served models."""
        served = self._served.get(model)
        if served is not None:
            return served
        if model in self.errors:
            raise ModelUnavailableError(f"model {model!r} cannot be served: {self.errors[model]}")
        raise ModelNotServedError(
            f"model {model!r} is not served here; served models: "
            f"{', '.join(self.names) or '(none yet)'}"
        )

    def snapshot(self) -> Mapping[str, ServedModel]:
        """Every served model's current snapshot."""
        return dict(self._served)

    def wanted(self, model: str) -> bool:
        """Whether this router serves ``model`` (pinned list, or every model)."""
        return self.pinned is None or model in self.pinned

    def discover(self) -> list[str]:
        """The models to serve: the pinned ones, else every model in the registry."""
        if self.pinned is not None:
            return list(self.pinned)
        return sorted({m.name for m in self.registry.list_models()} | set(self._served))

    # ------------------------------------------------------------------ building

    def _policy(self, model: str) -> tuple[RoutingPolicy | None, str]:
        raw = self.client.get(routing_key(self.namespace, model))
        if raw is not None:
            return RoutingPolicy.from_json(raw), "routing-state"
        try:
            champion = self.registry.get_alias(model, CHAMPION)
        except UnknownModelError:
            champion = None
        if champion is None:
            return None, "registry-alias"
        return RoutingPolicy(model, champion=champion), "registry-alias"

    def _load(self, model: str, version: int, current: ServedModel | None) -> LoadedModel:
        if current is not None:
            for loaded in (current.champion, current.challenger):
                if loaded is not None and loaded.version == version:
                    return loaded  # versions never change once published
        artifact, info = self.registry.load(model, version)
        if not callable(getattr(artifact, "predict_one", None)):
            raise RegistryError(
                f"version {version} of {model!r} is a {type(artifact).__name__}, not a model "
                "with predict_one(features); publish an online_models OnlineClassifier"
            )
        return LoadedModel(version, artifact, info.sha256)

    def prepare(self, model: str, *, rolled_back: int | None = None) -> Candidate:
        """Build the snapshot the stored state asks for (blocking: Redis and registry reads).

        ``rolled_back`` is the version a ``rolled_back`` model event names: if
        the stored state still has it as challenger, it is rolled back here too.
        """
        current = self._served.get(model)
        try:
            policy, source = self._policy(model)
        except (RoutingError, ValueError) as exc:
            return self._refused(model, current, None, f"routing state unreadable: {exc}")
        if policy is None:
            return Candidate(model, None, f"model {model!r} has no champion and no routing state")
        if rolled_back is not None and policy.challenger == rolled_back:
            log.warning(
                "model-event rolled back %s v%s but its routing state still names it "
                "challenger: rolling it back locally",
                model,
                rolled_back,
            )
            policy = policy.rollback("rolled_back model event")
        if policy.champion is None:
            return Candidate(model, None, f"routing state of {model!r} names no champion")
        try:
            champion = self._load(model, policy.champion, current)
            challenger = (
                self._load(model, policy.challenger, current)
                if policy.challenger is not None
                else None
            )
        except RegistryError as exc:
            return self._refused(model, current, policy, str(exc))
        served = ServedModel(model, policy, champion, challenger, source, self._clock())
        return Candidate(model, served)

    def _refused(
        self,
        model: str,
        current: ServedModel | None,
        policy: RoutingPolicy | None,
        reason: str,
    ) -> Candidate:
        log.error("REFUSED new state of model %s, keeping the previous one: %s", model, reason)
        if current is None:
            return Candidate(model, None, reason)
        keep = current
        wanted_challenger = policy.challenger if policy is not None else None
        if current.challenger is not None and current.challenger.version != wanted_challenger:
            # the new state no longer names this challenger: never let it answer again
            keep = replace(
                current,
                policy=current.policy.rollback(f"dropped: {reason}"[:200]),
                challenger=None,
                applied_at=self._clock(),
            )
        return Candidate(model, keep, reason)

    # ------------------------------------------------------------------ swapping

    def install(self, candidate: Candidate) -> Candidate:
        """Swap ``candidate`` in (one assignment); call it on the thread that answers requests."""
        if candidate.served is not None:
            self._served[candidate.model] = candidate.served
        if candidate.error is None:
            self.errors.pop(candidate.model, None)
        else:
            self.errors[candidate.model] = candidate.error
        return candidate

    def refresh(self, model: str, *, rolled_back: int | None = None) -> Candidate:
        """:meth:`prepare` then :meth:`install`, for callers with one thread."""
        return self.install(self.prepare(model, rolled_back=rolled_back))

    def refresh_all(self) -> list[str]:
        """Refresh every model to serve; returns the names served afterwards."""
        for model in self.discover():
            candidate = self.prepare(model)
            if candidate.served is not None or self.pinned is not None:
                self.install(candidate)
        return self.names
