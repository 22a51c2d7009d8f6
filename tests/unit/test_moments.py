"""Moments agree with pandas on every prefix, merge exactly, and serialise exactly."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import stats as river_stats

from online_models.stats import Moments

REL = 1e-9

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def assert_matches(moments: Moments, values: np.ndarray) -> None:
    """Count, mean, std, min and max equal pandas' on the same values."""
    series = pd.Series(values, dtype=float)
    scale = max(1.0, float(np.abs(values).max())) if values.size else 1.0
    assert moments.count == len(series)
    if series.empty:
        assert (moments.mean, moments.std, moments.min, moments.max) == (None, None, None, None)
        return
    assert math.isclose(moments.mean, series.mean(), rel_tol=REL, abs_tol=REL * scale)
    assert moments.min == series.min() and moments.max == series.max()
    if len(series) < 2:
        assert moments.std is None and moments.variance is None
    else:
        assert math.isclose(moments.std, series.std(), rel_tol=REL, abs_tol=REL * scale)
        assert moments.variance >= 0


DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.normal(50.0, 10.0, n),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 2.0, n),
    "negative": lambda rng, n: rng.normal(-1e4, 3.0, n),
    "with zeros": lambda rng, n: np.where(rng.random(n) < 0.4, 0.0, rng.exponential(2.0, n)),
    "constant": lambda rng, n: np.full(n, 0.1),
}


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_every_prefix_matches_pandas(name: str) -> None:
    rng = np.random.default_rng(11)
    values = DISTRIBUTIONS[name](rng, 600)
    moments = Moments()
    position = 0
    while position < values.size:  # batches of 1 to 40 values, checked after each
        size = int(rng.integers(1, 41))
        moments.add_many(values[position : position + size])
        position = min(position + size, values.size)
        assert_matches(moments, values[:position])


def test_one_value_at_a_time_matches_pandas_on_every_prefix() -> None:
    values = np.random.default_rng(5).normal(3.0, 2.0, 200)
    moments = Moments()
    for i, value in enumerate(values, start=1):
        moments.add(value)
        assert_matches(moments, values[:i])


def test_constant_stream_has_zero_spread_never_nan() -> None:
    moments = Moments()
    for _ in range(50):
        moments.add_many(np.full(7, 1e6 / 3))
    moments.add(1e6 / 3)
    assert moments.min == moments.max == 1e6 / 3
    assert 0.0 <= moments.std <= 1e-9


@given(st.lists(finite, max_size=80), st.lists(st.integers(1, 20), min_size=1, max_size=10))
@settings(max_examples=60, deadline=None)
def test_batches_of_any_size_match_numpy(values: list[float], sizes: list[int]) -> None:
    moments, position, turn = Moments(), 0, 0
    while position < len(values):
        size = sizes[turn % len(sizes)]
        moments.add_many(values[position : position + size])
        position, turn = position + size, turn + 1
    assert_matches(moments, np.asarray(values, dtype=float))


@given(st.lists(st.tuples(finite, st.integers(0, 3)), max_size=80))
@settings(max_examples=60, deadline=None)
def test_merging_four_partitions_equals_the_whole(tagged: list[tuple[float, int]]) -> None:
    partitions = [Moments() for _ in range(4)]
    for part in range(4):
        partitions[part].add_many([value for value, p in tagged if p == part])
    merged = Moments()
    for partial in partitions:
        merged.merge(partial)
    whole = Moments()
    whole.add_many([value for value, _ in tagged])
    assert merged.count == whole.count
    assert (merged.min, merged.max) == (whole.min, whole.max)
    assert_matches(merged, np.asarray([value for value, _ in tagged], dtype=float))


@given(st.floats(1.0, 1e6), st.lists(st.floats(-1e-6, 1e-6), min_size=2, max_size=60))
@settings(max_examples=40, deadline=None)
def test_variance_is_never_negative_on_near_constant_data(
    centre: float, noise: list[float]
) -> None:
    values = [centre + e for e in noise]
    batched, merged = Moments(), Moments()
    batched.add_many(values)
    for value in values:
        one = Moments()
        one.add(value)
        merged.merge(one)
    assert batched.variance >= 0 and merged.variance >= 0


def test_agrees_with_river() -> None:
    """Moments re-implements river's Var for speed; the two give the same numbers."""
    values = np.random.default_rng(2).gamma(2.0, 3.0, 1_000)
    ours, theirs = Moments(), river_stats.Var(ddof=1)
    for start in range(0, 1_000, 100):
        ours.add_many(values[start : start + 100])
        theirs.update_many(values[start : start + 100])
        assert math.isclose(ours.mean, theirs.mean.get(), rel_tol=1e-12)
        assert math.isclose(ours.variance, theirs.get(), rel_tol=1e-9)


def test_merging_empties_is_a_no_op_both_ways() -> None:
    empty, full = Moments(), Moments()
    full.add_many([1.0, 2.0, 4.0])
    before = full.to_state()
    full.merge(Moments())
    assert full.to_state() == before
    empty.merge(full)
    assert empty.to_state() == before
    both = Moments()
    both.merge(Moments())
    assert both.count == 0 and both.mean is None


def test_empty_and_single_value_report_none_not_nan() -> None:
    moments = Moments()
    moments.add_many([])
    assert (moments.count, moments.mean, moments.std, moments.min, moments.max) == (
        0,
        None,
        None,
        None,
        None,
    )
    moments.add(2.5)
    assert (moments.count, moments.mean, moments.std, moments.min, moments.max) == (
        1,
        2.5,
        None,
        2.5,
        2.5,
    )


def test_state_survives_json_and_pickle_exactly() -> None:
    moments = Moments()
    moments.add_many(np.random.default_rng(0).normal(size=123))
    through_json = Moments.from_state(json.loads(json.dumps(moments.to_state())))
    through_pickle = pickle.loads(pickle.dumps(moments))
    assert through_json.to_state() == moments.to_state() == through_pickle.to_state()
    other = Moments()
    other.add_many([10.0, 20.0])
    through_json.merge(other)
    moments.merge(other)
    assert through_json.to_state() == moments.to_state()
