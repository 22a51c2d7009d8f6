"""The voice-search loop story: ``driftloop demo --story loop``.

A ``voice_intent`` champion is trained on clean pre-drift voice searches
(real audio features of espeak-ng clips, :mod:`producers.voice`) and
registered; ``driftloop worker``, ``retrainer``, ``rollout`` and ``serve`` are
started as processes (:func:`driftloop.loop.run_loop`); voice searches go to the
router at a steady rate and the users' feedback to Kafka. Part-way, the
scenario's drift starts, and the story is told as the events arrive: a line
per metrics window, the alerts, the retrain request, the published challenger,
shadow, canary, the ramp and the promotion. The default story has two acts,
each closing its own loop: ``sudden-mic`` (every microphone 20 dB quieter at
once), then, on top of it, ``gradual`` (over a minute users speak faster and
move to new vocabulary). At the end a :class:`StorySummary` per act is built
*from the topics and the registry*, read back afresh — not from what the demo
expected — and printed, and optionally written as JSON (:class:`StoryResult`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from online_models.models.datasets import LabelledRow
from online_models.registry import ModelRegistry
from producers.voice import ClipFeatures, Scenario, VoiceTraffic, get_scenario, train_champion
from producers.voice.scenario import PRE_DRIFT, Mix, Phase
from producers.voice.traffic import FeatureSource
from streams.alerting import alert_signals
from streams.events import (
    AlertEvent,
    CloudEvent,
    MetricsEvent,
    ModelEventEvent,
)
from streams.reader import EventReader
from streams.settings import Settings

__all__ = [
    "STEP_ORDER",
    "StoryError",
    "StoryResult",
    "StorySummary",
    "VoiceRows",
    "compressed",
    "on_top_of",
    "read_summary",
    "run_story",
]

#: The steps of a complete loop, in order; a summary names the first one missing.
STEP_ORDER = (
    "alert",
    "retrain request",
    "published",
    "shadow_started",
    "canary_started",
    "ramp_step",
    "promoted",
)


class StoryError(Exception):
    """The story cannot be told as asked; the message says what to change."""


def compressed(scenario: Scenario, *, drift_at_s: float, ramp_s: float | None = None) -> Scenario:
    """``scenario`` with its drift at ``drift_at_s`` and every ramp shortened to ``ramp_s``.

    A demo has minutes, not the half hour of the registered ``gradual`` ramp;
    the phases after a ramp move with it.

    Examples
    --------
    >>> gradual = compressed(get_scenario("gradual"), drift_at_s=30.0, ramp_s=90.0)
    >>> [(p.name, p.start_s, p.ramp_s) for p in gradual.phases]
    [('before', 0.0, 0.0), ('drifting', 30.0, 90.0), ('drifted', 120.0, 0.0)]
    >>> gradual.description[-45:]
    'new vocabulary (played compressed: over 90 s)'
    """
    old = scenario.phases
    if len(old) < 2:
        return scenario
    description = scenario.description
    if ramp_s is not None and any(phase.ramp_s > ramp_s for phase in old):
        description += f" (played compressed: over {ramp_s:g} s)"
    phases = [old[0]]
    for index, phase in enumerate(old[1:], start=1):
        if index == 1:
            start = drift_at_s
        else:
            gap = phase.start_s - old[index - 1].start_s
            if ramp_s is not None and old[index - 1].ramp_s > ramp_s:
                gap -= old[index - 1].ramp_s - ramp_s
            start = phases[-1].start_s + max(gap, 1e-3)
        ramp = phase.ramp_s if ramp_s is None else min(phase.ramp_s, ramp_s)
        phases.append(Phase(phase.name, start, phase.mix, ramp))
    return Scenario(scenario.name, description, tuple(phases))


def on_top_of(scenario: Scenario, before: Mix) -> Scenario:
    """``scenario`` played from ``before`` (the last act's traffic) instead of clean traffic.

    Its pre-drift phase becomes ``before``; each later phase keeps what the
    scenario changes and, for what it leaves at the clean default, what
    ``before`` had: a gradual drift after a quiet microphone keeps the
    microphone quiet.

    Examples
    --------
    >>> quiet = get_scenario("sudden-mic").phases[-1].mix
    >>> later = on_top_of(get_scenario("gradual"), quiet)
    >>> later.phases[0].mix.perturbations, later.phases[-1].mix.perturbations
    ({'quiet_mic': 1.0}, {'quiet_mic': 1.0})
    >>> later.phases[-1].mix.vocabularies
    {'base': 0.4, 'new': 0.6}
    """
    default = PRE_DRIFT
    phases = [Phase(scenario.phases[0].name, 0.0, before)]
    for phase in scenario.phases[1:]:
        mix = phase.mix
        mix = Mix(
            mix.vocabularies if mix.vocabularies != default.vocabularies else before.vocabularies,
            # a tempo or level change of the scenario replaces the microphone of before only
            # when it has one of its own; "fast speech" on a quiet microphone stays quiet
            before.perturbations
            if set(mix.perturbations) <= {"clean", "fast_speech"}
            else mix.perturbations,
            mix.speeds if mix.speeds != default.speeds else before.speeds,
        )
        phases.append(Phase(phase.name, phase.start_s, mix, phase.ramp_s))
    return Scenario(scenario.name, scenario.description, tuple(phases))


class VoiceRows:
    """Voice searches as labelled rows for :class:`~producers.traffic.TrafficDriver`.

    Until :attr:`drift` is set above 0 the rows come from the scenario's
    pre-drift mix; from then on the scenario plays on the wall clock from its
    drift point (a sudden change at once, a ramp over its ``ramp_s``). Each
    row carries the share of the drifted mix it was drawn from (0 to 1).

    Parameters
    ----------
    scenario
        A scenario (see :func:`compressed` for a demo-length one).
    features
        The features of a clip (usually :meth:`ClipFeatures.features`).
    seed
        Seed of the first draw; every later draw uses the next one.
    clock
        Wall seconds (for tests).

    Examples
    --------
    >>> def features(key):
    ...     return {"loudness_db": -40.0 if key.perturbation == "quiet_mic" else -20.0}
    >>> rows = VoiceRows(get_scenario("sudden-mic"), features, seed=1)
    >>> before = rows.take(3)
    >>> rows.drift = 1.0
    >>> after = rows.take(2)
    >>> [(row.features["loudness_db"], drift) for row, drift in before + after]
    [(-20.0, 0.0), (-20.0, 0.0), (-20.0, 0.0), (-40.0, 1.0), (-40.0, 1.0)]
    >>> before[0][0].label in ("weather", "music", "news", "navigation", "timer", "shopping")
    True
    """

    def __init__(
        self,
        scenario: Scenario,
        features: FeatureSource,
        *,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if scenario.drift_at_s is None:
            raise StoryError(f"scenario {scenario.name!r} has no drift; pick one with two phases")
        self.scenario = scenario
        self.features = features
        self._seed = seed
        self._clock = clock
        self._onset: float | None = None
        self._lock = threading.Lock()
        self._drift = 0.0

    @property
    def drift(self) -> float:
        """0 before the onset; set it above 0 to start the scenario's drift now."""
        return self._drift

    @drift.setter
    def drift(self, value: float) -> None:
        if value > 0 and self._onset is None:
            self._onset = self._clock()
        self._drift = value

    def _at(self) -> tuple[Scenario, float]:
        """A one-phase scenario of the mix in force now, and the drifted share of it."""
        drift_at = self.scenario.drift_at_s or 0.0
        elapsed = 0.0 if self._onset is None else drift_at + max(self._clock() - self._onset, 0.0)
        phase = self.scenario.phase_at(elapsed)
        mix = self.scenario.mix_at(elapsed)
        if elapsed < drift_at:
            share = 0.0
        elif self.scenario.is_ramping(elapsed):
            share = (elapsed - phase.start_s) / phase.ramp_s
        else:
            share = 1.0
        return Scenario(self.scenario.name, phase.name, (Phase(phase.name, 0.0, mix),)), share

    def next_act(self, scenario: Scenario) -> None:
        """Play ``scenario`` from its drift point, starting now (the story's next drift)."""
        if scenario.drift_at_s is None:
            raise StoryError(f"scenario {scenario.name!r} has no drift; pick one with two phases")
        with self._lock:
            self.scenario = scenario
            self._onset = self._clock()
            self._drift = 1.0

    def take(self, n: int) -> list[tuple[LabelledRow, float]]:
        """The next ``n`` rows, each with the drifted share of the mix it was drawn from."""
        with self._lock:
            now, share = self._at()
            seed = self._seed
            self._seed += 1
        traffic = VoiceTraffic(now, self.features, rate=10.0, seed=seed, run_id=f"rows-{seed}")
        return [
            (LabelledRow(request.features, request.true_intent, {}), share)
            for request in traffic.requests(count=n)
        ]


# --------------------------------------------------------------------------- the summary


@dataclass
class StorySummary:
    """What the topics and the registry say happened, read back after the run.

    Times are seconds since the drift onset (the moment the traffic changed).
    """

    scenario: str
    description: str
    model: str
    onset: str
    finished: bool
    champion_before: int
    champion_after: int | None
    versions: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    first_detection_s: float | None
    drifted_signals: dict[str, list[str]]
    before_onset_signals: list[str]
    error_rates: dict[str, float | None]
    redo_rates: dict[str, float | None]
    stuck_at: str | None
    topic_prefix: str = ""
    registry_namespace: str = ""
    answers_by_version: dict[str, int] = field(default_factory=dict)
    act: str = ""

    def to_json(self) -> str:
        """The summary as JSON (what ``--json`` writes)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _weighted(events: Sequence[MetricsEvent], name: str, weight: str) -> float | None:
    pairs = [
        (e.data.metrics[name], e.data.metrics.get(weight) or 0.0)
        for e in events
        if e.data.metrics.get(name) is not None
    ]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def _latest_windows(events: Sequence[CloudEvent]) -> list[MetricsEvent]:
    """The last report of each window (a window is re-reported when late outcomes join)."""
    latest: dict[tuple[Any, ...], MetricsEvent] = {}
    for event in events:
        if isinstance(event, MetricsEvent):
            data = event.data
            key = (data.model_version, data.window_start, json.dumps(data.segment, default=str))
            latest[key] = event
    return list(latest.values())


def read_summary(
    settings: Settings,
    secret: str,
    *,
    scenario: Scenario,
    model: str,
    onset: datetime,
    champion_before: int,
    answers: Sequence[Any] = (),
    until: datetime | None = None,
    since: datetime | None = None,
) -> StorySummary:
    """Read the alerts, retrain requests, model events and metrics back, and the registry.

    ``answers`` (the users' answers, :class:`~producers.traffic.Answer`) give the
    error rates the users saw; everything else comes from the topics and Redis.
    With ``until`` (the next act's onset) only what happened before it counts,
    and the champion after is the version this act promoted; with ``since``
    (when the previous act ended) nothing before it counts.
    """
    from driftloop.loop import steps as loop_steps
    from producers.traffic import error_rate

    events: list[CloudEvent] = []
    seen: set[str] = set()
    with EventReader(settings, ["alerts", "retrain-requests", "model-events", "metrics"]) as reader:
        for item in reader.items(until_idle_s=2.0, max_wait_s=60.0):
            if item.event is not None and item.event.id not in seen:
                seen.add(item.event.id)
                events.append(item.event)
    if until is not None:
        events = [e for e in events if e.time < until]
        answers = [a for a in answers if a.sent_at < until]
    if since is not None:
        events = [e for e in events if e.time >= since]
        answers = [a for a in answers if a.sent_at >= since]
    found = loop_steps(onset, events)

    alerts = [
        e
        for e in events
        if isinstance(e, AlertEvent) and e.data.status == "firing" and e.data.model == model
    ]
    # a grouped alert is re-sent, with the same id, each time a signal joins its group, and its
    # detected_at is when the group was notified: a signal counts from the first alert naming it
    named: set[tuple[str, str]] = set()
    alert_rows = []
    for alert in sorted(alerts, key=lambda a: a.data.detected_at):
        data = alert.data
        new = [n for n in alert_signals(data) if (data.kind, n) not in named]
        named.update((data.kind, n) for n in new)
        alert_rows.append(
            {
                "alert_id": data.alert_id,
                "kind": data.kind,
                "signal": data.signal,
                "new_signals": new,
                "pattern": data.pattern,
                "severity": data.severity,
                "detector": data.detector,
                "model_version": data.model_version,
                "detected_at": data.detected_at.isoformat(),
                "since_onset_s": round((data.detected_at - onset).total_seconds(), 3),
                "evidence_end_since_onset_s": round((data.evidence.end - onset).total_seconds(), 3),
            }
        )
    after = [row for row in alert_rows if row["since_onset_s"] >= 0 and row["new_signals"]]
    early = [row for row in alert_rows if row["since_onset_s"] < 0]
    drifted: dict[str, list[str]] = {}
    for row in after:
        drifted.setdefault(row["kind"], []).extend(row["new_signals"])
    first_s = min((row["since_onset_s"] for row in after), default=None)

    client = redis.Redis.from_url(settings.redis_url)
    try:
        registry = ModelRegistry(client, secret, settings.registry_namespace)
        champion_after = registry.get_alias(model, "champion")
        if until is not None:  # an earlier act: the version it promoted, if any
            promoted_here = [s.name for s in found if s.name.startswith("promoted v")]
            champion_after = (
                int(promoted_here[-1].split(" v")[1]) if promoted_here else (champion_before)
            )
        versions = [
            {
                "version": v.version,
                "status": v.status,
                "aliases": list(v.aliases),
                "created_at": v.created_at.isoformat(),
                "since_onset_s": round((v.created_at - onset).total_seconds(), 3),
                "parent_version": v.metadata.parent_version,
            }
            for v in registry.list_versions(model)
        ]
    finally:
        client.close()

    promoted = next((s.at for s in found if s.name.startswith("promoted")), None)
    windows = [w for w in _latest_windows(events) if w.data.model == model]

    def period(start: datetime | None, end: datetime | None) -> list[MetricsEvent]:
        return [
            w
            for w in windows
            if (start is None or w.data.window_start >= start)
            and (end is None or w.data.window_end <= end)
        ]

    redo_rates = {
        "before drift": _weighted(period(None, onset), "redo_rate", "outcomes"),
        "drift until promotion": _weighted(period(onset, promoted), "redo_rate", "outcomes"),
        "after promotion": (
            _weighted(period(promoted, None), "redo_rate", "outcomes") if promoted else None
        ),
    }
    before = [a for a in answers if a.sent_at < onset]
    during = [
        a for a in answers if a.sent_at >= onset and (promoted is None or a.sent_at < promoted)
    ]
    later = [a for a in answers if promoted is not None and a.sent_at >= promoted]
    by_version: dict[str, int] = {}
    for answer in answers:
        key = f"v{answer.model_version} {answer.route}"
        by_version[key] = by_version.get(key, 0) + 1

    names = [s.name.split(" v")[0] for s in found]
    reached = {"alert" if "alert" in n else n for n in names}
    finished = champion_after is not None and champion_after > champion_before
    stuck = None if finished else next((s for s in STEP_ORDER if s not in reached), "promoted")
    return StorySummary(
        scenario=scenario.name,
        description=scenario.description,
        model=model,
        onset=onset.isoformat(),
        finished=finished,
        champion_before=champion_before,
        champion_after=champion_after,
        versions=versions,
        alerts=alert_rows,
        steps=[
            {
                "name": s.name,
                "at": s.at.isoformat(),
                "since_onset_s": s.since_onset_s,
                "detail": s.detail,
            }
            for s in found
        ],
        first_detection_s=first_s,
        drifted_signals={kind: sorted(names) for kind, names in sorted(drifted.items())},
        before_onset_signals=sorted({n for row in early for n in row["new_signals"]}),
        error_rates={
            "before drift": error_rate(before),
            "drift until promotion": error_rate(during),
            "after promotion": error_rate(later),
        },
        redo_rates=redo_rates,
        stuck_at=stuck,
        topic_prefix=settings.topic_prefix,
        registry_namespace=settings.registry_namespace,
        answers_by_version=dict(sorted(by_version.items())),
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def print_summary(summary: StorySummary, console: Console) -> None:
    """The summary as tables: what drifted, when it was seen, who serves, how users fared."""
    act = f" of {summary.act}" if summary.act else ""
    console.rule(f"[bold]summary{act}[/] — read back from the topics and the registry")
    console.print(f"scenario [bold]{summary.scenario}[/]: {summary.description}")
    console.print(f"drift onset {summary.onset}")
    alerts = Table("+s", "kind", "new signals", "pattern", "severity", "detector", "on",
                   "evidence to", title="firing alerts (+s: when notified)")  # fmt: skip
    for a in summary.alerts:
        alerts.add_row(
            f"{a['since_onset_s']:+.1f}", a["kind"], ", ".join(a["new_signals"]) or "(update)",
            str(a["pattern"] or "—"), a["severity"], a["detector"], f"v{a['model_version']}",
            f"{a['evidence_end_since_onset_s']:+.1f}",
        )  # fmt: skip
    console.print(alerts)
    steps = Table("+s", "step", "detail", title="the loop (alerts, retrain-requests, model-events)")
    for s in summary.steps:
        steps.add_row(f"{s['since_onset_s']:+.1f}", s["name"], s["detail"])
    console.print(steps)
    rates = Table("period", "users' error rate", "redo rate (metrics topic)",
                  title="how the users fared")  # fmt: skip
    for name, rate in summary.error_rates.items():
        rates.add_row(name, _pct(rate), _pct(summary.redo_rates.get(name)))
    console.print(rates)
    detected = (
        "not detected"
        if summary.first_detection_s is None
        else f"first detected {summary.first_detection_s:.1f} s after the onset"
    )
    drifted = "; ".join(
        f"{kind.replace('_', ' ')}: {', '.join(signals)}"
        for kind, signals in summary.drifted_signals.items()
    )
    console.print(f"what drifted: {drifted or 'nothing'} ({detected})")
    if summary.before_onset_signals:
        console.print(
            f"[yellow]alerted before the onset (false alarms on clean traffic): "
            f"{', '.join(summary.before_onset_signals)}[/]"
        )
    console.print(
        f"champion in the registry: v{summary.champion_before} before, "
        f"v{summary.champion_after} now; versions: "
        + ", ".join(f"v{v['version']} {v['status']}" for v in summary.versions)
    )
    console.print("answers by version and route: " + ", ".join(
        f"{k} {n}" for k, n in summary.answers_by_version.items()))  # fmt: skip
    if summary.finished:
        console.print(f"[green]✔ the loop closed: v{summary.champion_after} serves[/]")
    else:
        console.print(f"[red]✘ the loop did not close; stuck before: {summary.stuck_at}[/]")


# --------------------------------------------------------------------------- telling it live


class _Narrator:
    """Prints a line per metrics window and per firing alert as they reach the topics."""

    def __init__(self, settings: Settings, model: str, console: Console) -> None:
        self.console = console
        self.model = model
        self.onset: datetime | None = None
        self.acts_begun = 0
        self._reader = EventReader(settings, ["metrics", "alerts"])
        self._stop = threading.Event()
        self._told: set[tuple[Any, ...]] = set()
        self._thread = threading.Thread(target=self._run, name="demo-narrator", daemon=True)
        self._thread.start()

    def _since(self, at: datetime) -> str:
        if self.onset is None:
            return "   before"
        return f"{(at - self.onset).total_seconds():+8.1f}s"

    def _tell(self, event: CloudEvent) -> None:
        if isinstance(event, MetricsEvent) and event.data.model == self.model:
            data = event.data
            metrics = data.metrics
            # a window is re-reported when its late outcomes join: tell it once they have
            key = (data.model_version, data.window_start, json.dumps(data.segment, default=str))
            if key in self._told or not metrics.get("outcomes"):
                return
            self._told.add(key)
            loud = metrics.get("feature.loudness_db.mean")
            self.console.print(
                f"[dim]{self._since(data.window_end)}  window {data.window_start:%H:%M:%S} "
                f"v{data.model_version:<2} {data.count:4d} requests  "
                f"loudness {'—' if loud is None else f'{loud:6.1f} dB'}  "
                f"redo {_pct(metrics.get('redo_rate')):>6}  "
                f"accuracy {_pct(metrics.get('accuracy')):>6}[/]"
            )
        elif isinstance(event, AlertEvent) and event.data.model == self.model:
            data = event.data
            colour = "red" if data.status == "firing" else "green"
            self.console.print(
                f"[{colour}]{self._since(data.detected_at)}  ALERT {data.status}: {data.kind} "
                f"on {data.signal} ({data.pattern or '—'}, {data.severity}, {data.detector}) "
                f"v{data.model_version}[/]"
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            for item in self._reader.items(until_idle_s=0.5, max_wait_s=1.0):
                if item.event is not None:
                    self._tell(item.event)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._reader.close()


def start_dashboard(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``driftloop dashboard`` on these topics, in its own session so it outlives the demo."""
    from streams.testing import worker_environment

    driftloop = str(Path(sys.executable).with_name("driftloop"))
    env = {**os.environ, **worker_environment(settings)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [driftloop, "dashboard", "--port", str(port), "--since", "all"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


@dataclass(frozen=True)
class StoryOptions:
    """The knobs of the story; the defaults close the loop in about two minutes warm.

    ``rate_per_s`` requests a second; ``before_drift_s`` of clean traffic first;
    ``timeout_s`` after the onset the loop must have promoted a new version;
    ``champion_requests`` clean requests the champion is trained on;
    ``ramp_s`` the length a gradual scenario's ramp is compressed to;
    ``scenario`` one name or several separated by commas, played in turn (each
    act on top of the last one's traffic, ``between_acts_s`` after the
    previous promotion).
    """

    scenario: str = "sudden-mic,gradual"
    rate_per_s: float = 80.0
    before_drift_s: float = 40.0
    timeout_s: float = 240.0
    champion_requests: int = 5_000
    ramp_s: float = 60.0
    between_acts_s: float = 20.0
    seed: int = 0


@dataclass
class StoryResult:
    """The summaries of every act that began (one per scenario of the story)."""

    acts: list[StorySummary]
    total_acts: int

    @property
    def finished(self) -> bool:
        """Whether every act closed its loop (a retrained version promoted in each)."""
        return len(self.acts) == self.total_acts and all(a.finished for a in self.acts)

    def to_json(self) -> str:
        """The summaries as JSON (what ``--json`` writes)."""
        return json.dumps(
            {"finished": self.finished, "acts": [asdict(a) for a in self.acts]},
            indent=2,
            sort_keys=True,
        )


def run_story(
    base: Settings,
    workdir: Path,
    options: StoryOptions,
    *,
    console: Console,
    keep: bool = False,
    features: FeatureSource | None = None,
) -> StoryResult:
    """Tell the voice-search loop story once and return its summaries (read back at the end).

    ``base`` gives the broker, Redis, topic prefix and registry namespace (the
    topics are created here). With ``keep`` a ``driftloop dashboard`` is started
    on the topics and left running when this returns.
    """
    from driftloop.loop import SECRET, Act, LoopConfig, loop_settings, run_loop
    from streams.admin import create_topics

    names = [name.strip() for name in options.scenario.split(",") if name.strip()]
    scenarios: list[Scenario] = []
    for name in names:
        scenario = compressed(
            get_scenario(name), drift_at_s=options.before_drift_s, ramp_s=options.ramp_s
        )
        if scenarios:
            scenario = on_top_of(scenario, scenarios[-1].phases[-1].mix)
        scenarios.append(scenario)
    if not scenarios:
        raise StoryError("no scenario given; name one or more, e.g. sudden-mic,gradual")
    console.rule(
        "[bold]driftloop demo[/] — voice search: " + ", then ".join(s.name for s in scenarios)
    )
    for number, scenario in enumerate(scenarios, start=1):
        act = f"act {number}: " if len(scenarios) > 1 else ""
        console.print(f"what will happen: {act}{scenario.description}")
    if features is None:
        source = ClipFeatures()
        keys = list(dict.fromkeys(
            key for scenario in scenarios
            for key in VoiceTraffic(scenario, source.features, rate=10.0).clip_keys()
        ))  # fmt: skip
        console.print(
            f"preparing the audio features of {len(keys)} clips (espeak-ng + torchaudio, cached "
            f"in {source.cache_dir}; the first run synthesises them all: about a minute)…"
        )
        started = time.perf_counter()
        computed = source.warm(keys)
        console.print(
            f"  {len(keys)} clips ready in {time.perf_counter() - started:.1f} s "
            f"({computed} featurised now, the rest from the cache)"
        )
        features = source.features
    started = time.perf_counter()
    champion = train_champion(
        features, scenario=scenarios[0], requests=options.champion_requests,
        seed=1_000 + options.seed,
    )  # fmt: skip
    console.print(
        f"champion trained on {champion.learned} clean voice searches "
        f"in {time.perf_counter() - started:.1f} s"
    )
    config = LoopConfig(
        model="voice_intent",
        dataset="voice_intent",
        rate_per_s=options.rate_per_s,
        before_drift_s=options.before_drift_s,
        timeout_s=options.timeout_s,
        seed=options.seed,
        # each act retrains once; the next act's drift comes a minute or two later
        retrain_cooldown_s=30.0,
        # a retrained version keeps what its parent knew (the second act's gradual drift
        # leaves part of the traffic as it was)
        warm_start=True,
    )
    settings = loop_settings(base, workdir, config)
    create_topics(settings)
    narrator = _Narrator(settings, config.model, console)
    if keep:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dashboard = start_dashboard(settings, port, workdir.parent / "dashboard.log")
        console.print(
            f"[bold]dashboard:[/] http://127.0.0.1:{port}/  (left running: kill {dashboard.pid})"
        )
    rows = VoiceRows(scenarios[0], features, seed=options.seed)

    def echo(line: str) -> None:
        if "concept-drift alert" in line:
            return  # the narrator tells every alert as it arrives
        if line.startswith("concept changed at"):
            narrator.onset = datetime.fromisoformat(line.split(" at ")[1])
            act = narrator.acts_begun
            narrator.acts_begun += 1
            if len(scenarios) > 1:
                console.rule(f"act {act + 1}: {scenarios[act].name}")
        console.print(f"[bold cyan]{line}[/]")

    def promotions(events: list[CloudEvent]) -> int:
        return sum(
            isinstance(e, ModelEventEvent) and e.data.action == "promoted" and e.data.version > 1
            for e in events
        )

    def begin(index: int) -> Callable[[], None]:
        def start() -> None:
            if index == 0:
                rows.drift = 1.0
            else:
                rows.next_act(scenarios[index])

        return start

    acts = [
        Act(
            scenario.name,
            begin(index),
            lambda events, wanted=index + 1: promotions(events) >= wanted,
            options.before_drift_s if index == 0 else options.between_acts_s,
        )
        for index, scenario in enumerate(scenarios)
    ]
    try:
        report = run_loop(settings, workdir, config, echo=echo, champion=champion, rows=rows,  # type: ignore[arg-type]
                          acts=acts)  # fmt: skip
    finally:
        narrator.close()
    if not report.finished:
        console.print(f"[red]no promotion within {options.timeout_s:g} s of the onset[/]")
        for name, path in report.logs.items():
            if path.exists():
                console.print(f"  {name} log: {path}")
    onsets = [onset for _, onset in report.onsets]
    summaries = []
    champion_before = 1
    since: datetime | None = None
    for index, onset in enumerate(onsets):
        summary = read_summary(
            settings,
            SECRET,
            scenario=scenarios[index],
            model=config.model,
            onset=onset,
            until=onsets[index + 1] if index + 1 < len(onsets) else None,
            champion_before=champion_before,
            answers=report.answers,
            since=since,
        )
        if len(scenarios) > 1:
            summary.act = f"act {index + 1} of {len(scenarios)}"
        print_summary(summary, console)
        summaries.append(summary)
        champion_before = summary.champion_after or champion_before
        promoted = [step["at"] for step in summary.steps if step["name"].startswith("promoted")]
        since = datetime.fromisoformat(promoted[-1]) if promoted else onset
    return StoryResult(summaries, total_acts=len(scenarios))


def run_story_command(
    settings: Settings,
    *,
    scenario: str,
    keep: bool,
    json_path: Path | None,
    timeout_s: float,
    ramp_s: float,
    seed: int,
    console: Console,
) -> int:
    """What ``driftloop demo --story loop`` does; returns its exit code.

    0 when the loop closed (a retrained version is the champion), 1 when it did
    not within ``timeout_s`` or a part failed, 130 on Ctrl-C. Everything
    started is stopped; the topics and Redis keys are deleted unless ``keep``.
    """
    import shutil
    import tempfile

    from driftloop.loop import LoopError, cleanup
    from producers.exceptions import ProducersError
    from streams.exceptions import StreamsError

    for name in scenario.split(","):
        get_scenario(name.strip())  # an unknown name fails here, listing the valid ones
    folder = Path(tempfile.mkdtemp(prefix="driftloop-demo-"))
    workdir = folder / "run"
    workdir.mkdir()
    started = time.perf_counter()
    code = 1
    try:
        options = StoryOptions(scenario=scenario, timeout_s=timeout_s, ramp_s=ramp_s, seed=seed)
        result = run_story(settings, workdir, options, console=console, keep=keep)
        if json_path is not None:
            json_path.write_text(result.to_json())
            console.print(f"summary written to {json_path}")
        code = 0 if result.finished else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping what the demo started[/]")
        code = 130
    except (LoopError, StoryError, StreamsError, ProducersError) as exc:
        console.print(f"[red]error:[/] {exc}")
    finally:
        console.print(f"demo ran {time.perf_counter() - started:.0f} s")
        if keep:
            console.print(
                f"--keep: topics {settings.topic_prefix}* and registry keys "
                f"{settings.registry_namespace}* left in place; logs in {folder}"
            )
        else:
            cleanup(settings)
            if code == 0:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                console.print(f"logs of the parts kept in {folder}")
    return code
