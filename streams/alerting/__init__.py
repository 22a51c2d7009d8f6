"""The alert policy: metric rules, grouping and dedup of detections, retraining triggers.

Pure and Kafka-free: every input carries its event time and every output is a
wire payload (``AlertData``, ``RetrainRequestData``) for the agent to publish.

- :mod:`~streams.alerting.rules` — static and adaptive thresholds on window
  metrics, with ``for`` and hysteresis, emitting firing/resolved detections;
- :mod:`~streams.alerting.grouping` — Alertmanager-style dedup and grouping
  per (model, kind, signal) / (model, kind): group_wait, group_interval,
  repeat_interval, resolve_timeout;
- :mod:`~streams.alerting.retrain_policy` — alerts to retrain requests, with
  a cooldown per model;
- :mod:`~streams.alerting.config` — all of it from one YAML file.
"""

from streams.alerting.config import (
    AdaptiveRuleConfig,
    AlertPolicyConfig,
    ConceptDriftTrigger,
    DataDriftTrigger,
    GroupingConfig,
    RetrainPolicyConfig,
    StaticRuleConfig,
)
from streams.alerting.detection import KINDS, SEVERITIES, Detection, severity_rank
from streams.alerting.exceptions import (
    AlertingError,
    PolicyConfigError,
    RuleSyntaxError,
    UnknownMetricError,
)
from streams.alerting.grouping import AlertGrouper, alert_id_for, alert_signals
from streams.alerting.retrain_policy import RetrainPolicy, request_id_for
from streams.alerting.rules import (
    METRIC_NAMES,
    METRIC_PATTERNS,
    AdaptiveRule,
    MetricRules,
    StaticRule,
    check_metric,
    metric_kind,
    parse_duration,
    parse_rule,
)

__all__ = [
    "KINDS",
    "METRIC_NAMES",
    "METRIC_PATTERNS",
    "SEVERITIES",
    "AdaptiveRule",
    "AdaptiveRuleConfig",
    "AlertGrouper",
    "AlertPolicyConfig",
    "AlertingError",
    "ConceptDriftTrigger",
    "DataDriftTrigger",
    "Detection",
    "GroupingConfig",
    "MetricRules",
    "PolicyConfigError",
    "RetrainPolicy",
    "RetrainPolicyConfig",
    "RuleSyntaxError",
    "StaticRule",
    "StaticRuleConfig",
    "UnknownMetricError",
    "alert_id_for",
    "alert_signals",
    "check_metric",
    "metric_kind",
    "parse_duration",
    "parse_rule",
    "request_id_for",
    "severity_rank",
]
