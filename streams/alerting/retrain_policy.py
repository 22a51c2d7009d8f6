"""Retraining triggers: which alerts turn into retrain requests, and on which data.

A :class:`RetrainPolicy` reads the alerts the grouper sends (firing and
resolved) and asks for a new model version
(:class:`~streams.events.RetrainRequestData`, ``requested_by="policy"``) when,
per :class:`~streams.alerting.config.RetrainPolicyConfig`:

- **concept drift is confirmed**: a firing ``concept_drift`` alert reaches the
  ``immediate_severity`` (critical by default), or ``min_signals`` distinct
  concept-drift signals fire at once (e.g. accuracy and redo rate), or one has
  kept firing for ``persist``;
- **data drift on a key feature persists**: a ``data_drift`` alert naming one
  of the configured ``key_features`` has kept firing for ``persist``.

Anything else — metric alerts, data drift on other features, alerts below
``min_severity``, models outside ``models`` — never retrains. After a request
a model gets no other for ``cooldown`` (event time), so a drift storm makes
one request, and an alert that caused a request causes no other while it keeps
firing (a new alert does: the drift seen again on the retrained version). The
request names the alerts, the reason and the window to train on: from the
drift onset (the earliest evidence start) minus ``lookback`` to the decision,
at least ``min_span`` long and at most ``max_span`` (a drift confirmed less than
``min_drifted`` after its onset waits until then, so the retrainer gets that much
of the drifted traffic). Its ``request_id`` is a
hash of all that, so a replay asks for the same thing and the retrain worker
can drop the duplicate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from streams.alerting.config import RetrainPolicyConfig
from streams.alerting.detection import severity_rank
from streams.alerting.grouping import alert_signals
from streams.events import AlertData, DataWindow, RetrainRequestData

__all__ = ["RetrainPolicy", "request_id_for"]


def request_id_for(model: str, reason: str, alert_ids: list[str], window: DataWindow) -> str:
    """The id of a policy retrain request: a hash of what it asks for.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> window = DataWindow(start=datetime(2026, 1, 1, tzinfo=UTC),
    ...                     end=datetime(2026, 1, 2, tzinfo=UTC))
    >>> request_id_for("voice-intent", "concept drift", ["a1"], window)
    'retrain.voice-intent.15eb7293c016172f'
    """
    ids = ",".join(sorted(alert_ids))
    text = "\x1f".join((model, reason, ids, window.start.isoformat(), window.end.isoformat()))
    return f"retrain.{model}.{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass
class _Firing:
    """A firing alert the policy covers, as of its latest notification."""

    alert: AlertData
    first_fired: datetime
    onset: datetime
    requested: bool = False


class RetrainPolicy:
    """Turn alerts into retrain requests (pure, event-time driven).

    Parameters
    ----------
    config
        Triggers, cooldown and window spans.

    Feed every alert with :meth:`observe`; call :meth:`advance` with the
    current event time so that a drift that merely *persists* (no new alert
    arrives while it fires) is noticed.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> policy = RetrainPolicy(RetrainPolicyConfig())
    >>> t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> def alert(kind, signal, severity, minutes):
    ...     return AlertData(alert_id=f"{kind}-{signal}", model="voice-intent",
    ...         model_version="3", signal=signal, kind=kind, severity=severity,
    ...         status="firing", detector="fisher", statistic=0.001, threshold=0.01,
    ...         detected_at=t + timedelta(minutes=minutes),
    ...         evidence={"start": t - timedelta(minutes=20), "end": t, "events": 4000})
    >>> print(policy.observe(alert("input_metric", "feature.loudness_db.mean", "critical", 0)))
    None
    >>> request = policy.observe(alert("concept_drift", "accuracy", "critical", 1))
    >>> request.reason, request.alert_ids, request.requested_by
    ('concept drift confirmed (critical) on accuracy', ['concept_drift-accuracy'], 'policy')
    >>> request.window.start.time(), request.window.end.time()  # at least min_span (1 h)
    (datetime.time(11, 1), datetime.time(12, 1))
    >>> print(policy.observe(alert("concept_drift", "redo_rate", "critical", 2)))  # cooldown
    None
    """

    def __init__(self, config: RetrainPolicyConfig) -> None:
        self.config = config
        self._firing: dict[str, _Firing] = {}
        self._last_request: dict[str, datetime] = {}
        self._clock: datetime | None = None

    def observe(self, alert: AlertData) -> RetrainRequestData | None:
        """Take one alert; the retrain request it causes, if any."""
        now = self._tick(alert.detected_at)
        if alert.status == "resolved":
            self._firing.pop(alert.alert_id, None)
            return None
        if not self._covers(alert):
            return None
        seen = self._firing.get(alert.alert_id)
        if seen is None:
            self._firing[alert.alert_id] = _Firing(alert, now, alert.evidence.start)
        else:
            seen.alert = alert
            seen.onset = min(seen.onset, alert.evidence.start)
        return self._decide(alert.model, now)

    def on_rejected(self, model: str) -> None:
        """A challenger retrained for ``model`` was rejected: its alerts may ask again.

        An alert that caused a request causes no other while it fires; when the
        model it asked for failed its gate, the drift is still unanswered, so
        the alerts of ``model`` still firing can cause a request again once the
        cooldown has passed (on a longer window, with more of the drifted data).

        Examples
        --------
        >>> from datetime import UTC, datetime, timedelta
        >>> policy = RetrainPolicy(RetrainPolicyConfig(cooldown=60))
        >>> t = datetime(2026, 1, 1, 12, tzinfo=UTC)
        >>> alert = AlertData(alert_id="a1", model="m", model_version="1", signal="error_rate",
        ...     kind="concept_drift", severity="critical", status="firing", detector="cusum",
        ...     statistic=20.0, threshold=13.0, detected_at=t,
        ...     evidence={"start": t - timedelta(minutes=5), "end": t, "events": 900})
        >>> policy.observe(alert).reason
        'concept drift confirmed (critical) on error_rate'
        >>> policy.advance(t + timedelta(minutes=5))  # the alert asked already
        []
        >>> policy.on_rejected("m")
        >>> [r.window.end for r in policy.advance(t + timedelta(minutes=5))] == [
        ...     t + timedelta(minutes=5)]
        True
        """
        for firing in self._firing.values():
            if firing.alert.model == model:
                firing.requested = False

    def advance(self, now: datetime) -> list[RetrainRequestData]:
        """Let event time reach ``now``; the requests for drifts that persisted until then."""
        now = self._tick(now)
        models = sorted({f.alert.model for f in self._firing.values()})
        return [r for model in models if (r := self._decide(model, now)) is not None]

    # ------------------------------------------------------------------ decisions

    def _tick(self, at: datetime) -> datetime:
        if self._clock is None or at > self._clock:
            self._clock = at
        return self._clock

    def _covers(self, alert: AlertData) -> bool:
        config = self.config
        if not config.enabled or (config.models is not None and alert.model not in config.models):
            return False
        if alert.kind == "concept_drift":
            trigger = config.concept_drift
            return trigger.enabled and _at_least(alert.severity, trigger.min_severity)
        if alert.kind == "data_drift":
            trigger = config.data_drift
            return (
                trigger.enabled
                and _at_least(alert.severity, trigger.min_severity)
                and bool(set(alert_signals(alert)) & set(trigger.key_features))
            )
        return False

    def _decide(self, model: str, now: datetime) -> RetrainRequestData | None:
        last = self._last_request.get(model)
        if last is not None and now - last < timedelta(seconds=self.config.cooldown):
            return None
        # an alert that already caused a request causes no other while it keeps firing
        # (re-notified, joined by more signals); a new alert, e.g. on the retrained
        # version, does
        firing = [f for f in self._firing.values() if f.alert.model == model and not f.requested]
        found = self._concept_drift(firing, now) or self._data_drift(firing, now)
        if found is None:
            return None
        reason, cause = found
        onset = min(f.onset for f in cause)
        if now - onset < timedelta(seconds=self.config.min_drifted):
            return None  # asked again as event time moves on (advance)
        window = self._window(onset, now)
        alert_ids = sorted(f.alert.alert_id for f in cause)
        self._last_request[model] = now
        for f in cause:
            f.requested = True
        return RetrainRequestData(
            request_id=request_id_for(model, reason, alert_ids, window),
            model=model,
            reason=reason,
            alert_ids=alert_ids,
            window=window,
            requested_by="policy",
        )

    def _concept_drift(
        self, firing: list[_Firing], now: datetime
    ) -> tuple[str, list[_Firing]] | None:
        trigger = self.config.concept_drift
        concept = [f for f in firing if f.alert.kind == "concept_drift"]
        if not concept:
            return None
        signals = sorted({s for f in concept for s in alert_signals(f.alert)})
        named = ", ".join(signals)
        severe = [f for f in concept if _at_least(f.alert.severity, trigger.immediate_severity)]
        if severe:
            return f"concept drift confirmed ({trigger.immediate_severity}) on {named}", concept
        if len(signals) >= trigger.min_signals:
            return f"concept drift confirmed on {len(signals)} signals: {named}", concept
        lasting = [f for f in concept if now - f.first_fired >= timedelta(seconds=trigger.persist)]
        if lasting:
            return f"concept drift on {named} firing for {_span(trigger.persist)}", lasting
        return None

    def _data_drift(self, firing: list[_Firing], now: datetime) -> tuple[str, list[_Firing]] | None:
        trigger = self.config.data_drift
        persist = timedelta(seconds=trigger.persist)
        lasting = [
            f for f in firing if f.alert.kind == "data_drift" and now - f.first_fired >= persist
        ]
        if not lasting:
            return None
        keys = sorted(
            {s for f in lasting for s in alert_signals(f.alert)} & set(trigger.key_features)
        )
        return (
            f"data drift on key features {', '.join(keys)} firing for {_span(trigger.persist)}",
            lasting,
        )

    def _window(self, onset: datetime, end: datetime) -> DataWindow:
        config = self.config
        start = onset - timedelta(seconds=config.lookback)
        start = min(start, end - timedelta(seconds=config.min_span))
        start = max(start, end - timedelta(seconds=config.max_span))
        return DataWindow(start=start, end=end)


def _at_least(severity: str, floor: str) -> bool:
    return severity_rank(severity) >= severity_rank(floor)


def _span(seconds: float) -> str:
    """A short duration: ``10m``, ``1h30m``, ``45s``."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
