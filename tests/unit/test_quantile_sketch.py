"""QuantileSketch keeps its documented relative-error guarantee, merges exactly, stays bounded.

The exact quantile it is compared with is ``numpy.quantile(values, q, method="lower")``,
the sample of 0-based rank ``floor(q * (n - 1))``: the sketch answers with the
bucket of one of the values, so that order statistic is what its relative
bound is about (an interpolated quantile may lie between two values where no
relative bound can hold).
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.stats import QuantileSketch

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
# the logarithm is rounded to the last bit; the guarantee holds up to that
ROUNDING = 1e-12


def assert_within_guarantee(sketch: QuantileSketch, values: np.ndarray, alpha: float) -> None:
    for q in QUANTILES:
        exact = float(np.quantile(values, q, method="lower"))
        estimate = sketch.quantile(q)
        assert abs(estimate - exact) <= alpha * abs(exact) * (1 + ROUNDING), (q, exact, estimate)


DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.normal(100.0, 15.0, n),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 3.0, n),
    "with negatives": lambda rng, n: rng.normal(0.0, 1.0, n),
    "all negative": lambda rng, n: -rng.exponential(5.0, n),
    "with zeros": lambda rng, n: np.where(rng.random(n) < 0.3, 0.0, rng.normal(0.0, 50.0, n)),
    "constant": lambda rng, n: np.full(n, 42.0),
    "all zero": lambda rng, n: np.zeros(n),
    "integers with ties": lambda rng, n: rng.integers(-3, 4, n).astype(float),
    "tiny and huge": lambda rng, n: rng.choice([1e-9, 1e-3, 1.0, 1e6], n),
}


# a store spans a ratio of about exp(2 * alpha * max_buckets) before folding: a finer
# alpha needs more buckets to cover the same data (1e-9..1e6 here)
@pytest.mark.parametrize(("alpha", "max_buckets"), [(0.01, 2048), (0.05, 2048), (0.001, 20_000)])
@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_quantiles_within_relative_accuracy(name: str, alpha: float, max_buckets: int) -> None:
    rng = np.random.default_rng(2026)
    values = DISTRIBUTIONS[name](rng, 5_000)
    sketch = QuantileSketch(relative_accuracy=alpha, max_buckets=max_buckets)
    for start in range(0, values.size, 333):
        sketch.add_many(values[start : start + 333])
    assert sketch.count == values.size
    assert sketch.min == values.min() and sketch.max == values.max()
    assert_within_guarantee(sketch, values, alpha)


@pytest.mark.parametrize("size", [1, 2, 3, 10])
def test_tiny_samples(size: int) -> None:
    values = np.random.default_rng(size).normal(0.0, 10.0, size)
    sketch = QuantileSketch()
    sketch.add_many(values)
    assert_within_guarantee(sketch, values, 0.01)


def test_extremes_are_exact() -> None:
    sketch = QuantileSketch()
    sketch.add_many([-3.0, 0.0, 0.0, 5.0, 100.0])
    assert sketch.quantile(0.0) == -3.0 and sketch.quantile(1.0) == 100.0


# magnitudes within 1e-3..1e6 (or exactly zero): well inside the 2048 buckets, so
# nothing is folded and the guarantee must hold for every quantile
bounded = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-3, max_value=1e6),
    st.floats(min_value=-1e6, max_value=-1e-3),
)


@given(st.lists(bounded, min_size=1, max_size=200), st.integers(1, 50))
@settings(max_examples=100, deadline=None)
def test_guarantee_holds_for_any_stream(values: list[float], batch: int) -> None:
    sketch = QuantileSketch()
    for start in range(0, len(values), batch):
        sketch.add_many(values[start : start + batch])
    assert_within_guarantee(sketch, np.asarray(values), 0.01)


@given(st.lists(st.floats(-1e300, 1e300), max_size=120), st.integers(0, 120))
@settings(max_examples=100, deadline=None)
def test_merge_of_two_halves_equals_sketch_of_all(values: list[float], cut: int) -> None:
    # any finite floats: with folding in play too, the merge is bucket for bucket the same
    first, second, whole = (QuantileSketch(max_buckets=64) for _ in range(3))
    first.add_many(values[:cut])
    second.add_many(values[cut:])
    first.merge(second)
    whole.add_many(values)
    assert first.to_state() == whole.to_state()


@given(st.lists(bounded, max_size=60))
@settings(max_examples=50, deadline=None)
def test_one_at_a_time_equals_batch(values: list[float]) -> None:
    single, batch = QuantileSketch(max_buckets=32), QuantileSketch(max_buckets=32)
    for value in values:
        single.add(value)
    batch.add_many(values)
    assert single.to_state() == batch.to_state()


def test_size_is_bounded_and_the_top_keeps_its_guarantee() -> None:
    rng = np.random.default_rng(9)
    values = np.concatenate([rng.lognormal(0.0, 6.0, 20_000), -rng.lognormal(0.0, 6.0, 20_000)])
    max_buckets = 256
    sketch = QuantileSketch(max_buckets=max_buckets)
    sketch.add_many(values)
    assert sketch.bucket_count <= 2 * max_buckets
    assert sketch.count == values.size
    gamma = 1.01 / 0.99
    # a store keeps magnitudes down to (largest magnitude) / gamma**(max_buckets - 1)
    kept_from = np.abs(values).max() / gamma ** (max_buckets - 1)
    for q in np.linspace(0.0, 1.0, 201):
        exact = float(np.quantile(values, q, method="lower"))
        estimate = sketch.quantile(float(q))
        if abs(exact) >= kept_from * gamma:  # not in the folded lowest bucket
            assert abs(estimate - exact) <= 0.01 * abs(exact) * (1 + ROUNDING)
        else:  # folded: the magnitude is overestimated, never the sign
            assert abs(estimate) >= abs(exact) * (1 - 0.01) and estimate * exact >= 0


def test_one_batch_spanning_the_float_range_stays_small() -> None:
    sketch = QuantileSketch()
    sketch.add_many([1e-300, 1e-100, 1.0, 1e100, 1e300, -1e-300, -1e300])
    assert sketch.bucket_count <= 2 * sketch.max_buckets
    assert sketch.quantile(1.0) == 1e300 and sketch.quantile(0.0) == -1e300
    # 1e100 is ~1e200 below the largest value: far beyond what 2048 buckets span, so
    # it sits in the folded lowest bucket and its magnitude is overestimated
    assert 1e100 < sketch.quantile(5 / 6) < 1e300
    assert math.isclose(sketch.quantile(5 / 6), 1e300 / (1.01 / 0.99) ** 2047, rel_tol=0.011)


def test_refuses_non_finite_values_and_mismatched_merges() -> None:
    sketch = QuantileSketch()
    with pytest.raises(ValueError, match="finite"):
        sketch.add_many([1.0, float("nan")])
    with pytest.raises(ValueError, match="finite"):
        sketch.add(float("inf"))
    assert sketch.count == 0
    with pytest.raises(ValueError, match="same parameters"):
        sketch.merge(QuantileSketch(relative_accuracy=0.02))
    with pytest.raises(ValueError, match="q must be in"):
        sketch.quantile(1.5)
    with pytest.raises(ValueError, match="relative_accuracy"):
        QuantileSketch(relative_accuracy=0.0)


def test_empty_sketch_reports_none() -> None:
    sketch = QuantileSketch()
    sketch.add_many([])
    assert (sketch.count, sketch.min, sketch.max, sketch.quantile(0.5)) == (0, None, None, None)
    sketch.merge(QuantileSketch())
    assert sketch.count == 0 and sketch.bucket_count == 0


def test_state_survives_json_and_pickle_exactly() -> None:
    sketch = QuantileSketch()
    sketch.add_many(np.random.default_rng(4).normal(0.0, 100.0, 1_000))
    sketch.add_many([0.0, 0.0])
    state = sketch.to_state()
    through_json = QuantileSketch.from_state(json.loads(json.dumps(state)))
    through_pickle = pickle.loads(pickle.dumps(sketch))
    assert through_json.to_state() == state == through_pickle.to_state()
    for q in QUANTILES:
        assert through_json.quantile(q) == sketch.quantile(q)
    more = QuantileSketch()
    more.add_many([1e4, -1e4])
    through_json.merge(more)
    sketch.merge(more)
    assert through_json.to_state() == sketch.to_state()


def test_state_is_sparse_and_the_dense_form_still_loads() -> None:
    # a window's hundred values spread over many octaves: a wide span, mostly empty buckets
    values = np.random.default_rng(5).lognormal(0.0, 3.0, 100)
    sketch = QuantileSketch()
    sketch.add_many(values)
    state = sketch.to_state()
    positive = state["positive"]
    assert len(positive["gaps"]) == len(positive["n"]) <= 100 < positive["size"]
    dense = {
        **state,
        "positive": {"offset": positive["offset"], "counts": [0] * positive["size"]},
    }
    for at, n in zip(np.cumsum(positive["gaps"]), positive["n"], strict=True):
        dense["positive"]["counts"][at] = n
    assert len(json.dumps(positive)) * 3 < len(json.dumps(dense["positive"]))
    from_dense = QuantileSketch.from_state(dense)
    assert from_dense.to_state() == state
    for q in QUANTILES:
        assert from_dense.quantile(q) == sketch.quantile(q)
