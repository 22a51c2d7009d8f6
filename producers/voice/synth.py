"""Spoken clips of the voice-search phrases, synthesised once and cached.

:class:`VoiceSynthesiser` turns a :class:`ClipSpec` (phrase, espeak-ng voice,
speaking speed, tempo) into a 16-bit mono WAV file at the wanted sample rate:
``espeak-ng`` speaks it, ``sox`` resamples it to mono at ``sample_rate`` and
applies the tempo change. Files are content-addressed — named by a hash of the
spec, the sample rate and the espeak-ng version — in a cache directory
(default ``~/.cache/driftloop/voice``), so a re-run reuses every clip and
concurrent runs never see a half-written file (each is written aside and
renamed into place). The cache is a build product: never commit it.

:func:`voice_clips` walks utterances × voices × speeds × perturbations and
yields each clip's metadata, its perturbed waveform and its sample rate,
after synthesising whatever the cache lacks on a thread pool (espeak-ng and
sox are separate processes, so threads run them in parallel).

Both tools are Debian packages: ``apt-get install espeak-ng sox``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from producers.exceptions import ProducersError
from producers.voice.intents import Utterance
from producers.voice.perturbation import Perturbation, get_perturbation

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_SPEEDS",
    "DEFAULT_VOICES",
    "ClipInfo",
    "ClipSpec",
    "SynthesisError",
    "SynthesisToolMissingError",
    "VoiceClip",
    "VoiceSynthesiser",
    "read_wav",
    "voice_clips",
]

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "driftloop" / "voice"
# four accents/timbres espeak-ng ships with: American, British, Scottish, a female variant
DEFAULT_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en+f3")
DEFAULT_SPEEDS = (140, 180)  # words per minute; espeak-ng's default is 175
# bump when the synthesis recipe changes, so old cache entries are not reused
_RECIPE = 1
_TOOL_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}


class SynthesisError(ProducersError):
    """espeak-ng or sox failed on a clip."""


class SynthesisToolMissingError(SynthesisError):
    """espeak-ng or sox is not installed."""


@dataclass(frozen=True)
class ClipSpec:
    """What to synthesise: a phrase, in a voice, at a speed and tempo.

    Parameters
    ----------
    phrase
        The text to speak.
    voice
        An espeak-ng voice name, optionally with a variant (``en-us``, ``en+f3``);
        ``espeak-ng --voices=en`` lists them.
    speed
        Speaking speed in words per minute (espeak-ng ``-s``; 80–450).
    tempo
        Extra tempo factor applied by sox (pitch kept), ``1.0`` for none.
    """

    phrase: str
    voice: str
    speed: int = 175
    tempo: float = 1.0

    def __post_init__(self) -> None:
        if not self.phrase.strip():
            raise ValueError("a clip needs a non-blank phrase")
        if not 80 <= self.speed <= 450:
            raise ValueError(f"speed {self.speed} is outside espeak-ng's 80–450 words per minute")
        if not self.tempo > 0:
            raise ValueError(f"tempo must be a positive factor, got {self.tempo}")


@dataclass(frozen=True)
class ClipInfo:
    """Where a clip came from: what was said, by which voice, and what happened to it."""

    intent: str
    phrase: str
    voice: str
    speed: int
    perturbation: str
    path: Path


class VoiceClip(NamedTuple):
    """One clip: its metadata, its mono float32 waveform in [-1, 1], its sample rate."""

    info: ClipInfo
    waveform: np.ndarray
    sample_rate: int


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """A WAV file as a mono float32 waveform in [-1, 1] (channels averaged) and its rate.

    Reads with soundfile (``pip install 'driftloop[audio]'``).
    """
    try:
        import soundfile
    except ImportError as exc:
        raise SynthesisError(
            "reading WAV files needs soundfile: pip install 'driftloop[audio]'"
        ) from exc
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1, dtype=np.float32), int(rate)


class VoiceSynthesiser:
    """Synthesise clips with espeak-ng and sox into a content-addressed cache.

    Parameters
    ----------
    cache_dir
        Where the WAV files live; created if missing. Default
        ``~/.cache/driftloop/voice``.
    sample_rate
        Sample rate of the cached clips (Hz); they are mono 16-bit PCM.
    workers
        espeak-ng/sox pipelines run at once by :meth:`synthesise_many`.

    Raises
    ------
    SynthesisToolMissingError
        When espeak-ng or sox is not on ``PATH`` (names the Debian packages).

    Examples
    --------
    >>> import tempfile
    >>> cache = tempfile.TemporaryDirectory()
    >>> synth = VoiceSynthesiser(cache.name, sample_rate=16_000)
    >>> spec = ClipSpec("set a timer for ten minutes", voice="en-us", speed=175)
    >>> path = synth.synthesise(spec)
    >>> waveform, rate = read_wav(path)
    >>> rate, 1.0 < len(waveform) / rate < 3.0
    (16000, True)
    >>> synth.synthesise(spec) == path, synth.synthesised, synth.reused
    (True, 1, 1)
    >>> cache.cleanup()
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        sample_rate: int = 16_000,
        workers: int = 2,
    ) -> None:
        if sample_rate < 8_000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        missing = [tool for tool in _TOOL_PACKAGES if shutil.which(tool) is None]
        if missing:
            packages = " ".join(_TOOL_PACKAGES[tool] for tool in missing)
            raise SynthesisToolMissingError(
                f"{', '.join(missing)} not found on PATH; install with: "
                f"sudo apt-get install -y {packages}"
            )
        self.cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self.workers = workers
        self.espeak_version = _run(["espeak-ng", "--version"]).decode().strip()
        self._lock = threading.Lock()
        self._synthesised = 0
        self._reused = 0

    @property
    def synthesised(self) -> int:
        """Clips this object had to synthesise (cache misses)."""
        return self._synthesised

    @property
    def reused(self) -> int:
        """Clips this object found in the cache."""
        return self._reused

    def path_for(self, spec: ClipSpec) -> Path:
        """Where the clip of ``spec`` lives in the cache (whether or not it exists yet)."""
        identity: dict[str, Any] = {
            "recipe": _RECIPE,
            "espeak": self.espeak_version,
            "rate": self.sample_rate,
            "phrase": spec.phrase,
            "voice": spec.voice,
            "speed": spec.speed,
            "tempo": round(spec.tempo, 6),
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return self.cache_dir / f"{digest[:24]}.wav"

    def synthesise(self, spec: ClipSpec) -> Path:
        """The cached clip of ``spec``, synthesised first if the cache lacks it."""
        target = self.path_for(spec)
        if target.exists():
            with self._lock:
                self._reused += 1
            return target
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".tmp-") as scratch:
            spoken = Path(scratch) / "espeak.wav"
            final = Path(scratch) / "clip.wav"
            speak = ["espeak-ng", "-v", spec.voice, "-s", str(spec.speed), "-w", str(spoken)]
            _run([*speak, "--stdin"], stdin=spec.phrase.encode())
            effects = ["tempo", "-s", f"{spec.tempo:g}"] if spec.tempo != 1.0 else []
            convert = ["sox", "-q", str(spoken), "-r", str(self.sample_rate), "-c", "1", "-b", "16"]
            _run([*convert, str(final), *effects])
            os.replace(final, target)  # atomic: readers see the whole file or none
        with self._lock:
            self._synthesised += 1
        return target

    def synthesise_many(self, specs: Iterable[ClipSpec]) -> list[Path]:
        """The cached clips of ``specs`` (in order), synthesising misses on ``workers`` threads."""
        wanted = list(specs)
        unique = list(dict.fromkeys(wanted))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            paths = dict(zip(unique, pool.map(self.synthesise, unique), strict=True))
        return [paths[spec] for spec in wanted]


def voice_clips(
    utterances: Iterable[Utterance],
    synthesiser: VoiceSynthesiser,
    *,
    voices: Sequence[str] = DEFAULT_VOICES,
    speeds: Sequence[int] = DEFAULT_SPEEDS,
    perturbations: Sequence[str | Perturbation] = ("clean",),
    seed: int = 0,
) -> Iterator[VoiceClip]:
    """Every utterance in every voice, speed and perturbation, as waveforms.

    Clips come utterance by utterance, then voice, speed and perturbation.
    Everything missing from the cache is synthesised before the first clip is
    yielded. The noise of a noisy perturbation is seeded by ``seed`` and the
    clip's position, so the same call yields the same waveforms.

    Examples
    --------
    >>> import tempfile
    >>> from producers.voice.intents import get_vocabulary
    >>> cache = tempfile.TemporaryDirectory()
    >>> synth = VoiceSynthesiser(cache.name)
    >>> first_two = get_vocabulary("base").utterances()[:2]
    >>> clips = list(voice_clips(first_two, synth, voices=["en-us"], speeds=[175],
    ...                          perturbations=["clean", "quiet_mic"]))
    >>> [(c.info.intent, c.info.perturbation) for c in clips][:2]
    [('weather', 'clean'), ('weather', 'quiet_mic')]
    >>> peak_ratio = np.abs(clips[1].waveform).max() / np.abs(clips[0].waveform).max()
    >>> len(clips), synth.synthesised, round(float(20 * np.log10(peak_ratio)))
    (4, 2, -20)
    >>> cache.cleanup()
    """
    recipes = [p if isinstance(p, Perturbation) else get_perturbation(p) for p in perturbations]
    items = list(utterances)
    plan: list[tuple[Utterance, ClipSpec, Perturbation]] = [
        (utterance, ClipSpec(utterance.phrase, voice, speed, recipe.tempo), recipe)
        for utterance in items
        for voice in voices
        for speed in speeds
        for recipe in recipes
    ]
    paths = synthesiser.synthesise_many([spec for _, spec, _ in plan])
    for index, ((utterance, spec, recipe), path) in enumerate(zip(plan, paths, strict=True)):
        waveform, rate = read_wav(path)
        rng = np.random.default_rng([seed, index])
        info = ClipInfo(
            utterance.intent, utterance.phrase, spec.voice, spec.speed, recipe.name, path
        )
        yield VoiceClip(info, recipe.apply(waveform, rate, rng), rate)


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, check=False, timeout=60)
    except FileNotFoundError as exc:
        package = _TOOL_PACKAGES.get(command[0], command[0])
        raise SynthesisToolMissingError(
            f"{command[0]} not found; install with: sudo apt-get install -y {package}"
        ) from exc
    if done.returncode != 0:
        raise SynthesisError(
            f"{' '.join(command)} failed (exit {done.returncode}): "
            f"{done.stderr.decode(errors='replace').strip() or 'no message'}"
        )
    return done.stdout
