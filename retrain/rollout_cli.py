"""``driftloop rollout``: the rollout controller process — Kafka and Redis around the core.

Reads ``model-events`` (a ``published`` version starts a rollout, shadow
first; an ``approved`` event makes it look for approvals at once) and
``metrics`` (the monitor's windows per model, version and segment), keeps
what the gate of each model's current step needs, and lets
:class:`~retrain.rollout.RolloutController` decide. Each transition is made
in this order: the controller's state with the pending work (an outbox), then
the routing policy at ``<namespace>routing:<model>`` (what ``driftloop
serve`` reads), then the registry (aliases, approval requests), then the
model events, then the outbox is cleared. A process killed anywhere in
between finishes the transition when it starts again: every step of it is
idempotent and the events have deterministic ids. Approvals given with
``driftloop models approve MODEL VERSION --step STEP`` are polled from the
registry.

Redis keys under the namespace ``ns`` (``DRIFTLOOP_REGISTRY_NAMESPACE``)::

    ns routing:<model>           STRING RoutingPolicy JSON (read by the router)
    ns rollout:state:<model>     STRING RolloutState JSON and the outbox of a transition
    ns rollout:windows:<model>   HASH   window key -> MetricWindow JSON of the current step
    ns rollout:offsets           HASH   "<topic>:<partition>" -> next offset to read

Offsets live in Redis beside the state rather than in a consumer group: a
restarted controller resumes at once, with no group join to wait for. Run
one controller per namespace: it is the only writer of the routing state.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, cast

import redis
import typer
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from rich.console import Console

from online_models.registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryError
from online_models.routing import RolloutGate, RoutingError, RoutingPolicy
from online_models.routing.policy import STRATEGIES, Strategy
from producers.exceptions import ProducersError
from producers.publisher import Publisher
from retrain.rollout import (
    ERROR_SIGNALS,
    Decision,
    MetricWindow,
    RolloutController,
    RolloutError,
    RolloutState,
    approval_step,
)
from streams.cli import BootstrapOption, PrefixOption, settings_with
from streams.codec import decode_record
from streams.events import CloudEvent, MetricsEvent, ModelEventEvent
from streams.exceptions import StreamsError
from streams.settings import Settings

__all__ = ["EventSink", "EventTail", "RolloutRunner", "rollout", "serve"]

console = Console()
err_console = Console(stderr=True)

TOPICS = ("model-events", "metrics")
WAITING_LOG_S = 30.0  # how often the log says what a rollout step is waiting for


class EventSink(Protocol):
    """Where model events go: a :class:`~producers.publisher.Publisher`, or a list in tests."""

    def send(self, event: CloudEvent) -> object:
        """Queue one event."""
        ...

    def flush(self, timeout: float | None = None) -> None:
        """Deliver everything queued, or raise."""
        ...


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RolloutRunner:
    """The controller's state in Redis, its registry changes and its events, for every model.

    Parameters
    ----------
    controller
        Decides each step.
    client
        A ``redis.Redis`` (or :class:`~online_models.registry.testing.InMemoryRedis`).
    registry
        The model registry (aliases and approvals; no secret needed).
    sink
        Where the model events are published.
    namespace
        Prefix of the Redis keys (the registry's namespace).
    clock
        Current time, timezone-aware (the time stamp of each step).
    log
        Called with one line per thing worth telling an operator.

    Examples
    --------
    >>> from datetime import timedelta
    >>> from online_models.registry.testing import InMemoryRedis
    >>> client = InMemoryRedis()
    >>> registry = ModelRegistry(client, secret=b"an example secret, 32 bytes long")
    >>> for alias in ("champion", "challenger"):
    ...     _ = registry.register_version("voice_intent", {"bias": 0.5}, alias=alias)
    >>> class Events(list):
    ...     def send(self, event): self.append(event)
    ...     def flush(self, timeout=None): pass
    >>> sink, now = Events(), datetime(2026, 1, 2, tzinfo=UTC)
    >>> runner = RolloutRunner(RolloutController(RolloutGate(min_samples=50),
    ...                                          error_signal="redo_rate"),
    ...                        client, registry, sink, clock=lambda: now)
    >>> runner.handle(ModelEventEvent.new({"model": "voice_intent", "version": 2,
    ...                                    "action": "published"}))
    >>> start = now + timedelta(seconds=1)
    >>> for version, redo in ((1, 0.2), (2, 0.6)):
    ...     runner.handle(MetricsEvent.new({
    ...         "model": "voice_intent", "model_version": str(version), "window_start": start,
    ...         "window_end": start + timedelta(seconds=10), "count": 100,
    ...         "metrics": {"outcomes": 100.0, "redo_rate": redo}}))
    >>> runner.evaluate()
    >>> [e.data.action for e in sink]
    ['shadow_started', 'rolled_back']
    >>> RoutingPolicy.from_json(client.get("driftloop:routing:voice_intent")).rolled_back
    (2,)
    >>> registry.get_version("voice_intent", 2).status
    'rolled_back'
    """

    def __init__(
        self,
        controller: RolloutController,
        client: Any,
        registry: ModelRegistry,
        sink: EventSink,
        *,
        namespace: str = "driftloop:",
        clock: Callable[[], datetime] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.controller = controller
        self.client = client
        self.registry = registry
        self.sink = sink
        self.namespace = namespace
        self._clock = clock or (lambda: datetime.now(UTC))
        self._log = log or (lambda line: None)
        self._states: dict[str, RolloutState | None] = {}
        self._windows: dict[str, dict[str, MetricWindow]] = {}
        self._dirty: set[str] = set()
        self._waiting_logged: dict[str, datetime] = {}

    # ------------------------------------------------------------------ keys

    def routing_key(self, model: str) -> str:
        """Where the router reads the model's :class:`RoutingPolicy` JSON."""
        return f"{self.namespace}routing:{model}"

    def state_key(self, model: str) -> str:
        """Where the model's :class:`RolloutState` and unfinished transition are kept."""
        return f"{self.namespace}rollout:state:{model}"

    def windows_key(self, model: str) -> str:
        """Where the windows of the model's current step are kept."""
        return f"{self.namespace}rollout:windows:{model}"

    @property
    def offsets_key(self) -> str:
        """Where the next offsets to read of each topic partition are kept."""
        return f"{self.namespace}rollout:offsets"

    # ------------------------------------------------------------------ state

    def _load(self, model: str) -> RolloutState | None:
        raw = self.client.get(self.state_key(model))
        if raw is not None:
            stored = json.loads(raw)
            state = RolloutState.from_dict(stored["state"])
            self._states[model] = state
            self._windows[model] = {
                _text(key): MetricWindow.from_json(value)
                for key, value in self.client.hgetall(self.windows_key(model)).items()
            }
            if stored.get("outbox"):
                self._log(f"{model}: finishing a transition a stopped controller left unfinished")
                self._finish(model, state, stored["outbox"])
            return state
        routing = self.client.get(self.routing_key(model))
        state = None
        if routing is not None:
            policy = RoutingPolicy.from_json(routing)
            # no record of when its step began: count the gate's traffic from now on
            started = self._clock() if policy.challenger is not None else None
            state = RolloutState(policy, started)
        self._states[model] = state
        self._windows[model] = {}
        return state

    def state(self, model: str) -> RolloutState | None:
        """The model's rollout state (``None`` for a model never rolled out)."""
        if model in self._states:
            return self._states[model]
        return self._load(model)

    def recover(self) -> list[str]:
        """Load every stored state and finish unfinished transitions; return the models."""
        prefix = self.state_key("")
        models = sorted(
            _text(key)[len(prefix) :] for key in self.client.scan_iter(match=prefix + "*")
        )
        for model in models:
            self._states.pop(model, None)
            state = self._load(model)
            if state is not None and state.policy.challenger is not None:
                self._dirty.add(model)
        return models

    @property
    def rollouts(self) -> dict[str, RolloutState]:
        """The models with a rollout under way and their states."""
        return {
            model: state
            for model, state in self._states.items()
            if state is not None and state.policy.challenger is not None
        }

    # ------------------------------------------------------------------ events in

    def handle(self, event: CloudEvent) -> None:
        """Take one event from ``model-events`` or ``metrics`` (others are ignored)."""
        if isinstance(event, MetricsEvent):
            self._on_window(event)
        elif isinstance(event, ModelEventEvent) and event.source != self.controller.source:
            data = event.data
            if data.action == "published":
                self._on_published(event)
            elif data.action == "approved":
                self.poll_approvals([data.model])

    def _on_published(self, event: ModelEventEvent) -> None:
        data = event.data
        try:
            self.registry.resolve(data.model, data.version)
            champion = self.registry.get_alias(data.model, CHAMPION)
        except RegistryError as exc:
            self._log(f"{data.model} v{data.version}: not rolled out: {exc}")
            return
        decision = self.controller.start(
            self.state(data.model),
            data.model,
            data.version,
            champion=champion,
            now=self._clock(),
            retrain_request_id=data.retrain_request_id,
        )
        if decision.note:
            self._log(f"{data.model} v{data.version}: {decision.note}")
        self._apply(data.model, decision)

    def _on_window(self, event: MetricsEvent) -> None:
        window = MetricWindow.from_metrics(event.data)
        model = event.data.model
        if window is None or not self.controller.wants(self.state(model), window):
            return
        self.client.hset(self.windows_key(model), window.key, window.to_json())
        self._windows.setdefault(model, {})[window.key] = window
        self._dirty.add(model)

    def evaluate(self) -> None:
        """Ask the gate of every model that got new windows since the last call."""
        dirty, self._dirty = self._dirty, set()
        for model in sorted(dirty):
            state = self.state(model)
            if state is None:
                continue
            windows = self._windows.get(model, {}).values()
            now = self._clock()
            decision = self.controller.evaluate(state, windows, now=now)
            if decision.changed:
                self._waiting_logged.pop(model, None)
            elif decision.note and state.policy.challenger is not None:
                # what the step waits for (e.g. samples per arm), every WAITING_LOG_S
                last = self._waiting_logged.get(model)
                if last is None or (now - last).total_seconds() >= WAITING_LOG_S:
                    self._waiting_logged[model] = now
                    self._log(
                        f"{model} v{state.policy.challenger} at {state.policy.phase} "
                        f"{state.policy.fraction:.0%}: waiting ({decision.note})"
                    )
            self._apply(model, decision)

    def poll_approvals(self, models: Sequence[str] | None = None) -> None:
        """Carry out every step awaiting approval that was approved in the registry."""
        for model in list(models) if models is not None else list(self.rollouts):
            state = self.state(model)
            if state is None or state.policy.pending_step is None:
                continue
            version = state.policy.challenger
            assert version is not None
            step = approval_step(state.policy.pending_step)
            try:
                if not self.registry.is_approved(model, version, step):
                    continue
                by = next(
                    (
                        a.approved_by
                        for a in self.registry.approvals(model, version)
                        if a.step == step
                    ),
                    None,
                )
            except RegistryError as exc:
                self._log(f"{model} v{version}: cannot read approvals: {exc}")
                continue
            self._apply(model, self.controller.approve(state, now=self._clock(), approved_by=by))

    # ------------------------------------------------------------------ transitions

    def _apply(self, model: str, decision: Decision) -> None:
        if not decision.changed or decision.state is None:
            return
        state: RolloutState = decision.state
        outbox = {
            "events": [event.model_dump(mode="json") for event in decision.events],
            "registry": [change.to_dict() for change in decision.registry],
        }
        self.client.set(
            self.state_key(model), json.dumps({"state": state.to_dict(), "outbox": outbox})
        )
        self._states[model] = state
        if decision.new_step:
            self.client.delete(self.windows_key(model))
            self._windows[model] = {}
        self._finish(model, state, outbox)

    def _finish(self, model: str, state: RolloutState, outbox: Mapping[str, Any]) -> None:
        self.client.set(self.routing_key(model), state.policy.to_json())
        for change in outbox.get("registry", []):
            self._change_registry(model, change)
        events = [ModelEventEvent.model_validate(raw) for raw in outbox.get("events", [])]
        for event in events:
            self.sink.send(event)
        if events:
            self.sink.flush()
        self.client.set(
            self.state_key(model), json.dumps({"state": state.to_dict(), "outbox": None})
        )
        for event in events:
            data = event.data
            traffic = data.traffic or {}
            self._log(
                f"{model} v{data.version}: {data.action} at {event.time.isoformat()} "
                f"(challenger traffic {traffic.get('challenger', 0.0):.0%})"
                + (f": {data.reason}" if data.reason else "")
            )

    def _change_registry(self, model: str, change: Mapping[str, Any]) -> None:
        action, version = change["action"], int(change["version"])
        registry = self.registry
        try:
            if action == "set_challenger":
                if registry.get_alias(model, CHALLENGER) != version:
                    registry.set_alias(model, CHALLENGER, version)
            elif action == "promote":
                if registry.get_alias(model, CHAMPION) != version:
                    registry.promote(model, version, reason=change.get("reason"))
            elif action == "rollback":
                if registry.get_alias(model, CHALLENGER) == version:
                    registry.rollback(model, target="challenger", reason=change.get("reason"))
            elif action == "request_approval":
                registry.request_approval(
                    model, version, change["step"], reason="the rollout gate passed"
                )
        except RegistryError as exc:
            self._log(f"{model} v{version}: registry {action} failed: {exc}")


class EventTail:
    """Read every partition of some topics from offsets kept in Redis (no consumer group).

    ``poll`` returns the events read and the next offsets; ``commit`` stores
    them once the events were handled, so a restart re-reads at most what was
    not handled (the controller is idempotent).
    """

    def __init__(self, settings: Settings, client: Any, key: str, topics: Sequence[str]) -> None:
        self.client = client
        self.key = key
        self.topics = [settings.topic(t) for t in topics]
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                client_id="driftloop-rollout",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                bootstrap_timeout_ms=settings.connect_timeout_ms,
            )
        except (KafkaTimeoutError, KafkaError):
            raise RolloutError(
                f"cannot reach Kafka at {settings.kafka_bootstrap_servers}; start it with "
                "`driftloop infra up` or set DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        partitions = []
        for topic in self.topics:
            ids = self._consumer.partitions_for_topic(topic)
            if not ids:
                self._consumer.close()
                raise RolloutError(
                    f"topic {topic} does not exist; create it with `driftloop topics create`"
                )
            partitions += [TopicPartition(topic, p) for p in sorted(ids)]
        self._consumer.assign(partitions)
        stored = {_text(k): int(v) for k, v in client.hgetall(key).items()}
        for tp in partitions:
            offset = stored.get(f"{tp.topic}:{tp.partition}")
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)

    def poll(self, timeout_s: float) -> tuple[list[CloudEvent], list[str], dict[str, int]]:
        """Events, refusal reasons and next offsets of the records read within ``timeout_s``."""
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=5000)
        events: list[CloudEvent] = []
        errors: list[str] = []
        offsets: dict[str, int] = {}
        for tp, records in batches.items():
            for record in records:
                decoded = decode_record(record.value)
                events += decoded.events
                errors += [
                    f"{tp.topic}[{tp.partition}]@{record.offset}: {e.reason}"
                    for e in decoded.errors
                ]
                offsets[f"{tp.topic}:{tp.partition}"] = record.offset + 1
        return events, errors, offsets

    def commit(self, offsets: Mapping[str, int]) -> None:
        """Remember where to resume."""
        if offsets:
            self.client.hset(self.key, mapping=dict(offsets))

    def close(self) -> None:
        """Close the connection."""
        self._consumer.close()


def _registry_secret(settings: Settings) -> bytes | None:
    secret = settings.registry_secret
    return secret.get_secret_value().encode() if secret is not None else None


def serve(
    settings: Settings,
    controller: RolloutController,
    *,
    poll_s: float = 1.0,
    until_idle_s: float | None = None,
    stop: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
) -> RolloutRunner:
    """Run the controller until ``stop`` is set, or ``until_idle_s`` pass with no new event.

    Returns the runner (its states) when it stops. With a broker and Redis
    (see ``driftloop infra up``)::

        serve(Settings(), RolloutController(), until_idle_s=30)
    """
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    namespace = settings.registry_namespace
    registry = ModelRegistry(client, _registry_secret(settings), namespace)
    publisher = Publisher(settings, source=controller.source)
    runner = RolloutRunner(controller, client, registry, publisher, namespace=namespace, log=log)
    tail: EventTail | None = None
    try:
        recovered = runner.recover()
        if recovered and log is not None:
            log(f"rollout state of {', '.join(recovered)} loaded from Redis")
        tail = EventTail(settings, client, runner.offsets_key, TOPICS)
        quiet_since = time.monotonic()
        while stop is None or not stop.is_set():
            events, errors, offsets = tail.poll(poll_s)
            for event in events:
                runner.handle(event)
            for error in errors:
                if log is not None:
                    log(f"skipped a bad record: {error}")
            runner.evaluate()
            runner.poll_approvals()
            tail.commit(offsets)
            if events or errors:
                quiet_since = time.monotonic()
            elif until_idle_s is not None and time.monotonic() - quiet_since >= until_idle_s:
                break
    finally:
        if tail is not None:
            tail.close()
        publisher.close()
        client.close()
    return runner


def rollout(
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Redis URL (default: DRIFTLOOP_REDIS_URL, else the local Redis).",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            help="Prefix of the registry's and the routing state's Redis keys "
            "(default: DRIFTLOOP_REGISTRY_NAMESPACE).",
            show_default=False,
        ),
    ] = None,
    signal: Annotated[
        str,
        typer.Option(
            "--error-signal",
            help="What counts as an error: auto (accuracy when labelled, else redo_rate, else "
            f"switch_to_typing_rate) or one of {', '.join(sorted(ERROR_SIGNALS))}.",
        ),
    ] = "auto",
    window_s: Annotated[
        float | None,
        typer.Option(
            "--window-s",
            help="Size of the monitor's windows the gates read (default: the smallest of "
            "DRIFTLOOP_WINDOW_SIZES_S).",
            show_default=False,
        ),
    ] = None,
    min_samples: Annotated[
        int | None,
        typer.Option(
            "--min-samples",
            min=1,
            help="Requests per arm before a gate decides (default: DRIFTLOOP_GATE_MIN_SAMPLES).",
            show_default=False,
        ),
    ] = None,
    error_margin: Annotated[
        float, typer.Option(min=0, help="Error-rate increase tolerated (0.01 = one point).")
    ] = 0.0,
    alpha: Annotated[
        float, typer.Option(help="Significance of the gate's rate tests (fails below it).")
    ] = 0.01,
    require_approval: Annotated[
        bool | None,
        typer.Option(
            "--require-approval/--no-require-approval",
            help="Wait for `driftloop models approve` before each step that gives the "
            "challenger more traffic (default: DRIFTLOOP_ROLLOUT_REQUIRE_APPROVAL).",
            show_default=False,
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help="After shadow: ramp (canary, then the ramp steps, each gated) or blue-green "
            "(one atomic switch of all traffic, the champion kept warm for an instant "
            "rollback, then promotion once the gate passes) (default: "
            "DRIFTLOOP_ROLLOUT_STRATEGY, else ramp).",
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls of Kafka and of approvals.")
    ] = 1.0,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            min=0,
            help="Stop after this many seconds without a new event (default: run until "
            "interrupted).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Roll new model versions out: shadow, canary, ramp, promote — or roll back at once.

    With --strategy blue-green the steps are shadow, switch, promote.

    Starts a rollout for every version published on model-events, gates each
    step on the monitor's metrics windows (challenger vs champion, same
    windows), writes the routing state to Redis for the router and publishes
    each step as a model event.
    """
    settings = settings_with(bootstrap_servers, prefix)
    updates: dict[str, Any] = {}
    if redis_url:
        updates["redis_url"] = redis_url
    if namespace is not None:
        updates["registry_namespace"] = namespace
    settings = settings.model_copy(update=updates)
    chosen = (strategy or settings.rollout_strategy).replace("-", "_")
    if chosen not in STRATEGIES:
        err_console.print(
            f"[red]error:[/] unknown --strategy {strategy!r}; use ramp or blue-green",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        controller = RolloutController(
            RolloutGate(
                min_samples=min_samples or settings.gate_min_samples,
                error_margin=error_margin,
                alpha=alpha,
            ),
            error_signal=signal,
            window_s=window_s or float(min(settings.window_sizes_s)),
            canary_fraction=settings.rollout_canary_fraction,
            ramp_steps=tuple(settings.rollout_ramp_steps),
            require_approval=(
                settings.rollout_require_approval if require_approval is None else require_approval
            ),
            strategy=cast(Strategy, chosen),
        )
    except (RolloutError, RoutingError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    def log(line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        console.print(f"{stamp} {line}", highlight=False, soft_wrap=True)

    log(
        f"rollout controller on {settings.kafka_bootstrap_servers} "
        f"({settings.topic('model-events')}, {settings.topic('metrics')}), "
        f"state in Redis under {settings.registry_namespace!r}"
    )
    try:
        serve(settings, controller, poll_s=poll_interval, until_idle_s=until_idle, log=log)
    except KeyboardInterrupt:
        log("stopped")
    except (RolloutError, StreamsError, ProducersError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        err_console.print(
            f"[red]error:[/] cannot reach Redis ({exc}); start it with `driftloop infra up` "
            "or set DRIFTLOOP_REDIS_URL",
            highlight=False,
        )
        raise typer.Exit(1) from None


if __name__ == "__main__":  # `python -m retrain.rollout_cli` until `driftloop rollout` exists
    typer.run(rollout)
