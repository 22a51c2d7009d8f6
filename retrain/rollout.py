"""The rollout controller's core: metric windows in, rollout steps out — no Kafka, no Redis.

A new model version goes shadow → canary → ramp steps → promoted, and each
step is gated: :class:`RolloutController` sums what each arm did over the
same windows of traffic since the step began (:class:`MetricWindow`, one per
model version, segment and window of the monitor's ``driftloop.metrics.v1``),
asks :class:`~online_models.routing.RolloutGate` whether the challenger is no
worse than the champion, and answers with a :class:`Decision`: the next
:class:`RolloutState` (the :class:`~online_models.routing.RoutingPolicy` and
when its step began), the ``driftloop.model-event.v1`` events to publish and
the registry changes to make (:class:`RegistryChange`). A failed gate rolls
back at once; with approvals required, a passed gate asks for one
(``approval_required``) and :meth:`RolloutController.approve` carries the
step out. The I/O shell (``retrain/rollout_cli.py``) stores the state in
Redis, applies the registry changes and publishes the events.

Which error counts is configurable (:func:`error_signal`): ``accuracy``
(1 - accuracy over labelled outcomes), ``redo_rate``,
``switch_to_typing_rate`` (user proxies over joined outcomes), ``error_rate``
(failed requests), or ``auto``: accuracy when both arms have labels, else the
redo rate, else the switch-to-typing rate. In shadow the challenger's answers
reach no user, so only labels measure it; the user proxies describe the
champion's answers there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from online_models.routing import ArmWindow, GateResult, RolloutGate, RoutingPolicy
from online_models.routing.policy import Strategy
from streams.events import MetricsData, ModelEventEvent

__all__ = [
    "AUTO_SIGNAL",
    "ERROR_SIGNALS",
    "Decision",
    "ErrorSignal",
    "MetricWindow",
    "RegistryChange",
    "RolloutController",
    "RolloutError",
    "RolloutState",
    "UnknownErrorSignalError",
    "approval_step",
    "error_signal",
    "register_error_signal",
    "tally",
]

AUTO_SIGNAL = "auto"
"""The error signal that picks accuracy, else the redo rate, else the switch-to-typing rate."""

_AUTO_ORDER = ("accuracy", "redo_rate", "switch_to_typing_rate")
_ALWAYS_KEPT = ("count", "null_rate", "latency_p99_ms")


class RolloutError(Exception):
    """Base of every error raised by the rollout controller."""


class UnknownErrorSignalError(RolloutError, KeyError):
    """An error signal name that is not registered (the message lists the valid ones)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- error signals

Measure = Callable[[Mapping[str, float | None]], tuple[int, int] | None]


@dataclass(frozen=True)
class ErrorSignal:
    """What counts as an error in a window: ``measure`` gives (requests, errors) or ``None``.

    Parameters
    ----------
    name
        The name the signal is chosen by (``--error-signal``).
    metrics
        Window metrics the signal reads (kept when a window is stored).
    measure
        From one window's metrics, the requests the signal was measured on
        and how many of them were errors; ``None`` when not measurable.
    description
        One line for ``--help``.

    Examples
    --------
    >>> error_signal("redo_rate").measure({"outcomes": 400.0, "redo_rate": 0.125})
    (400, 50)
    >>> error_signal("accuracy").measure({"count": 1000.0, "label_coverage": 0.5,
    ...                                   "accuracy": 0.9})
    (500, 50)
    >>> print(error_signal("accuracy").measure({"count": 1000.0, "accuracy": None}))
    None
    """

    name: str
    metrics: tuple[str, ...]
    measure: Measure
    description: str = ""


def _whole(value: float | None) -> int:
    return round(value) if value is not None and math.isfinite(value) and value > 0 else 0


def _errors(requests: int, rate: float) -> int:
    return min(requests, max(0, round(rate * requests)))


def _accuracy(values: Mapping[str, float | None]) -> tuple[int, int] | None:
    accuracy = values.get("accuracy")
    if accuracy is None:
        return None
    coverage = values.get("label_coverage")
    labelled = (
        _whole(coverage * (values.get("count") or 0.0))
        if coverage is not None
        else _whole(values.get("outcomes"))
    )
    return (labelled, _errors(labelled, 1.0 - accuracy)) if labelled else None


def _rate_over(rate_name: str, count_name: str) -> Measure:
    def measure(values: Mapping[str, float | None]) -> tuple[int, int] | None:
        rate = values.get(rate_name)
        requests = _whole(values.get(count_name))
        if rate is None or not requests:
            return None
        return requests, _errors(requests, rate)

    return measure


ERROR_SIGNALS: dict[str, ErrorSignal] = {}
"""Every registered error signal, by name (``auto`` is resolved among them)."""


def register_error_signal(signal: ErrorSignal) -> ErrorSignal:
    """Add ``signal`` to :data:`ERROR_SIGNALS` (replacing one of the same name) and return it.

    Examples
    --------
    >>> clicks = register_error_signal(ErrorSignal(
    ...     "no_click_rate", ("outcomes", "click_rate"),
    ...     lambda m: (int(m["outcomes"]), round((1 - m["click_rate"]) * m["outcomes"]))))
    >>> error_signal("no_click_rate").measure({"outcomes": 200.0, "click_rate": 0.75})
    (200, 50)
    >>> del ERROR_SIGNALS["no_click_rate"]
    """
    if signal.name == AUTO_SIGNAL:
        raise RolloutError(f"{AUTO_SIGNAL!r} is reserved; give the signal another name")
    ERROR_SIGNALS[signal.name] = signal
    return signal


def error_signal(name: str) -> ErrorSignal:
    """The registered error signal called ``name``.

    Examples
    --------
    >>> error_signal("switch_to_typing_rate").metrics
    ('outcomes', 'switch_to_typing_rate')
    >>> error_signal("redo")
    Traceback (most recent call last):
    ...
    retrain.rollout.UnknownErrorSignalError: unknown error signal 'redo'; valid signals: auto, \
accuracy, error_rate, redo_rate, switch_to_typing_rate
    """
    if name not in ERROR_SIGNALS:
        valid = ", ".join([AUTO_SIGNAL, *sorted(ERROR_SIGNALS)])
        raise UnknownErrorSignalError(f"unknown error signal {name!r}; valid signals: {valid}")
    return ERROR_SIGNALS[name]


register_error_signal(
    ErrorSignal(
        "accuracy",
        ("accuracy", "label_coverage", "outcomes"),
        _accuracy,
        "1 - accuracy over the labelled outcomes",
    )
)
register_error_signal(
    ErrorSignal(
        "redo_rate",
        ("outcomes", "redo_rate"),
        _rate_over("redo_rate", "outcomes"),
        "share of answers after which the user searched again",
    )
)
register_error_signal(
    ErrorSignal(
        "switch_to_typing_rate",
        ("outcomes", "switch_to_typing_rate"),
        _rate_over("switch_to_typing_rate", "outcomes"),
        "share of answers after which the user switched to typing",
    )
)
register_error_signal(
    ErrorSignal(
        "error_rate",
        ("error_rate",),
        _rate_over("error_rate", "count"),
        "share of requests that failed",
    )
)


# --------------------------------------------------------------------------- windows


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class MetricWindow:
    """The metrics of one model version and segment over one event-time window.

    A window the monitor publishes again (late events) has the same
    :attr:`key` and replaces the earlier one, so nothing is counted twice.

    Examples
    --------
    >>> from datetime import timedelta
    >>> start = datetime(2026, 1, 2, tzinfo=UTC)
    >>> data = MetricsData(model="voice_intent", model_version="2", segment={"locale": "en-GB"},
    ...                    window_start=start, window_end=start + timedelta(seconds=10),
    ...                    count=120, metrics={"count": 120.0, "redo_rate": 0.1,
    ...                                        "feature.snr_db.mean": 21.0})
    >>> window = MetricWindow.from_metrics(data)
    >>> window.version, window.size_s, window.key
    (2, 10.0, '2|{"locale":"en-GB"}|1767312000000|1767312010000')
    >>> sorted(window.values)  # only what the gate reads is kept
    ['count', 'redo_rate']
    >>> MetricWindow.from_json(window.to_json()) == window
    True
    """

    version: int
    start: datetime
    end: datetime
    segment: str = ""
    values: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def span(self) -> tuple[datetime, datetime]:
        """``(start, end)``: windows of both arms over the same span are compared."""
        return self.start, self.end

    @property
    def size_s(self) -> float:
        """Length of the window in seconds."""
        return (self.end - self.start).total_seconds()

    @property
    def key(self) -> str:
        """``version|segment|start_ms|end_ms``: one window of one version and segment."""
        start_ms = round(self.start.timestamp() * 1000)
        end_ms = round(self.end.timestamp() * 1000)
        return f"{self.version}|{self.segment}|{start_ms}|{end_ms}"

    @classmethod
    def from_metrics(cls, data: MetricsData) -> MetricWindow | None:
        """The window of a metrics event; ``None`` when its version is not a number."""
        if not data.model_version.isdigit():
            return None
        kept = set(_ALWAYS_KEPT).union(*(s.metrics for s in ERROR_SIGNALS.values()))
        segment = (
            json.dumps(data.segment, sort_keys=True, separators=(",", ":")) if data.segment else ""
        )
        return cls(
            version=int(data.model_version),
            start=data.window_start,
            end=data.window_end,
            segment=segment,
            values={k: v for k, v in data.metrics.items() if k in kept},
        )

    def to_json(self) -> str:
        """Compact JSON (for Redis)."""
        return json.dumps(
            {
                "version": self.version,
                "start": _iso(self.start),
                "end": _iso(self.end),
                "segment": self.segment,
                "values": dict(self.values),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> MetricWindow:
        """The window :meth:`to_json` wrote."""
        raw = json.loads(text)
        return cls(
            version=int(raw["version"]),
            start=datetime.fromisoformat(raw["start"]),
            end=datetime.fromisoformat(raw["end"]),
            segment=raw.get("segment", ""),
            values=raw.get("values", {}),
        )


def tally(windows: Iterable[MetricWindow], signal: ErrorSignal) -> ArmWindow:
    """What one arm did over these windows (summed over windows and segments).

    Requests and errors are the signal's; null returns are the windows'
    null rate over those requests; the p99 latency is the request-weighted
    mean of the windows' p99s (a p99 of a union cannot be had from p99s; the
    mean treats both arms alike, where a maximum would punish the arm with
    fewer requests per window).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> start = datetime(2026, 1, 2, tzinfo=UTC)
    >>> windows = [MetricWindow(2, start, start, f"seg-{i}",
    ...                         {"outcomes": 300.0, "redo_rate": rng.uniform(0.05, 0.15),
    ...                          "null_rate": 0.01, "latency_p99_ms": 100.0 + 10 * i})
    ...            for i in range(3)]
    >>> tally(windows, error_signal("redo_rate"))
    ArmWindow(requests=900, errors=80, nulls=9, latency_p99_ms=110.0)
    """
    requests = errors = nulls = 0
    latency_sum = latency_weight = 0.0
    for window in windows:
        measured = signal.measure(window.values)
        if measured is None:
            continue
        n, bad = measured
        requests += n
        errors += bad
        nulls += min(n, _errors(n, window.values.get("null_rate") or 0.0))
        p99 = window.values.get("latency_p99_ms")
        if p99 is not None and n:
            latency_sum += p99 * n
            latency_weight += n
    latency = latency_sum / latency_weight if latency_weight else None
    return ArmWindow(requests, errors, nulls, latency)


# --------------------------------------------------------------------------- state


def approval_step(pending_step: str) -> str:
    """The registry's name of a policy step awaiting approval (``driftloop models approve --step``).

    Examples
    --------
    >>> [approval_step(s) for s in ("canary:0.05", "ramp:0.25", "ramp:1", "promote", "switch")]
    ['canary-5', 'ramp-25', 'ramp-100', 'promote', 'switch']
    """
    name, _, value = pending_step.partition(":")
    if not value:
        return name
    return f"{name}-{round(float(value) * 100, 4):g}"


def _arm_to_dict(arm: ArmWindow) -> dict[str, Any]:
    return {
        "requests": arm.requests,
        "errors": arm.errors,
        "nulls": arm.nulls,
        "latency_p99_ms": arm.latency_p99_ms,
    }


@dataclass(frozen=True)
class RolloutState:
    """The whole rollout state of one model: routing policy, step start, reference arm.

    Parameters
    ----------
    policy
        The routing policy (what the router serves).
    step_started_at
        When the current step began; only windows that start then or later
        count for its gate. ``None`` when no rollout is under way.
    retrain_request_id
        The retrain request behind the challenger (carried into every event).
    reference
        The champion's arm at the last passed gate, per error signal: once the
        challenger answers everything the champion has no traffic to compare.

    Examples
    --------
    >>> state = RolloutState(RoutingPolicy("voice_intent", champion=1).start_shadow(2),
    ...                      step_started_at=datetime(2026, 1, 2, tzinfo=UTC),
    ...                      reference={"redo_rate": ArmWindow(900, 90)})
    >>> again = RolloutState.from_json(state.to_json())
    >>> again == state, again.policy.phase, again.reference["redo_rate"].errors
    (True, 'shadow', 90)
    """

    policy: RoutingPolicy
    step_started_at: datetime | None = None
    retrain_request_id: str | None = None
    reference: Mapping[str, ArmWindow] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "policy": self.policy.to_dict(),
            "step_started_at": _iso(self.step_started_at) if self.step_started_at else None,
            "retrain_request_id": self.retrain_request_id,
            "reference": {name: _arm_to_dict(arm) for name, arm in self.reference.items()},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RolloutState:
        """The state :meth:`to_dict` wrote."""
        started = raw.get("step_started_at")
        return cls(
            policy=RoutingPolicy.from_dict(raw["policy"]),
            step_started_at=datetime.fromisoformat(started) if started else None,
            retrain_request_id=raw.get("retrain_request_id"),
            reference={name: ArmWindow(**arm) for name, arm in raw.get("reference", {}).items()},
        )

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RolloutState:
        """The state :meth:`to_json` wrote."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class RegistryChange:
    """A change the shell makes in the model registry after a decision.

    ``set_challenger`` points the challenger alias at ``version``; ``promote``
    makes it champion; ``rollback`` marks the challenger rolled back and drops
    its alias; ``request_approval`` records that ``step`` of ``version`` awaits
    a person's approval.
    """

    action: Literal["set_challenger", "promote", "rollback", "request_approval"]
    version: int
    step: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for the shell's outbox)."""
        return {
            "action": self.action,
            "version": self.version,
            "step": self.step,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Decision:
    """What the controller decided: the next state, events to publish, registry changes.

    ``changed`` says whether anything must be written; ``new_step`` that the
    windows kept for the previous step are obsolete; ``gate`` is the gate's
    answer when one was asked; ``note`` says why nothing happened.
    """

    state: RolloutState | None
    events: tuple[ModelEventEvent, ...] = ()
    registry: tuple[RegistryChange, ...] = ()
    gate: GateResult | None = None
    changed: bool = False
    new_step: bool = False
    note: str = ""

    @property
    def actions(self) -> list[str]:
        """The model-event actions, in order."""
        return [event.data.action for event in self.events]


# --------------------------------------------------------------------------- controller


@dataclass(frozen=True)
class RolloutController:
    """Step a model's rollout from its metric windows: shadow → canary → ramp → promote.

    Parameters
    ----------
    gate
        Compares the arms (its ``min_samples`` is the sample size per arm).
    error_signal
        Name of the :func:`error_signal` the gate counts errors with, or ``auto``.
    window_s
        Size of the monitor's windows the gate reads (one size, so no
        request is counted twice).
    canary_fraction, ramp_steps, require_approval, strategy
        Rollout configuration given to a model's policy when a rollout starts
        (``strategy="blue_green"``: shadow, one switch of all traffic, promote).
    source
        CloudEvents ``source`` of the events it publishes.

    Examples
    --------
    >>> import random
    >>> from datetime import timedelta
    >>> rng = random.Random(3)
    >>> controller = RolloutController(RolloutGate(min_samples=400), error_signal="redo_rate")
    >>> now = datetime(2026, 1, 2, tzinfo=UTC)
    >>> decision = controller.start(None, "voice_intent", 2, champion=1, now=now)
    >>> decision.actions, decision.state.policy.phase
    (['shadow_started'], 'shadow')
    >>> def window(version, start, redo):
    ...     outcomes = 500 + rng.randrange(100)
    ...     return MetricWindow(version, start, start + timedelta(seconds=10), "",
    ...                         {"outcomes": float(outcomes), "redo_rate": redo})
    >>> path = []
    >>> while decision.state.policy.challenger is not None:
    ...     state, now = decision.state, now + timedelta(seconds=20)
    ...     start = state.step_started_at + timedelta(seconds=1)
    ...     decision = controller.evaluate(
    ...         state, [window(1, start, 0.12), window(2, start, 0.08)], now=now)
    ...     path += decision.actions
    >>> path
    ['canary_started', 'ramp_step', 'ramp_step', 'ramp_step', 'promoted']
    >>> decision.state.policy.champion, decision.registry
    (2, (RegistryChange(action='promote', version=2, step=None, reason=None),))
    """

    gate: RolloutGate = field(default_factory=RolloutGate)
    error_signal: str = AUTO_SIGNAL
    window_s: float = 10.0
    canary_fraction: float = 0.05
    ramp_steps: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    require_approval: bool = False
    strategy: Strategy = "ramp"
    source: str = "urn:driftloop:rollout"

    def __post_init__(self) -> None:
        if self.error_signal != AUTO_SIGNAL:
            error_signal(self.error_signal)
        if not self.window_s > 0:
            raise RolloutError(f"window_s must be positive, got {self.window_s}")
        object.__setattr__(self, "ramp_steps", tuple(float(s) for s in self.ramp_steps))
        self._configure(RoutingPolicy("m", champion=1))  # validates fraction and steps

    def _configure(self, policy: RoutingPolicy) -> RoutingPolicy:
        return replace(
            policy,
            canary_fraction=self.canary_fraction,
            ramp_steps=self.ramp_steps,
            require_approval=self.require_approval,
            strategy=self.strategy,
        )

    # ------------------------------------------------------------------ events

    def _event(
        self,
        policy: RoutingPolicy,
        action: str,
        version: int,
        now: datetime,
        *,
        retrain_request_id: str | None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelEventEvent:
        return ModelEventEvent.new(
            {
                "model": policy.model,
                "version": version,
                "action": action,
                "reason": reason,
                "retrain_request_id": retrain_request_id,
                "traffic": policy.traffic,
                "details": {
                    "phase": policy.status,
                    "fraction": policy.fraction,
                    "revision": policy.revision,
                    **(details or {}),
                },
            },
            # deterministic: a shell that redoes an unfinished transition publishes the same id
            id=f"rollout:{policy.model}:{version}:{policy.revision}:{action}",
            time=now,
            source=self.source,
        )

    # ------------------------------------------------------------------ starting

    def start(
        self,
        state: RolloutState | None,
        model: str,
        version: int,
        *,
        champion: int | None,
        now: datetime,
        retrain_request_id: str | None = None,
    ) -> Decision:
        """Start rolling out a published ``version`` (shadow first).

        ``champion`` is the registry's champion; with none, ``version`` is
        promoted at once (nothing to compare with). A version that is the
        champion already, older than it, rolled back before, or published
        while another rollout of the model is under way is left alone (see
        the decision's ``note``).
        """
        policy = state.policy if state is not None else None
        if policy is None:
            if champion is None:
                first = self._configure(RoutingPolicy(model, champion=version))
                first = replace(first, revision=1, last_action="promoted")
                event = self._event(
                    first,
                    "promoted",
                    version,
                    now,
                    retrain_request_id=retrain_request_id,
                    reason="first version of the model: nothing to compare it with",
                )
                return Decision(
                    RolloutState(first, retrain_request_id=retrain_request_id),
                    (event,),
                    (RegistryChange("promote", version),),
                    changed=True,
                    new_step=True,
                )
            policy = self._configure(RoutingPolicy(model, champion=champion))
            state = RolloutState(policy)
            created = True
        else:
            created = False
            if policy.phase == "serving" and champion is not None and champion != policy.champion:
                # at rest the registry is the truth: someone promoted or rolled back by hand
                policy = replace(policy, champion=champion)
                state = replace(state, policy=policy)
                created = True
        assert state is not None
        skip = None
        if version == policy.champion:
            skip = f"version {version} is the champion already"
        elif policy.challenger == version:
            skip = f"version {version} is being rolled out already ({policy.status})"
        elif policy.challenger is not None:
            skip = (
                f"version {policy.challenger} is being rolled out ({policy.status}); "
                f"version {version} waits until it is promoted or rolled back"
            )
        elif version in policy.rolled_back:
            skip = f"version {version} was rolled back before"
        elif policy.champion is not None and version < policy.champion:
            skip = f"version {version} is older than the champion {policy.champion}"
        if skip is not None:
            return Decision(state, changed=created, note=skip)
        shadow = self._configure(policy).start_shadow(version)
        event = self._event(
            shadow,
            "shadow_started",
            version,
            now,
            retrain_request_id=retrain_request_id,
            details={"step_started_at": _iso(now), "champion": shadow.champion},
        )
        return Decision(
            RolloutState(shadow, now, retrain_request_id),
            (event,),
            (RegistryChange("set_challenger", version),),
            changed=True,
            new_step=True,
        )

    # ------------------------------------------------------------------ windows

    def wants(self, state: RolloutState | None, window: MetricWindow) -> bool:
        """Whether ``window`` counts for the gate of the current step.

        It must be of one of the two arms' versions, of the gate's window size,
        and start no earlier than the step.

        Examples
        --------
        >>> from datetime import timedelta
        >>> began = datetime(2026, 1, 2, tzinfo=UTC)
        >>> state = RolloutState(RoutingPolicy("m", champion=1).start_shadow(2), began)
        >>> def at(version, seconds, size=10):
        ...     start = began + timedelta(seconds=seconds)
        ...     return MetricWindow(version, start, start + timedelta(seconds=size))
        >>> controller = RolloutController(window_s=10)
        >>> [controller.wants(state, w) for w in (at(2, 0), at(1, 30), at(2, -5), at(3, 0),
        ...                                       at(2, 0, size=60))]
        [True, True, False, False, False]
        """
        if state is None or state.step_started_at is None or state.policy.challenger is None:
            return False
        return (
            window.version in (state.policy.champion, state.policy.challenger)
            and abs(window.size_s - self.window_s) < 1e-6
            and window.start >= state.step_started_at
        )

    def _signal(self, champion: list[MetricWindow], challenger: list[MetricWindow]) -> ErrorSignal:
        if self.error_signal != AUTO_SIGNAL:
            return error_signal(self.error_signal)
        for name in _AUTO_ORDER:
            signal = error_signal(name)
            if tally(champion, signal).requests and tally(challenger, signal).requests:
                return signal
        return error_signal(_AUTO_ORDER[0])

    def _reference_signal(
        self, reference: Mapping[str, ArmWindow], challenger: list[MetricWindow]
    ) -> ErrorSignal:
        if self.error_signal != AUTO_SIGNAL:
            return error_signal(self.error_signal)
        for name in _AUTO_ORDER:
            signal = error_signal(name)
            if (
                name in reference
                and reference[name].requests
                and tally(challenger, signal).requests
            ):
                return signal
        return error_signal(_AUTO_ORDER[0])

    def arms(
        self, state: RolloutState, windows: Iterable[MetricWindow]
    ) -> tuple[ArmWindow, ArmWindow, str, list[MetricWindow]]:
        """The champion's and the challenger's arm over the step's paired windows.

        Returns both arms, the error signal used, and the champion's windows.
        Only spans where both arms have a window count (the same traffic
        period); once the challenger answers everything the champion's arm is
        the reference kept from the last passed gate.
        """
        policy = state.policy
        relevant = [w for w in windows if self.wants(state, w)]
        champion = [w for w in relevant if w.version == policy.champion]
        challenger = [w for w in relevant if w.version == policy.challenger]
        if policy.fraction >= 1.0:
            signal = self._reference_signal(state.reference, challenger)
            reference = state.reference.get(signal.name, ArmWindow(0, 0))
            return reference, tally(challenger, signal), signal.name, []
        both = {w.span for w in champion} & {w.span for w in challenger}
        champion = [w for w in champion if w.span in both]
        challenger = [w for w in challenger if w.span in both]
        signal = self._signal(champion, challenger)
        return tally(champion, signal), tally(challenger, signal), signal.name, champion

    # ------------------------------------------------------------------ gating

    def evaluate(
        self, state: RolloutState, windows: Iterable[MetricWindow], *, now: datetime
    ) -> Decision:
        """Ask the gate about the current step and take the next one, roll back, or wait.

        While a step awaits approval the gate is still asked, so a challenger
        that turns worse meanwhile is rolled back without waiting for anyone.
        """
        policy = state.policy
        if policy.challenger is None:
            return Decision(state, note=f"no rollout of {policy.model} is under way")
        champion_arm, challenger_arm, signal, champion_windows = self.arms(state, windows)
        after, result = self.gate.apply(policy, champion_arm, challenger_arm)
        details = {
            "error_signal": signal,
            "gate": result.verdict,
            "champion_requests": champion_arm.requests,
            "challenger_requests": challenger_arm.requests,
            "champion_error_rate": champion_arm.error_rate,
            "challenger_error_rate": challenger_arm.error_rate,
            "step_started_at": _iso(state.step_started_at) if state.step_started_at else None,
            "decided_at": _iso(now),
        }
        version = policy.challenger
        if result.verdict == "fail":
            event = self._event(
                after,
                "rolled_back",
                version,
                now,
                retrain_request_id=state.retrain_request_id,
                reason=after.reason,
                details={**details, "gate_reason": result.reason},
            )
            return Decision(
                RolloutState(after, None, state.retrain_request_id),
                (event,),
                (RegistryChange("rollback", version, reason=after.reason),),
                result,
                changed=True,
                new_step=True,
            )
        if result.verdict == "wait" or after == policy:
            return Decision(state, gate=result, note=result.reason)
        reference = dict(state.reference)
        if policy.fraction < 1.0:
            reference = {
                name: tally(champion_windows, error_signal(name)) for name in sorted(ERROR_SIGNALS)
            }
        if after.pending_step is not None:
            step = approval_step(after.pending_step)
            event = self._event(
                after,
                "approval_required",
                version,
                now,
                retrain_request_id=state.retrain_request_id,
                reason=(
                    f"gate passed; approve the next step with "
                    f"`driftloop models approve {policy.model} {version} --step {step}`"
                ),
                details={**details, "pending_step": after.pending_step, "approval_step": step},
            )
            return Decision(
                replace(state, policy=after, reference=reference),
                (event,),
                (RegistryChange("request_approval", version, step=step),),
                result,
                changed=True,
            )
        return self._advance(state, after, now, reference, details, result)

    def _advance(
        self,
        state: RolloutState,
        after: RoutingPolicy,
        now: datetime,
        reference: Mapping[str, ArmWindow],
        details: Mapping[str, Any],
        result: GateResult | None,
        first_events: tuple[ModelEventEvent, ...] = (),
    ) -> Decision:
        action = after.last_action or "ramp_step"
        if after.challenger is None:  # promoted
            version = after.champion
            assert version is not None
            event = self._event(
                after,
                "promoted",
                version,
                now,
                retrain_request_id=state.retrain_request_id,
                reason=after.reason,
                details=details,
            )
            return Decision(
                RolloutState(after, None, state.retrain_request_id),
                (*first_events, event),
                (RegistryChange("promote", version, reason=after.reason),),
                result,
                changed=True,
                new_step=True,
            )
        event = self._event(
            after,
            action,
            after.challenger,
            now,
            retrain_request_id=state.retrain_request_id,
            reason=after.reason,
            details={**details, "step_started_at": _iso(now)},
        )
        return Decision(
            RolloutState(after, now, state.retrain_request_id, reference),
            (*first_events, event),
            (),
            result,
            changed=True,
            new_step=True,
        )

    def approve(
        self, state: RolloutState, *, now: datetime, approved_by: str | None = None
    ) -> Decision:
        """Carry out the step awaiting approval (events ``approved``, then the step's own).

        Examples
        --------
        >>> from datetime import timedelta
        >>> controller = RolloutController(RolloutGate(min_samples=100), error_signal="redo_rate",
        ...                                require_approval=True)
        >>> now = datetime(2026, 1, 2, tzinfo=UTC)
        >>> state = controller.start(None, "m", 2, champion=1, now=now).state
        >>> start = now + timedelta(seconds=1)
        >>> windows = [MetricWindow(v, start, start + timedelta(seconds=10), "",
        ...                         {"outcomes": 1000.0, "redo_rate": 0.1}) for v in (1, 2)]
        >>> waiting = controller.evaluate(state, windows, now=now + timedelta(seconds=30))
        >>> waiting.actions, waiting.registry[0].step, waiting.state.policy.status
        (['approval_required'], 'canary-5', 'awaiting_approval')
        >>> done = controller.approve(waiting.state, now=now + timedelta(minutes=5),
        ...                           approved_by="ops")
        >>> done.actions, done.state.policy.traffic
        (['approved', 'canary_started'], {'champion': 0.95, 'challenger': 0.05})
        """
        policy = state.policy
        if policy.pending_step is None or policy.challenger is None:
            return Decision(state, note=f"no step of {policy.model} awaits approval")
        step = approval_step(policy.pending_step)
        after = policy.approve(policy.pending_step)
        approved = self._event(
            after,
            "approved",
            policy.challenger,
            now,
            retrain_request_id=state.retrain_request_id,
            reason=f"step {step} approved" + (f" by {approved_by}" if approved_by else ""),
            details={"approval_step": step, "approved_by": approved_by},
        )
        return self._advance(
            state,
            after,
            now,
            state.reference,
            {"approval_step": step, "approved_by": approved_by},
            None,
            (approved,),
        )
