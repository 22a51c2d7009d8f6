"""Whether a rollout may take its next step: the challenger against the champion, same window.

A :class:`RolloutGate` compares what each arm did over the same window of
traffic (:class:`ArmWindow`: requests, errors or proxy errors, null returns,
p99 latency) and answers ``pass``, ``fail`` or ``wait``
(:class:`GateResult`). :meth:`RolloutGate.apply` turns the answer into the
next :class:`~online_models.routing.RoutingPolicy`: the next step on a pass, a
rollback on a fail, the same policy while it waits.

Error and null rates are compared with a one-sided two-proportion z test of
non-inferiority: the gate fails only when the challenger's rate is higher than
the champion's by more than the tolerated margin with significance ``alpha``,
so sampling noise alone does not fail a good challenger. Rates are
Agresti–Caffo adjusted (one success and one failure added to each arm), which
keeps the test defined when an arm has no errors at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

from online_models.routing.exceptions import InvalidPolicyError
from online_models.routing.policy import RoutingPolicy

__all__ = ["ArmWindow", "GateCheck", "GateResult", "RolloutGate", "worse_rate_p_value"]

Verdict = Literal["pass", "fail", "wait"]
_NORMAL = NormalDist()


@dataclass(frozen=True)
class ArmWindow:
    """What one arm (champion or challenger) did over the gate's window.

    Parameters
    ----------
    requests
        Requests the arm answered (or, in shadow, scored) with a known outcome.
    errors
        Of those, wrong answers or proxy errors (the user redid the search or
        switched to typing).
    nulls
        Of those, null returns.
    latency_p99_ms
        The arm's 99th percentile latency; ``None`` when not measured.
    """

    requests: int
    errors: int
    nulls: int = 0
    latency_p99_ms: float | None = None

    def __post_init__(self) -> None:
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise ValueError(
                f"need 0 <= errors <= requests, got errors={self.errors}, requests={self.requests}"
            )
        if not 0 <= self.nulls <= self.requests:
            raise ValueError(f"need 0 <= nulls <= requests, got nulls={self.nulls}")

    @property
    def error_rate(self) -> float | None:
        """Errors per request; ``None`` without requests."""
        return self.errors / self.requests if self.requests else None

    @property
    def null_rate(self) -> float | None:
        """Null returns per request; ``None`` without requests."""
        return self.nulls / self.requests if self.requests else None

    @classmethod
    def from_metrics(
        cls,
        metrics: Mapping[str, float | None],
        *,
        error_metric: str = "redo_rate",
        count_metric: str = "outcomes",
    ) -> ArmWindow:
        """An arm from a :meth:`~online_models.WindowMetrics.metrics` dict of one route.

        ``error_metric`` is the rate that counts as an error (``redo_rate``,
        ``switch_to_typing_rate``, or ``1 - accuracy`` given as a metric of
        its own) over ``count_metric`` requests; the null rate is over
        the same requests, the latency is ``latency_p99_ms``.

        Examples
        --------
        >>> arm = ArmWindow.from_metrics({"outcomes": 800.0, "redo_rate": 0.1, "count": 1000.0,
        ...                               "null_rate": 0.02, "latency_p99_ms": 180.0})
        >>> arm
        ArmWindow(requests=800, errors=80, nulls=16, latency_p99_ms=180.0)
        """
        requests = int(metrics.get(count_metric) or 0)
        rate = metrics.get(error_metric) or 0.0
        nulls = round((metrics.get("null_rate") or 0.0) * requests)
        return cls(
            requests=requests,
            errors=round(rate * requests),
            nulls=min(nulls, requests),
            latency_p99_ms=metrics.get("latency_p99_ms"),
        )


def worse_rate_p_value(
    champion_events: int,
    champion_total: int,
    challenger_events: int,
    challenger_total: int,
    margin: float = 0.0,
) -> float:
    """P-value that the challenger's rate exceeds the champion's by more than ``margin``.

    One-sided two-proportion z test (Agresti–Caffo adjusted) of
    H0: ``p_challenger - p_champion <= margin`` against the alternative that it
    is larger. Small values are evidence that the challenger is worse.

    Examples
    --------
    >>> round(worse_rate_p_value(100, 1000, 150, 1000), 5)  # 10 % vs 15 %
    0.00036
    >>> round(worse_rate_p_value(100, 1000, 110, 1000), 3)  # 10 % vs 11 %: could be noise
    0.234
    """
    p_champion = (champion_events + 1) / (champion_total + 2)
    p_challenger = (challenger_events + 1) / (challenger_total + 2)
    variance = p_champion * (1 - p_champion) / (champion_total + 2) + p_challenger * (
        1 - p_challenger
    ) / (challenger_total + 2)
    z = (p_challenger - p_champion - margin) / math.sqrt(variance)
    return 1.0 - _NORMAL.cdf(z)


@dataclass(frozen=True)
class GateCheck:
    """One comparison of the gate: its verdict, both arms' values and why."""

    name: str
    verdict: Verdict
    champion: float | None
    challenger: float | None
    detail: str


@dataclass(frozen=True)
class GateResult:
    """The gate's answer: ``pass``, ``fail`` (roll back) or ``wait`` (too few samples)."""

    verdict: Verdict
    checks: tuple[GateCheck, ...]

    @property
    def reason(self) -> str:
        """The failing (or waiting) checks' details, or a one-line pass summary."""
        relevant = [c.detail for c in self.checks if c.verdict == self.verdict]
        if self.verdict == "pass":
            return "every gate check passed"
        return "; ".join(relevant)


@dataclass(frozen=True)
class RolloutGate:
    """Compare the challenger with the champion on the same window, with tolerances.

    Parameters
    ----------
    min_samples
        Requests each arm needs before the gate decides; below it, ``wait``.
    error_margin
        Error-rate increase tolerated (absolute, 0.01 = one point) before the
        challenger counts as worse.
    null_margin
        The same for the null-return rate.
    alpha
        Significance of the rate tests: the gate fails when the p-value that
        the challenger is worse by more than the margin is below it.
    latency_tolerance
        Relative p99 latency increase tolerated (0.2 = 20 % slower).
    latency_slack_ms
        Absolute p99 increase always tolerated (keeps fast models from
        failing on a millisecond of jitter).

    Examples
    --------
    >>> gate = RolloutGate(min_samples=500)
    >>> champion = ArmWindow(requests=5_000, errors=500, latency_p99_ms=120.0)
    >>> gate.evaluate(champion, ArmWindow(requests=300, errors=20)).verdict
    'wait'
    >>> gate.evaluate(champion, ArmWindow(requests=1_000, errors=85, latency_p99_ms=118.0)).verdict
    'pass'
    >>> worse = ArmWindow(requests=1_000, errors=160, latency_p99_ms=125.0)
    >>> result = gate.evaluate(champion, worse)
    >>> result.verdict, result.reason
    ('fail', 'error rate 16.00 % vs 10.00 % (margin 0.00 points, p = 4.8e-07 < 0.01)')
    """

    min_samples: int = 500
    error_margin: float = 0.0
    null_margin: float = 0.0
    alpha: float = 0.01
    latency_tolerance: float = 0.2
    latency_slack_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise InvalidPolicyError(f"min_samples must be at least 1, got {self.min_samples}")
        if not 0.0 < self.alpha < 0.5:
            raise InvalidPolicyError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if min(self.error_margin, self.null_margin, self.latency_tolerance) < 0:
            raise InvalidPolicyError("margins and tolerances must be >= 0")

    def _rate_check(
        self, name: str, champion: tuple[int, int], challenger: tuple[int, int], margin: float
    ) -> GateCheck:
        old, new = champion[0] / champion[1], challenger[0] / challenger[1]
        p_value = worse_rate_p_value(champion[0], champion[1], challenger[0], challenger[1], margin)
        worse = p_value < self.alpha
        comparison = "<" if worse else ">="
        detail = (
            f"{name} {100 * new:.2f} % vs {100 * old:.2f} % "
            f"(margin {100 * margin:.2f} points, p = {p_value:.2g} {comparison} {self.alpha:g})"
        )
        return GateCheck(name, "fail" if worse else "pass", old, new, detail)

    def evaluate(self, champion: ArmWindow, challenger: ArmWindow) -> GateResult:
        """``wait`` below ``min_samples`` on either arm; else ``fail`` if any check fails."""
        short = [
            (name, arm.requests)
            for name, arm in (("champion", champion), ("challenger", challenger))
            if arm.requests < self.min_samples
        ]
        if short:
            detail = ", ".join(f"{name} has {n} of {self.min_samples} samples" for name, n in short)
            check = GateCheck("samples", "wait", champion.requests, challenger.requests, detail)
            return GateResult("wait", (check,))
        checks = [
            self._rate_check(
                "error rate",
                (champion.errors, champion.requests),
                (challenger.errors, challenger.requests),
                self.error_margin,
            ),
            self._rate_check(
                "null rate",
                (champion.nulls, champion.requests),
                (challenger.nulls, challenger.requests),
                self.null_margin,
            ),
            self._latency_check(champion.latency_p99_ms, challenger.latency_p99_ms),
        ]
        verdict: Verdict = "fail" if any(c.verdict == "fail" for c in checks) else "pass"
        return GateResult(verdict, tuple(checks))

    def _latency_check(self, champion: float | None, challenger: float | None) -> GateCheck:
        if champion is None or challenger is None:
            return GateCheck(
                "latency p99", "pass", champion, challenger, "latency p99 not measured on both arms"
            )
        limit = champion * (1 + self.latency_tolerance) + self.latency_slack_ms
        worse = challenger > limit
        detail = f"latency p99 {challenger:.1f} ms vs {champion:.1f} ms (limit {limit:.1f} ms)"
        return GateCheck("latency p99", "fail" if worse else "pass", champion, challenger, detail)

    def apply(
        self, policy: RoutingPolicy, champion: ArmWindow, challenger: ArmWindow
    ) -> tuple[RoutingPolicy, GateResult]:
        """The policy after the gate: next step on ``pass``, rollback on ``fail``, same on ``wait``.

        A pass while a step awaits approval keeps waiting for it (the policy
        is returned unchanged). Give each arm the traffic since the current
        step began; once the challenger answers all traffic (ramp 100 % or a
        blue/green switch) the champion answers none, so pass the champion's
        last window as the reference.

        Examples
        --------
        >>> policy = RoutingPolicy("voice_intent", champion=1).start_shadow(2)
        >>> gate = RolloutGate(min_samples=100)
        >>> policy, result = gate.apply(policy, ArmWindow(1_000, 100), ArmWindow(1_000, 90))
        >>> result.verdict, policy.phase, policy.fraction
        ('pass', 'canary', 0.05)
        >>> policy, result = gate.apply(policy, ArmWindow(1_000, 100), ArmWindow(200, 60))
        >>> result.verdict, policy.champion, policy.rolled_back, policy.last_action
        ('fail', 1, (2,), 'rolled_back')
        """
        result = self.evaluate(champion, challenger)
        if result.verdict == "fail":
            return policy.rollback(f"gate failed: {result.reason}"), result
        if result.verdict == "wait" or policy.pending_step is not None:
            return policy, result
        return policy.next_step(), result
