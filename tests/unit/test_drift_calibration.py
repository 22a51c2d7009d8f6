"""Thresholds from a false-alarm budget: analytic, simulated, and checked on fresh data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from online_models.drift.bernoulli import BernoulliCusum
from online_models.drift.calibration import (
    CalibrationError,
    adjustment_coefficient,
    calibrate_threshold,
    reference_threshold,
    siegmund_arl0,
    siegmund_threshold,
    signal_arl0,
    simulate_arl0,
)
from online_models.drift.cusum import Cusum


def test_the_budget_is_split_across_signals() -> None:
    assert signal_arl0(100_000, 12) == 1_200_000
    with pytest.raises(CalibrationError, match="at least one signal"):
        signal_arl0(100_000, 0)


def test_theta_is_2k_for_a_normal_signal_and_1_for_a_likelihood_ratio() -> None:
    z = np.random.default_rng(0).normal(0.0, 1.0, 100_000)
    assert adjustment_coefficient(z - 0.5) == pytest.approx(1.0, abs=0.03)
    bits = np.random.default_rng(1).random(100_000) < 0.1
    llr = np.where(bits, math.log(2.0), math.log(0.8 / 0.9))
    assert adjustment_coefficient(llr) == pytest.approx(1.0, abs=0.03)


def test_siegmund_agrees_with_simulation_at_a_moderate_level() -> None:
    z = np.random.default_rng(2).normal(0.0, 1.0, 20_000)
    threshold = siegmund_threshold(1_000, theta=[0.5], drift=[-0.25], spread=[1.0])
    simulated, alarms = simulate_arl0((z - 0.25)[:, None], threshold, 1_000_000, seed=3)
    assert alarms.sum() > 500
    assert simulated == pytest.approx(1_000, rel=0.15)


def test_a_cusum_that_would_alarm_on_its_reference_is_refused() -> None:
    with pytest.raises(CalibrationError, match="negative"):
        siegmund_arl0(5.0, theta=[0.5], drift=[0.1], spread=[1.0])


@pytest.mark.parametrize("name", ["normal", "lognormal"])
def test_calibrated_threshold_meets_the_target_on_fresh_stationary_data(name: str) -> None:
    rng = np.random.default_rng(11)
    draw = {
        "normal": lambda n: rng.normal(50.0, 5.0, n),
        "lognormal": lambda n: rng.lognormal(0.0, 0.8, n),  # skewed: up and down differ
    }[name]
    reference = draw(20_000)
    result = calibrate_threshold(
        lambda h: Cusum.from_reference(reference, threshold=h),
        reference,
        target_arl0=10_000,
        seed=5,
        events=500_000,
        check_events=1_000_000,
    )
    assert result.check_alarms > 40
    assert result.check_arl0 == pytest.approx(10_000, rel=0.35)
    # an independent check on new values of the same distribution, not the resampled reference
    detector = Cusum.from_reference(reference, threshold=result.threshold)
    alarms = sum(len(detector.update_many(draw(100_000))) for _ in range(10))
    assert 1_000_000 / alarms == pytest.approx(10_000, rel=0.4)
    if name == "lognormal":
        up, down = result.theta
        assert up < down  # the long right tail makes upward false alarms commoner


def test_calibrating_a_bernoulli_cusum_is_reproducible_and_close_to_siegmund() -> None:
    bits = (np.random.default_rng(4).random(10_000) < 0.1).astype(float)

    def factory(h: float) -> BernoulliCusum:
        return BernoulliCusum.from_reference(bits, threshold=h)

    first = calibrate_threshold(factory, bits, 50_000, seed=1, events=500_000, check_events=1)
    again = calibrate_threshold(factory, bits, 50_000, seed=1, events=500_000, check_events=1)
    assert first.threshold == again.threshold
    assert first.threshold == pytest.approx(first.analytic_threshold, abs=0.5)
    assert first.theta == pytest.approx((1.0,), abs=1e-6)


def test_calibration_needs_one_signal_and_enough_reference() -> None:
    sample = np.random.default_rng(0).normal(0.0, 1.0, (1_000, 2))
    with pytest.raises(CalibrationError, match="one signal at a time"):
        calibrate_threshold(
            lambda h: Cusum.from_reference(sample, threshold=h), sample[:, 0], 10_000, seed=0
        )
    with pytest.raises(CalibrationError, match="at least 100"):
        calibrate_threshold(
            lambda h: Cusum(h, reference_mean=0.0, reference_std=1.0),
            sample[:50, 0],
            10_000,
            seed=0,
        )


# --------------------------------------------------------------------------- sampled references


def test_weighted_theta_is_the_theta_of_the_sample_the_weights_stand_for() -> None:
    rng = np.random.default_rng(20)
    u = rng.lognormal(0.0, 0.7, 500) - 1.5
    repeats = rng.integers(1, 5, u.size)
    weighted = adjustment_coefficient(u, weights=repeats / repeats.sum())
    assert weighted == pytest.approx(adjustment_coefficient(np.repeat(u, repeats)), rel=1e-9)
    assert float(np.mean(np.exp(weighted * np.repeat(u, repeats)))) == pytest.approx(1.0)
    with pytest.raises(CalibrationError, match="summing to 1"):
        adjustment_coefficient(u, weights=repeats)


def test_the_overshoot_correction_can_be_set() -> None:
    full = siegmund_threshold(100_000, theta=[0.5], drift=[-0.25], spread=[1.0])
    top = siegmund_threshold(100_000, theta=[0.5], drift=[-0.25], spread=[1.0], overshoot=0.583)
    assert top == pytest.approx(full + 0.583)


def standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std(ddof=1)


def test_a_long_normal_reference_gives_about_the_normal_threshold() -> None:
    z = standardised(np.random.default_rng(21).normal(0.0, 1.0, 20_000))
    result = reference_threshold(z, 200_000, allowance=0.25, cap=4.0)
    normal = siegmund_threshold(200_000, theta=[0.5], drift=[-0.25], spread=[1.0])
    assert result.theta == pytest.approx(0.5, abs=0.03)
    assert result.theta_se == pytest.approx(math.sqrt(4.5 / 20_000), rel=0.1)  # 2^2 + 1 * 2 / 4
    assert normal < result.threshold < 1.05 * normal


def test_shorter_references_and_larger_targets_get_more_allowance() -> None:
    rng = np.random.default_rng(22)
    samples = {n: standardised(rng.normal(0.0, 1.0, n)) for n in (300, 5_000)}
    thresholds = {
        (n, target): reference_threshold(samples[n], target, allowance=0.25, cap=4.0)
        for n in (300, 5_000)
        for target in (2e5, 2e9)
    }
    for target in (2e5, 2e9):
        assert thresholds[300, target].threshold > 1.4 * thresholds[5_000, target].threshold
    for n in (300, 5_000):
        assert thresholds[n, 2e9].theta_used <= thresholds[n, 2e5].theta_used


def test_the_heavier_tail_gets_the_higher_threshold() -> None:
    z = standardised(np.random.default_rng(23).lognormal(0.0, 0.8, 5_000))
    up = reference_threshold(z, 200_000, allowance=0.25, cap=4.0, direction="up")
    down = reference_threshold(z, 200_000, allowance=0.25, cap=4.0, direction="down")
    assert up.theta < down.theta and up.threshold > down.threshold


def test_a_constant_reference_is_bounded_by_the_value_it_never_showed() -> None:
    result = reference_threshold(np.zeros(300), 200_000, allowance=0.25, cap=4.0)
    # 300 events at -0.25 and one at 4 - 0.25 with weight 1/301
    expected = adjustment_coefficient(
        np.r_[np.full(300, -0.25), 3.75], weights=np.r_[np.full(300, 1.0 / 301), 1.0 / 301]
    )
    assert result.theta == pytest.approx(expected) and result.theta_se == 0.0
    assert 4.0 < result.threshold < 20.0  # several departures, not one, make an alarm


def test_a_reference_too_short_for_the_shift_says_how_long_it_must_be() -> None:
    with pytest.raises(CalibrationError, match="at least 16 events"):
        reference_threshold(np.zeros(10), 200_000, allowance=0.25, cap=4.0)
