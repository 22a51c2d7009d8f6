"""Retraining triggers: what retrains, what does not, on which window, how often."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.alerting import (
    AlertPolicyConfig,
    Detection,
    RetrainPolicy,
    RetrainPolicyConfig,
)
from streams.events import AlertData, RetrainRequestEvent

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
MIN = timedelta(minutes=1)


def alert(
    kind: str,
    signal: str,
    *,
    minutes: float = 0,
    severity: str = "warning",
    status: str = "firing",
    model: str = "voice-intent",
    onset_minutes: float = -20,
    alert_id: str | None = None,
) -> AlertData:
    return AlertData(
        alert_id=alert_id or f"{model}.{kind}.{signal}",
        model=model,
        model_version="3",
        signal=signal,
        kind=kind,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        detector="fisher",
        statistic=0.001,
        threshold=0.01,
        detected_at=T0 + minutes * MIN,
        evidence={"start": T0 + onset_minutes * MIN, "end": T0 + minutes * MIN, "events": 3000},
    )


def policy(**config: object) -> RetrainPolicy:
    return RetrainPolicy(RetrainPolicyConfig.model_validate(config))


def test_critical_concept_drift_retrains_at_once_on_a_window_from_the_onset():
    p = policy(min_span="10m", lookback="5m")
    request = p.observe(alert("concept_drift", "accuracy", severity="critical", minutes=3))
    assert request is not None
    assert request.model == "voice-intent" and request.requested_by == "policy"
    assert request.alert_ids == ["voice-intent.concept_drift.accuracy"]
    assert request.reason == "concept drift confirmed (critical) on accuracy"
    # onset -20 min minus 5 min of lookback, to the decision at +3 min
    assert request.window.start == T0 - 25 * MIN and request.window.end == T0 + 3 * MIN
    RetrainRequestEvent.new(request)  # a valid wire payload


def test_the_window_spans_at_least_min_span_and_at_most_max_span():
    short = policy(min_span="2h").observe(
        alert("concept_drift", "accuracy", severity="critical", onset_minutes=-1)
    )
    assert short.window.end - short.window.start == timedelta(hours=2)
    long = policy(max_span="1d").observe(
        alert("concept_drift", "accuracy", severity="critical", onset_minutes=-5 * 24 * 60)
    )
    assert long.window.end - long.window.start == timedelta(days=1)


def test_a_drift_confirmed_soon_after_its_onset_waits_for_min_drifted_of_its_traffic():
    p = policy(min_span="1s", lookback=0, min_drifted="15m")
    # confirmed 5 minutes after the onset: not yet, whatever its severity
    early = alert("concept_drift", "accuracy", severity="critical", onset_minutes=-5)
    assert p.observe(early) is None
    assert p.advance(T0 + 9 * MIN) == []
    (request,) = p.advance(T0 + 10 * MIN)  # 15 minutes after the onset
    assert request.window.start == T0 - 5 * MIN and request.window.end == T0 + 10 * MIN
    assert p.advance(T0 + 11 * MIN) == []  # asked once
    # the default asks at once
    assert policy(min_span="1s").observe(
        alert("concept_drift", "accuracy", severity="critical", onset_minutes=-5)
    )


def test_one_warning_concept_drift_waits_for_a_second_signal():
    p = policy()  # min_signals 2
    assert p.observe(alert("concept_drift", "redo_rate", minutes=0)) is None
    request = p.observe(alert("concept_drift", "accuracy", minutes=2))
    assert request.reason == "concept drift confirmed on 2 signals: accuracy, redo_rate"
    assert request.alert_ids == [
        "voice-intent.concept_drift.accuracy",
        "voice-intent.concept_drift.redo_rate",
    ]


def test_one_warning_concept_drift_that_persists_retrains_via_advance():
    p = policy()  # persist 15 min
    assert p.observe(alert("concept_drift", "redo_rate", minutes=0)) is None
    assert p.advance(T0 + 14 * MIN) == []
    (request,) = p.advance(T0 + 15 * MIN)
    assert request.reason == "concept drift on redo_rate firing for 15m"


def test_a_resolved_alert_stops_counting():
    p = policy()
    p.observe(alert("concept_drift", "redo_rate", minutes=0))
    p.observe(alert("concept_drift", "redo_rate", minutes=5, status="resolved"))
    assert p.observe(alert("concept_drift", "accuracy", minutes=6, alert_id="other")) is None
    assert p.advance(T0 + 16 * MIN) == []  # accuracy has fired for 10 min only


def test_data_drift_on_a_key_feature_retrains_once_it_persists():
    p = policy(data_drift={"key_features": ["loudness_db"], "persist": "10m"})
    grouped = alert("data_drift", "clip_duration_s,loudness_db,mfcc_01", minutes=0)
    assert p.observe(grouped) is None
    assert p.advance(T0 + 9 * MIN) == []
    (request,) = p.advance(T0 + 10 * MIN)
    assert request.reason == "data drift on key features loudness_db firing for 10m"
    assert request.alert_ids == [grouped.alert_id]


@pytest.mark.parametrize(
    "uncovered",
    [
        alert("data_drift", "mfcc_01,mfcc_02", severity="critical"),  # not a key feature
        alert("input_metric", "feature.loudness_db.mean", severity="critical"),
        alert("software_metric", "latency_p99_ms", severity="critical"),
        alert("output_metric", "null_rate", severity="critical"),
        alert("concept_drift", "accuracy", severity="info"),  # below min_severity
        alert("concept_drift", "accuracy", severity="critical", model="wake-word"),  # not listed
    ],
    ids=["other-feature", "input", "software", "output", "info", "other-model"],
)
def test_drift_the_policy_does_not_cover_never_retrains(uncovered):
    p = policy(models=["voice-intent"], data_drift={"key_features": ["loudness_db"]})
    assert p.observe(uncovered) is None
    assert p.advance(T0 + timedelta(days=2)) == []


def test_disabled_triggers_do_not_fire():
    p = policy(concept_drift={"enabled": False})
    assert p.observe(alert("concept_drift", "accuracy", severity="critical")) is None
    assert (
        policy(enabled=False).observe(alert("concept_drift", "accuracy", severity="critical"))
        is None
    )


def test_cooldown_per_model_holds_back_a_retrain_storm():
    p = policy(cooldown="6h")
    first = p.observe(alert("concept_drift", "accuracy", severity="critical"))
    assert first is not None
    for minutes in range(10, 6 * 60, 10):
        later = alert("concept_drift", "redo_rate", severity="critical", minutes=minutes)
        assert p.observe(later) is None
    # another model is not held back
    assert p.observe(alert("concept_drift", "accuracy", severity="critical", model="wake-word"))
    # after the cooldown a drift still firing asks again
    (again,) = p.advance(T0 + 6 * 60 * MIN)
    assert again.request_id != first.request_id


def test_a_replay_asks_for_the_same_request_ids():
    stream = [
        alert("concept_drift", "redo_rate", minutes=0),
        alert("concept_drift", "accuracy", minutes=1),
        alert("concept_drift", "accuracy", minutes=500, severity="critical", alert_id="later"),
    ]

    def requests():
        p = policy(cooldown="1h")
        return [r for a in stream if (r := p.observe(a)) is not None]

    first, again = requests(), requests()
    assert len(first) == 2 and first == again
    assert len({r.request_id for r in first}) == 2


def test_from_detections_to_one_request():
    """A concept-drift detector firing every 100 events for 100 000 events (100 events/s)
    plus 50 drifting features: alerts flow through the grouper, one retrain request results."""
    config = AlertPolicyConfig.from_yaml_text(
        "retrain: {data_drift: {key_features: [mfcc_07]}, cooldown: 6h}"
    )
    grouper, retrain = config.grouper(), config.retrain_policy()
    requests = []
    alerts = 0
    for index in range(0, 100_000, 100):
        now = T0 + timedelta(seconds=index / 100)
        detections = [
            Detection(
                "voice-intent",
                "3",
                "accuracy",
                "concept_drift",
                "warning",
                "fisher",
                0.001,
                0.01,
                now,
                now - 10 * MIN,
                now,
                2000,
            )
        ]
        if index % 10_000 == 0:
            detections += [
                Detection(
                    "voice-intent",
                    "3",
                    f"mfcc_{i:02d}",
                    "data_drift",
                    "warning",
                    "ks",
                    0.3,
                    0.2,
                    now,
                    now - 5 * MIN,
                    now,
                    2000,
                )
                for i in range(50)
            ]
        for d in detections:
            for a in grouper.observe(d):
                alerts += 1
                if (r := retrain.observe(a)) is not None:
                    requests.append(r)
        requests += retrain.advance(now)
    assert alerts <= 4
    assert len(requests) == 1
    (request,) = requests
    assert request.window.end - request.window.start >= timedelta(hours=1)


def test_an_alert_that_caused_a_request_causes_no_other_while_it_keeps_firing():
    """After the cooldown, the same firing alert (re-notified, joined by a signal) does not
    retrain again: its request is being served. The drift seen on the retrained version is
    a new alert, and does."""
    p = policy(cooldown="1m")
    first = p.observe(alert("concept_drift", "error_rate", severity="critical", minutes=0))
    assert first is not None
    renotified = alert("concept_drift", "error_rate,redo_rate", severity="critical", minutes=5,
                       alert_id="voice-intent.concept_drift.error_rate")  # fmt: skip
    assert p.observe(renotified) is None
    assert p.advance(T0 + 30 * MIN) == []
    on_new_version = alert("concept_drift", "error_rate", severity="critical", minutes=31,
                           alert_id="voice-intent.v4.concept_drift.error_rate")  # fmt: skip
    second = p.observe(on_new_version)
    assert second is not None and second.alert_ids == ["voice-intent.v4.concept_drift.error_rate"]
