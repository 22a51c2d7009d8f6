"""Voice clips synthesised with the real espeak-ng and sox, and what a model learns from them.

Needs the Debian packages espeak-ng and sox (``make deps``); without them these
tests fail, they do not skip. The learning test uses the shared clip cache
(``~/.cache/driftloop/voice``): clips are content-addressed, so a re-run reuses
them and only the first run pays for synthesis.
"""

from __future__ import annotations

import numpy as np
import pytest

from online_models.featurisers import AudioFeaturiser
from producers.voice import (
    ClipSpec,
    SynthesisError,
    SynthesisToolMissingError,
    VoiceSynthesiser,
    get_vocabulary,
    read_wav,
    voice_clips,
)

TRAIN_VOICES = ("en-us", "en-gb")
HELD_OUT_VOICE = "en-gb-scotland"
SPEED = 140


def test_clips_are_cached_by_content_and_reused_across_runs(tmp_path):
    first = VoiceSynthesiser(tmp_path, sample_rate=16_000, workers=2)
    specs = [
        ClipSpec("play some jazz", "en-us", 175),
        ClipSpec("play some jazz", "en-gb", 175),
        ClipSpec("play some jazz", "en-us", 120),
        ClipSpec("play some jazz", "en-us", 175, tempo=1.35),
        ClipSpec("play some jazz", "en-us", 175),  # a repeat: one file
    ]
    paths = first.synthesise_many(specs)
    assert len(set(paths)) == 4 and paths[0] == paths[4]
    assert first.synthesised == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({p.name for p in paths})

    lengths = {}
    for spec, path in zip(specs[:4], paths, strict=False):
        waveform, rate = read_wav(path)
        assert rate == 16_000 and waveform.dtype == np.float32
        assert 0.05 < np.abs(waveform).max() <= 1.0
        lengths[(spec.voice, spec.speed, spec.tempo)] = len(waveform) / rate
    # slower speech and a tempo-up change the length the way they should
    assert lengths[("en-us", 120, 1.0)] > lengths[("en-us", 175, 1.0)] * 1.2
    assert lengths[("en-us", 175, 1.35)] < lengths[("en-us", 175, 1.0)] * 0.85

    again = VoiceSynthesiser(tmp_path, sample_rate=16_000)
    assert again.synthesise_many(specs) == paths
    assert (again.synthesised, again.reused) == (0, 4)  # the repeat is asked for once
    other_rate = VoiceSynthesiser(tmp_path, sample_rate=8_000).synthesise(specs[0])
    assert other_rate != paths[0] and read_wav(other_rate)[1] == 8_000


def test_an_unknown_voice_fails_with_espeaks_reason(tmp_path):
    synth = VoiceSynthesiser(tmp_path)
    with pytest.raises(SynthesisError, match="voice does not exist"):
        synth.synthesise(ClipSpec("hello", "xx-nowhere"))
    assert not list(tmp_path.glob("*.wav"))  # nothing half-written left behind


def test_missing_tools_name_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SynthesisToolMissingError, match="apt-get install -y espeak-ng sox"):
        VoiceSynthesiser(tmp_path / "cache")


def _matrix(rows: list[dict[str, float]], names: list[str]) -> np.ndarray:
    return np.array([[row[name] for name in names] for row in rows])


class NearestNeighbour:
    """1-nearest-neighbour on standardised features (the training set's mean and spread)."""

    def __init__(self, features: np.ndarray, labels: list[str]) -> None:
        self.mean = features.mean(axis=0)
        self.scale = features.std(axis=0) + 1e-9
        self.train = (features - self.mean) / self.scale
        self.labels = np.array(labels)

    def predict(self, features: np.ndarray) -> np.ndarray:
        z = (features - self.mean) / self.scale
        distances = ((z[:, None, :] - self.train[None, :, :]) ** 2).sum(axis=-1)
        return self.labels[distances.argmin(axis=1)]


def _accuracy(model: NearestNeighbour, rows: list, names: list[str]) -> float:
    """Share of ``(info, features)`` rows whose intent the model predicts."""
    truth = np.array([info.intent for info, _ in rows])
    return float((model.predict(_matrix([f for _, f in rows], names)) == truth).mean())


def test_intents_are_learnable_from_the_features_and_a_quiet_mic_shifts_loudness():
    synth = VoiceSynthesiser(workers=2)  # the shared cache: re-runs reuse the clips
    featuriser = AudioFeaturiser(sample_rate=16_000, n_mfcc=13)
    base = get_vocabulary("base")

    def featurise(voices, perturbations, vocabulary=base):
        clips = voice_clips(
            vocabulary, synth, voices=voices, speeds=[SPEED], perturbations=perturbations
        )
        return [(c.info, featuriser.features(c.waveform, c.sample_rate)) for c in clips]

    train = featurise(TRAIN_VOICES, ["clean"])
    held_out = featurise([HELD_OUT_VOICE], ["clean", "quiet_mic"])
    clean = [(i, f) for i, f in held_out if i.perturbation == "clean"]
    quiet = [(i, f) for i, f in held_out if i.perturbation == "quiet_mic"]
    assert [i.phrase for i, _ in clean] == [i.phrase for i, _ in quiet]

    # a quiet microphone: loudness drops by the gain; silences can only grow a little
    # (soft onsets and tails sink under the -60 dBFS floor of the silence rule)
    pairs = [(c, q) for (_, c), (_, q) in zip(clean, quiet, strict=True)]
    shift = np.array([q["loudness_db"] - c["loudness_db"] for c, q in pairs])
    assert np.abs(shift + 20.0).max() < 0.1
    for c, q in pairs:
        for edge in ("leading_silence_s", "trailing_silence_s"):
            assert 0.0 <= q[edge] - c[edge] <= 0.1

    labels = [i.intent for i, _ in train]
    chance = 1 / len(base.intents)
    mfcc_and_length = [n for n in featuriser.feature_names if n.startswith("mfcc_")]
    mfcc_and_length.append("clip_duration_s")
    shape_only = [n for n in mfcc_and_length if n != "mfcc_mean_0"]

    # an unseen voice saying known phrases: clearly better than chance
    with_level = NearestNeighbour(_matrix([f for _, f in train], mfcc_and_length), labels)
    clean_accuracy = _accuracy(with_level, clean, mfcc_and_length)
    assert clean_accuracy >= 3 * chance, clean_accuracy

    # the quiet microphone degrades a model that uses the level (mfcc_mean_0) ...
    quiet_accuracy = _accuracy(with_level, quiet, mfcc_and_length)
    assert quiet_accuracy < clean_accuracy - 0.2, (clean_accuracy, quiet_accuracy)
    # ... and barely touches one that sees only the spectral shape
    shape = NearestNeighbour(_matrix([f for _, f in train], shape_only), labels)
    shape_clean = _accuracy(shape, clean, shape_only)
    shape_quiet = _accuracy(shape, quiet, shape_only)
    assert shape_clean >= 3 * chance and abs(shape_quiet - shape_clean) <= 0.05

    # new vocabulary: phrases the model never heard, spoken by a known voice
    new = featurise(TRAIN_VOICES[:1], ["clean"], get_vocabulary("new"))
    new_accuracy = _accuracy(with_level, new, mfcc_and_length)
    assert new_accuracy < clean_accuracy - 0.25, (clean_accuracy, new_accuracy)
    print(
        f"held-out voice accuracy {clean_accuracy:.3f}, quiet mic {quiet_accuracy:.3f}, "
        f"shape-only {shape_clean:.3f}/{shape_quiet:.3f}, new vocabulary {new_accuracy:.3f} "
        f"(chance {chance:.3f}); loudness shift {shift.mean():.3f} dB"
    )
