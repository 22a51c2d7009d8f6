"""Backtesting the monitor on a file of history: which alerts would have fired, and when.

A backtest replays a file (:class:`~producers.replay.Replay`, the same column
mapping as ``driftloop replay``) as fast as the broker takes it into topics of
its own (prefix ``backtest-<random>.``, so it never mixes with live traffic),
runs a fresh ``driftloop worker`` on them, waits until the worker has counted
every replayed prediction and its alerts have gone quiet, reads the alerts and
retrain requests back, stops the worker and deletes the topics (also on
failure and Ctrl-C). Everything the worker decides is in event time, so the
alerts carry the times they would have had live.

Where the user knows when the drift really happened (:class:`DriftPoint`),
:func:`score_alerts` scores the alerts against those points, per drift point
and per detector:

Detection
    The first firing alert at or after a drift point, within ``horizon``,
    that *introduces* the drift point's signal (or, for a drift point without
    a signal, any signal) into its alert group: an alert group that was
    already firing on that signal and only repeats itself told nobody
    anything new. Its delay is counted in seconds of event time and in
    predictions replayed between the drift point and the alert.
Miss
    A drift point with no such alert within ``horizon``.
False alarm
    A firing alert that introduces a signal no drift point explains: before
    the first drift point, or for a signal that no drift point at or before it
    names (a drift point without a signal explains every signal after it).
    Repeats of an alert group on signals it already named are not counted again.
After drift
    Any other firing alert: explained by a drift point, but not the first to
    find it (a repeat, another signal of a drift point without one, or too
    late for the horizon).

Per detector: an alert carries the detector of its lead signal (see
:mod:`streams.alerting.grouping`), so a grouped alert is credited to that one
detector. The default alert policy of a backtest sends a group's first alert
at once (``group_wait: 0s``), so that an alert's time is the detection time;
with ``--alert-policy`` the delays include that policy's ``group_wait``, as
they would live.

:func:`score_alerts` and everything above :class:`Backtest` are pure (no
Kafka); :class:`Backtest` is the thin I/O shell around them.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import socket
import statistics
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from producers.exceptions import ProducersError
from producers.publisher import Publisher
from producers.replay import Replay, ReplayItem, ReplayStats
from streams.admin import create_topics, delete_prefixed_topics
from streams.alerting.grouping import alert_signals
from streams.events import AlertData, CloudEvent, PredictionEvent, RetrainRequestData
from streams.exceptions import StreamsError
from streams.reader import EventReader
from streams.settings import Settings
from streams.testing import WorkerProcess

__all__ = [
    "DEFAULT_POLICY_YAML",
    "Backtest",
    "BacktestAlert",
    "BacktestError",
    "BacktestReport",
    "BacktestScore",
    "DetectorScore",
    "DriftPoint",
    "DriftPointResult",
    "PredictionTimeline",
    "parse_event_time",
    "score_alerts",
]

DEFAULT_POLICY_YAML = (
    "# written by driftloop backtest: a group's first alert goes out at its first detection\n"
    "grouping: {group_wait: 0s, group_interval: 1s, repeat_interval: 4h, resolve_timeout: 5m}\n"
)
"""The alert policy of a backtest when none is given: short timers, so an alert's time is the
time of its detection (metric rules and retrain triggers keep their defaults)."""

Verdict = Literal["detection", "false_alarm", "after_drift", "resolved"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BacktestError(ProducersError):
    """The backtest cannot start or finish (bad drift point, worker failed, timed out)."""


# --------------------------------------------------------------------------- inputs


def parse_event_time(text: str) -> datetime:
    """An event time from ISO 8601 (no offset = UTC) or seconds since the Unix epoch.

    Examples
    --------
    >>> parse_event_time("2026-06-01T08:00:40Z").isoformat()
    '2026-06-01T08:00:40+00:00'
    >>> parse_event_time("1780300840").isoformat()
    '2026-06-01T08:00:40+00:00'
    >>> parse_event_time("noon")
    Traceback (most recent call last):
    ...
    producers.backtest.BacktestError: 'noon' is not a time: write ISO 8601 \
(e.g. 2026-06-01T08:00:40Z) or seconds since the Unix epoch
    """
    cleaned = text.strip()
    try:
        seconds = float(cleaned)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return _EPOCH + timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise BacktestError(
            f"{text!r} is not a time: write ISO 8601 (e.g. 2026-06-01T08:00:40Z) "
            "or seconds since the Unix epoch"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DriftPoint:
    """When the data truly changed, and optionally which signal (feature or metric) changed.

    Examples
    --------
    >>> DriftPoint.parse("2026-06-01T08:00:40Z:loudness_db")
    DriftPoint(at=datetime.datetime(2026, 6, 1, 8, 0, 40, tzinfo=datetime.timezone.utc), \
signal='loudness_db')
    >>> DriftPoint.parse("2026-06-01T08:00:40").signal is None
    True
    """

    at: datetime
    signal: str | None = None

    @classmethod
    def parse(cls, text: str) -> DriftPoint:
        """``TIME`` or ``TIME:SIGNAL`` (TIME as :func:`parse_event_time` reads it)."""
        try:
            return cls(parse_event_time(text))
        except BacktestError:
            how = (
                "write TIME or TIME:SIGNAL, TIME in ISO 8601 (e.g. 2026-06-01T08:00:40Z) "
                "or seconds since the Unix epoch"
            )
            moment, sep, signal = text.rpartition(":")
            if not sep or not signal.strip() or not moment.strip():
                raise BacktestError(f"--drift-at {text!r}: {how}") from None
            try:
                return cls(parse_event_time(moment), signal.strip())
            except BacktestError:
                raise BacktestError(
                    f"--drift-at {text!r}: {moment!r} is not a time; {how}"
                ) from None


@dataclass(frozen=True)
class BacktestAlert:
    """One alert the worker published during the backtest, as the report shows it.

    Examples
    --------
    >>> from streams.testing import SAMPLE_DATA
    >>> data = AlertData.model_validate(SAMPLE_DATA["driftloop.alert.v1"])
    >>> alert = BacktestAlert.from_alert(data)
    >>> alert.signals, alert.detector, f"{alert.statistic} vs {alert.threshold}"
    (('loudness_db',), 'adwin', '0.42 vs 0.3')
    """

    at: datetime
    model: str
    model_version: str
    kind: str
    pattern: str | None
    status: str
    severity: str
    signals: tuple[str, ...]
    detector: str
    statistic: float
    threshold: float
    alert_id: str
    summary: str | None = None

    @classmethod
    def from_alert(cls, data: AlertData) -> BacktestAlert:
        """The report's view of an ``alert.v1`` payload."""
        return cls(
            at=data.detected_at,
            model=data.model,
            model_version=data.model_version,
            kind=data.kind,
            pattern=data.pattern,
            status=data.status,
            severity=data.severity,
            signals=tuple(alert_signals(data)),
            detector=data.detector,
            statistic=data.statistic,
            threshold=data.threshold,
            alert_id=data.alert_id,
            summary=data.summary,
        )

    @property
    def firing(self) -> bool:
        """Whether the alert says something fired (not that it resolved)."""
        return self.status == "firing"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "time": _iso(self.at),
            "model": self.model,
            "model_version": self.model_version,
            "kind": self.kind,
            "pattern": self.pattern,
            "status": self.status,
            "severity": self.severity,
            "signals": list(self.signals),
            "detector": self.detector,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "alert_id": self.alert_id,
            "summary": self.summary,
        }


class PredictionTimeline:
    """The event times of the replayed predictions, to count events between two times.

    Eight bytes per prediction.

    Examples
    --------
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> timeline = PredictionTimeline()
    >>> for second in range(10):
    ...     timeline.add(t0 + timedelta(seconds=second))
    >>> len(timeline), timeline.count_between(t0 + timedelta(seconds=3), t0 + timedelta(seconds=7))
    (10, 4)
    """

    def __init__(self, times: Iterable[datetime] = ()) -> None:
        self._ns = array("q")
        self._sorted: np.ndarray | None = None
        for moment in times:
            self.add(moment)

    def add(self, moment: datetime) -> None:
        """Record one prediction at ``moment``."""
        self._ns.append(_to_ns(moment))
        self._sorted = None

    def __len__(self) -> int:
        return len(self._ns)

    def count_between(self, start: datetime, end: datetime) -> int:
        """Predictions with ``start <= time < end``."""
        if self._sorted is None:
            self._sorted = np.sort(np.frombuffer(self._ns, dtype=np.int64))
        low, high = np.searchsorted(self._sorted, [_to_ns(start), _to_ns(end)], side="left")
        return int(max(high - low, 0))


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class DriftPointResult:
    """How one drift point was caught: the first alert that found it, and by which detectors."""

    point: DriftPoint
    alert: BacktestAlert | None
    delay_s: float | None
    delay_events: int | None
    #: detector -> (delay in seconds, delay in events) of its first alert for this point
    by_detector: dict[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def detected(self) -> bool:
        """Whether an alert found this drift point within the horizon."""
        return self.alert is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "drift_at": _iso(self.point.at),
            "signal": self.point.signal,
            "detected": self.detected,
            "delay_s": self.delay_s,
            "delay_events": self.delay_events,
            "alert": self.alert.to_dict() if self.alert else None,
            "by_detector": {
                name: {"delay_s": delay, "delay_events": events}
                for name, (delay, events) in sorted(self.by_detector.items())
            },
        }


@dataclass(frozen=True)
class DetectorScore:
    """One detector over all drift points: what it caught, how fast, what it missed and invented.

    Examples
    --------
    >>> score = DetectorScore("cusum", delays_s=(1.5, 2.5, 9.0), delays_events=(15, 25, 90),
    ...                       missed=1, false_alarms=0)
    >>> score.detected, score.median_delay_s, score.median_delay_events
    (3, 2.5, 25.0)
    """

    detector: str
    delays_s: tuple[float, ...]
    delays_events: tuple[int, ...]
    missed: int
    false_alarms: int

    @property
    def detected(self) -> int:
        """Drift points this detector alerted on within the horizon."""
        return len(self.delays_s)

    @property
    def median_delay_s(self) -> float | None:
        """Median detection delay in seconds of event time (``None`` if it caught nothing)."""
        return statistics.median(self.delays_s) if self.delays_s else None

    @property
    def median_delay_events(self) -> float | None:
        """Median detection delay in predictions (``None`` if it caught nothing)."""
        return float(statistics.median(self.delays_events)) if self.delays_events else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "detector": self.detector,
            "detected": self.detected,
            "missed": self.missed,
            "false_alarms": self.false_alarms,
            "median_delay_s": self.median_delay_s,
            "median_delay_events": self.median_delay_events,
            "delays_s": list(self.delays_s),
            "delays_events": list(self.delays_events),
        }


@dataclass(frozen=True)
class BacktestScore:
    """Alerts scored against the true drift points (see the module docstring)."""

    points: tuple[DriftPointResult, ...]
    verdicts: tuple[Verdict, ...]  # one per alert, in the order given
    false_alarms: tuple[BacktestAlert, ...]
    detectors: tuple[DetectorScore, ...]
    horizon_s: float

    @property
    def misses(self) -> int:
        """Drift points no alert found within the horizon."""
        return sum(not p.detected for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "horizon_s": self.horizon_s,
            "drift_points": [p.to_dict() for p in self.points],
            "detected": sum(p.detected for p in self.points),
            "misses": self.misses,
            "false_alarms": len(self.false_alarms),
            "false_alarm_alerts": [a.to_dict() for a in self.false_alarms],
            "detectors": [d.to_dict() for d in self.detectors],
        }


def score_alerts(
    alerts: Sequence[BacktestAlert],
    points: Sequence[DriftPoint],
    *,
    horizon: timedelta,
    timeline: PredictionTimeline | None = None,
) -> BacktestScore:
    """Score alerts against true drift points: delays, misses and false alarms, per detector.

    Parameters
    ----------
    alerts
        What the worker published (firing and resolved; resolved ones are not scored).
    points
        The true drift points.
    horizon
        How long after a drift point an alert still counts as its detection.
    timeline
        The replayed predictions' times, to give delays in events (else 0 events).

    Examples
    --------
    A drift on ``x`` at 00:01:00 caught 4 s later by CUSUM; a KS alert on ``y``
    before it is a false alarm:

    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> def alert(second, signal, detector, group):
    ...     return BacktestAlert(t0 + timedelta(seconds=second), "m", "1", "data_drift",
    ...         "sudden", "firing", "warning", (signal,), detector, 9.0, 8.0, group)
    >>> alerts = [alert(20, "y", "ks", "g1"), alert(64, "x", "cusum", "g2")]
    >>> timeline = PredictionTimeline(t0 + timedelta(seconds=s / 10) for s in range(1200))
    >>> score = score_alerts(alerts, [DriftPoint(t0 + timedelta(seconds=60), "x")],
    ...                      horizon=timedelta(minutes=5), timeline=timeline)
    >>> [(p.delay_s, p.delay_events) for p in score.points], score.verdicts
    ([(4.0, 40)], ('false_alarm', 'detection'))
    >>> [(d.detector, d.detected, d.missed, d.false_alarms) for d in score.detectors]
    [('cusum', 1, 0, 0), ('ks', 0, 1, 1)]
    """
    if horizon <= timedelta(0):
        raise BacktestError(f"the horizon must be positive, got {horizon}")
    order = sorted(range(len(alerts)), key=lambda i: alerts[i].at)
    # which signals each firing alert introduces into its group (a repeat introduces none)
    introduced: dict[int, tuple[str, ...]] = {}
    seen_in_group: dict[str, set[str]] = {}
    for i in order:
        alert = alerts[i]
        if not alert.firing:
            continue
        seen = seen_in_group.setdefault(alert.alert_id, set())
        introduced[i] = tuple(s for s in alert.signals if s not in seen)
        seen.update(alert.signals)

    def explained(signal: str, at: datetime) -> bool:
        return any(p.at <= at and (p.signal is None or p.signal == signal) for p in points)

    def count_events(start: datetime, end: datetime) -> int:
        return timeline.count_between(start, end) if timeline is not None else 0

    detections: set[int] = set()
    results: list[DriftPointResult] = []
    for point in sorted(points, key=lambda p: p.at):
        first: int | None = None
        by_detector: dict[str, tuple[float, int]] = {}
        for i in order:
            alert = alerts[i]
            new = introduced.get(i, ())
            if not (point.at <= alert.at <= point.at + horizon):
                continue
            if not new or (point.signal is not None and point.signal not in new):
                continue
            delay = (alert.at - point.at).total_seconds()
            if first is None:
                first = i
            if alert.detector not in by_detector:
                by_detector[alert.detector] = (delay, count_events(point.at, alert.at))
        if first is None:
            results.append(DriftPointResult(point, None, None, None))
            continue
        detections.add(first)
        hit = alerts[first]
        results.append(
            DriftPointResult(
                point,
                hit,
                (hit.at - point.at).total_seconds(),
                count_events(point.at, hit.at),
                by_detector,
            )
        )

    verdicts: list[Verdict] = []
    false_alarms: list[BacktestAlert] = []
    for i, alert in enumerate(alerts):
        if not alert.firing:
            verdicts.append("resolved")
        elif any(not explained(s, alert.at) for s in introduced[i]):
            verdicts.append("false_alarm")
            false_alarms.append(alert)
        elif i in detections:
            verdicts.append("detection")
        else:
            verdicts.append("after_drift")

    names = sorted({a.detector for a in alerts if a.firing})
    detectors = []
    for name in names:
        caught = [r.by_detector[name] for r in results if name in r.by_detector]
        detectors.append(
            DetectorScore(
                name,
                delays_s=tuple(d for d, _ in caught),
                delays_events=tuple(e for _, e in caught),
                missed=len(results) - len(caught),
                false_alarms=sum(a.detector == name for a in false_alarms),
            )
        )
    return BacktestScore(
        points=tuple(results),
        verdicts=tuple(verdicts),
        false_alarms=tuple(false_alarms),
        detectors=tuple(detectors),
        horizon_s=horizon.total_seconds(),
    )


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class BacktestReport:
    """What a backtest found: the alerts, the retrain requests and, given drift points, a score."""

    file: str
    topic_prefix: str
    alerts: tuple[BacktestAlert, ...]
    retrain_requests: tuple[RetrainRequestData, ...]
    score: BacktestScore | None
    predictions: int
    feedback: int
    rejected: int
    first_time: datetime | None
    last_time: datetime | None
    replay_s: float
    monitor_s: float
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what ``--json`` writes)."""
        verdicts = self.score.verdicts if self.score else (None,) * len(self.alerts)
        return {
            "file": self.file,
            "topic_prefix": self.topic_prefix,
            "predictions": self.predictions,
            "feedback": self.feedback,
            "rejected": self.rejected,
            "first_time": _iso(self.first_time) if self.first_time else None,
            "last_time": _iso(self.last_time) if self.last_time else None,
            "replay_s": round(self.replay_s, 3),
            "monitor_s": round(self.monitor_s, 3),
            "interrupted": self.interrupted,
            "alerts": [
                {**a.to_dict(), "verdict": v} for a, v in zip(self.alerts, verdicts, strict=True)
            ],
            "firing_alerts": sum(a.firing for a in self.alerts),
            "retrain_requests": [r.model_dump(mode="json") for r in self.retrain_requests],
            "score": self.score.to_dict() if self.score else None,
        }


# --------------------------------------------------------------------------- the run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _counter(page: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter's samples that carry ``labels`` on a /metrics page."""
    total = 0.0
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class Backtest:
    """Replay a file through a fresh worker on topics of its own, and collect its alerts.

    Parameters
    ----------
    replay
        The file and its column mapping.
    settings
        Where the broker is, and the worker's settings (its topic prefix, port
        and state folder are replaced by the backtest's own).
    drift_points
        True drift points to score the alerts against (none: only list them).
    horizon
        How long after a drift point an alert still counts as its detection.
    alert_policy_file
        The worker's alert policy; ``None``: :data:`DEFAULT_POLICY_YAML`.
    events_per_false_alarm, reference_first_n, window_events
        The worker's drift settings (``None``: those of ``settings``).
    timeout_s
        Longest wait for the worker to count every prediction, after the replay.
    settle_s
        How long the worker's detection and alert counters must stay still
        before the alerts are read.

    :meth:`run` never leaves the topics or the worker behind, whatever happens.
    """

    def __init__(
        self,
        replay: Replay,
        settings: Settings,
        *,
        drift_points: Sequence[DriftPoint] = (),
        horizon: timedelta = timedelta(minutes=10),
        alert_policy_file: Path | None = None,
        events_per_false_alarm: float | None = None,
        reference_first_n: int | None = None,
        window_events: int | None = None,
        timeout_s: float = 300.0,
        settle_s: float = 3.0,
    ) -> None:
        if horizon <= timedelta(0):
            raise BacktestError(f"the horizon must be positive, got {horizon}")
        if alert_policy_file is not None and not Path(alert_policy_file).is_file():
            raise BacktestError(f"no such alert policy file: {alert_policy_file}")
        self.replay = replay
        self.base_settings = settings
        self.drift_points = tuple(drift_points)
        self.horizon = horizon
        self.alert_policy_file = alert_policy_file
        self.drift = {
            "drift_events_per_false_alarm": events_per_false_alarm,
            "drift_reference_first_n": reference_first_n,
            "drift_window_events": window_events,
        }
        self.timeout_s = timeout_s
        self.settle_s = settle_s
        self.topic_prefix = f"backtest-{secrets.token_hex(5)}."
        self.timeline = PredictionTimeline()

    def worker_settings(self, state_dir: Path, policy: Path) -> Settings:
        """The worker's settings: the base ones on the backtest's own topics, port and folder."""
        update: dict[str, Any] = {
            "topic_prefix": self.topic_prefix,
            "worker_app_id": f"{self.topic_prefix}monitor",
            "web_port": _free_port(),
            "state_dir": state_dir,
            "alert_policy_file": policy,
            # the end of the file is the end of the stream: publish the last windows soon
            "idle_close_s": 1.0,
        }
        update.update({k: v for k, v in self.drift.items() if v is not None})
        # built anew rather than model_copy, which would skip validation
        return Settings(_env_file=None, **{**_settings_values(self.base_settings), **update})

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        on_replay: Callable[[ReplayStats], object] | None = None,
        on_reject: Callable[[ReplayItem], object] | None = None,
        on_monitor: Callable[[int, int], object] | None = None,
    ) -> BacktestReport:
        """Replay, monitor, collect, clean up; the report.

        ``on_replay`` sees the replay's progress, ``on_monitor`` (counted,
        expected) the worker's; setting ``stop`` ends the run early (its report
        says ``interrupted``). Raises :class:`BacktestError` when the worker
        fails or does not keep up within ``timeout_s``.
        """
        stop = stop or threading.Event()
        with tempfile.TemporaryDirectory(prefix="driftloop-backtest-") as folder:
            state_dir = Path(folder)
            policy = self.alert_policy_file
            if policy is None:
                policy = state_dir / "alert-policy.yaml"
                policy.write_text(DEFAULT_POLICY_YAML)
            settings = self.worker_settings(state_dir, policy)
            worker = WorkerProcess(settings, state_dir / "worker.log")
            try:
                create_topics(settings)
                # the worker runs before the replay so that it reads the partitions side by
                # side as they fill, as it would live, rather than one backlog after another
                worker.start(timeout_s=min(self.timeout_s, 120.0))
                started = time.monotonic()
                stats = self._replay(settings, stop, on_replay, on_reject)
                replay_s = time.monotonic() - started
                if stop.is_set():
                    return self._report(settings, (), (), stats, replay_s, 0.0, interrupted=True)
                started = time.monotonic()
                self._wait_for(worker, stats.predictions, stop, on_monitor)
                alerts, requests = self._collect(settings)
                monitor_s = time.monotonic() - started
                if not worker.running():
                    raise BacktestError(
                        f"the worker died during the backtest:\n{worker.log_tail()}"
                    )
                return self._report(
                    settings,
                    alerts,
                    requests,
                    stats,
                    replay_s,
                    monitor_s,
                    interrupted=stop.is_set(),
                )
            except StreamsError as exc:
                raise BacktestError(f"{exc}") from None
            finally:
                worker.stop(timeout_s=10)
                # already failing or finished: a topic left over is only replayed data
                with contextlib.suppress(StreamsError):
                    delete_prefixed_topics(settings)

    def _replay(
        self,
        settings: Settings,
        stop: threading.Event,
        on_replay: Callable[[ReplayStats], object] | None,
        on_reject: Callable[[ReplayItem], object] | None,
    ) -> ReplayStats:
        publisher = Publisher(settings, source="urn:driftloop:cli:backtest")
        try:

            def send(event: CloudEvent) -> None:
                if isinstance(event, PredictionEvent):
                    self.timeline.add(event.time)
                publisher.send(event)

            stats = self.replay.run(send, stop=stop, on_reject=on_reject, on_progress=on_replay)
            publisher.flush()
        finally:
            publisher.close()
        return stats

    def _wait_for(
        self,
        worker: WorkerProcess,
        expected: int,
        stop: threading.Event,
        on_monitor: Callable[[int, int], object] | None,
    ) -> None:
        """Until the worker counted ``expected`` predictions and its alerts went quiet."""
        deadline = time.monotonic() + self.timeout_s
        counted = 0
        while not stop.is_set():
            page = worker.metrics_page()
            counted = int(_counter(page, "driftloop_events_total", topic="predictions"))
            if on_monitor is not None:
                on_monitor(counted, expected)
            if counted >= expected:
                break
            if not worker.running():
                raise BacktestError(f"the worker died during the backtest:\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                raise BacktestError(
                    f"the worker counted {counted} of {expected} predictions within "
                    f"{self.timeout_s:g} s; raise --timeout for a large file. Its log ends:\n"
                    f"{worker.log_tail(1500)}"
                )
            stop.wait(0.3)
        last: tuple[float, float] | None = None
        quiet_since = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            page = worker.metrics_page()
            now = (
                _counter(page, "driftloop_drift_detections_total"),
                _counter(page, "driftloop_alerts_total"),
            )
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= self.settle_s:
                return
            stop.wait(0.25)

    def _collect(self, settings: Settings) -> tuple[list[BacktestAlert], list[RetrainRequestData]]:
        alerts: list[BacktestAlert] = []
        requests: list[RetrainRequestData] = []
        with EventReader(settings, ["alerts", "retrain-requests"]) as reader:
            for item in reader.items(until_idle_s=1.5, max_wait_s=60):
                data = item.event.data if item.event is not None else None
                if isinstance(data, AlertData):
                    alerts.append(BacktestAlert.from_alert(data))
                elif isinstance(data, RetrainRequestData):
                    requests.append(data)
        alerts.sort(key=lambda a: (a.at, a.model, a.kind))
        return alerts, requests

    def _report(
        self,
        settings: Settings,
        alerts: Sequence[BacktestAlert],
        requests: Sequence[RetrainRequestData],
        stats: ReplayStats,
        replay_s: float,
        monitor_s: float,
        *,
        interrupted: bool,
    ) -> BacktestReport:
        score = (
            score_alerts(alerts, self.drift_points, horizon=self.horizon, timeline=self.timeline)
            if self.drift_points
            else None
        )
        return BacktestReport(
            file=str(self.replay.path),
            topic_prefix=settings.topic_prefix,
            alerts=tuple(alerts),
            retrain_requests=tuple(requests),
            score=score,
            predictions=stats.predictions,
            feedback=stats.feedback,
            rejected=stats.rejected,
            first_time=stats.first_time,
            last_time=stats.last_time,
            replay_s=replay_s,
            monitor_s=monitor_s,
            interrupted=interrupted,
        )


def _settings_values(settings: Settings) -> dict[str, Any]:
    """A settings object's field values, as a dict that builds the same settings again."""
    return {name: getattr(settings, name) for name in type(settings).model_fields}


def _to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
