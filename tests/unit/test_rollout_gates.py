"""Rollout gates: a better challenger is promoted, a worse one rolled back, noise does not fail."""

from __future__ import annotations

import random

import pytest

from online_models import OutcomeBatch, PredictionBatch, WindowMetrics
from online_models.routing import (
    ArmWindow,
    InvalidPolicyError,
    RolloutGate,
    RoutingPolicy,
    worse_rate_p_value,
)

GATE = RolloutGate(min_samples=400, alpha=0.01)


def traffic_window(
    policy: RoutingPolicy,
    rng: random.Random,
    requests: int,
    error_rates: dict[int, float],
    latency_ms: dict[int, float],
    first_key: int,
) -> tuple[ArmWindow, ArmWindow]:
    """Route ``requests`` users through the policy and count each arm's errors.

    In shadow the challenger scores every request too (its errors come from
    labels, since its answers reach no user).
    """
    counts = {"champion": [0, 0], "challenger": [0, 0]}
    for i in range(first_key, first_key + requests):
        route = policy.route(f"user-{i}")
        arms = [(route.route_name, route.answer_version)]
        if route.shadow_version is not None:
            arms.append(("challenger", route.shadow_version))
        for arm, version in arms:
            counts[arm][0] += 1
            counts[arm][1] += rng.random() < error_rates[version]
    champion, challenger = policy.champion, policy.challenger
    return (
        ArmWindow(*counts["champion"], latency_p99_ms=latency_ms[champion]),
        ArmWindow(*counts["challenger"], latency_p99_ms=latency_ms[challenger]),
    )


def run_rollout(
    error_rates: dict[int, float], latency_ms: dict[int, float], seed: int = 0
) -> tuple[RoutingPolicy, list[tuple[str, float, str]]]:
    """Drive a rollout of version 2 over version 1 to its end, gating after every window.

    Each gate sees every request since its step began (counts add up until the
    policy moves on), as the rollout driver keeps them; once the challenger
    answers everything, the champion's last window is the reference.
    """
    rng = random.Random(seed)
    policy = RoutingPolicy("voice_intent", champion=1).start_shadow(2)
    history = []
    key = 0
    totals = {"champion": [0, 0], "challenger": [0, 0]}
    for _ in range(200):
        if policy.challenger is None:
            break
        window = traffic_window(policy, rng, 2_000, error_rates, latency_ms, key)
        key += 2_000
        for name, arm in zip(("champion", "challenger"), window, strict=True):
            totals[name][0] += arm.requests
            totals[name][1] += arm.errors
        champion, challenger = (
            ArmWindow(*totals[name], latency_p99_ms=arm.latency_p99_ms)
            for name, arm in zip(("champion", "challenger"), window, strict=True)
        )
        before = (policy.phase, policy.fraction)
        policy, result = GATE.apply(policy, champion, challenger)
        history.append((*before, result.verdict))
        if (policy.phase, policy.fraction) != before:
            # at 100 % the champion answers nothing: its last window stays the reference
            champion_totals = totals["champion"] if policy.fraction == 1.0 else [0, 0]
            totals = {"champion": champion_totals, "challenger": [0, 0]}
    return policy, history


def test_a_better_challenger_passes_every_gate_and_is_promoted():
    policy, history = run_rollout({1: 0.12, 2: 0.08}, {1: 140.0, 2: 120.0})
    assert (policy.champion, policy.challenger, policy.last_action) == (2, None, "promoted")
    assert "fail" not in {verdict for *_, verdict in history}
    passed = [(phase, fraction) for phase, fraction, verdict in history if verdict == "pass"]
    assert passed == [
        ("shadow", 0.0),
        ("canary", 0.05),
        ("ramp", 0.25),
        ("ramp", 0.5),
        ("ramp", 1.0),
    ]
    # at 5 % the challenger sees ~100 requests a window: the gate waits until it has 400
    assert ("canary", 0.05, "wait") in history


def test_a_worse_challenger_fails_the_first_gate_and_is_rolled_back():
    policy, history = run_rollout({1: 0.10, 2: 0.16}, {1: 140.0, 2: 140.0})
    assert history == [("shadow", 0.0, "fail")]
    assert (policy.champion, policy.challenger, policy.rolled_back) == (1, None, (2,))
    assert policy.last_action == "rolled_back"
    assert policy.reason.startswith("gate failed: error rate")


def test_a_slower_challenger_is_rolled_back_on_latency():
    policy, history = run_rollout({1: 0.10, 2: 0.10}, {1: 140.0, 2: 260.0})
    assert history == [("shadow", 0.0, "fail")]
    assert "latency p99 260.0 ms vs 140.0 ms" in policy.reason


def test_below_the_minimum_sample_size_the_gate_waits_and_nothing_changes():
    policy = RoutingPolicy("voice_intent", champion=1).start_shadow(2).start_canary()
    # a challenger that looks terrible on a handful of requests is not judged yet
    after, result = GATE.apply(policy, ArmWindow(5_000, 500), ArmWindow(399, 200))
    assert result.verdict == "wait"
    assert after is policy
    assert "challenger has 399 of 400 samples" in result.reason
    assert GATE.evaluate(ArmWindow(399, 0), ArmWindow(5_000, 0)).verdict == "wait"


def test_equal_arms_rarely_fail_noise_is_not_a_regression():
    rng = random.Random(7)
    fails = 0
    windows = 300
    for _ in range(windows):
        champion = sum(rng.random() < 0.1 for _ in range(2_000))
        challenger = sum(rng.random() < 0.1 for _ in range(600))
        result = GATE.evaluate(ArmWindow(2_000, champion), ArmWindow(600, challenger))
        fails += result.verdict == "fail"
    # alpha is 1 % per test; two rate tests per gate
    assert fails / windows <= 0.03


def test_a_small_real_regression_fails_with_enough_samples_unless_within_margin():
    champion, challenger = ArmWindow(20_000, 2_000), ArmWindow(20_000, 2_300)  # 10 % vs 11.5 %
    assert GATE.evaluate(champion, challenger).verdict == "fail"
    tolerant = RolloutGate(min_samples=400, error_margin=0.03)
    assert tolerant.evaluate(champion, challenger).verdict == "pass"


def test_more_null_returns_fail_the_gate():
    result = GATE.evaluate(ArmWindow(3_000, 300, nulls=30), ArmWindow(3_000, 300, nulls=90))
    assert result.verdict == "fail"
    failing = [check.name for check in result.checks if check.verdict == "fail"]
    assert failing == ["null rate"]


@pytest.mark.parametrize(
    ("challenger_p99", "verdict"),
    [(90.0, "pass"), (120.0, "pass"), (125.0, "pass"), (126.0, "fail"), (300.0, "fail")],
)
def test_latency_tolerance_is_relative_plus_slack(challenger_p99, verdict):
    gate = RolloutGate(min_samples=10, latency_tolerance=0.2, latency_slack_ms=5.0)
    # limit = 100 * 1.2 + 5 = 125 ms
    champion = ArmWindow(100, 10, latency_p99_ms=100.0)
    challenger = ArmWindow(100, 10, latency_p99_ms=challenger_p99)
    assert gate.evaluate(champion, challenger).verdict == verdict


def test_unmeasured_latency_does_not_fail():
    result = GATE.evaluate(ArmWindow(1_000, 100), ArmWindow(1_000, 100, latency_p99_ms=900.0))
    assert result.verdict == "pass"


def test_a_pass_does_not_skip_a_pending_approval():
    policy = RoutingPolicy("voice_intent", champion=1, require_approval=True).start_shadow(2)
    good = (ArmWindow(1_000, 100), ArmWindow(1_000, 80))
    waiting, result = GATE.apply(policy, *good)
    assert (result.verdict, waiting.status, waiting.pending_step) == (
        "pass",
        "awaiting_approval",
        "canary:0.05",
    )
    again, _ = GATE.apply(waiting, *good)
    assert again is waiting
    assert waiting.approve("canary:0.05").fraction == 0.05
    rolled, result = GATE.apply(waiting, ArmWindow(1_000, 100), ArmWindow(1_000, 300))
    assert (result.verdict, rolled.status, rolled.rolled_back) == ("fail", "serving", (2,))


def test_p_value_is_one_half_for_equal_rates_and_falls_as_the_challenger_worsens():
    assert worse_rate_p_value(100, 1_000, 100, 1_000) == pytest.approx(0.5)
    values = [worse_rate_p_value(100, 1_000, errors, 1_000) for errors in range(80, 200, 10)]
    assert values == sorted(values, reverse=True)
    assert worse_rate_p_value(0, 500, 0, 500) == pytest.approx(0.5)  # defined with no errors


def test_p_value_matches_scipys_normal_tail():
    # golden value from scipy (importing scipy.stats here would cost seconds):
    # p1, p2 = 101 / 1002, 131 / 1002  (Agresti-Caffo adjusted, as documented)
    # se = sqrt(p1 (1 - p1) / 1002 + p2 (1 - p2) / 1002)
    # scipy.stats.norm.sf((p2 - p1 - 0.01) / se) == 0.08128031775965205
    expected = 0.08128031775965205
    assert worse_rate_p_value(100, 1_000, 130, 1_000, margin=0.01) == pytest.approx(expected)


def test_an_arm_from_window_metrics_counts_proxy_errors():
    rows = [
        {"features": {}, "prediction": {"label": "music" if i % 10 else None}, "latency_ms": i}
        for i in range(1, 1_001)
    ]
    outcomes = [{"redo_search": i % 8 == 0} for i in range(1_000)]
    window = WindowMetrics()
    window.add_predictions(PredictionBatch.from_rows(rows))
    window.add_outcomes(OutcomeBatch.from_rows(outcomes))
    arm = ArmWindow.from_metrics(window.metrics(60.0))
    assert (arm.requests, arm.errors, arm.nulls) == (1_000, 125, 100)
    assert arm.latency_p99_ms == pytest.approx(990.0, rel=0.02)


def test_gate_configuration_is_validated():
    with pytest.raises(InvalidPolicyError, match="min_samples"):
        RolloutGate(min_samples=0)
    with pytest.raises(InvalidPolicyError, match="alpha"):
        RolloutGate(alpha=0.7)
    with pytest.raises(ValueError, match="errors <= requests"):
        ArmWindow(10, 11)
