"""The worker's alert stage resumes from its checkpoint: rule series, groups, retrain cooldowns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streams.alert_stage import AlertStage, AlertStageStateError
from streams.alerting import AlertPolicyConfig, Detection
from streams.events import MetricsData

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = AlertPolicyConfig.from_mapping(
    {
        "rules": ["latency_p99_ms > 300 for 2 windows resolve < 250 for 2 windows"],
        "grouping": {"group_wait": "0s"},
    }
)


def _window(i: int, p99: float) -> MetricsData:
    return MetricsData(
        model="voice",
        model_version="1",
        window_start=T0 + timedelta(seconds=60 * i),
        window_end=T0 + timedelta(seconds=60 * (i + 1)),
        count=100,
        metrics={"latency_p99_ms": p99},
    )


def _concept(at: datetime) -> Detection:
    return Detection("voice", "1", "error_rate", "concept_drift", "critical", "cusum",
                     statistic=9.0, threshold=8.0, detected_at=at, evidence_start=at,
                     evidence_end=at, evidence_events=100, pattern="sudden")  # fmt: skip


def test_a_pending_rule_breach_survives_the_checkpoint() -> None:
    stage = AlertStage(POLICY)
    assert stage.on_metrics(_window(0, 320)).alerts == []  # the first breach is only pending
    resumed = AlertStage.from_state(POLICY, stage.to_state())
    fired = resumed.on_metrics(_window(1, 340)).alerts
    assert [(a.kind, a.status) for a in fired] == [("software_metric", "firing")], fired
    assert fired == stage.on_metrics(_window(1, 340)).alerts


def test_a_retrain_cooldown_survives_the_checkpoint() -> None:
    stage = AlertStage(POLICY)
    asked = stage.on_detection(_concept(T0)).requests
    assert len(asked) == 1
    resumed = AlertStage.from_state(POLICY, stage.to_state())
    # the alert keeps firing; the resumed stage knows it asked already
    later = _concept(T0 + timedelta(minutes=10))
    assert resumed.on_detection(later).requests == []
    assert AlertStage(POLICY).on_detection(later).requests != []  # afresh, it would ask again


def test_state_under_another_policy_or_format_is_refused() -> None:
    state = AlertStage(POLICY).to_state()
    other = AlertPolicyConfig.from_mapping({"grouping": {"group_wait": "5s"}})
    with pytest.raises(AlertStageStateError, match="policy changed"):
        AlertStage.from_state(other, state)
    with pytest.raises(AlertStageStateError, match="unreadable"):
        AlertStage.from_state(POLICY, b"not a checkpoint")
