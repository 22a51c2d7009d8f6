"""What a worker exposes on ``/metrics`` for Prometheus.

Counters follow Prometheus naming (``_total``, ``_seconds``). Window metrics
are gauges of the latest published window per (model, version, segment,
window size); to keep label cardinality bounded only the metric names in
:data:`EXPORTED` (and each feature's mean, p50 and missing rate) become
gauges — the full set is on the ``metrics`` topic. Segments are already capped
per model version (``max_segments``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from streams.partition_windows import WindowId

__all__ = ["EXPORTED", "Telemetry"]

EXPORTED = frozenset(
    {
        "count",
        "qps",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "error_rate",
        "cpu_percent_mean",
        "memory_mb_mean",
        "null_rate",
        "score.mean",
        "outcomes",
        "redo_rate",
        "switch_to_typing_rate",
        "click_rate",
        "accuracy",
        "label_coverage",
        "label_delay_p50_ms",
    }
)
_FEATURE_SUFFIXES = (".mean", ".p50", ".missing_rate")


def _exported(name: str) -> bool:
    return name in EXPORTED or (name.startswith("feature.") and name.endswith(_FEATURE_SUFFIXES))


class Telemetry:
    """The worker's Prometheus registry and the instruments the agents update.

    Examples
    --------
    >>> t = Telemetry()
    >>> t.events.labels(topic="predictions").inc(3)
    >>> t.record_window(WindowId("voice", "1", "", 10, 0), {"qps": 2.5, "feature.x.mean": 1.0})
    >>> body, _ = t.exposition()
    >>> for line in body.decode().splitlines():
    ...     if line.startswith("driftloop_window"):
    ...         print(line.replace(',model="voice",segment="",version="1",window="10s"', ""))
    driftloop_window_metric{metric="qps"} 2.5
    driftloop_window_metric{metric="feature.x.mean"} 1.0
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "driftloop_events", "Events counted into windows.", ["topic"], registry=r
        )
        self.duplicates = Counter(
            "driftloop_duplicate_events",
            "Events dropped as redeliveries (same id).",
            ["topic"],
            registry=r,
        )
        self.rewinds = Counter(
            "driftloop_source_rewinds",
            "Source partitions sought back because a record came ahead of the expected offset.",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "driftloop_dead_letters",
            "Records or events sent to dead-letters.",
            ["stage", "error"],
            registry=r,
        )
        self.outcomes = Counter(
            "driftloop_outcomes", "Feedback joined to its prediction.", registry=r
        )
        self.unmatched_feedback = Counter(
            "driftloop_unmatched_feedback",
            "Feedback that met no prediction.",
            ["reason"],
            registry=r,
        )
        self.late_events = Counter(
            "driftloop_late_events", "Events for windows that had already closed.", registry=r
        )
        self.detections = Counter(
            "driftloop_drift_detections",
            "Drift detectors that fired (before grouping into alerts).",
            ["kind"],
            registry=r,
        )
        self.drift_checkpoints = Counter(
            "driftloop_drift_checkpoints",
            "Drift detector states written to the changelog, and restored from it.",
            ["action"],
            registry=r,
        )
        self.alerts = Counter(
            "driftloop_alerts",
            "Alerts published, firing or resolved.",
            ["kind", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "driftloop_prediction_latency_seconds",
            "Latency the predictions reported.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.window_metric = Gauge(
            "driftloop_window_metric",
            "Latest published window metric.",
            ["model", "version", "segment", "window", "metric"],
            registry=r,
        )
        self.rolling_metric = Gauge(
            "driftloop_rolling_metric",
            "Rolling value over the last `span` of event time, merged from the smallest windows.",
            ["model", "version", "segment", "span", "metric"],
            registry=r,
        )
        self._latest_start: dict[tuple[str, str, str, int], int] = {}

    def record_window(self, window: WindowId, values: Mapping[str, float | None]) -> None:
        """Set the gauges from a published window, unless a later window was published already."""
        slot = (window.model, window.version, window.segment, window.size_s)
        if self._latest_start.get(slot, -1) > window.start_ms:
            return
        self._latest_start[slot] = window.start_ms
        for name, value in values.items():
            if value is None:
                continue
            if _exported(name):
                self.window_metric.labels(
                    window.model, window.version, window.segment, f"{window.size_s}s", name
                ).set(value)

    def record_rolling(
        self,
        model: str,
        version: str,
        segment: str,
        span_s: int,
        values: Mapping[str, float | None],
    ) -> None:
        """Set the rolling gauges of one (model, version, segment)."""
        for name, value in values.items():
            if value is not None and _exported(name):
                self.rolling_metric.labels(model, version, segment, f"{span_s}s", name).set(value)

    def observe_latencies(self, latency_ms: np.ndarray) -> None:
        """Add many latencies (milliseconds) to the histogram at once.

        One ``observe()`` per event costs about a microsecond; this counts the
        values per bucket with numpy and adds each bucket's count once. It uses
        prometheus_client's bucket counters directly (checked against
        ``observe()`` by a test, so a change there fails loudly).

        Examples
        --------
        >>> t = Telemetry()
        >>> t.observe_latencies(np.array([3.0, 30.0, 30.0, 9000.0]))
        >>> [s.value for s in t.latency.collect()[0].samples if s.name.endswith("_count")]
        [4.0]
        """
        seconds = np.asarray(latency_ms, dtype=np.float64) / 1000.0
        if not seconds.size:
            return
        histogram = self.latency
        bounds = np.asarray(histogram._upper_bounds)
        # the bucket of a value is the first upper bound at or above it (le semantics)
        counts = np.bincount(np.searchsorted(bounds, seconds, side="left"), minlength=len(bounds))
        for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):
            if count:
                bucket.inc(count)
        histogram._sum.inc(float(seconds.sum()))

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type (without the charset, which is
        UTF-8 and which aiohttp wants apart)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST.split("; charset=")[0]
