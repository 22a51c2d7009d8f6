"""A detection: what a drift detector or a metric rule saw, before the alert policy groups it.

Detectors (drift on inputs, outputs, outcomes) and metric rules emit
:class:`Detection` values; the alert policy
(:class:`~streams.alerting.grouping.AlertGrouper`) deduplicates and groups them
into ``driftloop.alert.v1`` payloads. Every time in a detection is **event
time**: replaying the same traffic gives the same detections and so the same
alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["KINDS", "SEVERITIES", "Detection", "Kind", "Severity", "severity_rank"]

Kind = Literal["data_drift", "concept_drift", "input_metric", "output_metric", "software_metric"]
Severity = Literal["info", "warning", "critical"]
KINDS: tuple[Kind, ...] = (
    "data_drift",
    "concept_drift",
    "input_metric",
    "output_metric",
    "software_metric",
)
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


def severity_rank(severity: str) -> int:
    """Order of a severity: info < warning < critical.

    Examples
    --------
    >>> sorted(["critical", "info", "warning"], key=severity_rank)
    ['info', 'warning', 'critical']
    >>> severity_rank("fatal")
    Traceback (most recent call last):
    ...
    ValueError: unknown severity 'fatal'; known: info, warning, critical
    """
    try:
        return SEVERITIES.index(severity)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}; known: {', '.join(SEVERITIES)}") from None


@dataclass(frozen=True)
class Detection:
    """One raw detection (a drift detector fired) or one rule transition (firing/resolved).

    Parameters
    ----------
    model, model_version
        The model and the version whose traffic was watched.
    signal
        Feature or metric name, e.g. ``loudness_db`` or ``latency_p99_ms``.
    kind
        ``data_drift``, ``concept_drift``, ``input_metric``, ``output_metric``
        or ``software_metric``.
    severity
        ``info``, ``warning`` or ``critical``.
    detector
        Detector or rule that fired, e.g. ``adwin``, ``ks``, ``static``, ``adaptive``.
    statistic, threshold
        The value the detector computed and the level it crossed.
    detected_at
        Event time of the detection.
    evidence_start, evidence_end, evidence_events
        The stretch of traffic that made the detector fire.
    pattern
        For drift: ``sudden`` or ``gradual``; ``None`` otherwise.
    segment
        The slice of traffic, when the detector watches one.
    status
        ``firing`` (the condition holds at ``detected_at``) or ``resolved``
        (a rule saw its condition clear; detectors never send this, their
        signals resolve after the policy's ``resolve_timeout``).
    summary
        One line a person can act on; the policy writes one when absent.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> d = Detection("voice-intent", "3", "loudness_db", "data_drift", "warning", "ks",
    ...               statistic=0.31, threshold=0.2, detected_at=t,
    ...               evidence_start=t - timedelta(minutes=5), evidence_end=t,
    ...               evidence_events=1200, pattern="sudden")
    >>> d.key, d.status
    (('voice-intent', 'data_drift', 'loudness_db'), 'firing')
    """

    model: str
    model_version: str
    signal: str
    kind: Kind
    severity: Severity
    detector: str
    statistic: float
    threshold: float
    detected_at: datetime
    evidence_start: datetime
    evidence_end: datetime
    evidence_events: int
    pattern: Literal["sudden", "gradual"] | None = None
    segment: dict[str, str] | None = None
    status: Literal["firing", "resolved"] = "firing"
    summary: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; known: {', '.join(KINDS)}")
        severity_rank(self.severity)
        if self.detected_at.tzinfo is None:
            raise ValueError("detected_at must carry a UTC offset (event time is aware)")

    @property
    def key(self) -> tuple[str, str, str]:
        """What duplicates share: ``(model, kind, signal)``."""
        return (self.model, self.kind, self.signal)
