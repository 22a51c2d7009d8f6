"""What the dashboard shows, folded from events: per-model series, alerts and rollout.

:class:`DashboardState` takes the events of three topics — window metrics
(``driftloop.metrics.v1``), alerts (``driftloop.alert.v1``) and model events
(``driftloop.model-event.v1``) — in any order, and keeps, per model:

* one time series per (version, segment, window size) of the metrics the
  charts plot, one point per window, at the window end. A window published
  again (a *revision*, after late events) replaces its earlier point: the one
  with the later event time wins, whatever order they arrive in;
* the alert timeline, ordered by detection time, and the detector state: the
  latest alert of each (version, segment, signal, detector);
* the model versions and their latest action, the model-event timeline, and
  the rollout: champion, challenger and the current traffic split.

Memory is bounded: every collection keeps its newest entries up to a limit
(points per series, series per model, models, alerts, model events, detectors,
versions), so a dashboard left running for weeks stays the same size.

Kafka-free: :mod:`streams.dashboard.service` feeds it what it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.dashboard.chart import DEFAULT_CHARTS, Chart, resolve_charts
from streams.dashboard.exceptions import DashboardConfigError
from streams.events import AlertEvent, CloudEvent, MetricsEvent, ModelEventEvent
from streams.partition_windows import segment_key

__all__ = ["DashboardState"]

# actions that leave a challenger in the rollout; promoted and rolled_back end it
_ROLLOUT_ACTIONS = frozenset(
    {"shadow_started", "canary_started", "ramp_step", "approval_required", "approved"}
)
_ENDING_ACTIONS = frozenset({"promoted", "rolled_back"})


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _version_order(version: str) -> tuple[int, int, str]:
    """Numeric versions in numeric order, others after them alphabetically."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _evict_oldest(entries: dict[Any, Any], limit: int, age: Any) -> None:
    """Drop the entries with the smallest ``age(entry)`` until ``limit`` remain."""
    while len(entries) > limit:
        oldest = min(entries, key=lambda key: age(entries[key]))
        del entries[oldest]


@dataclass
class _Point:
    end_ms: int
    published_ms: int  # event time of the metrics event: the later revision wins
    count: int
    values: tuple[float | None, ...]


@dataclass
class _Series:
    points: dict[int, _Point] = field(default_factory=dict)  # by window start
    last_end_ms: int = 0


@dataclass
class _Stamped:
    """Something that happened at ``at_ms``, with what the page shows of it."""

    at_ms: int
    order: str  # breaks ties of at_ms deterministically (the event id)
    body: dict[str, Any]


@dataclass
class _Model:
    series: dict[tuple[str, str, int], _Series] = field(default_factory=dict)
    alerts: dict[str, _Stamped] = field(default_factory=dict)  # by event id
    detectors: dict[tuple[str, str, str, str], _Stamped] = field(default_factory=dict)
    timeline: dict[str, _Stamped] = field(default_factory=dict)  # model events by event id
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    latest_traffic: _Stamped | None = None
    latest_promoted: _Stamped | None = None
    latest_rollout: _Stamped | None = None
    last_ms: int = 0


def _later(current: _Stamped | None, candidate: _Stamped) -> bool:
    return current is None or (candidate.at_ms, candidate.order) >= (current.at_ms, current.order)


class DashboardState:
    """Per-model time series, alert timeline, detector state and rollout, from events.

    Parameters
    ----------
    charts
        Names of the registered charts to keep series for
        (:data:`~streams.dashboard.chart.DEFAULT_CHARTS` by default); only their
        metrics are stored.
    max_points
        Windows kept per series (the newest by window start).
    max_series
        Series kept per model, over versions, segments and window sizes (those
        with the newest window survive).
    max_models
        Models kept (those with the newest event survive).
    max_alerts
        Alerts kept per model on the timeline (the newest by detection time).
    max_model_events
        Model events kept per model on the timeline.
    max_detectors
        Detector states kept per model.
    max_versions
        Versions listed per model.

    Examples
    --------
    Two revisions of one window and a later window of version 1, an alert, and
    a canary of version 2 at 5 % of the traffic:

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    >>> def window(start_s, count, loudness, published_s):
    ...     start = t0 + timedelta(seconds=start_s)
    ...     return MetricsEvent.new({"model": "voice", "model_version": "1",
    ...         "window_start": start, "window_end": start + timedelta(seconds=10),
    ...         "count": count, "metrics": {"count": count, "feature.loudness_db.mean": loudness}},
    ...         time=t0 + timedelta(seconds=published_s))
    >>> state = DashboardState(max_points=100)
    >>> changed = state.apply_many([window(0, 40, -20.0, 11), window(10, 50, -21.0, 21),
    ...                             window(0, 45, -20.5, 40)])  # a late revision of window 0
    >>> (series,) = state.snapshot()["models"][0]["series"]
    >>> series["count"], series["values"]["feature.loudness_db.mean"]
    ([45, 50], [-20.5, -21.0])
    >>> _ = state.apply(AlertEvent.new({"alert_id": "a1", "model": "voice", "model_version": "1",
    ...     "signal": "loudness_db", "kind": "data_drift", "severity": "critical",
    ...     "status": "firing", "detector": "ks", "statistic": 0.4, "threshold": 0.2,
    ...     "detected_at": t0 + timedelta(seconds=30),
    ...     "evidence": {"start": t0, "end": t0 + timedelta(seconds=30), "events": 90}}))
    >>> _ = state.apply(ModelEventEvent.new({"model": "voice", "version": 2,
    ...     "action": "canary_started", "traffic": {"champion": 0.95, "challenger": 0.05}},
    ...     time=t0 + timedelta(seconds=60)))
    >>> model = state.snapshot()["models"][0]
    >>> [(a["signal"], a["status"]) for a in model["alerts"]], model["rollout"]["text"]
    ([('loudness_db', 'firing')], 'champion 95% · challenger v2 5%')
    """

    def __init__(
        self,
        charts: Sequence[str] = DEFAULT_CHARTS,
        *,
        max_points: int = 360,
        max_series: int = 24,
        max_models: int = 20,
        max_alerts: int = 200,
        max_model_events: int = 100,
        max_detectors: int = 100,
        max_versions: int = 20,
    ) -> None:
        limits = {
            "max_points": (max_points, 2),
            "max_series": (max_series, 1),
            "max_models": (max_models, 1),
            "max_alerts": (max_alerts, 1),
            "max_model_events": (max_model_events, 1),
            "max_detectors": (max_detectors, 1),
            "max_versions": (max_versions, 1),
        }
        for name, (value, least) in limits.items():
            if value < least:
                raise DashboardConfigError(f"{name} must be at least {least}, got {value}")
        self.charts: tuple[Chart, ...] = resolve_charts(charts)
        # every metric any chart plots, once, in chart order; "count" is always kept
        self.metrics: tuple[str, ...] = tuple(
            dict.fromkeys(m for chart in self.charts for m in chart.metrics)
        )
        self.max_points = max_points
        self.max_series = max_series
        self.max_models = max_models
        self.max_alerts = max_alerts
        self.max_model_events = max_model_events
        self.max_detectors = max_detectors
        self.max_versions = max_versions
        self.revision = 0
        """Grows by one whenever an event changes what :meth:`snapshot` returns."""
        self.events = 0
        """Events applied (metrics, alerts and model events; others are ignored)."""
        self.rejected = 0
        """Records or events the reader refused (counted by the caller, shown on the page)."""
        self._models: dict[str, _Model] = {}

    # ------------------------------------------------------------------ folding

    def apply(self, event: CloudEvent) -> bool:
        """Fold one event in; ``True`` when it changed what the page shows.

        Events of other types (predictions, feedback…) are ignored.
        """
        if isinstance(event, MetricsEvent):
            changed = self._apply_metrics(event)
        elif isinstance(event, AlertEvent):
            changed = self._apply_alert(event)
        elif isinstance(event, ModelEventEvent):
            changed = self._apply_model_event(event)
        else:
            return False
        self.events += 1
        if changed:
            self.revision += 1
        return changed

    def apply_many(self, events: Iterable[CloudEvent]) -> int:
        """Fold events in order; returns how many changed the state."""
        return sum(self.apply(event) for event in events)

    def _model(self, name: str, at_ms: int) -> _Model:
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = _Model(last_ms=at_ms)
        model.last_ms = max(model.last_ms, at_ms)
        return model

    def _keep_models(self) -> None:
        _evict_oldest(self._models, self.max_models, lambda model: model.last_ms)

    def _apply_metrics(self, event: MetricsEvent) -> bool:
        data = event.data
        start_ms, end_ms = _ms(data.window_start), _ms(data.window_end)
        model = self._model(data.model, end_ms)
        key = (data.model_version, segment_key(data.segment), (end_ms - start_ms) // 1000)
        series = model.series.get(key)
        if series is None:
            series = model.series[key] = _Series()
        point = _Point(
            end_ms=end_ms,
            published_ms=_ms(event.time),
            count=data.count,
            values=tuple(
                data.metrics.get(name, data.count if name == "count" else None)
                for name in self.metrics
            ),
        )
        previous = series.points.get(start_ms)
        if previous is not None and previous.published_ms > point.published_ms:
            return False  # an older revision of a window already shown
        series.points[start_ms] = point
        series.last_end_ms = max(series.last_end_ms, end_ms)
        self._touch_version(model, data.model_version, seen_ms=end_ms)
        _evict_oldest(series.points, self.max_points, lambda p: p.end_ms)
        _evict_oldest(model.series, self.max_series, lambda s: s.last_end_ms)
        self._keep_models()
        return True

    def _apply_alert(self, event: AlertEvent) -> bool:
        alert = event.data
        at_ms = _ms(alert.detected_at)
        model = self._model(alert.model, at_ms)
        if event.id in model.alerts:
            return False
        segment = segment_key(alert.segment)
        body = {
            "id": event.id,
            "alert_id": alert.alert_id,
            "at": _iso(at_ms),
            "t": at_ms,
            "version": alert.model_version,
            "segment": segment,
            "signal": alert.signal,
            "kind": alert.kind,
            "pattern": alert.pattern,
            "severity": alert.severity,
            "status": alert.status,
            "detector": alert.detector,
            "statistic": alert.statistic,
            "threshold": alert.threshold,
            "evidence_events": alert.evidence.events,
            "summary": alert.summary,
        }
        stamped = _Stamped(at_ms, event.id, body)
        model.alerts[event.id] = stamped
        _evict_oldest(model.alerts, self.max_alerts, lambda s: (s.at_ms, s.order))
        detector_key = (alert.model_version, segment, alert.signal, alert.detector)
        if _later(model.detectors.get(detector_key), stamped):
            model.detectors[detector_key] = stamped
        _evict_oldest(model.detectors, self.max_detectors, lambda s: (s.at_ms, s.order))
        self._touch_version(model, alert.model_version, seen_ms=None)
        self._keep_models()
        return True

    def _apply_model_event(self, event: ModelEventEvent) -> bool:
        data = event.data
        at_ms = _ms(event.time)
        model = self._model(data.model, at_ms)
        if event.id in model.timeline:
            return False
        version = str(data.version)
        body = {
            "id": event.id,
            "at": _iso(at_ms),
            "t": at_ms,
            "version": version,
            "action": data.action,
            "reason": data.reason,
            "traffic": dict(data.traffic) if data.traffic is not None else None,
        }
        stamped = _Stamped(at_ms, event.id, body)
        model.timeline[event.id] = stamped
        _evict_oldest(model.timeline, self.max_model_events, lambda s: (s.at_ms, s.order))
        if data.traffic is not None and _later(model.latest_traffic, stamped):
            model.latest_traffic = stamped
        if data.action == "promoted" and _later(model.latest_promoted, stamped):
            model.latest_promoted = stamped
        if data.action in _ROLLOUT_ACTIONS | _ENDING_ACTIONS and _later(
            model.latest_rollout, stamped
        ):
            model.latest_rollout = stamped
        entry = self._touch_version(model, version, seen_ms=None)
        if entry.get("action_ms") is None or (at_ms, event.id) >= (
            entry["action_ms"],
            entry["action_id"],
        ):
            entry.update(action=data.action, action_ms=at_ms, action_id=event.id)
        self._keep_models()
        return True

    def _touch_version(self, model: _Model, version: str, *, seen_ms: int | None) -> dict[str, Any]:
        entry = model.versions.get(version)
        if entry is None:
            entry = model.versions[version] = {
                "action": None,
                "action_ms": None,
                "action_id": "",
                "seen_ms": None,
            }
        if seen_ms is not None and (entry["seen_ms"] is None or seen_ms > entry["seen_ms"]):
            entry["seen_ms"] = seen_ms
        _evict_oldest(
            model.versions,
            self.max_versions,
            lambda e: max(e["seen_ms"] or 0, e["action_ms"] or 0),
        )
        return entry

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as plain JSON-able data.

        ``models`` is sorted by name; each model has its ``series`` (columnar:
        window ends ``t`` in ms, ``count``, and ``values`` by metric, oldest
        first), ``alerts`` and ``timeline`` (oldest first), ``detectors``,
        ``versions`` and ``rollout``.
        """
        return {
            "revision": self.revision,
            "events": self.events,
            "rejected": self.rejected,
            "charts": [chart.as_json() for chart in self.charts],
            "models": [
                self._model_snapshot(name, self._models[name]) for name in sorted(self._models)
            ],
        }

    def _model_snapshot(self, name: str, model: _Model) -> dict[str, Any]:
        series = []
        for version, segment, window_s in sorted(
            model.series, key=lambda k: (_version_order(k[0]), k[1], k[2])
        ):
            points = model.series[(version, segment, window_s)].points
            ordered = [points[start] for start in sorted(points)]
            series.append(
                {
                    "version": version,
                    "segment": segment,
                    "window_s": window_s,
                    "t": [p.end_ms for p in ordered],
                    "count": [p.count for p in ordered],
                    "values": {
                        metric: [p.values[i] for p in ordered]
                        for i, metric in enumerate(self.metrics)
                    },
                }
            )
        return {
            "model": name,
            "updated": _iso(model.last_ms),
            "series": series,
            "alerts": _ordered(model.alerts.values()),
            "detectors": _ordered(model.detectors.values()),
            "timeline": _ordered(model.timeline.values()),
            "versions": [
                {
                    "version": version,
                    "action": entry["action"],
                    "action_at": _iso(entry["action_ms"]) if entry["action_ms"] else None,
                    "last_window_end": _iso(entry["seen_ms"]) if entry["seen_ms"] else None,
                }
                for version, entry in sorted(
                    model.versions.items(), key=lambda item: _version_order(item[0])
                )
            ],
            "rollout": _rollout(model),
        }


def _ordered(entries: Iterable[_Stamped]) -> list[dict[str, Any]]:
    return [s.body for s in sorted(entries, key=lambda s: (s.at_ms, s.order))]


def _rollout(model: _Model) -> dict[str, Any]:
    """Champion, challenger and traffic split, from the latest model events."""
    champion = model.latest_promoted.body["version"] if model.latest_promoted else None
    rollout = model.latest_rollout
    challenger = None
    phase = None
    if rollout is not None:
        phase = rollout.body["action"]
        if phase in _ROLLOUT_ACTIONS:
            challenger = rollout.body["version"]
    traffic: Mapping[str, float] | None = (
        model.latest_traffic.body["traffic"] if model.latest_traffic else None
    )
    return {
        "champion": champion,
        "challenger": challenger,
        "phase": phase,
        "traffic": dict(traffic) if traffic is not None else None,
        "text": _traffic_text(champion, challenger, traffic),
    }


def _traffic_text(
    champion: str | None, challenger: str | None, traffic: Mapping[str, float] | None
) -> str:
    """One line such as ``champion v1 95% · challenger v2 5%``.

    Examples
    --------
    >>> _traffic_text("1", "2", {"champion": 0.75, "challenger": 0.25})
    'champion v1 75% · challenger v2 25%'
    >>> _traffic_text(None, None, None)
    'no rollout seen'
    """
    if traffic is None:
        if champion is None and challenger is None:
            return "no rollout seen"
        traffic = {"champion": 1.0} if challenger is None else {}
    parts = []
    for route, version in (("champion", champion), ("challenger", challenger)):
        share = traffic.get(route)
        if version is None and not share:
            continue
        label = f"{route} v{version}" if version is not None else route
        parts.append(f"{label} {share * 100:.3g}%" if share is not None else label)
    return " · ".join(parts)
