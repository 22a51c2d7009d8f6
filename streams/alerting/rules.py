"""Metric rules: thresholds on the window metrics the monitor publishes.

A rule watches one metric of every ``driftloop.metrics.v1`` window (see
:mod:`online_models.window_metrics` for the names) and turns it into firing and
resolved transitions (:class:`~streams.alerting.detection.Detection`):

- a **static** rule compares the value with a fixed level, written as a string
  in the configuration (:func:`parse_rule`)::

      latency_p99_ms > 300
      null_rate > 0.02 for 3 windows
      error_rate >= 0.05 for 2m resolve < 0.01 for 2 windows

- an **adaptive** rule (:class:`AdaptiveRule`) learns the metric's baseline
  online — an exponentially weighted mean and variance of the value window
  after window (river's ``EWMean`` / ``EWVar``) — and fires when the value
  leaves the band ``mean ± k_sigma · std`` after a warm-up.

Both wait before firing (``for``: the condition must hold for N consecutive
windows and/or a span of event time) and resolve with hysteresis (only once
the value has gone back past a resolve level for M consecutive windows), so a
metric that hovers at the threshold does not flap the alert. While a rule is
firing it emits a ``firing`` detection every window (the alert policy
deduplicates them and resolves the alert if they stop for ``resolve_timeout``,
as Alertmanager does), then one ``resolved`` detection.

State is kept per rule, model, version, segment and window size: the 10 s and
the 60 s windows of one model are separate series.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from river import stats

from streams.alerting.detection import Detection, Kind, Severity
from streams.alerting.exceptions import RuleSyntaxError, UnknownMetricError
from streams.events import MetricsData

__all__ = [
    "METRIC_NAMES",
    "METRIC_PATTERNS",
    "AdaptiveRule",
    "MetricRules",
    "StaticRule",
    "check_metric",
    "metric_kind",
    "parse_duration",
    "parse_rule",
]

# ----------------------------------------------------------------------------- metric names

_SOFTWARE = (
    "count",
    "qps",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "error_rate",
    "cpu_percent_mean",
    "memory_mb_mean",
    "outcomes",
    "label_coverage",
    "label_delay_p50_ms",
    "label_delay_p95_ms",
)
_OUTPUT = (
    "null_rate",
    "score.mean",
    "score.p50",
    "score.p95",
    "accuracy",
    "redo_rate",
    "switch_to_typing_rate",
    "click_rate",
)
METRIC_NAMES: tuple[str, ...] = _SOFTWARE + _OUTPUT
"""Fixed metric names of a window (units in :mod:`online_models.window_metrics`)."""

METRIC_PATTERNS: tuple[str, ...] = (
    "label.freq.<label>",
    "feature.<name>.missing_rate",
    "feature.<name>.mean",
    "feature.<name>.std",
    "feature.<name>.min",
    "feature.<name>.max",
    "feature.<name>.p05",
    "feature.<name>.p50",
    "feature.<name>.p95",
    "feature.<name>.freq.<category>",
)
"""Metric names that embed a label, a feature or a category."""

_PATTERN_RE = re.compile(
    r"^(label\.freq\..+|feature\..+\.(missing_rate|mean|std|min|max|p05|p50|p95)"
    r"|feature\..+\.freq\..+)$"
)
_KIND_OF = {name: "software_metric" for name in _SOFTWARE} | {
    name: "output_metric" for name in _OUTPUT
}


def check_metric(name: str) -> str:
    """Return ``name`` if the monitor publishes such a metric, else raise naming the valid ones.

    Examples
    --------
    >>> check_metric("feature.loudness_db.p95")
    'feature.loudness_db.p95'
    >>> check_metric("latency_p99")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streams.alerting.exceptions.UnknownMetricError: unknown metric 'latency_p99'; known: count, \
qps, latency_p50_ms, ...; and the patterns label.freq.<label>, feature.<name>.missing_rate, ...
    """
    if name in _KIND_OF or _PATTERN_RE.match(name):
        return name
    raise UnknownMetricError(
        f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}; "
        f"and the patterns {', '.join(METRIC_PATTERNS)}"
    )


def metric_kind(name: str) -> Kind:
    """The alert kind of a metric: software, output (incl. feedback quality) or input.

    Latency, throughput, errors, host use and the health of the feedback
    pipeline (outcomes, label coverage and delay) are ``software_metric``;
    what the model answered and how users took it (null rate, scores, label
    shares, accuracy, redo/switch/click rates) are ``output_metric``; every
    ``feature.*`` metric is ``input_metric``.

    Examples
    --------
    >>> [metric_kind(m) for m in ("latency_p99_ms", "null_rate", "feature.loudness_db.mean")]
    ['software_metric', 'output_metric', 'input_metric']
    """
    check_metric(name)
    if name.startswith("feature."):
        return "input_metric"
    if name.startswith("label.freq."):
        return "output_metric"
    return _KIND_OF[name]  # type: ignore[return-value]


# ----------------------------------------------------------------------------- durations

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(text: str | float) -> float:
    """Seconds in a duration such as ``90``, ``"30s"``, ``"5m"``, ``"1h30m"`` or ``"2d"``.

    Examples
    --------
    >>> parse_duration("1h30m"), parse_duration("250ms"), parse_duration(45)
    (5400.0, 0.25, 45.0)
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    ValueError: invalid duration 'soon': write a number of seconds or e.g. 30s, 5m, 1h30m, 2d
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"invalid duration {text!r}: must be a finite number >= 0")
        return float(text)
    cleaned = str(text).strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    if cleaned and re.fullmatch(rf"(?:{_DURATION_PART.pattern})+", cleaned):
        return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(cleaned))
    raise ValueError(
        f"invalid duration {text!r}: write a number of seconds or e.g. 30s, 5m, 1h30m, 2d"
    )


# ----------------------------------------------------------------------------- static rules

Op = Literal[">", ">=", "<", "<="]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FOR = r"(?:\s+for\s+(?P<{name}>\d+\s*windows?|[\d.]+\s*[a-z]+(?:[\d.]+\s*[a-z]+)*))"
_RULE_RE = re.compile(
    rf"^\s*(?P<metric>[^\s<>=]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>{_NUMBER})"
    + _FOR.format(name="hold")
    + "?"
    + rf"(?:\s+resolve\s*(?P<rop>>=|<=|>|<)?\s*(?P<rvalue>{_NUMBER})"
    + _FOR.format(name="rhold")
    + r"?)?\s*$"
)
_GRAMMAR = (
    "write METRIC OP NUMBER [for N windows | for DURATION] "
    "[resolve [OP] NUMBER [for M windows]], OP one of > >= < <=, "
    "e.g. 'latency_p99_ms > 300 for 3 windows resolve < 250 for 2 windows'"
)


@dataclass(frozen=True)
class StaticRule:
    """A fixed threshold on one metric, with a ``for`` wait and a resolve level.

    Build it from its text with :func:`parse_rule`. It fires once
    ``value OP threshold`` has held for ``for_windows`` consecutive windows
    spanning at least ``for_s`` seconds of event time, and resolves once
    ``value RESOLVE_OP resolve_at`` has held for ``resolve_windows`` windows.
    Without a resolve clause the resolve level is the threshold itself.
    """

    metric: str
    op: Op
    threshold: float
    for_windows: int = 1
    for_s: float = 0.0
    resolve_op: Op | None = None
    resolve_at: float | None = None
    resolve_windows: int = 1
    severity: Severity = "warning"
    text: str = ""

    def breached(self, value: float) -> bool:
        """Does ``value`` meet the firing condition?"""
        return _OPS[self.op](value, self.threshold)

    def cleared(self, value: float) -> bool:
        """Is ``value`` back past the resolve level?"""
        if self.resolve_op is None or self.resolve_at is None:
            return not self.breached(value)
        return _OPS[self.resolve_op](value, self.resolve_at)


def _parse_hold(text: str | None, rule: str) -> tuple[int, float]:
    if text is None:
        return 1, 0.0
    windows = re.fullmatch(r"(\d+)\s*windows?", text)
    if windows:
        count = int(windows.group(1))
        if count < 1:
            raise RuleSyntaxError(f"rule {rule!r}: 'for' needs at least 1 window")
        return count, 0.0
    try:
        return 1, parse_duration(text)
    except ValueError as exc:
        raise RuleSyntaxError(f"rule {rule!r}: {exc}") from None


_CLEAR_SIDE = {">": ("<", "<="), ">=": ("<", "<="), "<": (">", ">="), "<=": (">", ">=")}


def parse_rule(text: str, *, severity: Severity = "warning") -> StaticRule:
    """Parse a static rule such as ``"null_rate > 0.02 for 3 windows resolve < 0.01"``.

    Raises :class:`~streams.alerting.exceptions.RuleSyntaxError` showing the
    grammar, or :class:`~streams.alerting.exceptions.UnknownMetricError`
    listing the metric names that exist.

    Examples
    --------
    >>> rule = parse_rule("latency_p99_ms > 300 for 3 windows resolve < 250 for 2 windows")
    >>> rule.metric, rule.threshold, rule.for_windows, rule.resolve_at, rule.resolve_windows
    ('latency_p99_ms', 300.0, 3, 250.0, 2)
    >>> parse_rule("null_rate > 0.02 for 2m").for_s
    120.0
    >>> parse_rule("null_rate is high")
    Traceback (most recent call last):
    ...
    streams.alerting.exceptions.RuleSyntaxError: cannot parse rule 'null_rate is high': write \
METRIC OP NUMBER [for N windows | for DURATION] [resolve [OP] NUMBER [for M windows]], OP one of \
> >= < <=, e.g. 'latency_p99_ms > 300 for 3 windows resolve < 250 for 2 windows'
    """
    match = _RULE_RE.match(text)
    if match is None:
        raise RuleSyntaxError(f"cannot parse rule {text!r}: {_GRAMMAR}")
    metric = check_metric(match["metric"])
    op: Op = match["op"]  # type: ignore[assignment]
    threshold = float(match["value"])
    for_windows, for_s = _parse_hold(match["hold"], text)
    resolve_op: Op | None = None
    resolve_at: float | None = None
    resolve_windows = 1
    if match["rvalue"] is not None:
        resolve_at = float(match["rvalue"])
        resolve_op = match["rop"] or _CLEAR_SIDE[op][0]  # type: ignore[assignment]
        if resolve_op not in _CLEAR_SIDE[op]:
            raise RuleSyntaxError(
                f"rule {text!r}: a rule that fires on '{op}' resolves on "
                f"{' or '.join(repr(o) for o in _CLEAR_SIDE[op])}, not {resolve_op!r}"
            )
        wrong_side = resolve_at > threshold if op in (">", ">=") else resolve_at < threshold
        if wrong_side:
            raise RuleSyntaxError(
                f"rule {text!r}: the resolve level {resolve_at:g} must be on the clear side of "
                f"the threshold {threshold:g} (that is the hysteresis band)"
            )
        resolve_windows, resolve_s = _parse_hold(match["rhold"], text)
        if resolve_s:
            raise RuleSyntaxError(
                f"rule {text!r}: resolve 'for' counts windows, e.g. 'for 2 windows'"
            )
    return StaticRule(
        metric=metric,
        op=op,
        threshold=threshold,
        for_windows=for_windows,
        for_s=for_s,
        resolve_op=resolve_op,
        resolve_at=resolve_at,
        resolve_windows=resolve_windows,
        severity=severity,
        text=text.strip(),
    )


# ----------------------------------------------------------------------------- adaptive rules


@dataclass(frozen=True)
class AdaptiveRule:
    """Fire when a metric leaves the band its own recent history learned.

    Parameters
    ----------
    metric
        Metric name (checked against :data:`METRIC_NAMES` / :data:`METRIC_PATTERNS`).
    k_sigma
        Fire when ``|value - mean| > k_sigma * std`` (in ``direction``).
    resolve_k_sigma
        Resolve once the value is back within ``resolve_k_sigma * std``
        (``<= k_sigma``; the gap is the hysteresis band).
    fading_factor
        Weight of the newest window in the EWMA mean and variance (river's
        ``fading_factor``; closer to 1 forgets faster).
    warmup_windows
        Windows learned before the rule may fire.
    direction
        ``up`` (only rises alarm), ``down`` or ``both``.
    min_std, min_relative_std
        Floors of the std, absolute and as a share of ``|mean|``, so a metric
        that has been constant does not fire on the first tiny change.
    for_windows, resolve_windows, severity
        As for :class:`StaticRule`.

    The baseline learns only from windows inside the band while the rule is not
    firing: an anomaly is not absorbed into the normal it is measured against
    (a lasting change keeps the alert firing until the model version changes,
    which starts a new baseline).
    """

    metric: str
    k_sigma: float = 3.0
    resolve_k_sigma: float = 2.0
    fading_factor: float = 0.1
    warmup_windows: int = 10
    direction: Literal["up", "down", "both"] = "both"
    min_std: float = 0.0
    min_relative_std: float = 0.01
    for_windows: int = 1
    resolve_windows: int = 1
    severity: Severity = "warning"

    def __post_init__(self) -> None:
        check_metric(self.metric)
        if not 0 < self.resolve_k_sigma <= self.k_sigma:
            raise ValueError(
                f"adaptive rule on {self.metric}: need 0 < resolve_k_sigma <= k_sigma "
                f"(got {self.resolve_k_sigma} and {self.k_sigma})"
            )
        if not 0 < self.fading_factor < 1:
            raise ValueError(f"adaptive rule on {self.metric}: fading_factor must be in (0, 1)")
        if self.warmup_windows < 2 or self.for_windows < 1 or self.resolve_windows < 1:
            raise ValueError(
                f"adaptive rule on {self.metric}: need warmup_windows >= 2, "
                "for_windows >= 1, resolve_windows >= 1"
            )


# ----------------------------------------------------------------------------- evaluation


@dataclass
class _Series:
    """The state of one rule on one series (model, version, segment, window size)."""

    firing: bool = False
    breach_run: int = 0
    breach_since: datetime | None = None
    breach_events: int = 0
    clear_run: int = 0
    seen: int = 0
    mean: stats.EWMean | None = None
    var: stats.EWVar | None = None
    fired_at: datetime | None = None
    last_threshold: float = 0.0


@dataclass
class _Verdict:
    breached: bool
    cleared: bool
    threshold: float
    describe: str


SeriesKey = tuple[int, str, str, tuple[tuple[str, str], ...], float]


@dataclass
class MetricRules:
    """Evaluate static and adaptive rules on metrics windows; emit firing/resolved detections.

    Parameters
    ----------
    static
        Static rules (see :func:`parse_rule`).
    adaptive
        Adaptive rules.

    Examples
    --------
    A p99 latency that rises above 300 ms for two windows fires (the first
    breaching window is only pending), then resolves after two windows below
    250 ms; 280 ms sits in the hysteresis band and keeps it firing:

    >>> from datetime import UTC, datetime, timedelta
    >>> rules = MetricRules(static=[parse_rule(
    ...     "latency_p99_ms > 300 for 2 windows resolve < 250 for 2 windows")])
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> for i, p99 in enumerate([120, 320, 340, 280, 240, 260, 230, 220]):
    ...     window = MetricsData(model="voice-intent", model_version="3",
    ...         window_start=t0 + timedelta(seconds=60 * i),
    ...         window_end=t0 + timedelta(seconds=60 * (i + 1)),
    ...         count=100, metrics={"latency_p99_ms": p99})
    ...     print(p99, [d.status for d in rules.observe(window)])
    120 []
    320 []
    340 ['firing']
    280 ['firing']
    240 ['firing']
    260 ['firing']
    230 ['firing']
    220 ['resolved']
    """

    static: Sequence[StaticRule] = ()
    adaptive: Sequence[AdaptiveRule] = ()
    _series: dict[SeriesKey, _Series] = field(default_factory=dict, init=False, repr=False)

    @property
    def series(self) -> int:
        """How many (rule, model, version, segment, window size) series are tracked."""
        return len(self._series)

    def observe_many(self, windows: Iterable[MetricsData]) -> list[Detection]:
        """:meth:`observe` every window, in order; all the detections."""
        return [d for window in windows for d in self.observe(window)]

    def observe(self, window: MetricsData) -> list[Detection]:
        """Evaluate every rule on one closed window; the detections it causes.

        A metric that is absent or ``None`` in the window leaves its rules as
        they were (nothing was measured).
        """
        detections: list[Detection] = []
        segment = tuple(sorted((window.segment or {}).items()))
        size = (window.window_end - window.window_start).total_seconds()
        rules: list[StaticRule | AdaptiveRule] = [*self.static, *self.adaptive]
        for index, rule in enumerate(rules):
            value = window.metrics.get(rule.metric)
            if value is None:
                continue
            key = (index, window.model, window.model_version, segment, size)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series()
            if isinstance(rule, StaticRule):
                verdict = _judge_static(rule, value)
            else:
                verdict = _judge_adaptive(rule, series, value)
                if verdict is None:
                    continue
            detection = self._step(rule, series, verdict, value, window)
            if detection is not None:
                detections.append(detection)
        return detections

    def _step(
        self,
        rule: StaticRule | AdaptiveRule,
        series: _Series,
        verdict: _Verdict,
        value: float,
        window: MetricsData,
    ) -> Detection | None:
        if not series.firing:
            if not verdict.breached:
                series.breach_run, series.breach_since, series.breach_events = 0, None, 0
                return None
            series.breach_run += 1
            series.breach_events += window.count
            if series.breach_since is None:
                series.breach_since = window.window_start
            held_s = (window.window_end - series.breach_since).total_seconds()
            for_s = rule.for_s if isinstance(rule, StaticRule) else 0.0
            if series.breach_run < rule.for_windows or held_s < for_s:
                return None
            series.firing, series.clear_run = True, 0
            series.fired_at = window.window_end
        elif verdict.cleared:
            series.clear_run += 1
            if series.clear_run >= rule.resolve_windows:
                detection = _detection(rule, series, verdict, value, window, "resolved")
                series.firing, series.breach_run, series.breach_since = False, 0, None
                series.breach_events, series.clear_run = 0, 0
                return detection
        else:
            series.clear_run = 0
            series.breach_events += window.count
        series.last_threshold = verdict.threshold
        return _detection(rule, series, verdict, value, window, "firing")


def _judge_static(rule: StaticRule, value: float) -> _Verdict:
    return _Verdict(
        breached=rule.breached(value),
        cleared=rule.cleared(value),
        threshold=rule.threshold,
        describe=f"{rule.op} {rule.threshold:g}",
    )


def _judge_adaptive(rule: AdaptiveRule, series: _Series, value: float) -> _Verdict | None:
    if series.mean is None or series.var is None:
        series.mean = stats.EWMean(fading_factor=rule.fading_factor)
        series.var = stats.EWVar(fading_factor=rule.fading_factor)
    if series.seen < rule.warmup_windows:
        series.mean.update(value)
        series.var.update(value)
        series.seen += 1
        return None
    mean = series.mean.get()
    # EWVar is E[x²] - E[x]²: rounding can make it a hair below zero
    spread = math.sqrt(max(series.var.get(), 0.0))
    std = max(spread, rule.min_std, rule.min_relative_std * abs(mean))
    deviation = value - mean
    up = rule.direction in ("up", "both")
    down = rule.direction in ("down", "both")
    breached = (up and deviation > rule.k_sigma * std) or (down and -deviation > rule.k_sigma * std)
    cleared = abs(deviation) <= rule.resolve_k_sigma * std
    if not breached and not series.firing:
        series.mean.update(value)
        series.var.update(value)
        series.seen += 1
    edge = mean + rule.k_sigma * std if deviation >= 0 else mean - rule.k_sigma * std
    side = ">" if deviation >= 0 else "<"
    return _Verdict(
        breached=breached,
        cleared=cleared,
        threshold=edge,
        describe=f"{side} {edge:.4g} (baseline {mean:.4g} ± {rule.k_sigma:g}σ, σ={std:.3g})",
    )


def _detection(
    rule: StaticRule | AdaptiveRule,
    series: _Series,
    verdict: _Verdict,
    value: float,
    window: MetricsData,
    status: Literal["firing", "resolved"],
) -> Detection:
    detector = "static" if isinstance(rule, StaticRule) else "adaptive"
    since = series.breach_since or window.window_start
    if status == "firing":
        summary = f"{rule.metric} = {value:.4g} {verdict.describe} ({detector} rule)"
    else:
        summary = f"{rule.metric} = {value:.4g}: back to normal ({detector} rule)"
    return Detection(
        model=window.model,
        model_version=window.model_version,
        signal=rule.metric,
        kind=metric_kind(rule.metric),
        severity=rule.severity,
        detector=detector,
        statistic=value,
        threshold=verdict.threshold if status == "firing" else series.last_threshold,
        detected_at=window.window_end,
        evidence_start=since,
        evidence_end=window.window_end,
        evidence_events=series.breach_events,
        segment=dict(window.segment) if window.segment else None,
        status=status,
        summary=summary,
    )
