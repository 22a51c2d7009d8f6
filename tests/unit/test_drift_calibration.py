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
