"""Scoring a backtest: detection delay, misses and false alarms from hand-made alert lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from typer.testing import CliRunner

from producers.backtest import (
    BacktestAlert,
    BacktestError,
    BacktestReport,
    DriftPoint,
    PredictionTimeline,
    parse_event_time,
    score_alerts,
)
from producers.backtest_cli import backtest_app, print_report

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
HORIZON = timedelta(minutes=5)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(
    seconds: float,
    *signals: str,
    detector: str = "cusum",
    group: str | None = None,
    status: str = "firing",
    kind: str = "data_drift",
) -> BacktestAlert:
    return BacktestAlert(
        at=at(seconds),
        model="m",
        model_version="1",
        kind=kind,
        pattern="sudden",
        status=status,
        severity="warning",
        signals=signals,
        detector=detector,
        statistic=31.0,
        threshold=30.0,
        alert_id=group or f"g-{seconds}-{'-'.join(signals)}",
    )


def timeline(events_per_s: int, seconds: int) -> PredictionTimeline:
    return PredictionTimeline(at(i / events_per_s) for i in range(events_per_s * seconds))


def test_delay_is_the_first_alert_at_or_after_the_drift_point_in_seconds_and_events():
    alerts = [alert(30, "x"), alert(45, "x", group="late"), alert(52.5, "x", group="later")]
    score = score_alerts(
        alerts, [DriftPoint(at(40), "x")], horizon=HORIZON, timeline=timeline(100, 120)
    )
    [result] = score.points
    assert result.detected and result.alert is alerts[1]
    assert result.delay_s == 5.0
    assert result.delay_events == 500  # 100 predictions a second for 5 s
    # the alert before the drift point is a false alarm; the one after the first is not
    assert score.verdicts == ("false_alarm", "detection", "after_drift")
    assert [a.at for a in score.false_alarms] == [at(30)]
    assert score.misses == 0


def test_a_drift_point_with_no_alert_within_the_horizon_is_a_miss():
    alerts = [alert(40 + 301, "x")]  # 1 s too late
    score = score_alerts(alerts, [DriftPoint(at(40), "x")], horizon=HORIZON)
    [result] = score.points
    assert not result.detected and result.delay_s is None and result.delay_events is None
    assert score.misses == 1
    # it is explained by the drift point (not a false alarm), just too late to count
    assert score.verdicts == ("after_drift",)
    assert not score.false_alarms
    [cusum] = score.detectors
    assert (cusum.detected, cusum.missed, cusum.false_alarms) == (0, 1, 0)


def test_an_alert_exactly_at_the_horizon_still_counts():
    score = score_alerts([alert(40 + 300, "x")], [DriftPoint(at(40), "x")], horizon=HORIZON)
    assert score.points[0].delay_s == 300.0


def test_alerts_on_a_signal_the_drift_points_do_not_name_are_false_alarms():
    alerts = [alert(41, "y", detector="ks"), alert(42, "x")]
    score = score_alerts(alerts, [DriftPoint(at(40), "x")], horizon=HORIZON)
    assert score.verdicts == ("false_alarm", "detection")
    assert score.points[0].alert is alerts[1]
    by_name = {d.detector: d for d in score.detectors}
    assert by_name["ks"].false_alarms == 1 and by_name["ks"].detected == 0
    assert by_name["cusum"].false_alarms == 0 and by_name["cusum"].detected == 1


def test_a_drift_point_without_a_signal_is_found_by_any_signal():
    alerts = [alert(43, "y")]
    score = score_alerts(alerts, [DriftPoint(at(40))], horizon=HORIZON)
    assert score.points[0].delay_s == 3.0 and score.verdicts == ("detection",)


def test_a_group_repeating_its_signals_is_one_false_alarm_and_detects_nothing():
    # a group opened by a false alarm on x, repeated after the drift on x: the repeat told
    # nobody anything new, so it neither detects the drift nor counts as a second false alarm
    alerts = [alert(10, "x", group="g"), alert(50, "x", group="g")]
    score = score_alerts(alerts, [DriftPoint(at(40), "x")], horizon=HORIZON)
    assert score.verdicts == ("false_alarm", "after_drift")
    assert len(score.false_alarms) == 1
    assert score.misses == 1


def test_a_signal_joining_a_group_after_the_drift_is_its_detection():
    alerts = [alert(10, "y", group="g"), alert(46, "x", "y", group="g")]
    score = score_alerts(alerts, [DriftPoint(at(40), "x")], horizon=HORIZON)
    assert score.points[0].alert is alerts[1] and score.points[0].delay_s == 6.0
    assert score.verdicts == ("false_alarm", "detection")


def test_an_unexplained_signal_joining_a_group_is_a_false_alarm():
    alerts = [alert(41, "x", group="g"), alert(45, "x", "z", group="g")]
    score = score_alerts(alerts, [DriftPoint(at(40), "x")], horizon=HORIZON)
    assert score.verdicts == ("detection", "false_alarm")


def test_resolved_alerts_are_listed_but_never_scored():
    alerts = [alert(20, "x", status="resolved"), alert(50, "x", status="resolved")]
    score = score_alerts(alerts, [DriftPoint(at(40), "x")], horizon=HORIZON)
    assert score.verdicts == ("resolved", "resolved")
    assert score.misses == 1 and not score.false_alarms and not score.detectors


def test_each_detector_gets_its_own_delay_and_misses_over_several_drift_points():
    alerts = [
        alert(42, "x", detector="cusum", group="a"),
        alert(49, "x", detector="ks", group="b"),
        alert(201, "y", detector="ks", group="c"),
    ]
    points = [DriftPoint(at(40), "x"), DriftPoint(at(200), "y"), DriftPoint(at(400), "z")]
    score = score_alerts(alerts, points, horizon=timedelta(seconds=60), timeline=timeline(10, 500))
    assert [p.delay_s for p in score.points] == [2.0, 1.0, None]
    assert score.points[0].by_detector == {"cusum": (2.0, 20), "ks": (9.0, 90)}
    by_name = {d.detector: d for d in score.detectors}
    assert by_name["cusum"].delays_s == (2.0,) and by_name["cusum"].missed == 2
    assert by_name["ks"].delays_s == (9.0, 1.0) and by_name["ks"].missed == 1
    assert by_name["ks"].median_delay_s == 5.0 and by_name["ks"].median_delay_events == 50.0
    assert score.misses == 1 and not score.false_alarms


def test_an_alert_before_the_only_drift_point_of_its_signal_is_false_even_after_another_point():
    # y drifts at 200: an alert on y at 100 is after the x drift point but not explained
    alerts = [alert(100, "y")]
    points = [DriftPoint(at(40), "x"), DriftPoint(at(200), "y")]
    score = score_alerts(alerts, points, horizon=HORIZON)
    assert score.verdicts == ("false_alarm",)


def test_no_drift_points_makes_every_firing_alert_a_false_alarm():
    score = score_alerts([alert(5, "x"), alert(6, "y")], [], horizon=HORIZON)
    assert len(score.false_alarms) == 2 and score.points == ()


def test_the_score_serialises_to_json():
    score = score_alerts([alert(42, "x")], [DriftPoint(at(40), "x")], horizon=HORIZON)
    body = score.to_dict()
    assert body["detected"] == 1 and body["misses"] == 0 and body["false_alarms"] == 0
    assert body["drift_points"][0]["delay_s"] == 2.0
    assert body["drift_points"][0]["alert"]["time"] == "2026-06-01T08:00:42Z"
    assert body["detectors"][0]["detector"] == "cusum"


def test_a_horizon_must_be_positive():
    with pytest.raises(BacktestError, match="horizon must be positive"):
        score_alerts([], [DriftPoint(at(0))], horizon=timedelta(0))


def test_timeline_counts_half_open_ranges_whatever_the_order_of_adding():
    line = PredictionTimeline([at(3), at(1), at(2), at(2)])
    assert line.count_between(at(2), at(3)) == 2
    assert line.count_between(at(0), at(10)) == 4
    assert line.count_between(at(3), at(2)) == 0
    line.add(at(2.5))
    assert line.count_between(at(2), at(3)) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01T08:00:40Z", DriftPoint(at(40))),
        ("2026-06-01T08:00:40", DriftPoint(at(40))),
        ("2026-06-01T10:00:40+02:00", DriftPoint(at(40))),
        ("2026-06-01T08:00:40Z:loudness_db", DriftPoint(at(40), "loudness_db")),
        ("2026-06-01T08:00:40.500000+00:00:x", DriftPoint(at(40.5), "x")),
        (f"{at(40).timestamp():.0f}:snr_db", DriftPoint(at(40), "snr_db")),
    ],
)
def test_drift_points_parse_with_and_without_a_signal(text, expected):
    assert DriftPoint.parse(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z:x", ":x", "2026-06-01:"])
def test_bad_drift_points_say_how_to_write_one(text):
    with pytest.raises(BacktestError, match="TIME"):
        DriftPoint.parse(text)


def test_event_times_read_iso_and_epoch_seconds():
    assert parse_event_time("1780300840.5") == at(40.5)
    assert parse_event_time(" 2026-06-01T08:00:40Z ") == at(40)


def _report(alerts, score) -> BacktestReport:
    return BacktestReport(
        file="history.csv",
        topic_prefix="backtest-x.",
        alerts=tuple(alerts),
        retrain_requests=(),
        score=score,
        predictions=8000,
        feedback=0,
        rejected=0,
        first_time=T0,
        last_time=at(80),
        replay_s=1.0,
        monitor_s=2.0,
    )


def test_the_tables_show_each_alert_its_verdict_and_the_score():
    alerts = [alert(30, "y", detector="ks"), alert(40.8, "loudness_db")]
    points = [DriftPoint(at(40), "loudness_db"), DriftPoint(at(70), "snr_db")]
    report = _report(alerts, score_alerts(alerts, points, horizon=HORIZON))
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert "2026-06-01 08:00:40.800" in text and "31 vs 30" in text
    assert "false alarm" in text and "detection" in text and "missed" in text
    assert "1 of 2 drift points detected, 1 missed, 1 false alarms" in text
    body = report.to_dict()
    assert [a["verdict"] for a in body["alerts"]] == ["false_alarm", "detection"]


def test_without_alerts_the_report_says_no_alert_would_have_fired():
    console = Console(record=True, width=200)
    print_report(_report([], None), console)
    assert "no alert would have fired" in console.export_text()


def test_the_command_refuses_a_bad_drift_point_before_touching_the_broker(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("time,request_id,x,latency_ms\n2026-06-01T08:00:00Z,r1,1.0,5\n")
    done = CliRunner().invoke(
        backtest_app, [str(path), "--model", "m", "--model-version", "1", "--drift-at", "soon"]
    )
    assert done.exit_code == 2, done.output
    assert "write TIME or TIME:SIGNAL" in done.output


def test_the_command_refuses_a_missing_file(tmp_path):
    done = CliRunner().invoke(backtest_app, [str(tmp_path / "nope.csv"), "--model", "m"])
    assert done.exit_code == 2 and "no such file" in done.output
