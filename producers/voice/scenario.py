"""Voice-search traffic scenarios by name: what users say, how, and when it changes.

A :class:`Scenario` is a sequence of :class:`Phase` objects in event time
(seconds since the scenario started). Each phase holds a :class:`Mix`: the
weights of the vocabularies the queries come from, of the perturbations the
clips go through, and of the speaking speeds. A phase with a ``ramp_s`` blends
from the previous phase's mix into its own, linearly, over that many seconds
(gradual drift); without one the change is sudden.

Registered here
---------------
``sudden-mic``
    At ``drift_at_s`` every microphone gets 20 dB quieter (perturbation
    ``quiet_mic``): loudness and the first MFCC drop, nothing else changes.
``sudden-vocab``
    At ``drift_at_s`` a burst of new-vocabulary queries starts (70 % of
    traffic from the ``new`` vocabulary) and lasts ten minutes of event time.
``gradual``
    From ``drift_at_s``, over thirty minutes of event time, users speak faster
    (more 180 wpm clips and the ``fast_speech`` tempo) and 60 % of queries move
    to the ``new`` vocabulary.

Every scenario starts with the same pre-drift mix, :data:`PRE_DRIFT`, which is
also what the champion is trained on. Scenarios are looked up by name
(:func:`get_scenario`); an unknown name raises :class:`UnknownScenarioError`
listing the valid ones.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from producers.exceptions import ProducersError
from producers.voice.intents import get_vocabulary
from producers.voice.perturbation import get_perturbation

__all__ = [
    "PRE_DRIFT",
    "SCENARIOS",
    "Mix",
    "Phase",
    "Scenario",
    "UnknownScenarioError",
    "get_scenario",
    "register_scenario",
]


class UnknownScenarioError(ProducersError, KeyError):
    """A scenario name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown scenario"


def _normalised(weights: Mapping[str, float] | Mapping[int, float], what: str) -> dict:
    if not weights:
        raise ValueError(f"a mix needs at least one {what} weight")
    bad = {k: w for k, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"{what} weights must be finite and non-negative, got {bad}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError(f"{what} weights sum to 0; give at least one positive weight")
    return {key: weight / total for key, weight in weights.items() if weight > 0}


@dataclass(frozen=True)
class Mix:
    """What the traffic looks like at one moment: shares of vocabularies, perturbations, speeds.

    Weights need not sum to one (they are normalised); zero weights are dropped.

    Parameters
    ----------
    vocabularies
        Vocabulary name (see :func:`~producers.voice.intents.get_vocabulary`) -> weight.
    perturbations
        Perturbation name (see :func:`~producers.voice.perturbation.get_perturbation`)
        -> weight.
    speeds
        espeak-ng speaking speed in words per minute -> weight.

    Raises
    ------
    UnknownVocabularyError, UnknownPerturbationError
        For a name that is not registered (the message lists the valid ones).

    Examples
    --------
    >>> before = Mix(speeds={140: 3, 180: 1})
    >>> before.speeds
    {140: 0.75, 180: 0.25}
    >>> after = Mix(vocabularies={"new": 1.0}, speeds={180: 1.0})
    >>> halfway = before.blend(after, 0.5)
    >>> halfway.vocabularies, halfway.speeds
    ({'base': 0.5, 'new': 0.5}, {140: 0.375, 180: 0.625})
    """

    vocabularies: Mapping[str, float] = field(default_factory=lambda: {"base": 1.0})
    perturbations: Mapping[str, float] = field(default_factory=lambda: {"clean": 1.0})
    speeds: Mapping[int, float] = field(default_factory=lambda: {140: 0.7, 180: 0.3})

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocabularies", _normalised(self.vocabularies, "vocabulary"))
        object.__setattr__(self, "perturbations", _normalised(self.perturbations, "perturbation"))
        object.__setattr__(self, "speeds", _normalised(self.speeds, "speed"))
        for name in self.vocabularies:
            get_vocabulary(name)
        for name in self.perturbations:
            get_perturbation(name)
        for speed in self.speeds:
            if not 80 <= speed <= 450:
                raise ValueError(f"speed {speed} is outside espeak-ng's 80–450 words per minute")

    def blend(self, other: Mix, weight: float) -> Mix:
        """``(1 - weight)`` of this mix and ``weight`` of ``other`` (``weight`` in [0, 1])."""
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"blend weight must be in [0, 1], got {weight}")
        if weight == 0.0:
            return self
        if weight == 1.0:
            return other

        def mixed(mine: Mapping, theirs: Mapping) -> dict:
            keys = list(dict.fromkeys([*mine, *theirs]))
            return {k: (1 - weight) * mine.get(k, 0.0) + weight * theirs.get(k, 0.0) for k in keys}

        return Mix(
            mixed(self.vocabularies, other.vocabularies),
            mixed(self.perturbations, other.perturbations),
            mixed(self.speeds, other.speeds),
        )


PRE_DRIFT = Mix()
"""The traffic before any drift: the ``base`` vocabulary, clean clips, mostly 140 wpm."""


@dataclass(frozen=True)
class Phase:
    """A stretch of a scenario, from ``start_s`` seconds of event time until the next phase.

    Parameters
    ----------
    name
        What reports and the requests' ``phase`` call it.
    start_s
        When it starts, in seconds of event time since the scenario started.
    mix
        The traffic of this phase (once any ramp is over).
    ramp_s
        Seconds over which the previous phase's mix blends linearly into
        ``mix``; ``0`` for a sudden change.
    """

    name: str
    start_s: float
    mix: Mix
    ramp_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a phase needs a non-blank name")
        if not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise ValueError(f"phase {self.name!r}: start_s must be >= 0, got {self.start_s}")
        if not (math.isfinite(self.ramp_s) and self.ramp_s >= 0):
            raise ValueError(f"phase {self.name!r}: ramp_s must be >= 0, got {self.ramp_s}")


@dataclass(frozen=True)
class Scenario:
    """A named sequence of traffic phases in event time.

    Parameters
    ----------
    name
        How configuration refers to it.
    description
        One line saying what changes, and when.
    phases
        In order of ``start_s``; the first starts at 0 and is the pre-drift phase.

    Examples
    --------
    >>> mic = get_scenario("sudden-mic")
    >>> [p.name for p in mic.phases], mic.drift_at_s
    (['clean-mic', 'quiet-mic'], 120.0)
    >>> mic.phase_at(119.9).name, mic.mix_at(120.0).perturbations
    ('clean-mic', {'quiet_mic': 1.0})
    >>> gradual = get_scenario("gradual").shifted(60.0)
    >>> gradual.drift_at_s, round(gradual.mix_at(60.0 + 900.0).vocabularies["new"], 3)
    (60.0, 0.3)
    """

    name: str
    description: str
    phases: tuple[Phase, ...]

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError(f"scenario {self.name!r} needs at least one phase")
        if self.phases[0].start_s != 0:
            raise ValueError(f"scenario {self.name!r}: the first phase must start at 0")
        starts = [p.start_s for p in self.phases]
        if any(b <= a for a, b in itertools.pairwise(starts)):
            raise ValueError(f"scenario {self.name!r}: phase starts must increase, got {starts}")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario {self.name!r}: phase names must be unique, got {names}")

    @functools.cached_property
    def _starts(self) -> list[float]:
        return [p.start_s for p in self.phases]

    @property
    def drift_at_s(self) -> float | None:
        """When the first change starts (the second phase's start), ``None`` without one."""
        return self.phases[1].start_s if len(self.phases) > 1 else None

    @property
    def pre_drift(self) -> Mix:
        """The mix of the first phase: what the champion should be trained on."""
        return self.phases[0].mix

    def _index(self, elapsed_s: float) -> int:
        if elapsed_s < 0:
            raise ValueError(f"elapsed_s must be >= 0, got {elapsed_s}")
        return bisect.bisect_right(self._starts, elapsed_s) - 1

    def phase_at(self, elapsed_s: float) -> Phase:
        """The phase in force ``elapsed_s`` seconds after the start."""
        return self.phases[self._index(elapsed_s)]

    def mix_at(self, elapsed_s: float) -> Mix:
        """The traffic mix ``elapsed_s`` seconds after the start (blended during a ramp)."""
        index = self._index(elapsed_s)
        phase = self.phases[index]
        into = elapsed_s - phase.start_s
        if index == 0 or phase.ramp_s == 0 or into >= phase.ramp_s:
            return phase.mix
        return self.phases[index - 1].mix.blend(phase.mix, into / phase.ramp_s)

    def is_ramping(self, elapsed_s: float) -> bool:
        """Whether the mix is still blending at ``elapsed_s`` (changing from instant to instant)."""
        index = self._index(elapsed_s)
        phase = self.phases[index]
        return index > 0 and elapsed_s - phase.start_s < phase.ramp_s

    def shifted(self, drift_at_s: float) -> Scenario:
        """The same scenario with its first change at ``drift_at_s`` (later phases move with it)."""
        if self.drift_at_s is None:
            return self
        if not (math.isfinite(drift_at_s) and drift_at_s > 0):
            raise ValueError(f"drift_at_s must be > 0, got {drift_at_s}")
        offset = drift_at_s - self.drift_at_s
        moved = [self.phases[0], *(replace(p, start_s=p.start_s + offset) for p in self.phases[1:])]
        return replace(self, phases=tuple(moved))

    def vocabularies(self) -> list[str]:
        """Every vocabulary any phase draws from."""
        return list(dict.fromkeys(v for p in self.phases for v in p.mix.vocabularies))

    def perturbations(self) -> list[str]:
        """Every perturbation any phase applies."""
        return list(dict.fromkeys(v for p in self.phases for v in p.mix.perturbations))

    def speeds(self) -> list[int]:
        """Every speaking speed any phase uses."""
        return list(dict.fromkeys(v for p in self.phases for v in p.mix.speeds))


_SCENARIOS: dict[str, Scenario] = {}
SCENARIOS: Mapping[str, Scenario] = MappingProxyType(_SCENARIOS)


def register_scenario(scenario: Scenario) -> Scenario:
    """Make a scenario available by its name (replacing one of the same name)."""
    _SCENARIOS[scenario.name] = scenario
    return scenario


def get_scenario(name: str) -> Scenario:
    """The scenario registered as ``name``.

    Examples
    --------
    >>> get_scenario("sudden-vocab").phases[1].mix.vocabularies
    {'base': 0.3, 'new': 0.7}
    >>> get_scenario("loud")
    Traceback (most recent call last):
    ...
    producers.voice.scenario.UnknownScenarioError: unknown scenario 'loud'; \
known: gradual, sudden-mic, sudden-vocab
    """
    try:
        return _SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(
            f"unknown scenario {name!r}; known: {', '.join(sorted(_SCENARIOS))}"
        ) from None


_DRIFT_AT_S = 120.0
_GRADUAL_AFTER = Mix(
    vocabularies={"base": 0.4, "new": 0.6},
    perturbations={"clean": 0.5, "fast_speech": 0.5},
    speeds={140: 0.1, 180: 0.9},
)

register_scenario(
    Scenario(
        "sudden-mic",
        "every microphone gets 20 dB quieter at once (quiet_mic)",
        (
            Phase("clean-mic", 0.0, PRE_DRIFT),
            Phase("quiet-mic", _DRIFT_AT_S, Mix(perturbations={"quiet_mic": 1.0})),
        ),
    )
)
register_scenario(
    Scenario(
        "sudden-vocab",
        "a ten-minute burst of new-vocabulary queries (70 % of traffic)",
        (
            Phase("base-vocabulary", 0.0, PRE_DRIFT),
            Phase("new-vocabulary-burst", _DRIFT_AT_S, Mix(vocabularies={"base": 0.3, "new": 0.7})),
            Phase("burst-over", _DRIFT_AT_S + 600.0, PRE_DRIFT),
        ),
    )
)
register_scenario(
    Scenario(
        "gradual",
        "over thirty minutes users speak faster and 60 % of queries move to new vocabulary",
        (
            Phase("before", 0.0, PRE_DRIFT),
            Phase("drifting", _DRIFT_AT_S, _GRADUAL_AFTER, ramp_s=1800.0),
            Phase("drifted", _DRIFT_AT_S + 1800.0, _GRADUAL_AFTER),
        ),
    )
)
