"""Event-time windows: aligned tumbling windows, a watermark that closes them, rolling panes."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.window import PanedRollingWindow, TumblingWindows, Watermark
from online_models.window_metrics import PredictionBatch, WindowMetrics

event_times = st.integers(-(10**13), 10**13)
sizes = st.sampled_from([0.5, 1, 10, 60, 300, 3600])


# --------------------------------------------------------------------------- tumbling


@given(event_times, sizes)
@settings(max_examples=200, deadline=None)
def test_every_event_falls_in_exactly_one_aligned_window(time_ms: int, size_s: float) -> None:
    windows = TumblingWindows(size_s)
    start = windows.window_start(time_ms)
    assert start <= time_ms < windows.window_end(start)
    assert start % windows.size_ms == 0
    assert (
        windows.window_start(start) == start == windows.window_start(windows.window_end(start) - 1)
    )


@given(st.lists(event_times, max_size=50), sizes)
@settings(max_examples=50, deadline=None)
def test_vectorised_starts_equal_one_at_a_time(times: list[int], size_s: float) -> None:
    windows = TumblingWindows(size_s)
    assert windows.window_starts(times).tolist() == [windows.window_start(t) for t in times]


def test_windows_are_aligned_to_the_epoch_on_any_worker() -> None:
    minute = TumblingWindows(60)
    assert minute.window_start(1_767_225_659_999) == 1_767_225_600_000  # 2026-01-01T00:00:59.999Z
    assert minute.window_start(1_767_225_660_000) == 1_767_225_660_000
    assert minute.window_start(-1) == -60_000  # before the epoch: still floor
    assert TumblingWindows(0.5).size_ms == 500


@pytest.mark.parametrize("size_s", [0, -10, 0.0001, math.inf, math.nan])
def test_nonsense_sizes_are_refused(size_s: float) -> None:
    with pytest.raises(ValueError, match="size_s"):
        TumblingWindows(size_s)


def test_a_window_closes_when_the_watermark_passes_its_end_plus_lateness() -> None:
    windows = TumblingWindows(10)
    assert not windows.closed(0, None)
    assert not windows.closed(0, 9_999)
    assert windows.closed(0, 10_000)
    assert not windows.closed(0, 12_999, allowed_lateness_s=3)
    assert windows.closed(0, 13_000, allowed_lateness_s=3)
    with pytest.raises(ValueError, match="allowed_lateness_s"):
        windows.closed(0, 13_000, allowed_lateness_s=-1)


# --------------------------------------------------------------------------- watermark


@given(st.lists(event_times, max_size=60), st.sampled_from([0, 0.5, 2, 30]))
@settings(max_examples=100, deadline=None)
def test_watermark_is_the_newest_time_minus_the_slack_and_never_goes_back(
    times: list[int], slack_s: float
) -> None:
    watermark, previous = Watermark(out_of_orderness_s=slack_s), None
    for i, time_ms in enumerate(times):
        watermark.observe(time_ms)
        assert watermark.value_ms == max(times[: i + 1]) - round(slack_s * 1000)
        assert previous is None or watermark.value_ms >= previous
        previous = watermark.value_ms


@given(
    st.lists(st.integers(0, 5_000), min_size=1, max_size=80),
    st.lists(st.integers(0, 2_000), min_size=1, max_size=80),
    st.sampled_from([1, 10]),
)
@settings(max_examples=100, deadline=None)
def test_events_no_later_than_the_slack_never_land_in_a_closed_window(
    steps: list[int], delays: list[int], size_s: float
) -> None:
    """The point of the watermark: bounded disorder never loses an event."""
    windows, watermark, clock = TumblingWindows(size_s), Watermark(out_of_orderness_s=2), 0
    for step, delay in zip(steps, delays, strict=False):
        clock += step
        time_ms = clock - delay  # at most 2 s older than the newest event so far
        assert not watermark.is_late(time_ms)
        assert not windows.closed(windows.window_start(time_ms), watermark.value_ms)
        watermark.observe(time_ms)


def test_watermark_starts_empty_and_round_trips() -> None:
    watermark = Watermark()
    assert watermark.value_ms is None and not watermark.is_late(0)
    watermark.observe_many([])
    assert watermark.value_ms is None
    assert Watermark.from_state(json.loads(json.dumps(watermark.to_state()))).value_ms is None
    watermark.observe_many([5_000, 9_000, 7_000])
    again = Watermark.from_state(json.loads(json.dumps(watermark.to_state())))
    assert again.value_ms == watermark.value_ms == 7_000
    assert again.out_of_orderness_ms == 2_000


# --------------------------------------------------------------------------- rolling panes


def _predictions(rng: random.Random, count: int) -> list[dict]:
    return [
        {
            "features": {"x": rng.gauss(0.0, 1.0), "kind": rng.choice(["a", "b"])},
            "prediction": {"label": rng.choice(["yes", "no", None]), "score": rng.random()},
            "latency_ms": rng.lognormvariate(3.0, 0.5),
        }
        for _ in range(count)
    ]


def _close(got: dict[str, float | None], want: dict[str, float | None]) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        if value is not None and name.endswith((".mean", ".std", "_mean_ms")):
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-12), name
        else:  # counts, rates, shares, min/max and quantiles merge exactly
            assert got[name] == value, name


def test_rolling_value_equals_the_events_of_the_last_panes() -> None:
    rng = random.Random(12)
    panes = TumblingWindows(10)
    rolling = PanedRollingWindow(pane_s=10, panes=6)
    times = sorted(rng.randrange(0, 200_000) for _ in range(1_500))
    rows = _predictions(rng, len(times))
    starts = [panes.window_start(t) for t in times]
    for pane_start in sorted(set(starts)):
        pane = WindowMetrics()
        pane.add_predictions(
            PredictionBatch.from_rows(
                [r for r, s in zip(rows, starts, strict=True) if s == pane_start]
            )
        )
        assert rolling.add(pane_start, pane)
        end = pane_start + 10_000
        assert rolling.end_ms == end
        expected = WindowMetrics()
        expected.add_predictions(
            PredictionBatch.from_rows(
                [r for r, t in zip(rows, times, strict=True) if end - 60_000 <= t < end]
            )
        )
        covered = min(60.0, end / 1000)
        assert rolling.covered_s == covered
        _close(rolling.metrics(), expected.metrics(covered))


def test_a_pane_older_than_the_span_is_refused_and_a_repeated_one_is_merged() -> None:
    rolling = PanedRollingWindow(pane_s=10, panes=3)
    first, late_partial, old = WindowMetrics(), WindowMetrics(), WindowMetrics()
    rows = _predictions(random.Random(1), 30)
    first.add_predictions(PredictionBatch.from_rows(rows[:20]))
    late_partial.add_predictions(PredictionBatch.from_rows(rows[20:]))
    assert rolling.add(100_000, first)
    first_state = json.dumps(first.to_state())
    assert rolling.add(100_000, late_partial)  # a second partial of the same pane
    assert rolling.value().count == 30
    assert json.dumps(first.to_state()) == first_state  # the caller's pane is untouched
    assert not rolling.add(70_000, old)  # before 110_000 - 30_000: outside the span
    assert rolling.add(80_000, old)
    assert rolling.start_ms == 80_000 and rolling.covered_s == 30.0
    assert rolling.add(120_000, WindowMetrics())  # the 80_000 pane falls out
    assert rolling.start_ms == 100_000 and rolling.value().count == 30
    with pytest.raises(ValueError, match="not aligned"):
        rolling.add(125_000, WindowMetrics())


def test_an_empty_rolling_window_reports_no_traffic() -> None:
    rolling = PanedRollingWindow(pane_s=10, panes=6, new_aggregate=WindowMetrics)
    assert rolling.end_ms is None and rolling.covered_s == 0.0 and rolling.span_s == 60.0
    metrics = rolling.metrics()
    assert metrics["count"] == 0.0 and metrics["qps"] == 0.0
    assert all(v is None or math.isfinite(v) for v in metrics.values())
    with pytest.raises(ValueError, match="panes"):
        PanedRollingWindow(pane_s=10, panes=0)


def test_panes_with_custom_parameters_need_a_matching_factory() -> None:
    pane = WindowMetrics(max_categories=3)
    pane.add_predictions(PredictionBatch.from_rows(_predictions(random.Random(2), 5)))
    matching = PanedRollingWindow(10, 2, new_aggregate=lambda: WindowMetrics(max_categories=3))
    matching.add(0, pane)
    assert matching.value().count == 5
    default = PanedRollingWindow(10, 2)
    default.add(0, pane)
    with pytest.raises(ValueError, match="same parameters"):
        default.value()


def test_window_starts_accepts_numpy_arrays() -> None:
    times = np.array([0, 9_999, 10_000], dtype=np.int64)
    assert TumblingWindows(10).window_starts(times).tolist() == [0, 0, 10_000]
