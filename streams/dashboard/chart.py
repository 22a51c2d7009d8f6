"""The charts a dashboard draws for each model, registered by name.

A chart plots one or more window metrics (names as in
:mod:`online_models.window_metrics`) against the window end, one line per
model version and metric. ``driftloop dashboard --charts latency,loudness``
picks charts by name; :func:`register_chart` adds new ones (say, for the
features of a tabular model).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.dashboard.exceptions import UnknownChartError

__all__ = ["CHARTS", "DEFAULT_CHARTS", "Chart", "get_chart", "register_chart", "resolve_charts"]


@dataclass(frozen=True)
class Chart:
    """One time-series chart of a model card.

    Parameters
    ----------
    name
        Registry name, e.g. ``"latency"``.
    title
        Heading shown above the chart.
    metrics
        Window metric names plotted on it (one line per metric and version).
    unit
        Unit of the y axis, shown with the title.
    """

    name: str
    title: str
    metrics: tuple[str, ...]
    unit: str = ""

    def as_json(self) -> dict[str, object]:
        """The chart as the page receives it."""
        return {
            "name": self.name,
            "title": self.title,
            "metrics": list(self.metrics),
            "unit": self.unit,
        }


CHARTS: dict[str, Chart] = {}
"""Every registered chart, by name."""


def register_chart(chart: Chart) -> Chart:
    """Add a chart to the registry; a name can be registered once.

    Examples
    --------
    >>> chart = register_chart(Chart("income", "Income (mean)", ("feature.income.mean",), "EUR"))
    >>> get_chart("income").metrics
    ('feature.income.mean',)
    >>> register_chart(chart)
    Traceback (most recent call last):
    ...
    ValueError: chart 'income' is already registered
    >>> del CHARTS["income"]  # leave the registry as it was
    """
    if chart.name in CHARTS:
        raise ValueError(f"chart {chart.name!r} is already registered")
    if not chart.metrics:
        raise ValueError(f"chart {chart.name!r} plots no metric: give at least one metric name")
    CHARTS[chart.name] = chart
    return chart


def get_chart(name: str) -> Chart:
    """The registered chart of that name.

    Examples
    --------
    >>> get_chart("latency").metrics
    ('latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms')
    >>> get_chart("latncy")
    Traceback (most recent call last):
    ...
    streams.dashboard.exceptions.UnknownChartError: unknown chart 'latncy'; registered: \
accuracy, cpu, duration, error_rate, feedback, latency, loudness, null_rate, silence, volume
    """
    try:
        return CHARTS[name]
    except KeyError:
        raise UnknownChartError(
            f"unknown chart {name!r}; registered: {', '.join(sorted(CHARTS))}"
        ) from None


def resolve_charts(names: Iterable[str]) -> tuple[Chart, ...]:
    """The charts of these names, in order, duplicates dropped.

    Examples
    --------
    >>> [c.name for c in resolve_charts(["loudness", "latency", "loudness"])]
    ['loudness', 'latency']
    """
    seen: dict[str, Chart] = {}
    for name in names:
        seen.setdefault(name, get_chart(name))
    return tuple(seen.values())


for _chart in (
    Chart(
        "latency",
        "Latency p50 / p95 / p99",
        ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"),
        "ms",
    ),
    Chart("volume", "Requests per window", ("count",), "requests"),
    Chart("loudness", "Loudness (mean)", ("feature.loudness_db.mean",), "dB"),
    Chart("silence", "Leading silence (mean)", ("feature.leading_silence_s.mean",), "s"),
    Chart("null_rate", "Null answers", ("null_rate",), "share"),
    Chart(
        "feedback",
        "Redo search / switch to typing",
        ("redo_rate", "switch_to_typing_rate"),
        "share",
    ),
    Chart("error_rate", "Errors", ("error_rate",), "share"),
    Chart("accuracy", "Accuracy (labelled outcomes)", ("accuracy",), "share"),
    Chart("duration", "Clip duration (mean)", ("feature.clip_duration_s.mean",), "s"),
    Chart("cpu", "Host CPU (mean)", ("cpu_percent_mean",), "%"),
):
    register_chart(_chart)

DEFAULT_CHARTS: tuple[str, ...] = (
    "latency",
    "volume",
    "loudness",
    "silence",
    "null_rate",
    "feedback",
    "error_rate",
    "accuracy",
)
"""The charts shown when none are chosen: the voice-search signals of the founding notes."""
