"""What happens to a clip between the user's mouth and the model: named perturbations.

A :class:`Perturbation` is a recipe: a tempo change (done by sox when the clip
is synthesised, so it is cached with it), then, in numpy, a gain change, added
leading and trailing silence, white noise at a signal-to-noise ratio, and the
converter's hard limit at full scale (a loud microphone clips). Perturbations
are chosen by name (:func:`get_perturbation`); an unknown name raises
:class:`UnknownPerturbationError` listing the valid ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from producers.exceptions import ProducersError

__all__ = [
    "PERTURBATIONS",
    "Perturbation",
    "UnknownPerturbationError",
    "get_perturbation",
    "register_perturbation",
]


class UnknownPerturbationError(ProducersError, KeyError):
    """A perturbation name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown perturbation"


@dataclass(frozen=True)
class Perturbation:
    """A named change to a clean clip.

    Parameters
    ----------
    name
        How configuration refers to it.
    gain_db
        Level change in dB (``-20`` is a quiet microphone; positive values can
        clip, because the result is limited to [-1, 1] like a converter's).
    leading_silence_s, trailing_silence_s
        Seconds of digital silence added before and after the speech.
    snr_db
        White Gaussian noise added at this signal-to-noise ratio, the signal's
        power measured on the clip before silence is added; ``None`` for none.
    tempo
        Speaking-rate factor applied by sox at synthesis (pitch kept);
        ``1.0`` leaves the clip alone.

    Examples
    --------
    >>> import numpy as np
    >>> rate = 16_000
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    >>> quiet = get_perturbation("quiet_mic").apply(tone, rate, np.random.default_rng(0))
    >>> round(float(20 * np.log10(np.abs(quiet).max() / np.abs(tone).max())), 3)
    -20.0
    >>> padded = Perturbation("pad", leading_silence_s=0.5).apply(tone, rate)
    >>> len(padded) - len(tone), float(np.abs(padded[:8000]).max())
    (8000, 0.0)
    >>> noisy = get_perturbation("noisy").apply(tone, rate, np.random.default_rng(0))
    >>> noise = noisy - tone
    >>> round(float(10 * np.log10(np.mean(tone**2) / np.mean(noise**2))), 1)
    5.0
    """

    name: str
    gain_db: float = 0.0
    leading_silence_s: float = 0.0
    trailing_silence_s: float = 0.0
    snr_db: float | None = None
    tempo: float = 1.0

    def __post_init__(self) -> None:
        if self.leading_silence_s < 0 or self.trailing_silence_s < 0:
            raise ValueError(f"perturbation {self.name!r}: added silence cannot be negative")
        if not (self.tempo > 0 and math.isfinite(self.tempo)):
            raise ValueError(f"perturbation {self.name!r}: tempo must be a positive factor")
        if not math.isfinite(self.gain_db):
            raise ValueError(f"perturbation {self.name!r}: gain_db must be finite")

    def apply(
        self,
        waveform: np.ndarray,
        sample_rate: int,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """The perturbed copy of a mono float waveform (the tempo is sox's job, not done here).

        ``rng`` draws the noise; without one, noise comes from a generator
        seeded with 0, so the same clip always gets the same noise.
        """
        clip = np.asarray(waveform, dtype=np.float32)
        if clip.ndim != 1:
            raise ValueError(f"expected a mono waveform (1-D), got shape {clip.shape}")
        signal_power = float(np.mean(np.square(clip, dtype=np.float64))) if clip.size else 0.0
        out = clip * np.float32(10.0 ** (self.gain_db / 20.0))
        lead = round(self.leading_silence_s * sample_rate)
        trail = round(self.trailing_silence_s * sample_rate)
        if lead or trail:
            out = np.concatenate([np.zeros(lead, np.float32), out, np.zeros(trail, np.float32)])
        if self.snr_db is not None and signal_power > 0:
            gained_power = signal_power * 10.0 ** (self.gain_db / 10.0)
            noise_std = math.sqrt(gained_power / 10.0 ** (self.snr_db / 10.0))
            noise_rng = rng if rng is not None else np.random.default_rng(0)
            out = out + noise_rng.normal(0.0, noise_std, out.size).astype(np.float32)
        return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


_PERTURBATIONS: dict[str, Perturbation] = {}
PERTURBATIONS: Mapping[str, Perturbation] = MappingProxyType(_PERTURBATIONS)


def register_perturbation(perturbation: Perturbation) -> Perturbation:
    """Make a perturbation available by its name (replacing one of the same name)."""
    _PERTURBATIONS[perturbation.name] = perturbation
    return perturbation


def get_perturbation(name: str) -> Perturbation:
    """The perturbation registered as ``name``.

    Examples
    --------
    >>> get_perturbation("quiet_mic").gain_db
    -20.0
    >>> get_perturbation("whisper")
    Traceback (most recent call last):
    ...
    producers.voice.perturbation.UnknownPerturbationError: unknown perturbation 'whisper'; \
known: clean, fast_speech, hot_mic, long_silence, noisy, quiet_mic
    """
    try:
        return _PERTURBATIONS[name]
    except KeyError:
        raise UnknownPerturbationError(
            f"unknown perturbation {name!r}; known: {', '.join(sorted(_PERTURBATIONS))}"
        ) from None


for _perturbation in (
    Perturbation("clean"),
    Perturbation("quiet_mic", gain_db=-20.0),
    Perturbation("hot_mic", gain_db=18.0),
    Perturbation("long_silence", leading_silence_s=0.8, trailing_silence_s=1.2),
    Perturbation("noisy", snr_db=5.0),
    Perturbation("fast_speech", tempo=1.35),
):
    register_perturbation(_perturbation)
