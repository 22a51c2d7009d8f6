"""Two-sample comparisons: statistics against scipy, thresholds against theory, drift seen.

The gradual-drift tests are the reason this module exists: a widening spread
that river's ADWIN does not see, and a slow ramp of the mean, are flagged,
while a long stationary stream is not.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river.drift import ADWIN
from scipy import stats
from scipy.spatial.distance import jensenshannon

from online_models.drift.reference import (
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
    ReferenceProfileError,
)
from online_models.drift.two_sample import (
    DEFAULT_EVENTS_PER_FALSE_ALARM,
    ReferenceComparison,
    UnknownTwoSampleTestError,
    bootstrap_threshold,
    divergence_trend,
    false_alarm_alpha,
    two_sample_test,
    two_sample_tests,
)

WINDOW = 1_000


def _reference(values: np.ndarray) -> NumericReference:
    return NumericReference.from_values(values, sample_size=values.size)


# --------------------------------------------------------------------------- statistics


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's p-value on 1-value samples
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=60),
    st.lists(st.integers(-5, 5), min_size=1, max_size=60),
    st.floats(0.1, 3.0),
)
@settings(max_examples=60, deadline=None)
def test_ks_equals_scipy_with_and_without_ties(
    reference_values: list[int], window_values: list[int], scale: float
) -> None:
    reference = _reference(np.asarray(reference_values, dtype=float) * scale)
    window = np.sort(np.asarray(window_values, dtype=float) * scale)
    statistic, _ = two_sample_test("ks").compare(reference, window)
    # the window is compared at the reference's precision (float32-exact values)
    as_stored = window.astype(np.float32).astype(np.float64)
    expected = stats.ks_2samp(reference.sample, as_stored, method="asymp").statistic
    assert statistic == pytest.approx(expected, abs=1e-12)


def test_ks_p_value_is_the_asymptotic_one() -> None:
    rng = np.random.default_rng(0)
    reference = _reference(rng.normal(size=3_000))
    window = np.sort(rng.normal(0.1, 1.0, 800))
    statistic, p_value = two_sample_test("ks").compare(reference, window)
    effective = 3_000 * 800 / (3_000 + 800)
    assert p_value == pytest.approx(stats.kstwobign.sf(statistic * math.sqrt(effective)))
    # scipy's "asymp" uses the finite-n law at the rounded effective size: close
    scipy_p_value = stats.ks_2samp(reference.sample, window, method="asymp").pvalue
    assert p_value == pytest.approx(scipy_p_value, rel=0.15)
    assert p_value < 0.001


def test_psi_by_hand() -> None:
    reference = NumericReference.from_sample(np.arange(100.0), count=100, bins=4)
    assert reference.bin_edges.tolist() == [24.75, 49.5, 74.25]
    window = np.sort(np.r_[np.full(10, 1.0), np.full(20, 30.0), np.full(30, 60.0), np.full(40, 90)])
    shares_window = np.array([0.1, 0.2, 0.3, 0.4])
    shares_reference = np.array([25, 25, 25, 25]) / 100
    expected = ((shares_window - shares_reference) * np.log(shares_window / shares_reference)).sum()
    statistic, p_value = two_sample_test("psi").compare(reference, window)
    assert statistic == pytest.approx(expected) and p_value is None


def test_psi_floors_empty_bins_instead_of_dividing_by_zero() -> None:
    reference = NumericReference.from_sample(np.arange(100.0), count=100, bins=4)
    statistic, _ = two_sample_test("psi").compare(reference, np.full(50, 1.0))
    shares = np.array([1.0, 1e-4, 1e-4, 1e-4])
    assert statistic == pytest.approx(((shares - 0.25) * np.log(shares / 0.25)).sum())


def test_chi_square_and_js_equal_scipy() -> None:
    rng = np.random.default_rng(1)
    reference = CategoricalReference.from_values(
        rng.choice(["en", "fr", "de", "es"], 4_000, p=[0.5, 0.3, 0.15, 0.05]).tolist(), top_k=3
    )
    window_values = rng.choice(["en", "fr", "de", "es"], 700, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    counts = reference.count_window(window_values)
    table = np.vstack([counts, reference.counts()])
    chi2, p_value, degrees, _ = stats.chi2_contingency(table, correction=False)
    statistic, our_p = two_sample_test("chi_square").compare(reference, counts)
    assert statistic == pytest.approx(chi2) and our_p == pytest.approx(p_value)
    assert degrees == 3
    distance, none = two_sample_test("js").compare(reference, counts)
    assert none is None
    assert distance == pytest.approx(jensenshannon(counts, reference.counts(), base=2))


def test_unseen_categories_count_a_little_each_and_flag_in_numbers() -> None:
    rng = np.random.default_rng(2)
    categories, shares = ["ios", "android", "web"], [0.45, 0.45, 0.1]
    profile = ReferenceProfile.from_rows(
        [{"device": device} for device in rng.choice(categories, 5_000, p=shares)],
        model="asr",
        model_version="1",
    )
    comparison = ReferenceComparison(profile, window_size=WINDOW)
    window = rng.choice(categories, WINDOW, p=shares).tolist()
    one_new = comparison.compare({"device": [*window[:-1], "tv"]})
    assert not any(result.drifted for result in one_new)
    five_percent_new = comparison.compare({"device": [*window[:-50], *["tv"] * 50]})
    assert all(result.drifted for result in five_percent_new)


# --------------------------------------------------------------------------- registry and budget


def test_tests_are_chosen_by_name_and_an_unknown_name_lists_the_valid_ones() -> None:
    assert two_sample_tests() == ["chi_square", "js", "ks", "psi"]
    assert two_sample_tests("numeric") == ["ks", "psi"]
    with pytest.raises(UnknownTwoSampleTestError, match="valid names: chi_square, js, ks, psi"):
        two_sample_test("anderson")
    profile = ReferenceProfile.from_rows([{"x": 1.0}], model="m", model_version="1")
    with pytest.raises(UnknownTwoSampleTestError):
        ReferenceComparison(profile, window_size=WINDOW, tests=["ks", "kss"])


def test_budget_becomes_a_per_comparison_alpha_by_bonferroni() -> None:
    # one false alarm per 100 000 events, windows of 1 000, 20 features x 2 tests
    assert false_alarm_alpha(100_000, window_size=1_000, comparisons=40) == pytest.approx(2.5e-4)
    assert false_alarm_alpha(500, window_size=1_000) == 1.0  # a budget looser than a window
    with pytest.raises(ReferenceProfileError, match="must be positive"):
        false_alarm_alpha(0, window_size=1_000)


def test_comparison_splits_the_budget_over_signals_tests_and_segments() -> None:
    rows = [{"a": float(i), "b": float(-i), "c": str(i % 3)} for i in range(200)]
    profile = ReferenceProfile.from_rows(rows, model="m", model_version="1")
    comparison = ReferenceComparison(profile, window_size=1_000, segments=4, margin=2.0)
    assert comparison.comparisons == 6  # a, b: ks + psi; c: chi_square + js
    expected = 1_000 / DEFAULT_EVENTS_PER_FALSE_ALARM / (6 * 4) / 2.0
    assert comparison.alpha == pytest.approx(expected)


# --------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("alpha", [1e-4, 1e-6])
def test_ks_threshold_matches_the_two_sample_kolmogorov_law(alpha: float) -> None:
    # one calibration is off by ~3 % (sd, measured); the mean of eight is within 3 %
    references = [_reference(np.random.default_rng(seed).normal(size=5_000)) for seed in range(8)]
    thresholds = [
        bootstrap_threshold("ks", reference, WINDOW, alpha, seed=seed)
        for seed, reference in enumerate(references)
    ]
    effective = WINDOW * 5_000 / (WINDOW + 5_000)
    expected = stats.kstwobign.isf(alpha) / math.sqrt(effective)
    assert np.mean(thresholds) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("alpha", [1e-4, 1e-6])
def test_chi_square_threshold_matches_the_chi_square_law(alpha: float) -> None:
    rng = np.random.default_rng(4)
    values = rng.choice(list("abcdef"), 200_000, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05]).tolist()
    reference = CategoricalReference.from_values(values)
    threshold = bootstrap_threshold("chi_square", reference, WINDOW, alpha, seed=4)
    assert threshold == pytest.approx(stats.chi2.isf(alpha, 5), rel=0.12)


def test_calibration_is_seeded_and_tighter_for_larger_windows() -> None:
    reference = _reference(np.random.default_rng(5).lognormal(size=5_000))
    first = bootstrap_threshold("psi", reference, WINDOW, 1e-5, seed=1)
    assert bootstrap_threshold("psi", reference, WINDOW, 1e-5, seed=1) == first
    assert bootstrap_threshold("psi", reference, WINDOW, 1e-5, seed=2) != first
    assert bootstrap_threshold("psi", reference, 4 * WINDOW, 1e-5, seed=1) < first
    with pytest.raises(ReferenceProfileError, match=r"alpha must be in \(0, 1\)"):
        bootstrap_threshold("psi", reference, WINDOW, 0.0)


def test_where_the_draws_reach_the_threshold_is_their_own_quantile() -> None:
    reference = _reference(np.random.default_rng(6).normal(size=5_000))
    test = two_sample_test("ks")
    draws = np.sort(test.null_statistics(reference, WINDOW, 500, np.random.default_rng(0)))
    threshold = bootstrap_threshold(test, reference, WINDOW, 0.05, draws=500, seed=0)
    assert threshold == pytest.approx(np.quantile(draws, 0.95))


def test_thresholds_are_cached_by_two_significant_digits_of_the_window() -> None:
    rng = np.random.default_rng(7)
    profile = ReferenceProfile.from_rows(
        pd.DataFrame({"x": rng.normal(size=3_000)}), model="m", model_version="1"
    )
    comparison = ReferenceComparison(profile, window_size=WINDOW, min_values=100)
    assert comparison.threshold("x", "ks", 987) == comparison.threshold("x", "ks", 980)
    assert comparison.threshold("x", "ks", 987) > comparison.threshold("x", "ks", 1_000)
    window = rng.normal(size=WINDOW)
    window[:950] = np.nan  # 50 usable values: below min_values, not compared
    assert comparison.compare({"x": window, "unknown": [1.0] * WINDOW}) == []
    assert comparison.compare({}) == []


# --------------------------------------------------------------------------- drift seen


def _features(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    return {
        "duration_s": rng.gamma(4.0, 0.8, size),
        "loudness_db": rng.normal(-23.0, 4.0, size),
        "snr_db": rng.lognormal(2.5, 0.4, size),
        "words": rng.poisson(3, size).astype(float),
        "clipped": (rng.random(size) < 0.05).astype(float),
        "locale": rng.choice(["en", "fr", "de", "es", "it"], size, p=[0.5, 0.2, 0.15, 0.1, 0.05]),
    }


def _comparison(seed: int) -> tuple[ReferenceComparison, np.random.Generator]:
    rng = np.random.default_rng(seed)
    profile = ReferenceProfile.from_rows(
        pd.DataFrame(_features(rng, 20_000)), model="asr", model_version="1", seed=seed
    )
    return ReferenceComparison(profile, window_size=WINDOW, seed=seed), rng


def _first_alarm(
    comparison: ReferenceComparison, signal: str, stream: np.ndarray, tests: tuple[str, ...]
) -> tuple[int | None, list[float]]:
    """Index of the first window where one of ``tests`` fires, and the KS statistics so far."""
    statistics = []
    for index in range(stream.size // WINDOW):
        results = comparison.compare({signal: stream[index * WINDOW : (index + 1) * WINDOW]})
        statistics.append(next(r.statistic for r in results if r.test == "ks"))
        if any(result.drifted for result in results if result.test in tests):
            return index, statistics
    return None, statistics


def test_a_widening_spread_with_the_same_mean_is_flagged_by_ks_long_before_adwin() -> None:
    comparison, rng = _comparison(seed=10)
    events = np.arange(30_000)
    spread = 1 + np.minimum(events / 20_000, 1.0)  # the standard deviation doubles
    stream = -23.0 + 4.0 * rng.normal(size=events.size) * spread
    first, _ = _first_alarm(comparison, "loudness_db", stream, tests=("ks",))
    adwin, adwin_alarms = ADWIN(), []
    for index, value in enumerate(stream):
        adwin.update(value)
        if adwin.drift_detected:
            adwin_alarms.append(index)
    # measured on this seed: KS fires at window 8 (9 000 events, spread x1.45), ADWIN at 17 000+
    assert first is not None and first <= 10
    assert not adwin_alarms or adwin_alarms[0] > (first + 1) * WINDOW + 5_000


def test_a_slow_ramp_of_half_a_sigma_is_flagged_within_ten_windows_and_called_gradual() -> None:
    comparison, rng = _comparison(seed=11)
    events = np.arange(30_000)
    shift = 0.5 * 4.0 * np.minimum(events / 20_000, 1.0)  # +0.5 sigma over 20 000 events
    stream = -23.0 + 4.0 * rng.normal(size=events.size) + shift
    first, statistics = _first_alarm(comparison, "loudness_db", stream, tests=("ks", "psi"))
    # measured over 40 other seeds (100-139): first alarm at window 4 to 8, 38 called gradual
    assert first is not None and first < 10
    assert divergence_trend(statistics) == "gradual"


def test_a_jump_is_flagged_at_once_and_called_sudden() -> None:
    comparison, rng = _comparison(seed=12)
    events = np.arange(20_000)
    stream = -23.0 + 4.0 * rng.normal(size=events.size) + np.where(events < 12_500, 0.0, 2.0)
    first, statistics = _first_alarm(comparison, "loudness_db", stream, tests=("ks", "psi"))
    assert first in (12, 13)
    assert divergence_trend(statistics) == "sudden"


def test_a_stationary_stream_of_200_000_events_raises_no_alarm_at_the_default_budget() -> None:
    comparison, rng = _comparison(seed=13)
    stream = _features(rng, 200_000)
    alarms = []
    for index in range(200):
        window = {
            name: values[index * WINDOW : (index + 1) * WINDOW] for name, values in stream.items()
        }
        alarms += [(index, r.signal, r.test) for r in comparison.compare(window) if r.drifted]
    assert comparison.comparisons == 12
    assert alarms == []


# --------------------------------------------------------------------------- trend rule


def test_divergence_trend_rule() -> None:
    rng = np.random.default_rng(14)
    noise = rng.normal(0, 0.004, 12)
    ramp = 0.03 + 0.006 * np.arange(12) + noise
    assert divergence_trend(ramp) == "gradual"
    jump = np.r_[np.full(9, 0.03), np.full(3, 0.12)] + noise
    assert divergence_trend(jump) == "sudden"
    assert divergence_trend(jump[:3]) is None  # too few to tell
    assert divergence_trend(ramp[::-1]) is None  # not growing
    # only the last `span` statistics count: an old jump followed by a steady rise is gradual
    assert divergence_trend([0.0, 0.5, *ramp], span=10) == "gradual"
    with pytest.raises(ReferenceProfileError, match="span must be at least 4"):
        divergence_trend(ramp, span=3)
