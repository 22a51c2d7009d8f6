"""The alert policy's grouping: detections in, a handful of ``alert.v1`` payloads out.

Detections are deduplicated per ``(model, version, kind, signal)`` and batched
per ``(model, version, kind)`` into one **alert group** (a drift seen again on
a retrained version is a new alert, not a repeat of the old version's), with
Alertmanager's timers, all in **event time** (the time of the detections, never
the wall clock, so a replay gives the same alerts with the same ids):

``group_wait``
    A new group waits this long before its first notification, gathering the
    other signals that drift at the same moment: 50 features drifting at once
    make **one** alert whose summary names them, not 50.
``group_interval``
    After a notification, a group that changed (a signal joined or cleared, the
    severity rose) is notified again no sooner than this.
``repeat_interval``
    A group that is still firing and has not changed is notified again only
    after this.
``resolve_timeout``
    A signal is clear when nothing fired for it for this long (or when a rule
    sent ``resolved``); when every signal of a group is clear the group
    resolves: one ``resolved`` alert with the same ``alert_id``. Metric rules
    refresh a firing signal once per window, so keep it at least as long as the
    longest metrics window (a refresh exactly ``resolve_timeout`` later still
    counts as firing).

Repeated detections of a signal that is already in its group only refresh it:
a detector that fires every 100 events adds nothing until ``repeat_interval``.
Two count as a change: a higher severity, and a signal found ``gradual`` on a
second look (:mod:`online_models.drift.reassess`) after it fired as
``sudden``; a gradual signal stays gradual while it fires.

The alert of a group names its signal in ``signal``: the one signal, or the
signals joined by commas, sorted (cut to fit the field, ending ``+N more``);
:func:`alert_signals` splits it back. ``statistic``, ``threshold``,
``detector`` and ``pattern`` are those of the lead signal (most severe, then
the one that opened the group); ``evidence`` spans the earliest evidence start
to the latest evidence end of the group's signals.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from streams.alerting.detection import Detection, severity_rank
from streams.events import AlertData, EvidenceWindow

__all__ = ["AlertGrouper", "alert_id_for", "alert_signals"]

SIGNAL_SEPARATOR = ","
_SIGNAL_LIMIT = 500  # AlertData.signal holds 512 characters
_SUMMARY_NAMES = 8


def alert_id_for(
    model: str, kind: str, signal: str, group_start: datetime, version: str = ""
) -> str:
    """The id of an alert group: a hash of (model, kind, opening signal, group start, version).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> alert_id_for("voice-intent", "data_drift", "loudness_db", t)
    'voice-intent.data_drift.986732f912b3e37a'
    >>> alert_id_for("voice-intent", "data_drift", "loudness_db", t) == _  # a replay: same id
    True
    """
    parts = [model, kind, signal, group_start.isoformat()]
    if version:
        parts.append(version)
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"{model}.{kind}.{digest[:16]}"


def alert_signals(alert: AlertData) -> list[str]:
    """The signals an alert names (a grouped alert names several, comma-separated).

    Names cut off by ``+N more`` are not returned.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> alert = AlertData(alert_id="a", model="m", model_version="1",
    ...     signal="duration_s,loudness_db,+3 more", kind="data_drift", severity="warning",
    ...     status="firing", detector="ks", statistic=0.3, threshold=0.2, detected_at=t,
    ...     evidence={"start": t, "end": t, "events": 10})
    >>> alert_signals(alert)
    ['duration_s', 'loudness_db']
    """
    return [
        name
        for name in alert.signal.split(SIGNAL_SEPARATOR)
        if name and not (name.startswith("+") and name.endswith(" more"))
    ]


@dataclass
class _Signal:
    """One deduplicated (model, kind, signal) within its group."""

    latest: Detection
    first_seen: datetime
    last_seen: datetime
    evidence_start: datetime
    evidence_end: datetime
    severity: str
    detections: int = 1


@dataclass
class _Group:
    """One (model, version, kind) alert group and its notification timers."""

    model: str
    kind: str
    version: str
    started_at: datetime
    opener: str
    alert_id: str
    # ordered by last_seen (move_to_end on refresh): the first one expires first
    signals: OrderedDict[str, _Signal] = field(default_factory=OrderedDict)
    notified_at: datetime | None = None
    # set when a signal joins or clears or its severity rises, cleared by a notification
    changed_at: datetime | None = None
    last_alert: AlertData | None = None

    def severity(self) -> str:
        return max((s.severity for s in self.signals.values()), key=severity_rank)


@dataclass
class AlertGrouper:
    """Deduplicate and group detections into alert notifications (pure, event-time driven).

    Parameters
    ----------
    group_wait_s, group_interval_s, repeat_interval_s, resolve_timeout_s
        The timers, in seconds of event time (see the module docstring).

    Feed detections in event-time order with :meth:`observe`; call
    :meth:`advance` with the current event time (e.g. the end of the latest
    metrics window) to let timers fire when no detection arrives. Both return
    the alerts to publish, oldest first.

    Examples
    --------
    Twenty features drift at once and their detectors keep firing every second
    for five minutes; one alert goes out after ``group_wait`` and one when the
    drift has been quiet for ``resolve_timeout``:

    >>> from datetime import UTC, datetime, timedelta
    >>> grouper = AlertGrouper(group_wait_s=30, group_interval_s=300,
    ...                        repeat_interval_s=4 * 3600, resolve_timeout_s=300)
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> sent = []
    >>> for second in range(300):
    ...     now = t0 + timedelta(seconds=second)
    ...     for f in range(20):
    ...         sent += grouper.observe(Detection("voice-intent", "3", f"f{f:02d}", "data_drift",
    ...             "warning", "ks", 0.4, 0.2, now, now - timedelta(seconds=60), now, 500))
    >>> sent += grouper.advance(t0 + timedelta(hours=1))
    >>> [(a.status, a.detected_at.strftime("%H:%M:%S")) for a in sent]
    [('firing', '00:00:30'), ('resolved', '00:09:59')]
    >>> print(sent[0].summary)
    data_drift on 20 signals of voice-intent:3: f00, f01, f02, f03, f04, f05, f06, f07 \
+12 more (lead f00: ks 0.4 vs 0.2)
    >>> sent[0].alert_id == sent[1].alert_id
    True
    """

    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0
    resolve_timeout_s: float = 300.0
    _groups: dict[tuple[str, str, str], _Group] = field(
        default_factory=dict, init=False, repr=False
    )
    _clock: datetime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("group_wait_s", "group_interval_s", "repeat_interval_s", "resolve_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        self._wait = timedelta(seconds=self.group_wait_s)
        self._interval = timedelta(seconds=self.group_interval_s)
        self._repeat = timedelta(seconds=self.repeat_interval_s)
        self._timeout = timedelta(seconds=self.resolve_timeout_s)

    @property
    def active_groups(self) -> int:
        """Groups with at least one signal not yet clear."""
        return len(self._groups)

    # ------------------------------------------------------------------ input

    def observe(self, detection: Detection) -> list[AlertData]:
        """Take one detection; the alerts due up to its event time, oldest first.

        A detection older than one already seen counts as seen now (event time
        never goes back inside the policy).
        """
        now = detection.detected_at
        if self._clock is not None and now < self._clock:
            now = self._clock
        # timers due exactly now wait for this detection: a signal refreshed exactly
        # resolve_timeout after its last detection is still firing, not resolved and re-opened
        sent = self._run_timers(now, inclusive=False)
        group_key = (detection.model, detection.model_version, detection.kind)
        group = self._groups.get(group_key)
        if detection.status == "resolved":
            if group is not None and group.signals.pop(detection.signal, None) is not None:
                group.changed_at = now
                if not group.signals:
                    sent += self._resolve(group, now)
                else:
                    sent += self.advance(now)
            return sent
        if group is None:
            group = self._groups[group_key] = _Group(
                model=detection.model,
                kind=detection.kind,
                version=detection.model_version,
                started_at=now,
                opener=detection.signal,
                alert_id=alert_id_for(
                    detection.model,
                    detection.kind,
                    detection.signal,
                    now,
                    detection.model_version,
                ),
            )
        signal = group.signals.get(detection.signal)
        if signal is None:
            group.changed_at = now
            group.signals[detection.signal] = _Signal(
                latest=detection,
                first_seen=now,
                last_seen=now,
                evidence_start=detection.evidence_start,
                evidence_end=detection.evidence_end,
                severity=detection.severity,
            )
        else:
            # a drift found gradual on a second look stays gradual while the signal fires
            relabelled = detection.pattern == "gradual" and signal.latest.pattern != "gradual"
            if detection.pattern == "gradual" or signal.latest.pattern != "gradual":
                signal.latest = detection
            signal.last_seen = now
            signal.detections += 1
            signal.evidence_start = min(signal.evidence_start, detection.evidence_start)
            signal.evidence_end = max(signal.evidence_end, detection.evidence_end)
            group.signals.move_to_end(detection.signal)
            rose = severity_rank(detection.severity) > severity_rank(signal.severity)
            if not (rose or relabelled):
                return sent  # a duplicate: it only pushes the signal's expiry later
            if rose:
                signal.severity = detection.severity
            group.changed_at = now
        # a change may be due at once (e.g. group_interval already passed)
        return sent + self.advance(now)

    def advance(self, now: datetime) -> list[AlertData]:
        """Let event time reach ``now``: clear quiet signals, send due notifications."""
        return self._run_timers(now, inclusive=True)

    def _run_timers(self, now: datetime, *, inclusive: bool) -> list[AlertData]:
        if self._clock is None or now > self._clock:
            self._clock = now
        sent: list[AlertData] = []
        while True:
            due = self._next_timer()
            if due is None or due[0] > now or (not inclusive and due[0] == now):
                return sent
            at, group, what = due
            if what == "expire":
                group.signals.popitem(last=False)
                group.changed_at = at
                if not group.signals:
                    sent += self._resolve(group, at)
            else:
                sent.append(self._notify(group, at))

    # ------------------------------------------------------------------ timers

    def _next_timer(self) -> tuple[datetime, _Group, Literal["expire", "notify"]] | None:
        best: tuple[datetime, _Group, Literal["expire", "notify"]] | None = None
        for group in self._groups.values():
            oldest = next(iter(group.signals.values()))
            expire_at = oldest.last_seen + self._timeout
            if best is None or expire_at < best[0]:
                best = (expire_at, group, "expire")
            notify_at = self._notify_due(group)
            # at equal times, clear first: signals that go quiet together resolve together
            if notify_at is not None and notify_at < best[0]:
                best = (notify_at, group, "notify")
        return best

    def _notify_due(self, group: _Group) -> datetime | None:
        if group.notified_at is None:
            return group.started_at + self._wait
        if group.changed_at is not None:
            return max(group.notified_at + self._interval, group.changed_at)
        return group.notified_at + self._repeat

    # ------------------------------------------------------------------ output

    def _notify(self, group: _Group, at: datetime) -> AlertData:
        alert = self._alert(group, at)
        group.notified_at = at
        group.changed_at = None
        group.last_alert = alert
        return alert

    def _resolve(self, group: _Group, at: datetime) -> list[AlertData]:
        del self._groups[(group.model, group.version, group.kind)]
        if group.last_alert is None:
            return []  # cleared before anyone was told: nothing to take back
        last = group.last_alert
        return [
            last.model_copy(
                update={
                    "status": "resolved",
                    "detected_at": at,
                    "summary": f"resolved: {last.kind} on {last.model}:{last.model_version} "
                    f"has been clear since {at.isoformat()}",
                }
            )
        ]

    def _alert(self, group: _Group, at: datetime) -> AlertData:
        signals = list(group.signals.values())
        severity = group.severity()
        # the lead: most severe, then the signal that opened the group, then by name
        lead = min(
            signals,
            key=lambda s: (
                -severity_rank(s.severity),
                s.latest.signal != group.opener,
                s.latest.signal,
            ),
        )
        latest = max(signals, key=lambda s: s.last_seen).latest
        names = sorted(group.signals)
        segments = {tuple(sorted((s.latest.segment or {}).items())) for s in signals}
        patterns = {s.latest.pattern for s in signals}
        evidence_events = sum(s.latest.evidence_events for s in signals)
        if len(names) == 1:
            summary = lead.latest.summary or (
                f"{group.kind} on {lead.latest.signal} of {group.model}:"
                f"{latest.model_version}: {lead.latest.detector} "
                f"{lead.latest.statistic:.4g} vs {lead.latest.threshold:.4g}"
            )
        else:
            shown = ", ".join(names[:_SUMMARY_NAMES])
            more = f" +{len(names) - _SUMMARY_NAMES} more" if len(names) > _SUMMARY_NAMES else ""
            summary = (
                f"{group.kind} on {len(names)} signals of {group.model}:{latest.model_version}: "
                f"{shown}{more} (lead {lead.latest.signal}: {lead.latest.detector} "
                f"{lead.latest.statistic:.4g} vs {lead.latest.threshold:.4g})"
            )
        return AlertData(
            alert_id=group.alert_id,
            model=group.model,
            model_version=latest.model_version,
            signal=_signal_field(names),
            kind=group.kind,  # type: ignore[arg-type]
            pattern=patterns.pop() if len(patterns) == 1 else lead.latest.pattern,
            severity=severity,  # type: ignore[arg-type]
            status="firing",
            detector=lead.latest.detector,
            statistic=lead.latest.statistic,
            threshold=lead.latest.threshold,
            detected_at=at,
            evidence=EvidenceWindow(
                start=min(s.evidence_start for s in signals),
                end=max(s.evidence_end for s in signals),
                events=evidence_events,
            ),
            segment=dict(segments.pop()) if len(segments) == 1 and () not in segments else None,
            summary=summary[:1000],
        )


def _signal_field(names: list[str]) -> str:
    """Signal names joined by commas, cut to fit ``AlertData.signal`` with ``+N more``."""
    joined = SIGNAL_SEPARATOR.join(names)
    if len(joined) <= _SIGNAL_LIMIT:
        return joined
    kept: list[str] = []
    length = 0
    for name in names:
        if length + len(name) + 1 > _SIGNAL_LIMIT - 16:
            break
        kept.append(name)
        length += len(name) + 1
    return SIGNAL_SEPARATOR.join([*kept, f"+{len(names) - len(kept)} more"])
