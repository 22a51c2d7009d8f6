"""Voice-search traffic from a scenario: requests with audio features, and a driver that sends them.

:class:`VoiceTraffic` turns a :class:`~producers.voice.scenario.Scenario` into
a seeded stream of :class:`VoiceRequest` objects in event time — Poisson
arrivals at ``rate`` per second, each one a user saying a phrase of their true
intent, in a voice, at a speed, through a perturbation drawn from the mix in
force at that moment. The features of a clip come from :class:`ClipFeatures`:
it synthesises the clip (:class:`~producers.voice.synth.VoiceSynthesiser`),
applies the perturbation, featurises it with
:class:`~online_models.featurisers.AudioFeaturiser`, and caches the result in
memory and on disk per (clip, perturbation, featuriser settings). Clips repeat,
so after the cache is warm a request costs a few dict look-ups instead of
~10 ms of signal processing.

:func:`run_voice_traffic` is the demo's driver: it sends each request's
features to a prediction service (``send_request``, the router's ``/predict``
body), lets a :class:`~producers.voice.users.SimulatedUsers` react to the
answer, and publishes each reaction (``publish_feedback``) after the user's
delay. It does no I/O of its own, so a test can drive it with fakes; it counts
per phase what a dashboard would show: accuracy, redo and typing rates, and the
means of the level and silence features (:class:`TrafficReport`).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import heapq
import itertools
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from producers.exceptions import ProducersError
from producers.voice.intents import INTENT_NAMES, get_vocabulary
from producers.voice.perturbation import get_perturbation
from producers.voice.scenario import Mix, Scenario, get_scenario
from producers.voice.synth import DEFAULT_VOICES, ClipSpec, VoiceSynthesiser, read_wav
from producers.voice.users import SimulatedUsers

__all__ = [
    "DEFAULT_FEATURE_CACHE_DIR",
    "REPORTED_FEATURES",
    "ClipFeatures",
    "ClipKey",
    "PhaseTally",
    "TrafficError",
    "TrafficReport",
    "VoiceRequest",
    "VoiceTraffic",
    "run_voice_traffic",
]

DEFAULT_FEATURE_CACHE_DIR = Path.home() / ".cache" / "driftloop" / "voice-features"
# the features whose per-phase means the report shows: level, silences, length
REPORTED_FEATURES = (
    "loudness_db",
    "rms_dbfs",
    "leading_silence_s",
    "trailing_silence_s",
    "clip_duration_s",
)
# bump when how a cached entry is computed changes, so old entries are not reused
_RECIPE = 1


class TrafficError(ProducersError):
    """Traffic that cannot be generated or driven as asked."""


class ClipKey(NamedTuple):
    """Which clip a request is: what was meant and said, by which voice, how, through what."""

    intent: str
    phrase: str
    voice: str
    speed: int
    perturbation: str


class VoiceRequest(NamedTuple):
    """One voice search: its id, event time, audio features, the user's true intent, the phase."""

    request_id: str
    event_time: datetime
    features: dict[str, float]
    true_intent: str
    phase: str


FeatureSource = Callable[[ClipKey], Mapping[str, float]]
"""What :class:`VoiceTraffic` asks for a clip's features (e.g. :meth:`ClipFeatures.features`)."""


class ClipFeatures:
    """The audio features of clips, synthesised and featurised once, then cached.

    Entries are cached in memory and, unless ``cache_dir`` is ``None``, as one
    small JSON file each in ``cache_dir``, named by a hash of everything that
    decides the result: the clip file (itself content-addressed by phrase,
    voice, speed, tempo, sample rate and espeak-ng version), the perturbation's
    recipe and the featuriser's settings. Files are written aside and renamed
    into place, so concurrent runs share the cache safely.

    Parameters
    ----------
    synthesiser
        Makes the clips; built with its defaults (the shared clip cache) on
        first need when ``None``.
    featuriser
        Featurises them; an ``AudioFeaturiser()`` built on first need when
        ``None`` (importing torch takes a few seconds).
    cache_dir
        Where feature files live (created if missing); ``None`` keeps them in
        memory only. Default ``~/.cache/driftloop/voice-features``.

    Examples
    --------
    >>> import tempfile
    >>> from online_models.featurisers import AudioFeaturiser
    >>> clips, cache = tempfile.TemporaryDirectory(), tempfile.TemporaryDirectory()
    >>> source = ClipFeatures(VoiceSynthesiser(clips.name), AudioFeaturiser(), cache_dir=cache.name)
    >>> clean = ClipKey("music", "play some jazz", "en-us", 175, "clean")
    >>> quiet = clean._replace(perturbation="quiet_mic")
    >>> drop = source.features(quiet)["loudness_db"] - source.features(clean)["loudness_db"]
    >>> round(drop, 1), source.computed
    (-20.0, 2)
    >>> again = ClipFeatures(VoiceSynthesiser(clips.name), AudioFeaturiser(), cache_dir=cache.name)
    >>> again.features(quiet) == source.features(quiet), again.computed, again.disk_hits
    (True, 0, 1)
    >>> clips.cleanup(); cache.cleanup()
    """

    def __init__(
        self,
        synthesiser: VoiceSynthesiser | None = None,
        featuriser: Any = None,
        *,
        cache_dir: str | os.PathLike[str] | None = DEFAULT_FEATURE_CACHE_DIR,
    ) -> None:
        self._synthesiser = synthesiser
        self._featuriser = featuriser
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._memory: dict[ClipKey, dict[str, float]] = {}
        self.computed = 0
        self.disk_hits = 0
        self.memory_hits = 0

    @property
    def synthesiser(self) -> VoiceSynthesiser:
        """The synthesiser (built on first use)."""
        if self._synthesiser is None:
            self._synthesiser = VoiceSynthesiser()
        return self._synthesiser

    @property
    def featuriser(self) -> Any:
        """The ``AudioFeaturiser`` (built on first use)."""
        if self._featuriser is None:
            from online_models.featurisers import AudioFeaturiser

            self._featuriser = AudioFeaturiser()
        return self._featuriser

    def __len__(self) -> int:
        return len(self._memory)

    @staticmethod
    def spec(key: ClipKey) -> ClipSpec:
        """The clip to synthesise for ``key`` (a tempo perturbation is part of the synthesis)."""
        return ClipSpec(key.phrase, key.voice, key.speed, get_perturbation(key.perturbation).tempo)

    def features(self, key: ClipKey) -> dict[str, float]:
        """The features of the clip ``key`` (the cached dict itself: do not change it)."""
        cached = self._memory.get(key)
        if cached is not None:
            self.memory_hits += 1
            return cached
        return self._load_or_compute(key, self.synthesiser.synthesise(self.spec(key)))

    def warm(self, keys: Iterable[ClipKey]) -> int:
        """Have the features of ``keys`` in memory; returns how many had to be computed.

        Clips missing from the clip cache are synthesised first, on the
        synthesiser's thread pool.
        """
        missing = [k for k in dict.fromkeys(keys) if k not in self._memory]
        if not missing:
            return 0
        before = self.computed
        paths = self.synthesiser.synthesise_many(self.spec(k) for k in missing)
        for key, path in zip(missing, paths, strict=True):
            self._load_or_compute(key, path)
        return self.computed - before

    def _identity(self, key: ClipKey, clip: Path) -> str:
        featuriser = self.featuriser
        settings = {
            name: getattr(featuriser, name, None)
            for name in (
                "sample_rate",
                "n_mfcc",
                "frame_s",
                "silence_range_db",
                "silence_floor_dbfs",
            )
        }
        identity = {
            "recipe": _RECIPE,
            "clip": clip.name,
            "perturbation": dataclasses.asdict(get_perturbation(key.perturbation)),
            "featuriser": [type(featuriser).__name__, settings],
        }
        return json.dumps(identity, sort_keys=True)

    def _load_or_compute(self, key: ClipKey, clip: Path) -> dict[str, float]:
        identity = self._identity(key, clip)
        digest = hashlib.sha256(identity.encode()).hexdigest()
        target = self.cache_dir / f"{digest[:32]}.json" if self.cache_dir is not None else None
        if target is not None and target.exists():
            try:
                stored = json.loads(target.read_text())
            except (OSError, ValueError):
                stored = None  # a damaged entry is recomputed and rewritten
            if isinstance(stored, dict) and stored.get("identity") == identity:
                features = {name: float(value) for name, value in stored["features"].items()}
                self._memory[key] = features
                self.disk_hits += 1
                return features
        waveform, rate = read_wav(clip)
        # the noise of a noisy perturbation is a function of the entry, so it is reproducible
        noise = np.random.default_rng(int(digest[:16], 16))
        perturbed = get_perturbation(key.perturbation).apply(waveform, rate, noise)
        features = self.featuriser.features(perturbed, sample_rate=rate)
        self.computed += 1
        self._memory[key] = features
        if target is not None:
            assert self.cache_dir is not None
            payload = json.dumps({"identity": identity, "features": features})
            fd, scratch = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as handle:
                handle.write(payload)
            os.replace(scratch, target)  # atomic: readers see the whole entry or none
        return features


@dataclass
class _Sampler:
    """Weighted choices of one mix, ready for ``random.Random`` draws."""

    vocabularies: tuple[list[str], list[float]]
    perturbations: tuple[list[str], list[float]]
    speeds: tuple[list[int], list[float]]

    @classmethod
    def of(cls, mix: Mix) -> _Sampler:
        def cumulative(weights: Mapping[Any, float]) -> tuple[list[Any], list[float]]:
            return list(weights), list(itertools.accumulate(weights.values()))

        return cls(
            cumulative(mix.vocabularies), cumulative(mix.perturbations), cumulative(mix.speeds)
        )


def _pick(choices: tuple[list[Any], list[float]], draw: float) -> Any:
    names, cumulative = choices
    index = bisect.bisect_right(cumulative, draw * cumulative[-1])
    return names[min(index, len(names) - 1)]


class VoiceTraffic:
    """A scenario's voice searches as a seeded stream of requests with audio features.

    Requests arrive as a Poisson process of ``rate`` per second of event time.
    Each draws, from the mix in force at its event time, a vocabulary, then an
    intent (uniformly) and one of its phrases, a voice (uniformly from
    ``voices``), a speaking speed and a perturbation. The same ``seed`` gives the
    same requests.

    Parameters
    ----------
    scenario
        A :class:`~producers.voice.scenario.Scenario` or its registered name.
    features
        The features of a clip: usually :meth:`ClipFeatures.features`.
    rate
        Requests per second of event time.
    seed
        Seeds the arrivals and every draw.
    start
        Event time of the scenario's start (default: now, UTC).
    voices
        espeak-ng voices users speak with.
    run_id
        Prefix of the request ids (default ``voice-<scenario>-<seed>``); give
        each run its own, because downstream deduplicates by id.

    Examples
    --------
    A stand-in feature source that says which clip it got:

    >>> from datetime import datetime, UTC
    >>> def features(key):
    ...     return {"quiet": float(key.perturbation == "quiet_mic"), "speed": float(key.speed)}
    >>> traffic = VoiceTraffic("sudden-mic", features, rate=2.0, seed=1,
    ...                        start=datetime(2026, 1, 1, tzinfo=UTC))
    >>> requests = list(traffic.requests(duration_s=240.0))
    >>> len(requests), requests[0].request_id, requests[0].true_intent
    (485, 'voice-sudden-mic-1-0000000', 'timer')
    >>> before = [r for r in requests if r.phase == "clean-mic"]
    >>> after = [r for r in requests if r.phase == "quiet-mic"]
    >>> sum(r.features["quiet"] for r in before), sum(r.features["quiet"] for r in after)
    (0.0, 234.0)
    >>> after[0].event_time >= datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
    True
    """

    def __init__(
        self,
        scenario: Scenario | str,
        features: FeatureSource,
        *,
        rate: float,
        seed: int = 0,
        start: datetime | None = None,
        voices: Sequence[str] = DEFAULT_VOICES,
        run_id: str | None = None,
    ) -> None:
        self.scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        if not (rate > 0 and np.isfinite(rate)):
            raise TrafficError(f"rate must be a positive number of requests per second, got {rate}")
        if not voices:
            raise TrafficError("give at least one voice (e.g. producers.voice.DEFAULT_VOICES)")
        self.features = features
        self.rate = float(rate)
        self.seed = seed
        self.start = start if start is not None else datetime.now(UTC)
        if self.start.tzinfo is None:
            raise TrafficError("start must be timezone-aware (e.g. datetime.now(UTC))")
        self.voices = tuple(voices)
        self.run_id = run_id if run_id is not None else f"voice-{self.scenario.name}-{seed}"
        self._phrases = {
            name: {intent: get_vocabulary(name).phrases.get(intent, ()) for intent in INTENT_NAMES}
            for name in self.scenario.vocabularies()
        }

    def clip_keys(self) -> list[ClipKey]:
        """Every clip this traffic can draw (to warm a :class:`ClipFeatures` with)."""
        keys = []
        for vocabulary in self._phrases.values():
            for intent, phrases in vocabulary.items():
                for phrase in phrases:
                    for voice in self.voices:
                        for speed in self.scenario.speeds():
                            for perturbation in self.scenario.perturbations():
                                keys.append(ClipKey(intent, phrase, voice, speed, perturbation))
        return list(dict.fromkeys(keys))

    def requests(
        self, duration_s: float | None = None, *, count: int | None = None
    ) -> Iterator[VoiceRequest]:
        """The requests of the first ``duration_s`` seconds of event time, or the first ``count``.

        With both, whichever ends first; with neither, the stream does not end.
        """
        if duration_s is not None and duration_s < 0:
            raise TrafficError(f"duration_s must be >= 0, got {duration_s}")
        if count is not None and count < 0:
            raise TrafficError(f"count must be >= 0, got {count}")
        rng = random.Random(self.seed)
        scenario = self.scenario
        samplers: dict[int, _Sampler] = {}
        elapsed = 0.0
        for index in itertools.count():
            if count is not None and index >= count:
                return
            elapsed += rng.expovariate(self.rate)
            if duration_s is not None and elapsed >= duration_s:
                return
            phase = scenario.phase_at(elapsed)
            if scenario.is_ramping(elapsed):
                sampler = _Sampler.of(scenario.mix_at(elapsed))
            else:
                phase_index = scenario.phases.index(phase)
                sampler = samplers.get(phase_index) or samplers.setdefault(
                    phase_index, _Sampler.of(phase.mix)
                )
            vocabulary = self._phrases[_pick(sampler.vocabularies, rng.random())]
            intent = INTENT_NAMES[int(rng.random() * len(INTENT_NAMES))]
            phrases = vocabulary[intent]
            phrase = phrases[int(rng.random() * len(phrases))]
            voice = self.voices[int(rng.random() * len(self.voices))]
            speed = _pick(sampler.speeds, rng.random())
            perturbation = _pick(sampler.perturbations, rng.random())
            key = ClipKey(intent, phrase, voice, speed, perturbation)
            yield VoiceRequest(
                f"{self.run_id}-{index:07d}",
                self.start + timedelta(seconds=elapsed),
                dict(self.features(key)),
                intent,
                phase.name,
            )


@dataclass
class PhaseTally:
    """What happened to the requests of one phase: answers, users' reactions, feature means.

    Examples
    --------
    >>> tally = PhaseTally(requests=200, answered=190, correct=150, redo=50, switched=10)
    >>> tally.accuracy, tally.error_rate, tally.redo_rate, tally.switch_rate
    (0.75, 0.25, 0.25, 0.05)
    """

    requests: int = 0
    answered: int = 0
    correct: int = 0
    redo: int = 0
    switched: int = 0
    clicked: int = 0
    feature_sums: dict[str, float] = field(default_factory=dict)

    def _share(self, count: int) -> float | None:
        return count / self.requests if self.requests else None

    @property
    def accuracy(self) -> float | None:
        """Share of requests answered with the true intent (0–1)."""
        return self._share(self.correct)

    @property
    def error_rate(self) -> float | None:
        """Share of requests answered wrongly or not at all (0–1)."""
        return self._share(self.requests - self.correct)

    @property
    def null_rate(self) -> float | None:
        """Share of requests given no answer (a null return, 0–1)."""
        return self._share(self.requests - self.answered)

    @property
    def redo_rate(self) -> float | None:
        """Share of requests after which the user searched again (0–1)."""
        return self._share(self.redo)

    @property
    def switch_rate(self) -> float | None:
        """Share of requests after which the user switched to typing (0–1)."""
        return self._share(self.switched)

    @property
    def click_rate(self) -> float | None:
        """Share of requests after which the user clicked a result (0–1)."""
        return self._share(self.clicked)

    def feature_mean(self, name: str) -> float | None:
        """Mean of a reported feature (see :data:`REPORTED_FEATURES`) over the phase."""
        if not self.requests or name not in self.feature_sums:
            return None
        return self.feature_sums[name] / self.requests

    def to_dict(self) -> dict[str, Any]:
        """Counts, rates and feature means as a JSON-able dict."""
        return {
            "requests": self.requests,
            "accuracy": self.accuracy,
            "error_rate": self.error_rate,
            "null_rate": self.null_rate,
            "redo_rate": self.redo_rate,
            "switch_rate": self.switch_rate,
            "click_rate": self.click_rate,
            "feature_means": {name: self.feature_mean(name) for name in self.feature_sums},
        }


@dataclass
class TrafficReport:
    """What a run of :func:`run_voice_traffic` did, phase by phase (in scenario order)."""

    scenario: str
    phases: dict[str, PhaseTally]
    feedback_published: int = 0
    wall_seconds: float = 0.0
    max_lag_s: float = 0.0

    @property
    def requests(self) -> int:
        """Requests sent in all phases."""
        return sum(t.requests for t in self.phases.values())

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-able dict."""
        return {
            "scenario": self.scenario,
            "requests": self.requests,
            "feedback_published": self.feedback_published,
            "wall_seconds": self.wall_seconds,
            "max_lag_s": self.max_lag_s,
            "phases": {name: tally.to_dict() for name, tally in self.phases.items()},
        }

    def table(self) -> str:
        """A plain-text table: one line per phase that had requests."""
        header = (
            f"{'phase':<22}{'requests':>9}{'accuracy':>9}{'redo':>7}{'typing':>8}"
            f"{'loudness_db':>12}{'lead_sil_s':>11}{'trail_sil_s':>12}{'duration_s':>11}"
        )
        lines = [header]
        for name, tally in self.phases.items():
            if not tally.requests:
                continue

            def mean(feature: str, tally: PhaseTally = tally) -> float:
                value = tally.feature_mean(feature)
                return float("nan") if value is None else value

            lines.append(
                f"{name:<22}{tally.requests:>9}{tally.accuracy:>9.3f}{tally.redo_rate:>7.3f}"
                f"{tally.switch_rate:>8.3f}{mean('loudness_db'):>12.2f}"
                f"{mean('leading_silence_s'):>11.3f}{mean('trailing_silence_s'):>12.3f}"
                f"{mean('clip_duration_s'):>11.3f}"
            )
        return "\n".join(lines)


def run_voice_traffic(
    scenario: Scenario | str,
    send_request: Callable[[dict[str, Any]], Mapping[str, Any]],
    publish_feedback: Callable[[dict[str, Any]], None],
    *,
    rate: float,
    duration_s: float,
    seed: int = 0,
    features: FeatureSource | None = None,
    users: SimulatedUsers | None = None,
    model: str = "voice_intent",
    voices: Sequence[str] = DEFAULT_VOICES,
    run_id: str | None = None,
    realtime: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TrafficReport:
    """Send a scenario's voice searches for prediction and publish the users' feedback.

    For each request, in event-time order, calls ``send_request`` with the
    router's ``/predict`` body ``{"request_id", "model", "features"}`` and
    reads the ``label`` of its answer (``None`` is a null return). A simulated
    user reacts to the answer; the reaction's feedback ``data``
    (``{"request_id", "model", "label", "redo_search", "switched_to_typing",
    "clicked"}``) goes to ``publish_feedback`` once the user's delay has passed
    — interleaved with later requests, and all of it before this returns.

    Parameters
    ----------
    scenario
        A scenario or its registered name.
    send_request
        Asks the prediction service; returns its answer (a mapping with ``label``).
    publish_feedback
        Publishes one feedback ``data`` (e.g. ``Publisher.publish("feedback", data)``).
    rate
        Requests per second of event time.
    duration_s
        Seconds of event time to run for (the scenario's clock starts at 0).
    seed
        Seeds the traffic and, separately, the users: the same seed sends the
        same requests whatever the answers.
    features
        The features of a clip; default a :class:`ClipFeatures` with the shared
        caches, warmed with every clip the scenario can draw before the first
        request (the first run featurises them all: ~10 ms each).
    users
        How users react (default :class:`SimulatedUsers`).
    model
        The model name sent in requests and feedback.
    voices, run_id
        As in :class:`VoiceTraffic`.
    realtime
        Pace requests and feedback at their event times on ``clock`` (wall
        seconds); ``False`` sends everything as fast as the callables return.
    clock, sleep
        The wall clock and how to wait on it (for tests).

    Returns
    -------
    TrafficReport
        Per phase: requests, accuracy, redo/typing/click rates, feature means;
        and how late, at worst, a request left (``max_lag_s``, realtime only).

    Examples
    --------
    A model that answers right before the drift and wrong after it:

    >>> def features(key):
    ...     return {"loudness_db": -40.0 if key.perturbation == "quiet_mic" else -20.0}
    >>> def send_request(body):
    ...     right = body["features"]["loudness_db"] > -30
    ...     return {"label": truth[body["request_id"]] if right else None}
    >>> truth = {r.request_id: r.true_intent
    ...          for r in VoiceTraffic("sudden-mic", features, rate=5, seed=3).requests(240)}
    >>> published = []
    >>> report = run_voice_traffic("sudden-mic", send_request, published.append, rate=5,
    ...                            duration_s=240, seed=3, features=features, realtime=False)
    >>> before, after = report.phases["clean-mic"], report.phases["quiet-mic"]
    >>> before.accuracy, after.accuracy, round(before.redo_rate, 2), round(after.redo_rate, 2)
    (1.0, 0.0, 0.03, 0.61)
    >>> len(published) == report.requests, sorted(published[0])
    (True, ['clicked', 'label', 'model', 'redo_search', 'request_id', 'switched_to_typing'])
    """
    chosen = get_scenario(scenario) if isinstance(scenario, str) else scenario
    users = users if users is not None else SimulatedUsers()
    if features is None:
        source = ClipFeatures()
        traffic = VoiceTraffic(chosen, source.features, rate=rate, seed=seed, voices=voices)
        source.warm(traffic.clip_keys())
        features = source.features
    wall_start = clock()
    start = datetime.now(UTC)
    traffic = VoiceTraffic(
        chosen, features, rate=rate, seed=seed, start=start, voices=voices, run_id=run_id
    )
    user_rng = random.Random(f"{seed}:users")
    report = TrafficReport(chosen.name, {phase.name: PhaseTally() for phase in chosen.phases})
    pending: list[tuple[float, int, dict[str, Any]]] = []

    def wait_until(offset_s: float) -> None:
        if not realtime:
            return
        late = clock() - (wall_start + offset_s)
        if late < 0:
            sleep(-late)
        else:
            report.max_lag_s = max(report.max_lag_s, late)

    def publish_due(until_s: float) -> None:
        while pending and pending[0][0] <= until_s:
            due, _, data = heapq.heappop(pending)
            wait_until(due)
            publish_feedback(data)
            report.feedback_published += 1

    for sequence, request in enumerate(traffic.requests(duration_s)):
        offset = (request.event_time - start).total_seconds()
        publish_due(offset)
        wait_until(offset)
        answer = send_request(
            {"request_id": request.request_id, "model": model, "features": request.features}
        )
        label = answer.get("label")
        reaction = users.react(request.true_intent, label, user_rng)
        tally = report.phases[request.phase]
        tally.requests += 1
        tally.answered += label is not None
        tally.correct += label is not None and label == request.true_intent
        tally.redo += reaction.redo_search
        tally.switched += reaction.switched_to_typing
        tally.clicked += reaction.clicked
        for name in REPORTED_FEATURES:
            value = request.features.get(name)
            if value is not None:
                tally.feature_sums[name] = tally.feature_sums.get(name, 0.0) + value
        data = reaction.feedback(request.request_id, model)
        heapq.heappush(pending, (offset + reaction.delay_s, sequence, data))
    publish_due(float("inf"))
    report.wall_seconds = clock() - wall_start
    return report
