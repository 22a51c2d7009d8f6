"""A CUSUM on a learned reference holds its false-alarm budget on skewed and near-constant features.

The streams mimic the voice demo's clean traffic: ``clipping_ratio`` (mostly
exactly 0, rarely a small positive value with a long tail) and
``leading_silence_s`` (a few values on a 10 ms grid, skewed right). Each test
that checks the budget also runs the normal-theory rule of a reference given
as a mean and sd on the same data, which breaks it: the tests can fail.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from online_models.drift.cusum import Cusum

BUDGET = 100_000  # events per false alarm, one signal


def clipping_ratio(rng: np.random.Generator, n: int) -> np.ndarray:
    """97 % zeros, the rest lognormal around 3e-5 (a long right tail)."""
    return np.where(rng.random(n) < 0.027, rng.lognormal(-10.5, 0.9, n), 0.0)


def leading_silence(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds on a 10 ms grid, mostly 0 or 10 ms, sometimes 40-50 ms."""
    return rng.choice([0.0, 0.01, 0.03, 0.04, 0.05], size=n, p=[0.37, 0.42, 0.01, 0.07, 0.13])


def normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(-20.0, 0.9, n)


DRAWS = {"clipping_ratio": clipping_ratio, "leading_silence": leading_silence, "normal": normal}


def false_alarms(
    draw: str, reference_size: int, seeds: int, events: int, enough: float
) -> tuple[int, int]:
    """False alarms on stationary streams: a learned reference, and the same as a given mean/sd.

    The given one stops being fed once it has raised more than ``enough`` in all.
    """
    learned = given = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        reference = DRAWS[draw](rng, reference_size)
        detector = Cusum.from_reference(reference, false_alarm_budget=BUDGET)
        normal_theory = Cusum(
            reference_mean=float(reference.mean()),
            reference_std=float(reference.std(ddof=1)),
            false_alarm_budget=BUDGET,
        )
        for _ in range(events // 100_000):
            batch = DRAWS[draw](rng, 100_000)
            learned += len(detector.update_many(batch))
            if given <= enough:
                given += len(normal_theory.update_many(batch))
    return learned, given


@pytest.mark.parametrize(
    ("draw", "reference_size", "seeds", "events"),
    [
        ("clipping_ratio", 300, 5, 200_000),
        ("clipping_ratio", 5_000, 3, 300_000),
        ("leading_silence", 300, 5, 200_000),
        ("leading_silence", 5_000, 5, 200_000),
        ("normal", 300, 10, 200_000),
    ],
)
def test_a_stationary_stream_stays_within_the_budget(
    draw: str, reference_size: int, seeds: int, events: int
) -> None:
    allowed = seeds * events / BUDGET
    learned, given = false_alarms(draw, reference_size, seeds, events, enough=1.5 * allowed)
    assert learned <= allowed
    # the normal-theory threshold on the same reference and streams does not hold it
    assert given > 1.5 * allowed


def test_a_half_sigma_shift_is_still_found_fast_with_a_5000_event_reference() -> None:
    delays = []
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        detector = Cusum.from_reference(rng.normal(0.0, 1.0, 5_000), false_alarm_budget=BUDGET)
        values = rng.normal(0.0, 1.0, 6_000)
        values[1_000:] += 0.5
        alarms = [a for a in detector.update_many(values) if a.position >= 1_000]
        assert alarms and alarms[0].direction == "up"
        delays.append(alarms[0].position - 1_000)
    assert np.mean(delays) <= 100
    # close to the normal-theory threshold: a long reference costs little
    assert max(max(pair) for pair in detector.direction_thresholds) < 1.15 * detector.thresholds[0]


def test_a_short_reference_pays_with_a_higher_threshold() -> None:
    rng = np.random.default_rng(3)
    long = Cusum.from_reference(rng.normal(0.0, 1.0, 5_000), false_alarm_budget=BUDGET)
    short = Cusum.from_reference(rng.normal(0.0, 1.0, 300), false_alarm_budget=BUDGET)
    assert min(min(pair) for pair in short.direction_thresholds) > 1.5 * max(
        max(pair) for pair in long.direction_thresholds
    )


def test_a_right_skewed_feature_gets_a_higher_threshold_upwards() -> None:
    reference = np.random.default_rng(4).lognormal(0.0, 0.8, 5_000)
    (up, down), *_ = Cusum.from_reference(reference).direction_thresholds
    assert up > 1.2 * down


def test_one_huge_value_never_alarms_on_its_own() -> None:
    rng = np.random.default_rng(5)
    detector = Cusum.from_reference(rng.normal(0.0, 1.0, 5_000))
    values = rng.normal(0.0, 1.0, 2_000)
    values[1_000] = 1e9
    assert detector.update_many(values) == []
    # a reference given as mean and sd is taken as exact and normal: no cap
    exact = Cusum(reference_mean=0.0, reference_std=1.0)
    assert [a.position for a in exact.update_many(values)] == [1_000]


def test_a_feature_constant_in_its_reference_alarms_when_it_starts_moving() -> None:
    rng = np.random.default_rng(6)
    detector = Cusum.from_reference(np.zeros(300))
    assert detector.reference == ([0.0], [pytest.approx(2.0**-40)])
    # one nonzero value in a thousand, over 100 000 events: no alarm
    rare = np.where(rng.random(100_000) < 0.001, 1e-4, 0.0)
    assert rare.sum() > 0 and detector.update_many(rare) == []
    # then one in ten: an alarm within a few dozen events
    often = np.where(rng.random(1_000) < 0.1, 1e-4, 0.0)
    alarms = detector.update_many(often)
    assert alarms and alarms[0].index < 100 and alarms[0].direction == "up"


def test_a_constant_reference_stored_in_float32_does_not_alarm_on_float64_values() -> None:
    reference = np.full(300, np.float32(0.1), dtype=np.float64)  # 0.10000000149...
    detector = Cusum.from_reference(reference)
    assert detector.update_many(np.full(10_000, 0.1)) == []
    assert detector.update_many(np.full(100, 0.2))  # a real change


def test_weighted_directions_equal_a_textbook_cusum_with_one_threshold_per_direction() -> None:
    rng = np.random.default_rng(7)
    reference = rng.lognormal(0.0, 0.8, 1_000)
    detector = Cusum.from_reference(reference, false_alarm_budget=2_000)
    values = rng.lognormal(0.0, 0.8, 30_000)
    values[20_000:] *= 1.4
    found = [(a.position, a.direction) for a in detector.update_many(values)]
    # the oracle: the two textbook recursions on the capped values, restarting together
    (mean,), (sd,) = detector.reference
    (up_limit, down_limit), *_ = detector.direction_thresholds
    z = np.clip((values - mean) / sd, -4.0, 4.0)
    up = down = 0.0
    expected = []
    for position, value in enumerate(z):
        up, down = max(0.0, up + value - 0.25), max(0.0, down - value - 0.25)
        if up > up_limit or down > down_limit:
            expected.append((position, "up" if up / up_limit >= down / down_limit else "down"))
            up = down = 0.0
    assert len(expected) > 10 and found == expected


def test_samples_of_different_sizes_are_the_columns_of_one_reference() -> None:
    rng = np.random.default_rng(8)
    first, second = rng.normal(5.0, 1.0, 1_000), clipping_ratio(rng, 600)
    detector = Cusum.from_samples([first, second])
    padded = np.full((1_000, 2), np.nan)
    padded[:, 0], padded[:600, 1] = first, second
    same = Cusum.from_reference(padded)
    assert detector.reference == same.reference
    assert detector.direction_thresholds == same.direction_thresholds
    (mean, _), (sd, _) = detector.reference
    assert mean == pytest.approx(first.mean()) and sd == pytest.approx(first.std(ddof=1))


def test_a_learned_detector_pickles_and_an_old_state_without_a_cap_still_runs() -> None:
    rng = np.random.default_rng(9)
    detector = Cusum.from_reference(leading_silence(rng, 300), false_alarm_budget=1_000)
    values = leading_silence(rng, 50_000) + 0.002
    restored = pickle.loads(pickle.dumps(detector))
    assert [a.position for a in restored.update_many(values)] == [
        a.position for a in detector.update_many(values)
    ]
    old = pickle.loads(pickle.dumps(Cusum(reference_mean=0.0, reference_std=1.0)))
    del old.__dict__["_cap"]  # as pickled before caps existed
    assert old.update_many(np.full(100, 3.0))
