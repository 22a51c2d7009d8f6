"""The alert stage of the worker: detections and metric windows in, alerts and retrain requests out.

Kafka-free; the worker's agents feed it and publish what it returns. One
instance watches one source: the drift detections of every partition (sent to
an internal topic keyed by model) or the published metric windows (evaluated
against the configured rules). Both go through the same policy: grouping and
dedup (:class:`~streams.alerting.AlertGrouper`), then the retrain triggers
(:class:`~streams.alerting.RetrainPolicy`).

Time is event time. So that a group still closes and a cooldown still ends
when traffic stops, :meth:`AlertStage.tick` moves event time on with the wall
clock from the last event seen.
"""

from __future__ import annotations

import dataclasses
import pickle
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streams.alerting import AlertGrouper, AlertPolicyConfig, Detection, MetricRules, RetrainPolicy
from streams.events import AlertData, MetricsData, RetrainRequestData

__all__ = [
    "AlertStage",
    "AlertStageStateError",
    "StageOutput",
    "detection_from_json",
    "detection_to_json",
]

STATE_FORMAT = 1


class AlertStageStateError(ValueError):
    """A checkpointed alert stage that cannot be resumed (another format or policy)."""


_TIMES = ("detected_at", "evidence_start", "evidence_end")


def detection_to_json(detection: Detection) -> dict[str, Any]:
    """A detection as a JSON-able dict (times in RFC 3339)."""
    body = dataclasses.asdict(detection)
    for name in _TIMES:
        body[name] = body[name].isoformat()
    return body


def detection_from_json(body: dict[str, Any]) -> Detection:
    """The inverse of :func:`detection_to_json`.

    Examples
    --------
    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> d = Detection("m", "1", "x", "data_drift", "warning", "cusum", 21.0, 20.0, t, t, t, 90)
    >>> detection_from_json(detection_to_json(d)) == d
    True
    """
    values = dict(body)
    for name in _TIMES:
        values[name] = datetime.fromisoformat(values[name])
    return Detection(**values)


@dataclass
class StageOutput:
    """What to publish: alerts, and retrain requests."""

    alerts: list[AlertData] = field(default_factory=list)
    requests: list[RetrainRequestData] = field(default_factory=list)

    def extend(self, other: StageOutput) -> None:
        """Add another output to this one."""
        self.alerts.extend(other.alerts)
        self.requests.extend(other.requests)


class AlertStage:
    """Grouping, dedup and retrain triggers over one source of detections.

    Examples
    --------
    >>> from datetime import UTC
    >>> stage = AlertStage(AlertPolicyConfig.from_mapping({"grouping": {"group_wait": "10s"}}))
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> d = Detection("voice", "1", "error_rate", "concept_drift", "critical", "bernoulli_cusum",
    ...               statistic=9.1, threshold=8.6, detected_at=t, evidence_start=t,
    ...               evidence_end=t, evidence_events=60, pattern="sudden")
    >>> stage.on_detection(d).alerts  # waits group_wait for more of the group
    []
    >>> out = stage.on_detection(dataclasses.replace(d, detected_at=t + timedelta(seconds=11)))
    >>> [(a.kind, a.status, a.signal) for a in out.alerts], len(out.requests)
    ([('concept_drift', 'firing', 'error_rate')], 1)
    """

    def __init__(self, config: AlertPolicyConfig, *, clock: Any = time.monotonic) -> None:
        self.config = config
        self.rules: MetricRules = config.metric_rules()
        self._clock = clock
        # one policy per model: each model's traffic has its own event time (a replay of last
        # week's file and live traffic must not share a clock)
        self._models: dict[str, _ModelPolicy] = {}

    def _model(self, model: str) -> _ModelPolicy:
        policy = self._models.get(model)
        if policy is None:
            policy = self._models[model] = _ModelPolicy(
                self.config.grouper(), self.config.retrain_policy()
            )
        return policy

    def on_detection(self, detection: Detection) -> StageOutput:
        """A drift detector fired (or a rule changed state)."""
        policy = self._model(detection.model)
        policy.seen(detection.detected_at, self._clock())
        out = policy.judge(policy.grouper.advance(detection.detected_at))
        out.extend(policy.judge(policy.grouper.observe(detection)))
        return out

    def on_metrics(self, window: MetricsData) -> StageOutput:
        """A published metric window: checked against the rules, then like a detection."""
        out = StageOutput()
        for detection in self.rules.observe(window):
            out.extend(self.on_detection(detection))
        self._model(window.model).seen(window.window_end, self._clock())
        return out

    def to_state(self) -> bytes:
        """A checkpoint: every model's groups, retrain policy and event-time clock, and the
        metric rules' series (a zlib-compressed pickle: trusted state only, the worker's own).

        Examples
        --------
        >>> from datetime import UTC
        >>> stage = AlertStage(AlertPolicyConfig.from_mapping({"grouping": {"group_wait": "10s"}}))
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> d = Detection("voice", "1", "error_rate", "concept_drift", "critical", "cusum",
        ...               statistic=9.1, threshold=8.6, detected_at=t, evidence_start=t,
        ...               evidence_end=t, evidence_events=60, pattern="sudden")
        >>> _ = stage.on_detection(d)  # a group opens, waiting group_wait
        >>> copy = AlertStage.from_state(stage.config, stage.to_state())
        >>> after_wait = t + timedelta(seconds=11)
        >>> later = dataclasses.replace(d, signal="redo_rate", detected_at=after_wait)
        >>> sent = [a.alert_id for a in copy.on_detection(later).alerts]  # the group goes out
        >>> sent == [a.alert_id for a in stage.on_detection(later).alerts] and len(sent)
        1
        >>> AlertStage(stage.config).on_detection(later).alerts  # afresh: a new group waits
        []
        """
        state = {
            "format": STATE_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "rules": self.rules,
            "models": {
                model: (policy.grouper, policy.retrain, policy.latest)
                for model, policy in self._models.items()
            },
        }
        return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def from_state(
        cls, config: AlertPolicyConfig, state: bytes, *, clock: Any = time.monotonic
    ) -> AlertStage:
        """Resume a stage from :meth:`to_state` under ``config`` (which must be the same policy).

        Each model's event time resumes where it was: the time the stage was
        down does not count towards its timers.
        """
        try:
            loaded = pickle.loads(zlib.decompress(state))
        except (zlib.error, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise AlertStageStateError(f"unreadable alert stage state: {exc}") from None
        if not isinstance(loaded, dict) or loaded.get("format") != STATE_FORMAT:
            raise AlertStageStateError(
                f"alert stage state of another format (this version reads {STATE_FORMAT})"
            )
        if loaded["config"] != config.model_dump(mode="json"):
            raise AlertStageStateError("the alert policy changed since the state was written")
        stage = cls(config, clock=clock)
        stage.rules = loaded["rules"]
        now = clock()
        for model, (grouper, retrain, latest) in loaded["models"].items():
            stage._models[model] = _ModelPolicy(grouper, retrain, latest, now)
        return stage

    def on_rejected(self, model: str) -> None:
        """A challenger retrained for ``model`` failed its gate (a ``rejected`` model event)."""
        policy = self._models.get(model)
        if policy is not None:
            policy.retrain.on_rejected(model)

    def tick(self) -> StageOutput:
        """Let timers run: each model's event time moves on with the wall clock since its
        last event."""
        out = StageOutput()
        wall = self._clock()
        for policy in self._models.values():
            if policy.latest is None:
                continue
            now = policy.latest + timedelta(seconds=wall - policy.latest_at)
            out.extend(policy.judge(policy.grouper.advance(now)))
            out.requests.extend(policy.retrain.advance(now))
        return out


@dataclass
class _ModelPolicy:
    """The grouping and retrain policy of one model, and its event-time clock."""

    grouper: AlertGrouper
    retrain: RetrainPolicy
    latest: datetime | None = None
    latest_at: float = 0.0

    def seen(self, when: datetime, wall: float) -> None:
        if self.latest is None or when > self.latest:
            self.latest = when
            self.latest_at = wall

    def judge(self, alerts: list[AlertData]) -> StageOutput:
        out = StageOutput(alerts=alerts)
        for alert in alerts:
            request = self.retrain.observe(alert)
            if request is not None:
                out.requests.append(request)
        return out
