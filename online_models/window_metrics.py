"""The metrics of one model, version and segment over one event-time window.

:class:`WindowMetrics` aggregates prediction events and outcome events
(predictions joined with user feedback) given as column batches
(:class:`PredictionBatch`, :class:`OutcomeBatch`). Partials of disjoint event
sets — one per Kafka partition — :meth:`~WindowMetrics.merge` into the
aggregate of their union, and every aggregate turns into a plain JSON-able dict
and back exactly (:meth:`~WindowMetrics.to_state`,
:meth:`~WindowMetrics.from_state`), so partials can live in changelog-backed
tables.

Metrics
-------
:meth:`WindowMetrics.metrics` returns a flat ``dict`` from the names below to a
``float``, or ``None`` when the metric is not measurable in the window (nothing
to measure it on, or a value that overflowed the float range). Never NaN.
Quantiles come from a :class:`~online_models.stats.QuantileSketch`: the value
named ``p95`` is within a relative ``relative_accuracy`` (default 1 %) of
``numpy.quantile(values, 0.95, method="lower")``; means and standard deviations
are exact up to float rounding; counts and rates are exact.

Software
    ``count``
        Predictions in the window (events).
    ``qps``
        ``count / window_seconds`` (predictions per second).
    ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``, ``latency_mean_ms``
        Quantiles and mean of ``latency_ms`` (milliseconds).
    ``error_rate``
        Share of predictions that carried an ``error`` (0–1).
    ``cpu_percent_mean``, ``memory_mb_mean``
        Mean host CPU (percent of one core) and memory (MB) over the
        predictions that carried them; ``None`` when none did.

Output
    ``null_rate``
        Share of predictions whose label is ``None`` (a null return; 0–1).
    ``score.mean``, ``score.p50``, ``score.p95``
        Over predictions that carried a score (the model's score units).
    ``label.freq.<label>``, ``label.freq.__other__``
        Share of the non-null labels that were ``<label>`` (0–1), for the
        ``max_categories`` most frequent labels; ``__other__`` is the share of
        the rest (0.0 when there is no rest). Present only when the window
        holds at least one non-null label. See
        :class:`~online_models.stats.Frequencies` for which labels are named
        once there are more than ``max_categories``.

Input, for each feature ``f``
    ``feature.f.missing_rate``
        Share of predictions where ``f`` was null, absent, or a non-finite
        number (0–1).
    ``feature.f.mean``, ``.std``, ``.min``, ``.max``, ``.p05``, ``.p50``, ``.p95``
        Over the numeric values of ``f`` (the feature's units; ``std`` is the
        sample one, ``ddof=1``, ``None`` below two values).
    ``feature.f.freq.<category>``, ``feature.f.freq.__other__``
        Share of the string values of ``f`` that were ``<category>``, for the
        ``max_categories`` most frequent, and of the rest.

    **A feature's kind is decided value by value**: numbers (``int``,
    ``float``, ``bool`` as 0/1) feed its numeric metrics, strings its
    frequencies, so a feature that carries both in a window gets both sets of
    metrics, each over its own values (and ``missing_rate`` counts neither).
    A numeric string such as ``"42"`` is a category, never a number. A feature
    seen only as null or absent in a window gets ``missing_rate`` alone
    (1.0); one never seen in the window gets no metrics at all.

Feedback (from outcomes)
    ``outcomes``
        Outcomes in the window (events).
    ``redo_rate``, ``switch_to_typing_rate``, ``click_rate``
        Share of outcomes where ``redo_search``, ``switched_to_typing``,
        ``clicked`` was ``True``, among outcomes where it was not ``None``
        (0–1); ``None`` when no outcome carried it.
    ``accuracy``
        Share of labelled outcomes that were correct (0–1); ``None`` when none
        was labelled.
    ``label_coverage``
        Labelled outcomes / predictions in the window; ``None`` without
        predictions. Not clamped: outcomes land in the window of their own
        event time, so a window can hold labels for predictions of an earlier
        one and exceed 1.
    ``label_delay_p50_ms``, ``label_delay_p95_ms``
        Quantiles of ``label_delay_ms`` over all outcomes (milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from online_models.stats import OTHER, Frequencies, Moments, QuantileSketch

__all__ = ["OutcomeBatch", "PredictionBatch", "WindowMetrics"]

STATE_VERSION = 1

_NONE = type(None)
# types whose values are numbers for a feature; None rides along (it becomes NaN, then missing)
_NUMBER_TYPES = frozenset(
    {float, int, bool, _NONE, np.float64, np.float32, np.int64, np.int32, np.bool_}
)
_TEXT_TYPES = frozenset({str, _NONE})

# outcome column -> metric name of its rate
_SIGNAL_RATES = {
    "redo_search": "redo_rate",
    "switched_to_typing": "switch_to_typing_rate",
    "clicked": "click_rate",
}


# --------------------------------------------------------------------------- batches


@dataclass
class PredictionBatch:
    """Prediction events as columns: element ``i`` of every list is event ``i``.

    Numeric columns hold numbers or ``None`` (missing); numpy arrays work too.
    ``features`` maps a feature name to its column; an event that lacked the
    feature has ``None`` there. Build one from event ``data`` dicts with
    :meth:`from_rows`.

    Examples
    --------
    >>> batch = PredictionBatch.from_rows([
    ...     {"features": {"duration_s": 2.5, "locale": "en"},
    ...      "prediction": {"label": "weather", "score": 0.9}, "latency_ms": 41.0,
    ...      "host": {"cpu_percent": 35.0, "memory_mb": 512.0}},
    ...     {"features": {"duration_s": None},
    ...      "prediction": {"label": None}, "latency_ms": 97.0, "error": "Timeout"},
    ... ])
    >>> len(batch), batch.labels, batch.errors
    (2, ['weather', None], [False, True])
    >>> batch.features
    {'duration_s': [2.5, None], 'locale': ['en', None]}
    """

    latency_ms: Sequence[float | None]
    labels: Sequence[str | None]
    scores: Sequence[float | None]
    errors: Sequence[bool]
    cpu_percent: Sequence[float | None]
    memory_mb: Sequence[float | None]
    features: Mapping[str, Sequence[float | str | None]]
    # more features as one matrix: (names, (events, names) finite or NaN float64 values)
    numeric: tuple[tuple[str, ...], np.ndarray] | None = None

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.latency_ms)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> PredictionBatch:
        """Columns from prediction ``data`` dicts (``PredictionData`` fields as plain dicts).

        Reads ``features``, ``prediction.label``, ``prediction.score``,
        ``latency_ms``, ``host.cpu_percent``, ``host.memory_mb`` and ``error``
        (an error is any non-null ``error``); other keys are ignored.
        """
        rows = list(rows)
        predictions = [row.get("prediction") or {} for row in rows]
        hosts = [row.get("host") or {} for row in rows]
        feature_rows = [row.get("features") or {} for row in rows]
        # a set union runs in C; sorting makes the column order independent of the rows
        names = sorted(set().union(*feature_rows))
        return cls(
            latency_ms=[row.get("latency_ms") for row in rows],
            labels=[prediction.get("label") for prediction in predictions],
            scores=[prediction.get("score") for prediction in predictions],
            errors=[row.get("error") is not None for row in rows],
            cpu_percent=[host.get("cpu_percent") for host in hosts],
            memory_mb=[host.get("memory_mb") for host in hosts],
            features={name: [values.get(name) for values in feature_rows] for name in names},
        )


@dataclass
class OutcomeBatch:
    """Outcome events (predictions joined with feedback) as columns.

    ``correct``, ``redo_search``, ``switched_to_typing`` and ``clicked`` are
    ``True``, ``False`` or ``None`` (not known); ``labelled`` says whether the
    outcome carried a ground-truth label. Build one from outcome ``data`` dicts
    with :meth:`from_rows`.

    Examples
    --------
    >>> batch = OutcomeBatch.from_rows([
    ...     {"predicted_label": "weather", "label": "weather", "label_delay_ms": 1200.0},
    ...     {"redo_search": True, "clicked": False, "label_delay_ms": 300.0},
    ... ])
    >>> batch.labelled, batch.correct, batch.redo_search
    ([True, False], [True, None], [None, True])
    """

    correct: Sequence[bool | None]
    redo_search: Sequence[bool | None]
    switched_to_typing: Sequence[bool | None]
    clicked: Sequence[bool | None]
    label_delay_ms: Sequence[float | None]
    labelled: Sequence[bool]

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.labelled)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> OutcomeBatch:
        """Columns from outcome ``data`` dicts (``OutcomeData`` fields as plain dicts).

        An outcome is labelled when it carries a ``label`` or a ``correct``
        verdict. When ``correct`` is absent but ``label`` and
        ``predicted_label`` are there, it is ``predicted_label == label``.
        """
        rows = list(rows)
        correct: list[bool | None] = []
        labelled: list[bool] = []
        for row in rows:
            label, verdict = row.get("label"), row.get("correct")
            if verdict is None and label is not None and "predicted_label" in row:
                verdict = row["predicted_label"] == label
            correct.append(verdict)
            labelled.append(label is not None or verdict is not None)
        return cls(
            correct=correct,
            redo_search=[row.get("redo_search") for row in rows],
            switched_to_typing=[row.get("switched_to_typing") for row in rows],
            clicked=[row.get("clicked") for row in rows],
            label_delay_ms=[row.get("label_delay_ms") for row in rows],
            labelled=labelled,
        )


def _check_lengths(batch: PredictionBatch | OutcomeBatch) -> None:
    apart = ("features", "numeric")
    columns = {f.name: getattr(batch, f.name) for f in fields(batch) if f.name not in apart}
    for name, column in getattr(batch, "features", {}).items():
        columns[f"features[{name!r}]"] = column
    numeric = getattr(batch, "numeric", None)
    if numeric is not None:
        columns["numeric"] = numeric[1]
        if numeric[1].shape[1:] != (len(numeric[0]),):
            raise ValueError(
                f"numeric: {len(numeric[0])} names for a matrix of shape {numeric[1].shape}"
            )
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"every column of a {type(batch).__name__} must have one value per event; "
            f"got lengths {lengths}"
        )


# --------------------------------------------------------------------------- summaries


class _Numbers:
    """Moments and quantiles of one numeric signal."""

    __slots__ = ("moments", "sketch")

    def __init__(self, relative_accuracy: float) -> None:
        self.moments = Moments()
        self.sketch = QuantileSketch(relative_accuracy)

    def add_many(self, values: np.ndarray) -> None:
        if values.size:
            self.moments.add_many(values)
            self.sketch.add_many(values)

    def merge(self, other: _Numbers) -> None:
        self.moments.merge(other.moments)
        self.sketch.merge(other.sketch)

    def to_state(self) -> dict[str, Any]:
        return {"moments": self.moments.to_state(), "sketch": self.sketch.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Numbers:
        new = cls.__new__(cls)
        new.moments = Moments.from_state(state["moments"])
        new.sketch = QuantileSketch.from_state(state["sketch"])
        return new


class _Feature:
    """One feature: its numeric values and its string values, each created when first seen.

    Its state is kept until the feature changes: a window is written again for
    every late outcome, and its features' states (most of its size) stay the same.
    """

    __slots__ = ("_state", "categories", "numbers")

    def __init__(self) -> None:
        self.numbers: _Numbers | None = None
        self.categories: Frequencies | None = None
        self._state: dict[str, Any] | None = None

    @property
    def present(self) -> int:
        return (self.numbers.moments.count if self.numbers else 0) + (
            self.categories.count if self.categories else 0
        )

    def add_column(
        self, column: Sequence[Any], relative_accuracy: float, max_categories: int
    ) -> None:
        self._state = None
        numbers: Sequence[Any] = ()
        strings: Sequence[Any] = ()
        if isinstance(column, np.ndarray) and column.dtype.kind in "biuf":
            numbers = column
        else:
            # one pass over the types picks the vectorised path for the usual
            # single-kind column; np.asarray alone would turn "42" into 42.0
            kinds = set(map(type, column))
            if kinds <= _NUMBER_TYPES:
                numbers = column
            elif kinds <= _TEXT_TYPES:
                strings = [v for v in column if v is not None] if _NONE in kinds else column
            else:
                numbers = [v for v in column if type(v) in _NUMBER_TYPES]
                strings = [v for v in column if isinstance(v, str)]
        values = _finite(numbers)
        if values.size:
            if self.numbers is None:
                self.numbers = _Numbers(relative_accuracy)
            self.numbers.add_many(values)
        if len(strings):  # a list, or an object array of strings
            if self.categories is None:
                self.categories = Frequencies(max_categories)
            self.categories.add_many(strings)

    def merge(self, other: _Feature, relative_accuracy: float, max_categories: int) -> None:
        self._state = None
        if other.numbers is not None:
            if self.numbers is None:
                self.numbers = _Numbers(relative_accuracy)
            self.numbers.merge(other.numbers)
        if other.categories is not None:
            if self.categories is None:
                self.categories = Frequencies(max_categories)
            self.categories.merge(other.categories)

    def to_state(self) -> dict[str, Any]:
        """The feature's state (the same object until the feature changes: do not alter it)."""
        if self._state is None:
            self._state = {
                "numbers": self.numbers.to_state() if self.numbers else None,
                "categories": self.categories.to_state() if self.categories else None,
            }
        return self._state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> _Feature:
        new = cls()
        if state["numbers"] is not None:
            new.numbers = _Numbers.from_state(state["numbers"])
        if state["categories"] is not None:
            new.categories = Frequencies.from_state(state["categories"])
        return new


def _finite(column: Sequence[Any]) -> np.ndarray:
    """The finite numbers of a column as float64 (``None`` becomes NaN, then goes)."""
    values = np.asarray(column, dtype=np.float64)
    if not values.size:
        return values
    # finite extremes prove every value finite (NaN propagates through both) at half
    # the cost of isfinite().all(); only a column with missing values pays for the mask
    if math.isfinite(np.minimum.reduce(values)) and math.isfinite(np.maximum.reduce(values)):
        return values
    return values[np.isfinite(values)]


def _count_true(column: Sequence[Any]) -> int:
    if isinstance(column, np.ndarray):
        return int(np.count_nonzero(column == True))  # noqa: E712 (elementwise, not identity)
    return sum(1 for value in column if value is True or value is np.True_)


def _count_known(column: Sequence[Any]) -> int:
    if isinstance(column, np.ndarray) and column.dtype.kind == "b":
        return column.size
    return sum(1 for value in column if value is not None)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# --------------------------------------------------------------------------- aggregate


class WindowMetrics:
    """Software, input, output and feedback metrics of one window (or a merge of windows).

    One instance aggregates one (model, model_version, segment) over one
    event-time window of one partition; :meth:`merge` folds in the partials of
    other partitions (or of adjacent panes, see
    :class:`~online_models.window.PanedRollingWindow`). The metric names are
    listed in the module docstring.

    Parameters
    ----------
    max_categories
        Most categories named per categorical feature and for labels; the
        rest are counted in ``__other__``.
    relative_accuracy
        Relative error bound of every quantile.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> rows = [
    ...     {"features": {"duration_s": rng.uniform(1, 5), "locale": rng.choice(["en", "fr"])},
    ...      "prediction": {"label": rng.choice(["weather", "music", None]),
    ...                     "score": rng.random()},
    ...      "latency_ms": rng.lognormvariate(4, 0.5)}
    ...     for _ in range(1_000)
    ... ]
    >>> partitions = [WindowMetrics(), WindowMetrics()]
    >>> for i in range(0, 1_000, 200):  # batches of 200, spread over two partitions
    ...     partitions[i // 200 % 2].add_predictions(PredictionBatch.from_rows(rows[i:i + 200]))
    >>> partitions[0].add_outcomes(OutcomeBatch.from_rows(
    ...     [{"label": "weather", "correct": True, "redo_search": False, "label_delay_ms": 900.0},
    ...      {"label": "music", "correct": False, "redo_search": True, "label_delay_ms": 4000.0}]))
    >>> window = WindowMetrics()
    >>> for partial in partitions:
    ...     window.merge(partial)
    >>> metrics = window.metrics(window_seconds=10)
    >>> metrics["count"], metrics["qps"], metrics["accuracy"], metrics["redo_rate"]
    (1000.0, 100.0, 0.5, 0.5)
    >>> round(metrics["latency_p50_ms"], 1), round(metrics["null_rate"], 3)
    (53.0, 0.334)
    >>> round(metrics["feature.duration_s.mean"], 3), metrics["feature.locale.freq.en"]
    (2.969, 0.5)
    """

    def __init__(self, *, max_categories: int = 20, relative_accuracy: float = 0.01) -> None:
        self._max_categories = max_categories
        self._relative_accuracy = relative_accuracy
        # predictions
        self._predictions = 0
        self._errors = 0
        self._null_labels = 0
        self._latency = _Numbers(relative_accuracy)
        self._score = _Numbers(relative_accuracy)
        self._cpu_percent = Moments()
        self._memory_mb = Moments()
        self._labels = Frequencies(max_categories)
        self._features: dict[str, _Feature] = {}
        # outcomes
        self._outcomes = 0
        self._labelled = 0
        self._correct = 0
        self._signal_true = dict.fromkeys(_SIGNAL_RATES, 0)
        self._signal_known = dict.fromkeys(_SIGNAL_RATES, 0)
        self._label_delay = QuantileSketch(relative_accuracy)

    @property
    def count(self) -> int:
        """Predictions aggregated."""
        return self._predictions

    @property
    def outcome_count(self) -> int:
        """Outcomes aggregated."""
        return self._outcomes

    # ------------------------------------------------------------------ updates

    def add_predictions(self, batch: PredictionBatch) -> None:
        """Aggregate a batch of predictions (vectorised per column)."""
        size = len(batch)
        if size == 0:
            return
        self._predictions += size
        self._errors += _count_true(batch.errors)
        self._latency.add_many(_finite(batch.latency_ms))
        self._score.add_many(_finite(batch.scores))
        self._cpu_percent.add_many(_finite(batch.cpu_percent))
        self._memory_mb.add_many(_finite(batch.memory_mb))
        labels = [label for label in batch.labels if label is not None]
        self._null_labels += size - len(labels)
        self._labels.add_many(labels)
        for name, column in batch.features.items():
            self._feature(name).add_column(column, self._relative_accuracy, self._max_categories)
        if batch.numeric is not None:
            self._add_numeric(*batch.numeric)

    def _feature(self, name: str) -> _Feature:
        feature = self._features.get(name)
        if feature is None:
            feature = self._features[name] = _Feature()
        return feature

    def _add_numeric(self, names: tuple[str, ...], matrix: np.ndarray) -> None:
        """:meth:`_Feature.add_column` of each column of ``matrix``, with the moments and
        the sketches' buckets computed for all columns at once (a column with a missing
        value, or values of both signs, goes on its own)."""
        accuracy, top = self._relative_accuracy, self._max_categories
        features = [self._feature(name) for name in names]
        size = matrix.shape[0]
        if not size:
            return
        lows, highs = np.minimum.reduce(matrix, axis=0), np.maximum.reduce(matrix, axis=0)
        whole = np.isfinite(lows) & np.isfinite(highs)  # NaN and infinity reach both
        means = np.add.reduce(matrix, axis=0) / size
        deviations = matrix - means
        squares = np.einsum("ij,ij->j", deviations, deviations)
        positive = whole & (lows > 0)
        indices = None
        if positive.any():
            indices = QuantileSketch(accuracy).bucket_indices(matrix[:, positive])
        sketches = []
        for j, feature in enumerate(features):
            if not whole[j]:
                feature.add_column(matrix[:, j], accuracy, top)
                continue
            feature._state = None
            if feature.numbers is None:
                feature.numbers = _Numbers(accuracy)
            numbers = feature.numbers
            numbers.moments.add_summary(
                size, float(means[j]), float(squares[j]), float(lows[j]), float(highs[j])
            )
            if positive[j]:
                sketches.append(numbers.sketch)
            else:
                numbers.sketch.add_many(matrix[:, j])
        if indices is not None:
            QuantileSketch.add_positive_columns(sketches, indices, lows[positive], highs[positive])

    def add_outcomes(self, batch: OutcomeBatch) -> None:
        """Aggregate a batch of outcomes."""
        size = len(batch)
        if size == 0:
            return
        self._outcomes += size
        labelled = [bool(flag) for flag in batch.labelled]
        self._labelled += sum(labelled)
        self._correct += sum(
            1
            for flag, verdict in zip(labelled, batch.correct, strict=True)
            if flag and verdict is True
        )
        for column in _SIGNAL_RATES:
            values = getattr(batch, column)
            self._signal_true[column] += _count_true(values)
            self._signal_known[column] += _count_known(values)
        self._label_delay.add_many(_finite(batch.label_delay_ms))

    def merge(self, other: WindowMetrics) -> None:
        """Fold in the aggregate of another, disjoint set of events (same parameters).

        ``other`` is left unchanged and shares nothing with ``self`` afterwards.
        """
        if (other._max_categories, other._relative_accuracy) != (
            self._max_categories,
            self._relative_accuracy,
        ):
            raise ValueError(
                "can only merge window metrics with the same parameters: "
                f"max_categories {self._max_categories} vs {other._max_categories}, "
                f"relative_accuracy {self._relative_accuracy} vs {other._relative_accuracy}"
            )
        self._predictions += other._predictions
        self._errors += other._errors
        self._null_labels += other._null_labels
        self._latency.merge(other._latency)
        self._score.merge(other._score)
        self._cpu_percent.merge(other._cpu_percent)
        self._memory_mb.merge(other._memory_mb)
        self._labels.merge(other._labels)
        for name, theirs in other._features.items():
            mine = self._features.get(name)
            if mine is None:
                mine = self._features[name] = _Feature()
            mine.merge(theirs, self._relative_accuracy, self._max_categories)
        self._outcomes += other._outcomes
        self._labelled += other._labelled
        self._correct += other._correct
        for column in _SIGNAL_RATES:
            self._signal_true[column] += other._signal_true[column]
            self._signal_known[column] += other._signal_known[column]
        self._label_delay.merge(other._label_delay)

    # ------------------------------------------------------------------ results

    def metrics(self, window_seconds: float) -> dict[str, float | None]:
        """Every metric of the window (names and units in the module docstring).

        ``window_seconds`` is the length of the window the events came from
        (the denominator of ``qps``).
        """
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        count = self._predictions
        latency, score = self._latency, self._score
        values: dict[str, float | None] = {
            "count": float(count),
            "qps": count / window_seconds,
            "latency_p50_ms": latency.sketch.quantile(0.50),
            "latency_p95_ms": latency.sketch.quantile(0.95),
            "latency_p99_ms": latency.sketch.quantile(0.99),
            "latency_mean_ms": latency.moments.mean,
            "error_rate": _ratio(self._errors, count),
            "cpu_percent_mean": self._cpu_percent.mean,
            "memory_mb_mean": self._memory_mb.mean,
            "null_rate": _ratio(self._null_labels, count),
            "score.mean": score.moments.mean,
            "score.p50": score.sketch.quantile(0.50),
            "score.p95": score.sketch.quantile(0.95),
        }
        values.update(_shares("label.freq.", self._labels))
        values["outcomes"] = float(self._outcomes)
        for column, name in _SIGNAL_RATES.items():
            values[name] = _ratio(self._signal_true[column], self._signal_known[column])
        values["accuracy"] = _ratio(self._correct, self._labelled)
        values["label_coverage"] = _ratio(self._labelled, count)
        values["label_delay_p50_ms"] = self._label_delay.quantile(0.50)
        values["label_delay_p95_ms"] = self._label_delay.quantile(0.95)
        for name in sorted(self._features):
            feature = self._features[name]
            prefix = f"feature.{name}."
            values[prefix + "missing_rate"] = _ratio(count - feature.present, count)
            if feature.numbers is not None:
                moments, sketch = feature.numbers.moments, feature.numbers.sketch
                values[prefix + "mean"] = moments.mean
                values[prefix + "std"] = moments.std
                values[prefix + "min"] = moments.min
                values[prefix + "max"] = moments.max
                values[prefix + "p05"] = sketch.quantile(0.05)
                values[prefix + "p50"] = sketch.quantile(0.50)
                values[prefix + "p95"] = sketch.quantile(0.95)
            if feature.categories is not None:
                values.update(_shares(prefix + "freq.", feature.categories))
        # finite inputs can still overflow (the mean of two 1e308s); the wire wants finite floats
        return {
            name: (float(value) if value is not None and math.isfinite(value) else None)
            for name, value in values.items()
        }

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_state` turns back into an equal aggregate."""
        return {
            "version": STATE_VERSION,
            "max_categories": self._max_categories,
            "relative_accuracy": self._relative_accuracy,
            "predictions": self._predictions,
            "errors": self._errors,
            "null_labels": self._null_labels,
            "latency_ms": self._latency.to_state(),
            "score": self._score.to_state(),
            "cpu_percent": self._cpu_percent.to_state(),
            "memory_mb": self._memory_mb.to_state(),
            "labels": self._labels.to_state(),
            "features": {name: feature.to_state() for name, feature in self._features.items()},
            "outcomes": self._outcomes,
            "labelled": self._labelled,
            "correct": self._correct,
            "signals": {
                column: [self._signal_true[column], self._signal_known[column]]
                for column in _SIGNAL_RATES
            },
            "label_delay_ms": self._label_delay.to_state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> WindowMetrics:
        """Rebuild an aggregate from :meth:`to_state` output (after a JSON round trip too).

        Examples
        --------
        >>> import json
        >>> window = WindowMetrics()
        >>> window.add_predictions(PredictionBatch.from_rows(
        ...     [{"features": {"x": 1.0}, "prediction": {"label": "a"}, "latency_ms": 12.0}]))
        >>> stored = json.dumps(window.to_state())
        >>> again = WindowMetrics.from_state(json.loads(stored))
        >>> again.metrics(10) == window.metrics(10), again.metrics(10)["latency_mean_ms"]
        (True, 12.0)
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"unsupported WindowMetrics state version {state.get('version')!r}; "
                f"this code reads version {STATE_VERSION}"
            )
        new = cls(
            max_categories=int(state["max_categories"]),
            relative_accuracy=float(state["relative_accuracy"]),
        )
        new._predictions = int(state["predictions"])
        new._errors = int(state["errors"])
        new._null_labels = int(state["null_labels"])
        new._latency = _Numbers.from_state(state["latency_ms"])
        new._score = _Numbers.from_state(state["score"])
        new._cpu_percent = Moments.from_state(state["cpu_percent"])
        new._memory_mb = Moments.from_state(state["memory_mb"])
        new._labels = Frequencies.from_state(state["labels"])
        new._features = {
            name: _Feature.from_state(feature) for name, feature in state["features"].items()
        }
        new._outcomes = int(state["outcomes"])
        new._labelled = int(state["labelled"])
        new._correct = int(state["correct"])
        for column in _SIGNAL_RATES:
            true, known = state["signals"][column]
            new._signal_true[column], new._signal_known[column] = int(true), int(known)
        new._label_delay = QuantileSketch.from_state(state["label_delay_ms"])
        return new

    def __repr__(self) -> str:
        return (
            f"WindowMetrics(predictions={self._predictions}, outcomes={self._outcomes}, "
            f"features={sorted(self._features)})"
        )


def _shares(prefix: str, frequencies: Frequencies) -> dict[str, float | None]:
    """``prefix<category>`` -> share for the named categories, and ``prefix__other__``."""
    total = frequencies.count
    if total == 0:
        return {}
    shares: dict[str, float | None] = {
        prefix + category: count / total for category, count in frequencies.top()
    }
    shares[prefix + OTHER] = frequencies.other_count / total
    return shares
