"""Metric rules: parsing, for/hysteresis state machines, adaptive bands (vs river), config."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from river import stats

from streams.alerting import (
    AdaptiveRule,
    AlertPolicyConfig,
    MetricRules,
    PolicyConfigError,
    RuleSyntaxError,
    UnknownMetricError,
    metric_kind,
    parse_duration,
    parse_rule,
)
from streams.events import MetricsData

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def window(
    i: int,
    metrics: dict[str, float | None],
    *,
    size_s: int = 60,
    version: str = "3",
    count: int = 100,
    segment: dict[str, str] | None = None,
) -> MetricsData:
    return MetricsData(
        model="voice-intent",
        model_version=version,
        segment=segment,
        window_start=T0 + timedelta(seconds=size_s * i),
        window_end=T0 + timedelta(seconds=size_s * (i + 1)),
        count=count,
        metrics=metrics,
    )


def statuses(rules: MetricRules, metric: str, values: list[float | None], **kw) -> list[str]:
    """Per window: '' (nothing), 'firing' or 'resolved'."""
    out = []
    for i, value in enumerate(values):
        detections = rules.observe(window(i, {metric: value}, **kw))
        out.append(",".join(d.status for d in detections))
    return out


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("latency_p99_ms > 300", ("latency_p99_ms", ">", 300.0, 1, 0.0, None, None, 1)),
        ("null_rate>=0.02", ("null_rate", ">=", 0.02, 1, 0.0, None, None, 1)),
        ("accuracy < 0.8 for 3 windows", ("accuracy", "<", 0.8, 3, 0.0, None, None, 1)),
        ("error_rate > 5e-2 for 2m", ("error_rate", ">", 0.05, 1, 120.0, None, None, 1)),
        (
            "latency_p99_ms > 300 for 1 window resolve 250 for 2 windows",
            ("latency_p99_ms", ">", 300.0, 1, 0.0, "<", 250.0, 2),
        ),
        (
            "  feature.loudness_db.mean <= -40 resolve >= -35  ",
            ("feature.loudness_db.mean", "<=", -40.0, 1, 0.0, ">=", -35.0, 1),
        ),
    ],
)
def test_parse_rule_reads_metric_operator_threshold_for_and_resolve(text, expected):
    rule = parse_rule(text)
    got = (
        rule.metric,
        rule.op,
        rule.threshold,
        rule.for_windows,
        rule.for_s,
        rule.resolve_op,
        rule.resolve_at,
        rule.resolve_windows,
    )
    assert got == expected


@pytest.mark.parametrize(
    "text", ["latency_p99_ms", "latency_p99_ms = 300", "> 300", "null_rate > high", ""]
)
def test_bad_syntax_shows_the_grammar(text):
    with pytest.raises(RuleSyntaxError, match=r"write METRIC OP NUMBER .* e\.g\. 'latency_p99_ms"):
        parse_rule(text)


def test_unknown_metric_lists_the_names_that_exist():
    with pytest.raises(UnknownMetricError) as caught:
        parse_rule("latency_99 > 300")
    message = str(caught.value)
    assert "unknown metric 'latency_99'" in message
    for name in ("latency_p99_ms", "null_rate", "error_rate", "feature.<name>.mean"):
        assert name in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("latency_p99_ms > 300 resolve > 250", "resolves on '<' or '<='"),
        ("latency_p99_ms > 300 resolve < 350", "clear side of the threshold 300"),
        ("accuracy < 0.8 resolve > 0.7", "clear side of the threshold 0.8"),
        ("null_rate > 0.1 for 0 windows", "at least 1 window"),
        ("null_rate > 0.1 for 5 fortnights", "invalid duration"),
        ("null_rate > 0.1 resolve < 0.05 for 2m", "resolve 'for' counts windows"),
    ],
)
def test_inconsistent_rules_are_refused_with_the_reason(text, match):
    with pytest.raises(RuleSyntaxError, match=match):
        parse_rule(text)


def test_durations():
    assert [parse_duration(t) for t in ("90", "30s", "5m", "1h30m", "2d", "1w")] == [
        90.0,
        30.0,
        300.0,
        5400.0,
        172800.0,
        604800.0,
    ]
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(-1)


def test_metric_kinds_follow_the_monitor_catalogue():
    assert metric_kind("qps") == "software_metric"
    assert metric_kind("label_delay_p95_ms") == "software_metric"
    assert metric_kind("label.freq.weather") == "output_metric"
    assert metric_kind("redo_rate") == "output_metric"
    assert metric_kind("feature.locale.freq.en") == "input_metric"


# --------------------------------------------------------------------------- static rules


def test_for_windows_waits_then_fires_and_resolves():
    rules = MetricRules(static=[parse_rule("null_rate > 0.02 for 3 windows")])
    got = statuses(rules, "null_rate", [0.05, 0.05, 0.01, 0.05, 0.05, 0.05, 0.04, 0.0])
    # the dip at window 2 restarts the count; fires on the 3rd consecutive breach
    assert got == ["", "", "", "", "", "firing", "firing", "resolved"]


def test_for_duration_counts_event_time_not_windows():
    rule = "error_rate > 0.1 for 2m"
    minute = MetricRules(static=[parse_rule(rule)])
    assert statuses(minute, "error_rate", [0.5, 0.5, 0.5]) == ["", "firing", "firing"]
    ten_s = MetricRules(static=[parse_rule(rule)])
    got = statuses(ten_s, "error_rate", [0.5] * 13, size_s=10)
    assert got.index("firing") == 11  # 12 windows of 10 s = 120 s held


def test_hysteresis_keeps_a_flapping_metric_from_flapping_the_alert():
    flapping = [320.0, 290.0] * 20  # hovers around the 300 ms threshold
    plain = MetricRules(static=[parse_rule("latency_p99_ms > 300")])
    plain_statuses = statuses(plain, "latency_p99_ms", flapping)
    banded = MetricRules(static=[parse_rule("latency_p99_ms > 300 resolve < 250 for 2 windows")])
    banded_statuses = statuses(banded, "latency_p99_ms", flapping)

    assert plain_statuses.count("resolved") == 20  # without hysteresis: every dip resolves
    assert banded_statuses.count("resolved") == 0
    assert banded_statuses == ["firing"] * 40  # one episode, refreshed every window
    # and it does resolve once the value really is back, for 2 windows
    tail = [statuses(banded, "latency_p99_ms", [v])[0] for v in (240.0, 240.0)]
    assert tail == ["firing", "resolved"]


def test_detection_names_what_a_person_needs():
    rule = parse_rule("latency_p99_ms > 300 for 2 windows", severity="critical")
    rules = MetricRules(static=[rule])
    segment = {"locale": "en-GB"}
    rules.observe(window(0, {"latency_p99_ms": 350.0}, count=120, segment=segment))
    (fired,) = rules.observe(window(1, {"latency_p99_ms": 410.0}, count=80, segment=segment))
    assert (fired.model, fired.model_version) == ("voice-intent", "3")
    assert fired.signal == "latency_p99_ms"
    assert (fired.kind, fired.severity, fired.detector) == ("software_metric", "critical", "static")
    assert (fired.statistic, fired.threshold) == (410.0, 300.0)
    assert fired.evidence_start == T0 and fired.evidence_end == T0 + timedelta(minutes=2)
    assert fired.evidence_events == 200 and fired.detected_at == fired.evidence_end
    assert fired.segment == segment
    assert fired.summary == "latency_p99_ms = 410 > 300 (static rule)"


def test_missing_or_unmeasurable_values_leave_the_state_alone():
    rules = MetricRules(static=[parse_rule("accuracy < 0.8 for 2 windows")])
    got = statuses(rules, "accuracy", [0.7, None, 0.7, None, 0.9])
    assert got == ["", "", "firing", "", "resolved"]
    assert rules.observe(window(9, {"null_rate": 0.5})) == []  # metric absent


def test_series_are_kept_apart_by_version_and_window_size():
    rules = MetricRules(static=[parse_rule("error_rate > 0.1 for 2 windows")])
    rules.observe(window(0, {"error_rate": 0.5}, version="3"))
    # another version and another window size do not complete the first one's count
    assert rules.observe(window(1, {"error_rate": 0.5}, version="4")) == []
    assert rules.observe(window(1, {"error_rate": 0.5}, size_s=10)) == []
    assert [d.status for d in rules.observe(window(1, {"error_rate": 0.5}, version="3"))] == [
        "firing"
    ]
    assert rules.series == 3


# --------------------------------------------------------------------------- adaptive rules


def test_adaptive_band_is_the_river_ewma_of_the_windows_so_far():
    rng = np.random.default_rng(11)
    values = list(100 + rng.normal(0, 5, size=40))
    rule = AdaptiveRule("latency_p99_ms", k_sigma=3, warmup_windows=10, fading_factor=0.2)
    rules = MetricRules(adaptive=[rule])
    mean, var = stats.EWMean(0.2), stats.EWVar(0.2)
    spike = 200.0
    for i, value in enumerate(values):
        assert rules.observe(window(i, {"latency_p99_ms": value})) == []
        mean.update(value)
        var.update(value)
    (fired,) = rules.observe(window(40, {"latency_p99_ms": spike}))
    std = max(math.sqrt(var.get()), 0.01 * abs(mean.get()))
    assert fired.threshold == pytest.approx(mean.get() + 3 * std, rel=1e-12)
    assert fired.detector == "adaptive" and fired.status == "firing"


def test_adaptive_rule_fires_on_a_shift_after_warmup_and_resolves_when_back():
    rng = np.random.default_rng(5)
    normal = list(0.01 + rng.normal(0, 0.002, size=30))
    shifted = [0.05] * 5
    back = list(0.01 + rng.normal(0, 0.002, size=5))
    rules = MetricRules(
        adaptive=[AdaptiveRule("null_rate", k_sigma=4, warmup_windows=10, direction="up")]
    )
    got = statuses(rules, "null_rate", normal + shifted + back)
    assert got[:30] == [""] * 30  # stationary: silent (including the warm-up)
    assert got[30:35] == ["firing"] * 5  # the baseline does not learn the anomaly
    assert got[35] == "resolved" and got[36:] == [""] * 4


def test_adaptive_rule_does_not_fire_during_warmup_or_against_its_direction():
    rules = MetricRules(
        adaptive=[AdaptiveRule("accuracy", k_sigma=3, warmup_windows=5, direction="down")]
    )
    got = statuses(rules, "accuracy", [0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 1.0, 1.0, 0.2])
    assert got[:5] == [""] * 5  # the 0.1 during warm-up is learned, not alerted
    assert got[9] == "firing"  # a fall fires; rises (1.0) do not


def test_adaptive_false_alarms_on_a_long_stationary_series_are_rare():
    rng = np.random.default_rng(2026)
    rules = MetricRules(adaptive=[AdaptiveRule("latency_p99_ms", k_sigma=4, warmup_windows=20)])
    got = statuses(rules, "latency_p99_ms", list(300 + rng.normal(0, 20, size=2000)))
    episodes = got.count("resolved") + (got[-1] == "firing")
    assert episodes <= 5, episodes


def test_adaptive_rule_refuses_inconsistent_settings():
    with pytest.raises(ValueError, match="resolve_k_sigma <= k_sigma"):
        AdaptiveRule("null_rate", k_sigma=2, resolve_k_sigma=3)
    with pytest.raises(UnknownMetricError):
        AdaptiveRule("nul_rate")


# --------------------------------------------------------------------------- configuration


def test_config_builds_the_rules_and_reports_every_bad_field():
    config = AlertPolicyConfig.from_yaml_text(
        """
        rules:
          - latency_p99_ms > 300 for 3 windows resolve < 250
          - rule: null_rate > 0.02 for 2m
            severity: critical
        adaptive:
          - {metric: error_rate, k_sigma: 4, direction: up}
        """
    )
    rules = config.metric_rules()
    assert [(r.metric, r.severity) for r in rules.static] == [
        ("latency_p99_ms", "warning"),
        ("null_rate", "critical"),
    ]
    assert rules.adaptive[0].k_sigma == 4 and rules.adaptive[0].direction == "up"

    with pytest.raises(PolicyConfigError) as caught:
        AlertPolicyConfig.from_yaml_text(
            "rules: ['null_rate >> 1']\nadaptive: [{metric: null_rate, k_sigam: 3}]\n"
            "grouping: {group_wait: soon}\n"
        )
    message = str(caught.value)
    assert "rules[0].rule: cannot parse rule 'null_rate >> 1'" in message
    assert "adaptive[0].k_sigam: unknown field" in message
    assert "grouping.group_wait: invalid duration 'soon'" in message


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(PolicyConfigError, match="cannot read the alert policy file"):
        AlertPolicyConfig.from_yaml(tmp_path / "missing.yaml")
    path = tmp_path / "policy.yaml"
    path.write_text("- just a list\n")
    with pytest.raises(PolicyConfigError, match=f"{path}: the top level must be a mapping"):
        AlertPolicyConfig.from_yaml(path)
    path.write_text("")
    assert AlertPolicyConfig.from_yaml(path) == AlertPolicyConfig()
