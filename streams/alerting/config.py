"""The alert policy's configuration: rules, grouping timers, retraining triggers, from YAML.

Every field has a default, so an empty file is a valid policy (no metric
rules, Alertmanager-like timers, retraining on confirmed concept drift).
Durations are numbers of seconds or strings such as ``30s``, ``5m``,
``1h30m``, ``2d``. A typo in a field name is an error, not a silent default.

Example file::

    rules:
      - latency_p99_ms > 300 for 3 windows resolve < 250 for 2 windows
      - rule: null_rate > 0.02 for 2m
        severity: critical
    adaptive:
      - metric: error_rate
        k_sigma: 4
        direction: up
    grouping:
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      resolve_timeout: 5m
    retrain:
      cooldown: 6h
      min_span: 1h
      data_drift:
        key_features: [loudness_db, clip_duration_s]
        persist: 10m
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from streams.alerting.detection import Severity
from streams.alerting.exceptions import AlertingError, PolicyConfigError
from streams.alerting.grouping import AlertGrouper
from streams.alerting.rules import AdaptiveRule, MetricRules, StaticRule, parse_duration, parse_rule
from streams.events import validation_errors

if TYPE_CHECKING:
    from streams.alerting.retrain_policy import RetrainPolicy

__all__ = [
    "AdaptiveRuleConfig",
    "AlertPolicyConfig",
    "ConceptDriftTrigger",
    "DataDriftTrigger",
    "Duration",
    "GroupingConfig",
    "RetrainPolicyConfig",
    "StaticRuleConfig",
]

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""Seconds; accepts ``90``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaticRuleConfig(_Config):
    """A static rule: its text (see :func:`~streams.alerting.rules.parse_rule`) and severity."""

    rule: str = Field(description="e.g. 'latency_p99_ms > 300 for 3 windows resolve < 250'.")
    severity: Severity = "warning"

    @field_validator("rule")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            parse_rule(text)
        except AlertingError as exc:
            raise ValueError(str(exc)) from None
        return text

    def build(self) -> StaticRule:
        """The rule this entry describes."""
        return parse_rule(self.rule, severity=self.severity)


class AdaptiveRuleConfig(_Config):
    """An adaptive rule (fields of :class:`~streams.alerting.rules.AdaptiveRule`)."""

    metric: str
    k_sigma: float = Field(default=3.0, gt=0)
    resolve_k_sigma: float = Field(default=2.0, gt=0)
    fading_factor: float = Field(default=0.1, gt=0, lt=1)
    warmup_windows: int = Field(default=10, ge=2)
    direction: Literal["up", "down", "both"] = "both"
    min_std: float = Field(default=0.0, ge=0)
    min_relative_std: float = Field(default=0.01, ge=0)
    for_windows: int = Field(default=1, ge=1)
    resolve_windows: int = Field(default=1, ge=1)
    severity: Severity = "warning"

    def build(self) -> AdaptiveRule:
        """The rule this entry describes."""
        try:
            return AdaptiveRule(**self.model_dump())
        except AlertingError as exc:
            raise PolicyConfigError(str(exc)) from None


class GroupingConfig(_Config):
    """Alertmanager-style timers, in event time (see :mod:`streams.alerting.grouping`)."""

    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 4 * 3600.0
    resolve_timeout: Duration = 300.0


class ConceptDriftTrigger(_Config):
    """Retrain on concept drift once it is confirmed.

    Confirmed when a firing ``concept_drift`` alert of the model reaches
    ``immediate_severity``, or ``min_signals`` distinct concept-drift signals
    fire together, or one has been firing for ``persist``.
    """

    enabled: bool = True
    min_severity: Severity = "warning"
    immediate_severity: Severity = "critical"
    min_signals: int = Field(default=2, ge=1)
    persist: Duration = 900.0


class DataDriftTrigger(_Config):
    """Retrain when data drift on a key feature has been firing for ``persist``.

    No key features (the default): data drift alone never retrains.
    """

    enabled: bool = True
    key_features: list[str] = Field(default_factory=list)
    min_severity: Severity = "warning"
    persist: Duration = 600.0


class RetrainPolicyConfig(_Config):
    """When alerts turn into retrain requests, and on which window of traffic.

    The window ends at the decision (event time) and starts at the drift onset
    (the earliest evidence of the triggering alerts) minus ``lookback``, but
    spans at least ``min_span`` and at most ``max_span``. A drift confirmed
    sooner than ``min_drifted`` after its onset waits until then (event time),
    so the window holds that much of the drifted traffic. After a request, the
    model gets no other one for ``cooldown``.
    """

    enabled: bool = True
    models: list[str] | None = Field(
        default=None, description="Models the policy may retrain; null = all."
    )
    concept_drift: ConceptDriftTrigger = Field(default_factory=ConceptDriftTrigger)
    data_drift: DataDriftTrigger = Field(default_factory=DataDriftTrigger)
    cooldown: Duration = 6 * 3600.0
    lookback: Duration = 0.0
    min_span: Duration = Field(default=3600.0, gt=0)
    max_span: Duration = Field(default=7 * 86400.0, gt=0)
    min_drifted: Duration = Field(default=0.0, ge=0)


def _rule_entry(value: object) -> object:
    return {"rule": value} if isinstance(value, str) else value


class AlertPolicyConfig(_Config):
    """The whole alert policy: metric rules, grouping timers, retraining triggers.

    Examples
    --------
    >>> config = AlertPolicyConfig.from_yaml_text('''
    ... rules:
    ...   - latency_p99_ms > 300 for 3 windows
    ...   - {rule: "null_rate > 0.02", severity: critical}
    ... grouping: {group_wait: 1m, repeat_interval: 2h}
    ... retrain: {data_drift: {key_features: [loudness_db]}}
    ... ''')
    >>> [r.build().metric for r in config.rules], config.grouping.group_wait
    (['latency_p99_ms', 'null_rate'], 60.0)
    >>> AlertPolicyConfig.from_yaml_text("rules: [latency_p99 > 300]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streams.alerting.exceptions.PolicyConfigError: alert policy: rules[0].rule: unknown metric \
'latency_p99'; known: count, qps, latency_p50_ms, ...
    """

    rules: list[Annotated[StaticRuleConfig, BeforeValidator(_rule_entry)]] = Field(
        default_factory=list
    )
    adaptive: list[AdaptiveRuleConfig] = Field(default_factory=list)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    retrain: RetrainPolicyConfig = Field(default_factory=RetrainPolicyConfig)

    @field_validator("adaptive")
    @classmethod
    def _adaptive_rules_valid(cls, entries: list[AdaptiveRuleConfig]) -> list[AdaptiveRuleConfig]:
        for entry in entries:
            try:
                entry.build()
            except (AlertingError, ValueError) as exc:
                raise ValueError(str(exc)) from None
        return entries

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, origin: str = "alert policy") -> Self:
        """Validate a parsed mapping; :class:`PolicyConfigError` names every bad field."""
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            problems = "; ".join(str(e) for e in validation_errors(exc))
            raise PolicyConfigError(f"{origin}: {problems}") from None

    @classmethod
    def from_yaml_text(cls, text: str, *, origin: str = "alert policy") -> Self:
        """Parse YAML text (an empty document is the default policy)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyConfigError(f"{origin}: not valid YAML: {exc}") from None
        if data is not None and not isinstance(data, Mapping):
            raise PolicyConfigError(
                f"{origin}: the top level must be a mapping (rules:, adaptive:, grouping:, "
                f"retrain:), got {type(data).__name__}"
            )
        return cls.from_mapping(data, origin=origin)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """Read a YAML file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise PolicyConfigError(
                f"cannot read the alert policy file {path}: {exc.strerror or exc}"
            ) from None
        return cls.from_yaml_text(text, origin=str(path))

    # ------------------------------------------------------------------ building

    def metric_rules(self) -> MetricRules:
        """A fresh rule evaluator with every configured rule."""
        return MetricRules(
            static=[entry.build() for entry in self.rules],
            adaptive=[entry.build() for entry in self.adaptive],
        )

    def grouper(self) -> AlertGrouper:
        """A fresh grouper with the configured timers."""
        timing = self.grouping
        return AlertGrouper(
            group_wait_s=timing.group_wait,
            group_interval_s=timing.group_interval,
            repeat_interval_s=timing.repeat_interval,
            resolve_timeout_s=timing.resolve_timeout,
        )

    def retrain_policy(self) -> RetrainPolicy:
        """A fresh retraining policy."""
        from streams.alerting.retrain_policy import RetrainPolicy

        return RetrainPolicy(self.retrain)
