"""Sudden or gradual decided again after the alarm (:mod:`online_models.drift.reassess`).

The detector is configured as :class:`streams.drift.DriftMonitor` configures it
(see ``test_drift_pattern``): the bits a re-assessment sees are the 8 000 before
the first alarm and the 2 000 after it, as the monitor takes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from test_drift_pattern import REFERENCE, draw, first_alarm_on

from online_models.drift.reassess import DEFAULT_THRESHOLD, ramp_vs_step, reassess_pattern
from streams.drift import REASSESS_AFTER, REASSESS_BEFORE, DriftMonitor

SEEDS = 20


def around_first_alarm(rates: np.ndarray, seed: int) -> tuple[str, np.ndarray] | None:
    """The at-alarm label and the bits a re-assessment sees, or None without an alarm."""
    errors = draw(rates, seed)
    found = first_alarm_on(errors)
    if found is None or found[1] + 1 + REASSESS_AFTER > rates.size:
        return None
    alarm, at = found
    lo = max(REFERENCE, at + 1 - REASSESS_BEFORE)
    return alarm.pattern, errors[lo : at + 1 + REASSESS_AFTER]


def _ramp(before: float, after: float, width: int, start: int = 8_000) -> np.ndarray:
    return before + (after - before) * np.clip((np.arange(30_000) - start) / width, 0.0, 1.0)


@pytest.mark.parametrize(
    ("before", "after"), [(0.003, 0.05), (0.003, 0.78), (0.02, 0.3), (0.1, 0.3), (0.3, 0.5)]
)
def test_a_step_stays_sudden(before: float, after: float) -> None:
    # measured on seeds 0-29 (with 0.02 -> 0.06, 0.1 -> 0.2, 0.015 -> 0.5 and 0 -> 0.78):
    # the largest ratio of any step was 3.2, below the threshold of 4
    rates = np.where(np.arange(30_000) < 10_000, before, after)
    labels = [reassess_pattern(bits) for _, bits in filter(None, (
        around_first_alarm(rates, seed) for seed in range(SEEDS)))]  # fmt: skip
    assert len(labels) == SEEDS
    assert labels.count("gradual") <= 1


@pytest.mark.parametrize(("before", "width", "at_least"), [(0.003, 5_000, 18), (0.0, 10_000, 16)])
def test_a_ramp_from_a_low_error_rate_is_labelled_sudden_at_the_alarm_and_gradual_after(
    before: float, width: int, at_least: int
) -> None:
    # measured on seeds 0-29: gradual in 29 (0.003, 5 000 wide) and 29 (0, 10 000) of 30;
    # at the alarm, 0 of 30
    found = [around_first_alarm(_ramp(before, 0.3, width), seed) for seed in range(SEEDS)]
    assert all(item is not None for item in found)
    at_alarm = [label for label, _ in filter(None, found)]
    again = [reassess_pattern(bits) for _, bits in filter(None, found)]
    assert at_alarm.count("gradual") <= 2
    assert again.count("gradual") >= at_least


def test_the_ratio_is_never_negative_and_needs_enough_bins() -> None:
    rng = np.random.default_rng(0)
    flat = (rng.random(10_000) < 0.1) * 1.0
    assert 0.0 <= ramp_vs_step(flat) < DEFAULT_THRESHOLD
    assert ramp_vs_step(flat[:399]) == 0.0  # fewer than 8 bins of 50
    with_gaps = flat.copy()
    with_gaps[::3] = np.nan  # unlabelled outcomes are dropped, not counted as right
    assert ramp_vs_step(with_gaps) == ramp_vs_step(flat[np.isfinite(with_gaps)])


def _outcome_rows(rates: np.ndarray, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
    wrong = rng.random(rates.size) < rates
    return [
        {
            "time": t0 + timedelta(milliseconds=100 * i),
            "data": {"model": "asr", "model_version": "3", "correct": not bool(w)},
        }
        for i, w in enumerate(wrong)
    ]


def _watch(rows: list[dict], monitor: DriftMonitor) -> list:
    found = []
    for start in range(0, len(rows), 700):
        found += monitor.observe_outcomes(rows[start : start + 700])
    return found


def test_the_monitor_reports_a_ramp_again_as_gradual_2000_outcomes_after_its_alarm() -> None:
    rows = _outcome_rows(_ramp(0.003, 0.3, 6_000, start=6_000)[:20_000], seed=4)
    found = [
        d for d in _watch(rows, DriftMonitor(reference_first_n=3_000)) if d.signal == "error_rate"
    ]
    assert [d.pattern for d in found][:2] == ["sudden", "gradual"]
    first, again = found[0], found[1]
    times = [row["time"] for row in rows]
    alarm, decided = times.index(first.detected_at), times.index(again.detected_at)
    assert decided - alarm == REASSESS_AFTER
    assert again.evidence_start == first.evidence_start
    assert "gradual, decided 2,000 outcomes after the alarm" in again.summary


def test_the_monitor_adds_nothing_to_a_step_and_can_be_told_not_to_look_again() -> None:
    rows = _outcome_rows(np.where(np.arange(20_000) < 8_000, 0.003, 0.3), seed=4)
    found = _watch(rows, DriftMonitor(reference_first_n=3_000))
    assert [(d.signal, d.pattern) for d in found] == [("error_rate", "sudden")]
    ramp = _outcome_rows(_ramp(0.003, 0.3, 6_000, start=6_000)[:20_000], seed=4)
    never = _watch(ramp, DriftMonitor(reference_first_n=3_000, reassess_after=0))
    assert all(d.pattern == "sudden" for d in never)


def test_a_follow_up_survives_a_checkpoint_of_the_monitor() -> None:
    rows = _outcome_rows(_ramp(0.003, 0.3, 6_000, start=6_000)[:20_000], seed=4)
    whole = [d.pattern for d in _watch(rows, DriftMonitor(reference_first_n=3_000))]
    monitor = DriftMonitor(reference_first_n=3_000)
    found = []
    for start in range(0, len(rows), 700):
        found += monitor.observe_outcomes(rows[start : start + 700])
        if found and len(found) == 1:  # between the alarm and its follow-up's decision
            monitor = DriftMonitor.from_state(monitor.to_state())
    assert [d.pattern for d in found] == whole
    assert "gradual" in whole
