"""Alert grouping: Alertmanager timers in event time, dedup, resolve, determinism, storms."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from streams.alerting import AlertGrouper, Detection, alert_id_for, alert_signals
from streams.events import AlertData, AlertEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def detection(
    seconds: float,
    signal: str = "loudness_db",
    *,
    kind: str = "data_drift",
    severity: str = "warning",
    model: str = "voice-intent",
    status: str = "firing",
    statistic: float = 0.3,
) -> Detection:
    now = at(seconds)
    return Detection(
        model=model,
        model_version="3",
        signal=signal,
        kind=kind,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        detector="ks",
        statistic=statistic,
        threshold=0.2,
        detected_at=now,
        evidence_start=now - timedelta(seconds=60),
        evidence_end=now,
        evidence_events=500,
        pattern="sudden",
        status=status,  # type: ignore[arg-type]
    )


def grouper() -> AlertGrouper:
    return AlertGrouper(
        group_wait_s=30, group_interval_s=300, repeat_interval_s=3600, resolve_timeout_s=600
    )


def run(g: AlertGrouper, detections: list[Detection], until: float) -> list[AlertData]:
    sent: list[AlertData] = []
    for d in detections:
        sent += g.observe(d)
    return sent + g.advance(at(until))


def brief(alerts: list[AlertData]) -> list[tuple[str, float, str]]:
    return [(a.status, (a.detected_at - T0).total_seconds(), a.signal) for a in alerts]


def test_group_wait_gathers_signals_that_drift_together_into_one_alert():
    g = grouper()
    sent = run(g, [detection(0, "a"), detection(10, "b"), detection(29, "c")], until=100)
    assert brief(sent) == [("firing", 30, "a,b,c")]
    (alert,) = sent
    assert alert_signals(alert) == ["a", "b", "c"]
    assert alert.alert_id == alert_id_for("voice-intent", "data_drift", "a", T0, "3")
    assert alert.evidence.start == at(-60) and alert.evidence.end == at(29)
    assert alert.evidence.events == 1500
    assert alert.summary.startswith("data_drift on 3 signals of voice-intent:3: a, b, c")
    AlertEvent.new(alert)  # a valid wire payload


def test_nothing_is_sent_before_group_wait():
    g = grouper()
    assert g.observe(detection(0)) == []
    assert g.advance(at(29.9)) == []
    assert brief(g.advance(at(30))) == [("firing", 30, "loudness_db")]


def test_repeats_only_refresh_until_repeat_interval():
    g = grouper()
    sent = run(g, [detection(s) for s in range(0, 7300, 10)], until=7300)
    # firing at 30 s, again after each repeat_interval (1 h) of no change
    assert brief(sent) == [
        ("firing", 30, "loudness_db"),
        ("firing", 3630, "loudness_db"),
        ("firing", 7230, "loudness_db"),
    ]
    assert len({a.alert_id for a in sent}) == 1


def test_a_change_is_reported_no_sooner_than_group_interval():
    g = grouper()
    sent = run(g, [detection(0, "a"), detection(100, "b"), detection(200, "a")], until=400)
    # b joins at 100 s; the first notification was at 30 s, so the next is at 330 s
    assert brief(sent) == [("firing", 30, "a"), ("firing", 330, "a,b")]


def test_a_change_after_group_interval_is_reported_at_once():
    g = grouper()
    sent = run(g, [detection(0, "a"), detection(500, "a"), detection(501, "b")], until=501)
    assert brief(sent) == [("firing", 30, "a"), ("firing", 501, "a,b")]


def test_rising_severity_is_a_change():
    g = grouper()
    sent = run(g, [detection(0), detection(400, severity="critical")], until=500)
    assert [(a.severity, (a.detected_at - T0).total_seconds()) for a in sent] == [
        ("warning", 30),
        ("critical", 400),
    ]


def test_a_signal_found_gradual_on_a_second_look_is_a_change_and_stays_gradual():
    from dataclasses import replace

    g = grouper()
    gradual = replace(detection(400), pattern="gradual")
    sent = run(g, [detection(0), gradual, detection(800), detection(1300)], until=1300)
    # the relabel is reported (group_interval after the first notification); the sudden
    # detections after it neither revert the label nor count as a change
    assert [(a.pattern, (a.detected_at - T0).total_seconds()) for a in sent] == [
        ("sudden", 30),
        ("gradual", 400),
    ]


def test_signals_resolve_after_resolve_timeout_of_quiet_and_the_group_with_them():
    g = grouper()
    sent = run(g, [detection(0, "a"), detection(5, "b"), detection(500, "b")], until=5000)
    # a is quiet from 0 s and clears at 600 s while b fires on: a change, reported at once
    # (group_interval has passed); b is quiet from 500 s, clears at 1100 s: the group resolves
    assert brief(sent) == [
        ("firing", 30, "a,b"),
        ("firing", 600, "b"),
        ("resolved", 1100, "b"),
    ]
    assert len({a.alert_id for a in sent}) == 1
    assert g.active_groups == 0


def test_a_rule_resolving_resolves_at_once():
    g = grouper()
    sent = run(
        g,
        [
            detection(0, "latency_p99_ms", kind="software_metric"),
            detection(60, "latency_p99_ms", kind="software_metric"),
            detection(120, "latency_p99_ms", kind="software_metric", status="resolved"),
        ],
        until=120,
    )
    assert brief(sent) == [("firing", 30, "latency_p99_ms"), ("resolved", 120, "latency_p99_ms")]


def test_a_rule_refreshing_exactly_every_resolve_timeout_stays_one_episode():
    g = grouper()  # resolve_timeout 600 s, the rule's windows are 600 s long too
    stream = [detection(s, "latency_p99_ms", kind="software_metric") for s in range(0, 6001, 600)]
    sent = run(g, stream, until=6000)
    assert brief(sent) == [("firing", 30, "latency_p99_ms"), ("firing", 3630, "latency_p99_ms")]


def test_a_blip_cleared_before_anyone_was_told_sends_nothing():
    g = grouper()
    d = detection(0, "latency_p99_ms", kind="software_metric")
    resolved = detection(10, "latency_p99_ms", kind="software_metric", status="resolved")
    assert run(g, [d, resolved], until=5000) == []


def test_kinds_and_models_are_separate_groups():
    g = grouper()
    sent = run(
        g,
        [
            detection(0, "loudness_db"),
            detection(0, "accuracy", kind="concept_drift"),
            detection(0, "loudness_db", model="wake-word"),
        ],
        until=30,
    )
    assert sorted((a.model, a.kind) for a in sent) == [
        ("voice-intent", "concept_drift"),
        ("voice-intent", "data_drift"),
        ("wake-word", "data_drift"),
    ]
    assert len({a.alert_id for a in sent}) == 3


def test_a_new_episode_gets_a_new_id_and_a_replay_the_same_ids():
    stream = [detection(0), detection(10), detection(2000), detection(2010)]
    first = run(grouper(), stream, until=5000)
    again = run(grouper(), stream, until=5000)
    assert first == again
    assert [a.status for a in first] == ["firing", "resolved", "firing", "resolved"]
    assert first[0].alert_id == first[1].alert_id != first[2].alert_id == first[3].alert_id


def test_late_detections_do_not_move_event_time_back():
    g = grouper()
    g.observe(detection(0))
    assert brief(g.advance(at(100))) == [("firing", 30, "loudness_db")]
    g.observe(detection(50, "late"))  # arrives after 100 s of event time: counts as seen at 100
    assert brief(g.advance(at(330))) == [("firing", 330, "late,loudness_db")]


def test_many_long_signal_names_fit_the_signal_field():
    g = grouper()
    names = [f"feature_with_a_rather_long_name_{i:03d}" for i in range(100)]
    (alert,) = run(g, [detection(0, n) for n in names], until=30)
    assert len(alert.signal) <= 512
    assert alert.signal.endswith(" more")
    shown = alert_signals(alert)
    assert shown == names[: len(shown)] and 5 < len(shown) < 100
    assert f"+{100 - len(shown)} more" in alert.signal


def test_timers_must_not_be_negative():
    with pytest.raises(ValueError, match="group_wait_s must be >= 0"):
        AlertGrouper(group_wait_s=-1)


def test_an_alert_storm_yields_a_handful_of_alerts():
    """50 features drift at once and every detector re-fires every 100 events, for 100 000
    events (100 events/s of event time); a concept-drift detector fires every 100 events too."""
    g = AlertGrouper()  # defaults: 30 s, 5 min, 4 h, 5 min
    features = [f"mfcc_{i:02d}" for i in range(50)]
    events, rate = 100_000, 100.0
    sent: list[AlertData] = []
    detections = 0
    started = time.perf_counter()
    for index in range(0, events, 100):
        seconds = index / rate
        for name in features:
            sent += g.observe(detection(seconds, name))
        sent += g.observe(detection(seconds, "accuracy", kind="concept_drift"))
        detections += len(features) + 1
    sent += g.advance(at(events / rate + 3600))
    elapsed = time.perf_counter() - started
    print(
        f"\nalert storm: {detections} detections over {events} events -> {len(sent)} alerts "
        f"({elapsed * 1e6 / detections:.1f} µs per detection)"
    )
    assert detections == 51_000
    assert [(a.kind, a.status) for a in sent] == [
        ("data_drift", "firing"),
        ("concept_drift", "firing"),
        ("data_drift", "resolved"),
        ("concept_drift", "resolved"),
    ]
    assert len(alert_signals(sent[0])) == 50


def test_a_drift_on_a_retrained_version_is_a_new_alert_not_a_repeat():
    """The same signals drifting on version 4 while version 3's alert still fires: a new
    group, notified after its own group_wait (regression: it was folded into v3's group and
    never notified, so the retrain policy never saw it)."""
    grouper = AlertGrouper(group_wait_s=10, group_interval_s=60, repeat_interval_s=3600,
                           resolve_timeout_s=3600)  # fmt: skip
    sent = []
    for second in range(0, 300, 5):
        at = T0 + timedelta(seconds=second)
        sent += grouper.observe(
            Detection(
                "voice-intent",
                "3",
                "error_rate",
                "concept_drift",
                "critical",
                "cusum",
                9.0,
                5.0,
                at,
                at - timedelta(seconds=30),
                at,
                400,
            )
        )
        if second >= 200:
            sent += grouper.observe(
                Detection(
                    "voice-intent",
                    "4",
                    "error_rate",
                    "concept_drift",
                    "critical",
                    "cusum",
                    9.0,
                    5.0,
                    at,
                    at - timedelta(seconds=30),
                    at,
                    400,
                )
            )
    firing = [(a.model_version, a.detected_at - T0) for a in sent if a.status == "firing"]
    assert firing == [("3", timedelta(seconds=10)), ("4", timedelta(seconds=210))]
    assert len({a.alert_id for a in sent}) == 2
