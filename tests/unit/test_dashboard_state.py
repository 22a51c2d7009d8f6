"""Folding metrics, alerts and model events into what the dashboard shows."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.dashboard import DashboardConfigError, DashboardState, UnknownChartError
from streams.events import AlertEvent, FeedbackEvent, MetricsEvent, ModelEventEvent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def window(
    start_s: int,
    *,
    version: str = "1",
    size_s: int = 10,
    published_s: float | None = None,
    segment: dict[str, str] | None = None,
    model: str = "voice",
    **metrics: float | None,
) -> MetricsEvent:
    start = T0 + timedelta(seconds=start_s)
    values = {"count": 100.0, "latency_p95_ms": 80.0, **metrics}
    return MetricsEvent.new(
        {
            "model": model,
            "model_version": version,
            "segment": segment,
            "window_start": start,
            "window_end": start + timedelta(seconds=size_s),
            "count": int(values["count"] or 0),
            "metrics": {k.replace("__", "."): v for k, v in values.items()},
        },
        time=T0 + timedelta(seconds=published_s if published_s is not None else start_s + size_s),
    )


def alert(
    at_s: int, status: str = "firing", *, signal: str = "loudness_db", model: str = "voice"
) -> AlertEvent:
    detected = T0 + timedelta(seconds=at_s)
    return AlertEvent.new(
        {
            "alert_id": f"{signal}-1",
            "model": model,
            "model_version": "1",
            "signal": signal,
            "kind": "data_drift",
            "pattern": "sudden",
            "severity": "critical",
            "status": status,
            "detector": "ks",
            "statistic": 0.4,
            "threshold": 0.2,
            "detected_at": detected,
            "evidence": {"start": detected - timedelta(seconds=30), "end": detected, "events": 90},
            "summary": f"{signal} moved",
        },
        id=f"{signal}:{status}:{at_s}",
    )


def model_event(at_s: int, version: int, action: str, traffic: dict | None = None):
    return ModelEventEvent.new(
        {"model": "voice", "version": version, "action": action, "traffic": traffic},
        id=f"rollout:{version}:{action}:{at_s}",
        time=T0 + timedelta(seconds=at_s),
    )


def only_model(state: DashboardState) -> dict:
    (model,) = state.snapshot()["models"]
    return model


def series_of(state: DashboardState, version: str = "1") -> dict:
    matching = [s for s in only_model(state)["series"] if s["version"] == version]
    assert len(matching) == 1, matching
    return matching[0]


# --------------------------------------------------------------------------- series


def test_points_are_ordered_by_window_whatever_the_arrival_order():
    state = DashboardState()
    state.apply_many([window(20), window(0), window(30), window(10)])
    series = series_of(state)
    assert series["t"] == [T0_MS + s * 1000 for s in (10, 20, 30, 40)]
    assert series["window_s"] == 10


def test_a_revision_of_a_window_replaces_the_earlier_one():
    state = DashboardState()
    state.apply(window(0, count=40, latency_p95_ms=70.0, published_s=10))
    state.apply(window(0, count=55, latency_p95_ms=95.0, published_s=45))
    series = series_of(state)
    assert series["count"] == [55]
    assert series["values"]["latency_p95_ms"] == [95.0]


def test_an_older_revision_arriving_late_does_not_replace_a_newer_one():
    state = DashboardState()
    state.apply(window(0, count=55, published_s=45))
    revision = state.revision
    assert state.apply(window(0, count=40, published_s=10)) is False
    assert series_of(state)["count"] == [55]
    assert state.revision == revision


def test_series_length_is_bounded_and_keeps_the_newest_windows():
    state = DashboardState(max_points=5)
    state.apply_many(window(10 * i) for i in range(12))
    assert series_of(state)["t"] == [T0_MS + (10 * i + 10) * 1000 for i in range(7, 12)]
    # a window older than everything kept does not push a newer one out
    state.apply(window(0, published_s=999))
    assert series_of(state)["t"][0] == T0_MS + 80_000


def test_one_series_per_version_segment_and_window_size():
    state = DashboardState()
    state.apply_many(
        [
            window(0, version="1"),
            window(0, version="2"),
            window(0, version="10"),
            window(0, version="1", size_s=60),
            window(0, version="1", segment={"locale": "en-GB", "device": "ios"}),
        ]
    )
    keys = [(s["version"], s["segment"], s["window_s"]) for s in only_model(state)["series"]]
    assert keys == [
        ("1", "", 10),
        ("1", "", 60),
        ("1", "device=ios,locale=en-GB", 10),
        ("2", "", 10),
        ("10", "", 10),
    ]


def test_series_per_model_are_bounded_and_the_stalest_goes():
    state = DashboardState(max_series=2)
    state.apply_many([window(100, version="1"), window(0, version="2"), window(50, version="3")])
    assert [s["version"] for s in only_model(state)["series"]] == ["1", "3"]


def test_models_are_bounded_and_the_least_recently_active_goes():
    state = DashboardState(max_models=2)
    state.apply_many([window(0, model="a"), window(100, model="b"), window(50, model="c")])
    assert [m["model"] for m in state.snapshot()["models"]] == ["b", "c"]


def test_only_the_metrics_of_the_charts_are_kept():
    state = DashboardState(["loudness"])
    state.apply(window(0, **{"feature__loudness_db__mean": -21.5, "qps": 3.0}))
    values = series_of(state)["values"]
    assert values == {"feature.loudness_db.mean": [-21.5]}


def test_unmeasurable_metrics_are_gaps_not_zeros():
    state = DashboardState(["accuracy", "volume"])
    state.apply_many([window(0, accuracy=0.9), window(10, accuracy=None)])
    series = series_of(state)
    assert series["values"]["accuracy"] == [0.9, None]
    assert series["values"]["count"] == [100.0, 100.0]


# --------------------------------------------------------------------------- alerts


def test_alerts_are_ordered_by_detection_time_and_deduplicated():
    state = DashboardState()
    state.apply_many([alert(60, signal="b"), alert(30, signal="a"), alert(60, signal="b")])
    alerts = only_model(state)["alerts"]
    assert [(a["signal"], a["t"]) for a in alerts] == [("a", T0_MS + 30_000), ("b", T0_MS + 60_000)]
    assert state.events == 3
    assert state.revision == 2  # the duplicate changed nothing


def test_alerts_are_bounded_and_the_newest_are_kept():
    state = DashboardState(max_alerts=3)
    state.apply_many(alert(i, signal=f"s{i}") for i in (5, 1, 4, 2, 3))
    assert [a["signal"] for a in only_model(state)["alerts"]] == ["s3", "s4", "s5"]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_detector_state_is_the_latest_alert_of_each_detector(order):
    events = [alert(30, "firing"), alert(90, "resolved")]
    state = DashboardState()
    state.apply_many(events[i] for i in order)
    (detector,) = only_model(state)["detectors"]
    assert (detector["signal"], detector["detector"], detector["status"]) == (
        "loudness_db",
        "ks",
        "resolved",
    )
    assert [a["status"] for a in only_model(state)["alerts"]] == ["firing", "resolved"]


# --------------------------------------------------------------------------- rollout

ROLLOUT = [
    model_event(0, 2, "published"),
    model_event(10, 2, "canary_started", {"champion": 0.95, "challenger": 0.05}),
    model_event(20, 2, "ramp_step", {"champion": 0.75, "challenger": 0.25}),
]


def test_traffic_split_follows_the_latest_model_event():
    state = DashboardState()
    state.apply_many(ROLLOUT)
    model = only_model(state)
    assert model["rollout"]["text"] == "champion 75% · challenger v2 25%"
    assert model["rollout"]["challenger"] == "2"
    assert model["rollout"]["phase"] == "ramp_step"
    assert [v["action"] for v in model["versions"]] == ["ramp_step"]
    assert [e["action"] for e in model["timeline"]] == ["published", "canary_started", "ramp_step"]


def test_promotion_makes_the_challenger_champion_with_all_the_traffic():
    state = DashboardState()
    state.apply_many(
        [*ROLLOUT, model_event(30, 2, "promoted", {"champion": 1.0, "challenger": 0.0})]
    )
    rollout = only_model(state)["rollout"]
    assert (rollout["champion"], rollout["challenger"]) == ("2", None)
    assert rollout["text"] == "champion v2 100%"


def test_a_rollback_ends_the_rollout_with_the_champion_kept():
    state = DashboardState()
    state.apply_many(
        [
            model_event(0, 1, "promoted", {"champion": 1.0, "challenger": 0.0}),
            *ROLLOUT,
            model_event(30, 2, "rolled_back", {"champion": 1.0, "challenger": 0.0}),
        ]
    )
    model = only_model(state)
    assert model["rollout"]["text"] == "champion v1 100%"
    assert {v["version"]: v["action"] for v in model["versions"]} == {
        "1": "promoted",
        "2": "rolled_back",
    }


# --------------------------------------------------------------------------- the whole


def test_other_event_types_are_ignored():
    state = DashboardState()
    feedback = FeedbackEvent.new({"request_id": "r1", "model": "voice", "clicked": True})
    assert state.apply(feedback) is False
    assert state.snapshot()["models"] == []
    assert (state.events, state.revision) == (0, 0)


MIXED = [
    window(0, published_s=10),
    window(0, count=120, published_s=50),
    window(10, version="2"),
    window(20, latency_p95_ms=None),
    alert(15),
    alert(25, "resolved"),
    *ROLLOUT,
]


@settings(max_examples=40, deadline=None)
@given(st.permutations(MIXED))
def test_what_is_shown_does_not_depend_on_arrival_order(events):
    expected = DashboardState()
    expected.apply_many(MIXED)
    state = DashboardState()
    state.apply_many(events)
    assert state.snapshot()["models"] == expected.snapshot()["models"]


def test_the_snapshot_is_strict_json():
    state = DashboardState()
    state.apply_many(MIXED)
    text = json.dumps(state.snapshot(), allow_nan=False)
    parsed = json.loads(text)
    values = parsed["models"][0]["series"][0]["values"]["latency_p95_ms"]
    assert values == [80.0, None]  # window 0 (revised) and window 20
    assert not any(isinstance(v, float) and math.isnan(v) for v in values)


@pytest.mark.parametrize("bad", [{"max_points": 1}, {"max_alerts": 0}, {"max_models": -3}])
def test_bounds_below_their_minimum_are_refused_with_the_limit(bad):
    ((name, _least),) = bad.items()
    with pytest.raises(DashboardConfigError, match=f"{name} must be at least"):
        DashboardState(**bad)


def test_an_unknown_chart_lists_the_registered_ones():
    with pytest.raises(UnknownChartError, match="unknown chart 'loudnes'; registered: accuracy"):
        DashboardState(["latency", "loudnes"])
