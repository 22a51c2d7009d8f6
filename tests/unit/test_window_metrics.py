"""WindowMetrics equals a pandas oracle on every prefix, merges exactly, and round-trips.

The oracle recomputes every metric from the event dicts with pandas, from the
definitions in the ``online_models.window_metrics`` docstring: counts and rates
must be equal, means and standard deviations equal up to 1e-9 relative, and
quantiles within the sketch's relative accuracy of the exact
``quantile(q, interpolation="lower")`` (the order statistic a DDSketch bounds;
see ``test_quantile_sketch.py``).
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.stats import Frequencies, Moments, QuantileSketch
from online_models.window_metrics import OutcomeBatch, PredictionBatch, WindowMetrics

ALPHA = 0.01
WINDOW_S = 10.0
LABELS = ["weather", "music", "news", "timer"]
LOCALES = ["en-GB", "en-US", "fr-FR", "de-DE"]
SIGNALS = {
    "redo_search": "redo_rate",
    "switched_to_typing": "switch_to_typing_rate",
    "clicked": "click_rate",
}

Row = dict[str, Any]
Event = tuple[str, Row]  # ("prediction" | "outcome", data)
# metric name -> (expected value, how to compare: "exact" | "moment" | "quantile", scale)
Expected = dict[str, tuple[float | None, str, float]]


# --------------------------------------------------------------------------- oracle


def _quantiles(values: pd.Series, *qs: float) -> list[float | None]:
    if not len(values):
        return [None] * len(qs)
    return [float(v) for v in values.quantile(list(qs), interpolation="lower")]


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def _frequencies(prefix: str, values: pd.Series, expected: Expected) -> None:
    if not len(values):
        return
    assert values.nunique() <= 20, "the oracle assumes no more categories than the cap"
    for category, share in values.value_counts(normalize=True).items():
        expected[prefix + str(category)] = (float(share), "exact", 1.0)
    expected[prefix + "__other__"] = (0.0, "exact", 1.0)


def _verdict(row: Row) -> bool | None:
    if row.get("correct") is not None:
        return row["correct"]
    if row.get("label") is not None and "predicted_label" in row:
        return row["predicted_label"] == row["label"]
    return None


def oracle(predictions: list[Row], outcomes: list[Row], window_s: float = WINDOW_S) -> Expected:
    """Every metric of the window, computed with pandas straight from the event dicts."""
    n = len(predictions)
    outputs = [row.get("prediction") or {} for row in predictions]
    hosts = [row.get("host") or {} for row in predictions]
    latency = pd.Series([row.get("latency_ms") for row in predictions], dtype=float).dropna()
    labels = pd.Series([out.get("label") for out in outputs], dtype=object)
    scores = pd.Series([out.get("score") for out in outputs], dtype=float).dropna()
    errors = pd.Series([row.get("error") is not None for row in predictions], dtype=bool)
    cpu = pd.Series([host.get("cpu_percent") for host in hosts], dtype=float).dropna()
    memory = pd.Series([host.get("memory_mb") for host in hosts], dtype=float).dropna()

    def rate(hits: int, total: int) -> float | None:
        return hits / total if total else None

    exact, moment, quantile = "exact", "moment", "quantile"
    latency_p50, latency_p95, latency_p99 = _quantiles(latency, 0.50, 0.95, 0.99)
    score_p50, score_p95 = _quantiles(scores, 0.50, 0.95)
    expected: Expected = {
        "count": (float(n), exact, 1.0),
        "qps": (n / window_s, exact, 1.0),
        "latency_p50_ms": (latency_p50, quantile, 1.0),
        "latency_p95_ms": (latency_p95, quantile, 1.0),
        "latency_p99_ms": (latency_p99, quantile, 1.0),
        "latency_mean_ms": (_mean(latency), moment, max(1.0, latency.abs().max() if n else 1)),
        "error_rate": (rate(int(errors.sum()), n), exact, 1.0),
        "cpu_percent_mean": (_mean(cpu), moment, max([1.0, *cpu.abs()])),
        "memory_mb_mean": (_mean(memory), moment, max([1.0, *memory.abs()])),
        "null_rate": (rate(int(labels.isna().sum()), n), exact, 1.0),
        "score.mean": (_mean(scores), moment, max([1.0, *scores.abs()])),
        "score.p50": (score_p50, quantile, 1.0),
        "score.p95": (score_p95, quantile, 1.0),
    }
    _frequencies("label.freq.", labels.dropna(), expected)

    verdicts = [_verdict(row) for row in outcomes]
    labelled = pd.Series(
        [
            row.get("label") is not None or v is not None
            for row, v in zip(outcomes, verdicts, strict=True)
        ],
        dtype=bool,
    )
    correct = pd.Series([v is True for v in verdicts], dtype=bool)
    expected["outcomes"] = (float(len(outcomes)), exact, 1.0)
    for column, name in SIGNALS.items():
        signal = pd.Series([row.get(column) for row in outcomes], dtype=object).dropna()
        expected[name] = (rate(int((signal == True).sum()), len(signal)), exact, 1.0)  # noqa: E712
    expected["accuracy"] = (rate(int((correct & labelled).sum()), int(labelled.sum())), exact, 1.0)
    expected["label_coverage"] = (rate(int(labelled.sum()), n), exact, 1.0)
    delays = pd.Series([row.get("label_delay_ms") for row in outcomes], dtype=float).dropna()
    delay_p50, delay_p95 = _quantiles(delays, 0.50, 0.95)
    expected["label_delay_p50_ms"] = (delay_p50, quantile, 1.0)
    expected["label_delay_p95_ms"] = (delay_p95, quantile, 1.0)

    names = sorted(set().union(*(row.get("features") or {} for row in predictions)))
    for name in names:
        raw = [(row.get("features") or {}).get(name) for row in predictions]
        column = pd.Series(raw, dtype=object)
        is_number = pd.Series(
            [isinstance(v, int | float) and math.isfinite(v) for v in raw], dtype=bool
        )
        is_text = pd.Series([isinstance(v, str) for v in raw], dtype=bool)
        prefix = f"feature.{name}."
        expected[prefix + "missing_rate"] = (int((~(is_number | is_text)).sum()) / n, exact, 1.0)
        numbers = column[is_number].astype(float)
        if len(numbers):
            scale = max(1.0, float(numbers.abs().max()))
            expected[prefix + "mean"] = (float(numbers.mean()), moment, scale)
            std = float(numbers.std()) if len(numbers) > 1 else None
            expected[prefix + "std"] = (std, moment, scale)
            expected[prefix + "min"] = (float(numbers.min()), exact, 1.0)
            expected[prefix + "max"] = (float(numbers.max()), exact, 1.0)
            for label, value in zip(
                ("p05", "p50", "p95"), _quantiles(numbers, 0.05, 0.5, 0.95), strict=True
            ):
                expected[prefix + label] = (value, quantile, 1.0)
        _frequencies(prefix + "freq.", column[is_text], expected)
    return expected


def assert_no_nan(metrics: dict[str, float | None]) -> None:
    for name, value in metrics.items():
        assert value is None or (type(value) is float and math.isfinite(value)), (name, value)


def assert_matches_oracle(metrics: dict[str, float | None], expected: Expected) -> None:
    assert_no_nan(metrics)
    assert metrics.keys() == expected.keys(), set(metrics) ^ set(expected)
    for name, (want, kind, scale) in expected.items():
        got = metrics[name]
        if want is None or got is None:
            assert got is want, (name, got, want)
        elif kind == "quantile":
            assert abs(got - want) <= ALPHA * abs(want) * (1 + 1e-12), (name, got, want)
        elif kind == "moment":
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9 * scale), (name, got, want)
        else:
            assert got == want, (name, got, want)


def assert_same_metrics(got: dict[str, float | None], want: dict[str, float | None]) -> None:
    """Merged vs whole: everything equal but means/stds (float rounding of the sums)."""
    assert_no_nan(got)
    assert got.keys() == want.keys(), set(got) ^ set(want)
    for name, value in want.items():
        if value is not None and (name.endswith((".mean", ".std", "_mean_ms", "_mean"))):
            assert got[name] is not None
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), name
        else:
            assert got[name] == value, (name, got[name], value)


# --------------------------------------------------------------------------- streams


def seeded_events(seed: int, count: int) -> list[Event]:
    """Voice-search-like predictions and outcomes with every awkward case in them."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    for _ in range(count):
        if rng.random() < 0.25:
            predicted = [*LABELS, None][int(rng.integers(0, 5))]
            outcome: Row = {"predicted_label": predicted, "label_delay_ms": rng.exponential(2e3)}
            if rng.random() < 0.6:
                outcome["label"] = LABELS[int(rng.integers(0, 4))]
                if rng.random() < 0.7:  # else from_rows derives it from predicted_label
                    outcome["correct"] = outcome["label"] == predicted
            elif rng.random() < 0.1:
                outcome["correct"] = True  # a verdict without the label: still labelled
            for signal in SIGNALS:
                draw = rng.random()
                if draw < 0.6:
                    outcome[signal] = bool(draw < 0.3)
            events.append(("outcome", outcome))
            continue
        features: Row = {
            "loudness_db": float(rng.normal(-30.0, 5.0)) if rng.random() > 0.05 else None,
            "silence_ratio": 0.0 if rng.random() < 0.3 else float(rng.random()),
            "sample_rate": 16_000,  # an int, constant: zero variance
            "clipped": bool(rng.random() < 0.2),  # a bool counts as 0/1
            "all_missing": None,
            "locale": LOCALES[int(rng.integers(0, 4))] if rng.random() > 0.1 else None,
        }
        if rng.random() > 0.1:
            features["duration_s"] = float(rng.lognormal(1.0, 0.5))
        if rng.random() < 0.1:
            features["rare"] = float(rng.normal())
        if rng.random() < 0.5:
            features["device"] = ["android", "ios", "web"][int(rng.integers(0, 3))]
        features["mixed"] = [float(rng.normal(5.0, 1.0)), "unknown", None][int(rng.integers(0, 3))]
        prediction: Row = {"label": [*LABELS, None][int(rng.integers(0, 5))]}
        if rng.random() < 0.8:
            prediction["score"] = float(rng.random())
        row: Row = {
            "features": features,
            "prediction": prediction,
            "latency_ms": float(rng.lognormal(4.0, 0.6)),
        }
        if rng.random() < 0.7:
            row["host"] = {"cpu_percent": float(rng.uniform(5, 95))}
            if rng.random() < 0.8:
                row["host"]["memory_mb"] = float(rng.normal(900, 50))
        if rng.random() < 0.05:
            row["error"] = "TimeoutError"
        events.append(("prediction", row))
    return events


def feed(window: WindowMetrics, events: list[Event], batch_size: int = 200) -> None:
    """Feed events in order, as batches of consecutive events of one kind."""
    position = 0
    while position < len(events):
        kind = events[position][0]
        rows = []
        while position < len(events) and events[position][0] == kind and len(rows) < batch_size:
            rows.append(events[position][1])
            position += 1
        if kind == "prediction":
            window.add_predictions(PredictionBatch.from_rows(rows))
        else:
            window.add_outcomes(OutcomeBatch.from_rows(rows))


def split(events: list[Event]) -> tuple[list[Row], list[Row]]:
    return (
        [row for kind, row in events if kind == "prediction"],
        [row for kind, row in events if kind == "outcome"],
    )


# --------------------------------------------------------------------------- oracle tests


def test_every_prefix_matches_the_oracle_one_event_at_a_time() -> None:
    events = seeded_events(seed=1, count=150)
    window = WindowMetrics()
    for i in range(len(events)):
        feed(window, events[i : i + 1])
        assert_matches_oracle(window.metrics(WINDOW_S), oracle(*split(events[: i + 1])))


def test_every_batch_boundary_matches_the_oracle() -> None:
    events = seeded_events(seed=2, count=3_000)
    rng = np.random.default_rng(3)
    window, position = WindowMetrics(), 0
    while position < len(events):
        size = int(rng.integers(1, 400))
        feed(window, events[position : position + size], batch_size=size)
        position += size
        assert_matches_oracle(window.metrics(WINDOW_S), oracle(*split(events[:position])))


def test_numpy_columns_give_the_same_metrics_as_lists() -> None:
    predictions, _ = split(seeded_events(seed=4, count=400))
    batch = PredictionBatch.from_rows(predictions)
    arrays = PredictionBatch(
        latency_ms=np.asarray(batch.latency_ms, dtype=float),
        labels=batch.labels,
        scores=np.asarray(batch.scores, dtype=float),
        errors=np.asarray(batch.errors),
        cpu_percent=np.asarray(batch.cpu_percent, dtype=float),
        memory_mb=np.asarray(batch.memory_mb, dtype=float),
        features={"loudness_db": np.asarray(batch.features["loudness_db"], dtype=float)},
    )
    from_lists, from_arrays = WindowMetrics(), WindowMetrics()
    from_lists.add_predictions(batch)
    from_arrays.add_predictions(arrays)
    expected = from_lists.metrics(WINDOW_S)
    got = from_arrays.metrics(WINDOW_S)
    assert {k: v for k, v in expected.items() if not k.startswith("feature.")} == {
        k: v for k, v in got.items() if not k.startswith("feature.")
    }
    for name in ("mean", "std", "min", "max", "p50", "missing_rate"):
        assert got[f"feature.loudness_db.{name}"] == expected[f"feature.loudness_db.{name}"]


matrix_value = st.one_of(
    st.floats(1e-3, 1e6), st.floats(-1e6, -1e-3), st.just(0.0), st.just(math.nan)
)
column_kind = st.sampled_from(
    [st.floats(1e-3, 1e6), st.floats(1e-3, 10.0), st.floats(1e3, 1e150), matrix_value]
)


@given(st.lists(column_kind, min_size=3, max_size=3), st.integers(1, 30), st.data())
@settings(max_examples=200, deadline=None)
def test_features_given_as_one_matrix_give_the_metrics_of_their_columns(
    kinds: list[st.SearchStrategy[float]], size: int, data: st.DataObject
) -> None:
    """The matrix path (moments of all columns at once, one bincount for the sketches'
    buckets) against each feature's column on its own, batch after batch."""
    columns = [data.draw(st.lists(kind, min_size=size, max_size=size)) for kind in kinds]
    matrix = np.array(columns, dtype=np.float64).T
    batches = data.draw(st.integers(1, 10))
    names = ("a", "b", "c")
    by_columns, by_matrix = WindowMetrics(), WindowMetrics()
    for part in np.array_split(matrix, batches):
        if not len(part):
            continue
        empty = np.zeros(len(part))
        common = {
            "latency_ms": empty, "labels": [None] * len(part), "scores": empty,
            "errors": np.zeros(len(part), dtype=bool), "cpu_percent": empty, "memory_mb": empty,
        }  # fmt: skip
        by_columns.add_predictions(
            PredictionBatch(**common, features={n: part[:, j] for j, n in enumerate(names)})
        )
        by_matrix.add_predictions(PredictionBatch(**common, features={}, numeric=(names, part)))
    expected, got = by_columns.metrics(WINDOW_S), by_matrix.metrics(WINDOW_S)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if value is None or isinstance(value, str | dict | list):
            assert got[key] == value, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-9, nan_ok=True), key


def test_numeric_strings_are_categories_and_bad_values_are_missing() -> None:
    window = WindowMetrics()
    column = ["42", 42, float("nan"), float("inf"), None, {"nested": 1}]
    window.add_predictions(
        PredictionBatch(
            latency_ms=[1.0] * 6,
            labels=[None] * 6,
            scores=[None] * 6,
            errors=[False] * 6,
            cpu_percent=[None] * 6,
            memory_mb=[None] * 6,
            features={"code": column},
        )
    )
    metrics = window.metrics(WINDOW_S)
    assert metrics["feature.code.freq.42"] == 1.0 and metrics["feature.code.mean"] == 42.0
    assert metrics["feature.code.missing_rate"] == 4 / 6
    assert metrics["null_rate"] == 1.0 and "label.freq.__other__" not in metrics


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per event"):
        PredictionBatch([1.0], [None], [None], [False], [None], [None], {"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="one value per event"):
        OutcomeBatch([True], [None], [None], [None, None], [1.0], [True])


# --------------------------------------------------------------------------- hypothesis

magnitude = st.one_of(st.just(0.0), st.floats(1e-3, 1e6), st.floats(-1e6, -1e-3))
feature_value = st.one_of(
    st.none(), magnitude, st.integers(-1000, 1000), st.booleans(), st.sampled_from(["a", "b"])
)
positive = st.one_of(st.just(0.0), st.floats(1e-2, 1e5))
prediction_rows = st.fixed_dictionaries(
    {
        "features": st.dictionaries(st.sampled_from(["f1", "f2", "f3"]), feature_value),
        "prediction": st.fixed_dictionaries(
            {"label": st.one_of(st.none(), st.sampled_from(LABELS))},
            optional={"score": st.one_of(st.just(0.0), st.floats(1e-3, 1.0))},
        ),
        "latency_ms": positive,
    },
    optional={
        "host": st.fixed_dictionaries(
            {}, optional={"cpu_percent": st.floats(0, 400), "memory_mb": st.floats(0, 1e5)}
        ),
        "error": st.just("Boom"),
    },
)
maybe_bool = st.one_of(st.none(), st.booleans())
outcome_rows = st.fixed_dictionaries(
    {"label_delay_ms": positive},
    optional={
        "label": st.sampled_from(LABELS),
        "predicted_label": st.one_of(st.none(), st.sampled_from(LABELS)),
        "correct": st.booleans(),
        "redo_search": maybe_bool,
        "switched_to_typing": maybe_bool,
        "clicked": maybe_bool,
    },
)
events_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("prediction"), prediction_rows),
        st.tuples(st.just("outcome"), outcome_rows),
    ),
    max_size=40,
)


@given(events_strategy, st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_any_stream_matches_the_oracle_at_every_batch(events: list[Event], batch: int) -> None:
    window = WindowMetrics()
    for start in range(0, len(events), batch):
        feed(window, events[start : start + batch])
        assert_matches_oracle(window.metrics(WINDOW_S), oracle(*split(events[: start + batch])))
    assert_matches_oracle(window.metrics(WINDOW_S), oracle(*split(events)))


@given(events_strategy, st.data())
@settings(max_examples=60, deadline=None)
def test_merging_four_partitions_equals_the_whole(events: list[Event], data: st.DataObject) -> None:
    owners = data.draw(st.lists(st.integers(0, 3), min_size=len(events), max_size=len(events)))
    batch = data.draw(st.integers(1, 6))
    partials = [WindowMetrics() for _ in range(4)]
    for part, partial in enumerate(partials):
        feed(
            partial,
            [event for event, owner in zip(events, owners, strict=True) if owner == part],
            batch,
        )
    whole = WindowMetrics()
    feed(whole, events, batch)
    in_a_row = WindowMetrics()
    for partial in partials:
        in_a_row.merge(partial)
    pairs = [WindowMetrics(), WindowMetrics()]  # a different merge tree: (0+1) + (2+3)
    for part, partial in enumerate(partials):
        pairs[part // 2].merge(partial)
    pairs[0].merge(pairs[1])
    expected = whole.metrics(WINDOW_S)
    assert_same_metrics(in_a_row.metrics(WINDOW_S), expected)
    assert_same_metrics(pairs[0].metrics(WINDOW_S), expected)


# --------------------------------------------------------------------------- state


def test_round_trip_gives_identical_metrics_and_still_merges() -> None:
    events = seeded_events(seed=5, count=1_500)
    first, second = WindowMetrics(), WindowMetrics()
    feed(first, events[:700])
    feed(second, events[700:])
    stored = json.dumps(first.to_state())
    restored = WindowMetrics.from_state(json.loads(stored))
    assert restored.metrics(WINDOW_S) == first.metrics(WINDOW_S)
    assert restored.to_state() == first.to_state()
    restored.merge(WindowMetrics.from_state(json.loads(json.dumps(second.to_state()))))
    first.merge(second)
    assert restored.metrics(WINDOW_S) == first.metrics(WINDOW_S)
    whole = WindowMetrics()
    feed(whole, events)
    assert_same_metrics(restored.metrics(WINDOW_S), whole.metrics(WINDOW_S))


def test_state_after_every_change_is_the_state_of_a_window_built_afresh() -> None:
    # features keep their states between changes: a stale one would show up here
    events = seeded_events(seed=8, count=600)
    window, other = WindowMetrics(), WindowMetrics()
    feed(other, events[500:])
    for start in range(0, 500, 100):
        before = json.dumps(window.to_state())
        feed(window, events[start : start + 100])
        fresh = WindowMetrics()  # the same batches, its state never asked for before
        for first in range(0, start + 100, 100):
            feed(fresh, events[first : first + 100])
        assert json.dumps(window.to_state()) == json.dumps(fresh.to_state()) != before
    window.merge(other)
    fresh = WindowMetrics.from_state(json.loads(json.dumps(fresh.to_state())))
    fresh.merge(other)
    assert window.to_state() == fresh.to_state()
    again = WindowMetrics.from_state(json.loads(json.dumps(window.to_state())))
    feed(again, events[:10])
    feed(window, events[:10])
    assert again.to_state() == window.to_state()


def test_merge_leaves_the_other_untouched_and_shares_nothing() -> None:
    events = seeded_events(seed=6, count=300)
    source, target = WindowMetrics(), WindowMetrics()
    feed(source, events)
    before = json.dumps(source.to_state())
    target.merge(source)
    feed(target, events)  # would change source too if they shared a summary
    assert json.dumps(source.to_state()) == before


def test_unknown_state_version_and_mismatched_parameters_are_refused() -> None:
    state = WindowMetrics().to_state()
    with pytest.raises(ValueError, match="state version"):
        WindowMetrics.from_state({**state, "version": 99})
    with pytest.raises(ValueError, match="same parameters"):
        WindowMetrics().merge(WindowMetrics(max_categories=5))
    with pytest.raises(ValueError, match="window_seconds"):
        WindowMetrics().metrics(0)


# --------------------------------------------------------------------------- never NaN


def _batch(size: int, features: dict[str, list[Any]], latency: float = 5.0) -> PredictionBatch:
    return PredictionBatch(
        latency_ms=[latency] * size,
        labels=["a"] * size,
        scores=[None] * size,
        errors=[False] * size,
        cpu_percent=[None] * size,
        memory_mb=[None] * size,
        features=features,
    )


def test_empty_window_reports_zero_counts_and_none() -> None:
    metrics = WindowMetrics().metrics(WINDOW_S)
    assert_no_nan(metrics)
    assert metrics["count"] == 0.0 and metrics["qps"] == 0.0 and metrics["outcomes"] == 0.0
    assert all(
        value is None for name, value in metrics.items() if name not in ("count", "qps", "outcomes")
    )
    assert not any(name.startswith(("feature.", "label.freq.")) for name in metrics)


def test_outcomes_without_predictions() -> None:
    window = WindowMetrics()
    window.add_outcomes(OutcomeBatch.from_rows([{"label": "a", "correct": True}]))
    metrics = window.metrics(WINDOW_S)
    assert_no_nan(metrics)
    assert metrics["accuracy"] == 1.0 and metrics["label_coverage"] is None
    assert metrics["label_delay_p50_ms"] is None and metrics["redo_rate"] is None


def test_all_missing_feature_has_only_its_missing_rate() -> None:
    window = WindowMetrics()
    window.add_predictions(_batch(3, {"x": [None, None, None]}))
    metrics = window.metrics(WINDOW_S)
    assert_no_nan(metrics)
    assert [name for name in metrics if name.startswith("feature.")] == ["feature.x.missing_rate"]
    assert metrics["feature.x.missing_rate"] == 1.0


# numpy warns when the sum of the two 1.7e308 overflows; that overflow is the point here
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_zero_variance_single_value_and_overflow_never_give_nan() -> None:
    window = WindowMetrics()
    window.add_predictions(_batch(4, {"flat": [3.0] * 4, "one": [None, None, None, 7.0]}))
    window.add_predictions(_batch(2, {"huge": [1.7e308, 1.7e308]}, latency=1e308))
    metrics = window.metrics(WINDOW_S)
    assert_no_nan(metrics)
    assert metrics["feature.flat.std"] == 0.0 and metrics["feature.one.std"] is None
    assert metrics["feature.one.mean"] == 7.0
    assert metrics["feature.huge.mean"] is None  # the sum overflows: not measurable
    assert metrics["feature.huge.max"] == 1.7e308 and metrics["feature.huge.p50"] == 1.7e308
    assert metrics["latency_mean_ms"] is None and metrics["latency_p99_ms"] == 1e308


# --------------------------------------------------------------------------- conformance


def _window() -> WindowMetrics:
    window = WindowMetrics()
    feed(window, seeded_events(seed=7, count=200))
    return window


def _filled(cls: type, values: list[Any]) -> Callable[[], Any]:
    def make() -> Any:
        stat = cls()
        stat.add_many(values)
        return stat

    return make


STATS: dict[str, tuple[Callable[[], Any], Callable[[], Any], Callable[[Any], bool]]] = {
    # name: (empty, filled, "the empty one reports sensibly")
    "Moments": (
        Moments,
        _filled(Moments, [1.0, -2.0, 4.5]),
        lambda m: (m.count, m.mean, m.std, m.min, m.max) == (0, None, None, None, None),
    ),
    "QuantileSketch": (
        QuantileSketch,
        _filled(QuantileSketch, [1.0, -2.0, 0.0, 4.5]),
        lambda s: (s.count, s.quantile(0.5), s.min, s.max) == (0, None, None, None),
    ),
    "Frequencies": (
        Frequencies,
        _filled(Frequencies, ["a", "b", "a"]),
        lambda f: (f.count, f.top(), f.share("a")) == (0, [], None),
    ),
    "WindowMetrics": (
        WindowMetrics,
        _window,
        lambda w: w.count == 0 and w.metrics(WINDOW_S)["latency_p50_ms"] is None,
    ),
}


@pytest.mark.parametrize("name", STATS)
def test_every_stat_pickles_round_trips_and_merges_after_it(name: str) -> None:
    empty, filled, _ = STATS[name]
    for stat in (empty(), filled()):
        for copy in (
            pickle.loads(pickle.dumps(stat)),
            type(stat).from_state(json.loads(json.dumps(stat.to_state()))),
        ):
            assert type(copy) is type(stat)
            assert copy.to_state() == stat.to_state()
            copy.merge(filled())
            stat_again = type(stat).from_state(stat.to_state())
            stat_again.merge(filled())
            assert copy.to_state() == stat_again.to_state()


@pytest.mark.parametrize("name", STATS)
def test_every_empty_stat_reports_sensibly_and_merges_into_nothing(name: str) -> None:
    empty, filled, reports_sensibly = STATS[name]
    assert reports_sensibly(empty())
    merged = empty()
    merged.merge(empty())
    assert reports_sensibly(merged)
    full = filled()
    before = full.to_state()
    full.merge(empty())
    assert full.to_state() == before
