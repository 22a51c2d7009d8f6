"""Who answers a request: the champion, the challenger, or the champion with a shadow.

A :class:`RoutingPolicy` is the whole rollout state of one model as an
immutable value: which version is the champion, which is the challenger, the
phase, the challenger's share of traffic, and the rollout configuration. It
routes requests (:meth:`~RoutingPolicy.route`) and each rollout step is a
method that returns the next policy, never changing the old one, so the state
can be stored (Redis), compared and broadcast (a model event) as it is:
:meth:`~RoutingPolicy.to_json` and :meth:`~RoutingPolicy.from_json` round-trip
it exactly.

Phases
------
``serving``
    The champion answers everything.
``shadow``
    The champion answers everything; the challenger also scores each request
    (logged with route ``shadow``), and its answer is never returned.
``canary``
    The challenger answers a fraction of the keys (default 5 %).
``ramp``
    The challenger's fraction climbs the ramp steps (5 % → 25 % → 50 % → 100 %).
``switched``
    Blue/green: the challenger answers all traffic at once and the champion
    stays warm, so a rollback is one switch back.

:meth:`~RoutingPolicy.promote` makes the challenger the champion;
:meth:`~RoutingPolicy.rollback` sends all traffic back to the champion at once
and records the challenger as rolled back. With ``require_approval`` every step
that gives the challenger more traffic first returns a policy whose status is
``awaiting_approval``; :meth:`~RoutingPolicy.approve` with that step's name
carries it out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from hashlib import blake2b
from typing import Any, Literal, NamedTuple

from online_models.routing.exceptions import (
    ApprovalError,
    InvalidPolicyError,
    InvalidTransitionError,
    NoChampionError,
)

__all__ = ["PHASES", "STRATEGIES", "Route", "RoutingPolicy"]

Phase = Literal["serving", "shadow", "canary", "ramp", "switched"]
PHASES: tuple[str, ...] = ("serving", "shadow", "canary", "ramp", "switched")
"""Every phase a rollout can be in."""

Strategy = Literal["ramp", "blue_green"]
STRATEGIES: tuple[str, ...] = ("ramp", "blue_green")
"""How :meth:`RoutingPolicy.next_step` leaves shadow: canary and ramp, or one blue/green switch."""

STATE_VERSION = 1
_SCALE = 1.0 / 2**64


class Route(NamedTuple):
    """The routing decision for one request.

    ``answer_version`` answers the user; ``route_name`` says whether that is
    the champion or the challenger; ``shadow_version``, when set, also scores
    the request and is logged with route ``shadow`` but never answers.
    """

    answer_version: int
    route_name: Literal["champion", "challenger"]
    shadow_version: int | None = None


@dataclass(frozen=True)
class RoutingPolicy:
    """The rollout state of one model, and the routing decision it implies.

    Parameters
    ----------
    model
        Model name.
    champion
        Version answering by default; ``None`` until a first version is served.
    challenger
        Version being rolled out, if any.
    phase
        One of :data:`PHASES`.
    fraction
        Share of keys the challenger answers (0–1).
    canary_fraction
        Fraction :meth:`start_canary` uses when not given one.
    ramp_steps
        Fractions :meth:`advance_ramp` climbs, increasing, ending at 1.0.
    require_approval
        Whether each step that gives the challenger more traffic waits for
        :meth:`approve`.
    strategy
        What :meth:`next_step` does after shadow: ``"ramp"`` (canary, then the
        ramp steps) or ``"blue_green"`` (one switch of all traffic, the
        champion kept warm, then promotion).
    salt
        Mixed into the traffic hash with the model and challenger version, so
        each rollout draws its own canary keys; change it to redraw them.
    pending_step
        The step awaiting approval, if any (e.g. ``"ramp:0.25"``).
    rolled_back
        Versions rolled back, oldest first.
    last_action
        The model-event action of the last transition (``shadow_started``,
        ``canary_started``, ``ramp_step``, ``approval_required``,
        ``promoted``, ``rolled_back``).
    reason
        Why the last transition happened, when known.
    revision
        Grows by one with every transition: the newer of two stored states wins.

    Examples
    --------
    >>> policy = RoutingPolicy("voice_intent", champion=3)
    >>> policy = policy.start_shadow(4)
    >>> policy.route("user-1")
    Route(answer_version=3, route_name='champion', shadow_version=4)
    >>> policy = policy.start_canary()
    >>> routes = [policy.route(f"user-{i}").route_name for i in range(10_000)]
    >>> policy.status, routes.count("challenger")
    ('canary', 533)
    >>> policy = policy.advance_ramp().advance_ramp()
    >>> policy.fraction, policy.traffic
    (0.5, {'champion': 0.5, 'challenger': 0.5})
    >>> policy = policy.rollback("p99 latency doubled")
    >>> policy.champion, policy.challenger, policy.rolled_back
    (3, None, (4,))
    >>> policy.route("user-1")
    Route(answer_version=3, route_name='champion', shadow_version=None)
    >>> RoutingPolicy.from_json(policy.to_json()) == policy
    True
    """

    model: str
    champion: int | None = None
    challenger: int | None = None
    phase: Phase = "serving"
    fraction: float = 0.0
    canary_fraction: float = 0.05
    ramp_steps: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    require_approval: bool = False
    strategy: Strategy = "ramp"
    salt: str = ""
    pending_step: str | None = None
    rolled_back: tuple[int, ...] = ()
    last_action: str | None = None
    reason: str | None = None
    revision: int = 0
    # derived once per state, so route() is one hash and a comparison
    _prefix: bytes = field(init=False, repr=False, compare=False)
    _champion_route: Route | None = field(init=False, repr=False, compare=False)
    _challenger_route: Route | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._validate()
        shadow = self.challenger if self.phase == "shadow" else None
        champion_route = (
            Route(self.champion, "champion", shadow) if self.champion is not None else None
        )
        challenger_route = (
            Route(self.challenger, "challenger") if self.challenger is not None else None
        )
        prefix = f"{self.salt}|{self.model}|{self.challenger}\x00".encode()
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_champion_route", champion_route)
        object.__setattr__(self, "_challenger_route", challenger_route)

    def _validate(self) -> None:
        if not self.model:
            raise InvalidPolicyError("model must be a non-empty name")
        if self.phase not in PHASES:
            raise InvalidPolicyError(
                f"unknown phase {self.phase!r}; valid phases are: {', '.join(PHASES)}"
            )
        if self.strategy not in STRATEGIES:
            raise InvalidPolicyError(
                f"unknown strategy {self.strategy!r}; valid strategies are: {', '.join(STRATEGIES)}"
            )
        if not 0.0 <= self.fraction <= 1.0:
            raise InvalidPolicyError(f"fraction must be in [0, 1], got {self.fraction}")
        if not 0.0 < self.canary_fraction < 1.0:
            raise InvalidPolicyError(
                f"canary_fraction must be in (0, 1), got {self.canary_fraction}"
            )
        steps = self.ramp_steps
        if (
            not steps
            or steps[-1] != 1.0
            or any(not 0.0 < s <= 1.0 for s in steps)
            or any(a >= b for a, b in itertools.pairwise(steps))
        ):
            raise InvalidPolicyError(
                f"ramp_steps must increase within (0, 1] and end at 1.0, got {list(steps)}"
            )
        if self.phase == "serving" and (self.challenger is not None or self.fraction):
            raise InvalidPolicyError(
                "phase 'serving' has no challenger and gives it no traffic; "
                "use start_shadow() to roll out a challenger"
            )
        if self.phase != "serving" and self.challenger is None:
            raise InvalidPolicyError(f"phase {self.phase!r} needs a challenger version")
        if self.phase == "shadow" and self.fraction:
            raise InvalidPolicyError("phase 'shadow' gives the challenger no traffic (fraction 0)")
        if self.challenger is not None and self.challenger == self.champion:
            raise InvalidPolicyError(
                f"version {self.challenger} cannot be both champion and challenger"
            )

    # ------------------------------------------------------------------ routing

    @property
    def status(self) -> str:
        """The phase, or ``"awaiting_approval"`` while a step waits for :meth:`approve`."""
        return "awaiting_approval" if self.pending_step else self.phase

    @property
    def traffic(self) -> dict[str, float]:
        """Share of requests each route answers (the model event's ``traffic``)."""
        return {"champion": 1.0 - self.fraction, "challenger": self.fraction}

    def route(self, key: str) -> Route:
        """Who answers the request with this key (a user id or a request id).

        Deterministic: the same key gets the same route for as long as the
        state is the same, on every host; raising the fraction only moves keys
        from the champion to the challenger.
        """
        fraction = self.fraction
        if fraction:
            if fraction >= 1.0:
                return self._challenger_route  # type: ignore[return-value]
            digest = blake2b(self._prefix + key.encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") * _SCALE < fraction:
                return self._challenger_route  # type: ignore[return-value]
        if self._champion_route is None:
            raise NoChampionError(
                f"model {self.model!r} has no champion to answer; "
                "serve a first version with RoutingPolicy(model, champion=version)"
            )
        return self._champion_route

    # ------------------------------------------------------------------ transitions

    def _next(self, **changes: Any) -> RoutingPolicy:
        changes.setdefault("pending_step", None)
        changes.setdefault("reason", None)
        return replace(self, revision=self.revision + 1, **changes)

    def _in_rollout(self, action: str) -> None:
        if self.challenger is None:
            raise InvalidTransitionError(
                f"cannot {action}: model {self.model!r} has no challenger; "
                "start one with start_shadow(version)"
            )

    def _step(self, step: str, approved: bool, **changes: Any) -> RoutingPolicy:
        """Apply a step that gives the challenger more traffic, or wait for its approval."""
        if self.require_approval and not approved:
            if self.pending_step == step:
                return self
            return self._next(pending_step=step, last_action="approval_required")
        return self._next(**changes)

    def start_shadow(self, challenger: int) -> RoutingPolicy:
        """Score ``challenger`` on every request beside the champion, which still answers all.

        Needs no approval: users see nothing of the challenger.
        """
        if self.champion is None:
            raise NoChampionError(
                f"model {self.model!r} has no champion to shadow; serve version {challenger} "
                f"as the champion instead: RoutingPolicy({self.model!r}, champion={challenger})"
            )
        if self.challenger is not None:
            raise InvalidTransitionError(
                f"version {self.challenger} is already being rolled out ({self.phase}); "
                "promote() or rollback() it before shadowing another"
            )
        if challenger == self.champion:
            raise InvalidTransitionError(f"version {challenger} is already the champion")
        if challenger in self.rolled_back:
            raise InvalidTransitionError(
                f"version {challenger} was rolled back; publish a new version to try again"
            )
        return self._next(challenger=challenger, phase="shadow", last_action="shadow_started")

    def start_canary(self, fraction: float | None = None) -> RoutingPolicy:
        """Let the challenger answer ``fraction`` of the keys (default ``canary_fraction``)."""
        return self._canary(fraction, approved=False)

    def _canary(self, fraction: float | None, approved: bool) -> RoutingPolicy:
        self._in_rollout("start a canary")
        fraction = self.canary_fraction if fraction is None else float(fraction)
        if not 0.0 < fraction < 1.0:
            raise InvalidTransitionError(
                f"a canary fraction must be in (0, 1), got {fraction}; "
                "use blue_green_switch() to move all traffic at once"
            )
        if self.phase != "shadow":
            raise InvalidTransitionError(
                f"a canary starts from shadow, but model {self.model!r} is in {self.phase}"
            )
        return self._step(
            f"canary:{fraction!r}",
            approved,
            phase="canary",
            fraction=fraction,
            last_action="canary_started",
        )

    def advance_ramp(self) -> RoutingPolicy:
        """Raise the challenger's fraction to the next ramp step above the current one."""
        return self._ramp(approved=False)

    def _ramp(self, approved: bool) -> RoutingPolicy:
        self._in_rollout("advance the ramp")
        if self.phase not in ("canary", "ramp"):
            raise InvalidTransitionError(
                f"the ramp continues a canary, but model {self.model!r} is in {self.phase}"
            )
        higher = [step for step in self.ramp_steps if step > self.fraction]
        if not higher:
            raise InvalidTransitionError(
                "the challenger already answers all traffic; promote() it or rollback()"
            )
        return self._step(
            f"ramp:{higher[0]:g}",
            approved,
            phase="ramp",
            fraction=higher[0],
            last_action="ramp_step",
        )

    def blue_green_switch(self) -> RoutingPolicy:
        """Move all traffic to the challenger in one switch, keeping the champion warm.

        A :meth:`rollback` switches back just as fast; :meth:`promote` retires
        the old champion.
        """
        return self._switch(approved=False)

    def _switch(self, approved: bool) -> RoutingPolicy:
        self._in_rollout("switch")
        if self.phase == "switched":
            return self
        return self._step(
            "switch",
            approved,
            phase="switched",
            fraction=1.0,
            last_action="ramp_step",
            reason="blue/green switch",
        )

    def promote(self) -> RoutingPolicy:
        """Make the challenger the champion; the policy serves it alone."""
        return self._promote(approved=False)

    def _promote(self, approved: bool) -> RoutingPolicy:
        self._in_rollout("promote")
        return self._step(
            "promote",
            approved,
            champion=self.challenger,
            challenger=None,
            phase="serving",
            fraction=0.0,
            last_action="promoted",
        )

    def rollback(self, reason: str) -> RoutingPolicy:
        """Send all traffic back to the champion at once; the challenger is marked rolled back.

        Never waits for approval.
        """
        self._in_rollout("roll back")
        return self._next(
            challenger=None,
            phase="serving",
            fraction=0.0,
            rolled_back=(*self.rolled_back, self.challenger),
            last_action="rolled_back",
            reason=reason,
        )

    def approve(self, step: str) -> RoutingPolicy:
        """Carry out the step awaiting approval; ``step`` must be its name (``pending_step``).

        Examples
        --------
        >>> policy = RoutingPolicy("tabular", champion=1, require_approval=True).start_shadow(2)
        >>> waiting = policy.start_canary()
        >>> waiting.status, waiting.pending_step, waiting.fraction
        ('awaiting_approval', 'canary:0.05', 0.0)
        >>> approved = waiting.approve("canary:0.05")
        >>> approved.status, approved.fraction, approved.reason
        ('canary', 0.05, 'approved')
        """
        if self.pending_step is None:
            raise ApprovalError(f"no step of model {self.model!r} awaits approval")
        if step != self.pending_step:
            raise ApprovalError(
                f"step {step!r} does not await approval; the pending step is {self.pending_step!r}"
            )
        name, _, value = step.partition(":")
        if name == "canary":
            done = self._canary(float(value), approved=True)
        elif name == "ramp":
            done = self._ramp(approved=True)
        elif name == "switch":
            done = self._switch(approved=True)
        else:
            done = self._promote(approved=True)
        return replace(done, reason="approved")

    def next_step(self) -> RoutingPolicy:
        """The next step towards promotion: shadow → canary → ramp steps → promote.

        With ``strategy="blue_green"``: shadow → switch (all traffic at once) → promote.

        Examples
        --------
        >>> policy = RoutingPolicy("voice_intent", champion=1).start_shadow(2)
        >>> phases = []
        >>> while policy.challenger is not None:
        ...     policy = policy.next_step()
        ...     phases.append((policy.phase, policy.fraction))
        >>> phases
        [('canary', 0.05), ('ramp', 0.25), ('ramp', 0.5), ('ramp', 1.0), ('serving', 0.0)]
        >>> policy.champion
        2
        >>> switched = RoutingPolicy("m", champion=1, strategy="blue_green").start_shadow(2)
        >>> switched = switched.next_step()
        >>> switched.phase, switched.traffic, switched.route("anyone").answer_version
        ('switched', {'champion': 0.0, 'challenger': 1.0}, 2)
        >>> switched.next_step().champion, switched.rollback("worse").route("anyone")
        (2, Route(answer_version=1, route_name='champion', shadow_version=None))
        """
        self._in_rollout("take the next step")
        if self.phase == "shadow":
            if self.strategy == "blue_green":
                return self.blue_green_switch()
            return self.start_canary()
        if self.phase in ("canary", "ramp") and self.fraction < self.ramp_steps[-1]:
            return self.advance_ramp()
        return self.promote()

    # ------------------------------------------------------------------ storage

    def to_dict(self) -> dict[str, Any]:
        """The state as a plain JSON-able dict (with a ``state_version``)."""
        state: dict[str, Any] = {"state_version": STATE_VERSION}
        for f in fields(self):
            if f.init:
                value = getattr(self, f.name)
                state[f.name] = list(value) if isinstance(value, tuple) else value
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> RoutingPolicy:
        """The policy a :meth:`to_dict` dict describes (validated like a new one)."""
        state = dict(state)
        version = state.pop("state_version", None)
        if version != STATE_VERSION:
            raise InvalidPolicyError(
                f"routing state version {version!r} is not {STATE_VERSION}; "
                "it was written by another driftloop version"
            )
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(state) - known)
        if unknown:
            raise InvalidPolicyError(
                f"unknown routing state fields {unknown}; "
                f"valid fields are: {', '.join(sorted(known))}"
            )
        for name in ("ramp_steps", "rolled_back"):
            if name in state:
                state[name] = tuple(state[name])
        return cls(**state)

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON (for Redis and model events)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RoutingPolicy:
        """The policy :meth:`to_json` wrote."""
        return cls.from_dict(json.loads(text))
