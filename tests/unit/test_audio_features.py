"""AudioFeaturiser on synthesised signals whose answers are known in advance."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import soundfile

from online_models.featurisers import (
    SILENCE_FLOOR_DB,
    AudioBackendMissingError,
    AudioFeaturiser,
    InvalidAudioError,
)

RATE = 16_000
FRAME_S = 0.010


@pytest.fixture(scope="module")
def featuriser() -> AudioFeaturiser:
    return AudioFeaturiser(sample_rate=RATE, n_mfcc=13)


def sine(amplitude: float, seconds: float, freq: float = 1000.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise shaped by a syllable-rate envelope and a few formant-ish tones."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) ** 2
    voiced = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220, 660, 1300), 1))
    signal = envelope * (0.15 * voiced + 0.03 * rng.normal(size=t.size))
    return signal.astype(np.float32)


@pytest.mark.parametrize("amplitude", [0.9, 0.5, 0.1, 0.01])
@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_rms_dbfs_of_a_sine_is_its_amplitude_over_root_two(featuriser, amplitude, freq):
    features = featuriser.features(sine(amplitude, 1.0, freq), sample_rate=RATE)
    expected = 20 * math.log10(amplitude / math.sqrt(2))
    assert features["rms_dbfs"] == pytest.approx(expected, abs=0.1)
    assert features["clip_duration_s"] == pytest.approx(1.0)


def test_loudness_of_a_1khz_sine_is_close_to_its_rms_level(featuriser):
    # BS.1770's K-weighting adds ~+0.69 dB at 1 kHz and its offset removes 0.691 dB
    features = featuriser.features(sine(0.5, 2.0), sample_rate=RATE)
    assert features["loudness_db"] == pytest.approx(features["rms_dbfs"], abs=0.15)


@pytest.mark.parametrize("lead_s, trail_s", [(0.5, 0.0), (0.5037, 0.2811), (0.0, 1.0)])
def test_added_silence_is_measured_within_one_frame(featuriser, lead_s, trail_s):
    tone = speech_like(1.2)
    clip = np.concatenate(
        [np.zeros(round(lead_s * RATE), np.float32), tone, np.zeros(round(trail_s * RATE))]
    ).astype(np.float32)
    features = featuriser.features(clip, sample_rate=RATE)
    assert abs(features["leading_silence_s"] - lead_s) <= FRAME_S
    assert abs(features["trailing_silence_s"] - trail_s) <= FRAME_S
    assert features["clip_duration_s"] == pytest.approx(lead_s + 1.2 + trail_s, abs=1 / RATE)


def test_hiss_below_the_absolute_floor_is_silence_even_in_a_quiet_clip(featuriser):
    # speech around -45 dBFS, hiss at -70 dBFS: only 25 dB apart, so the relative
    # rule alone would call the hiss sound; the -60 dBFS floor calls it silence
    rng = np.random.default_rng(5)
    hiss = rng.normal(0, 10 ** (-70 / 20), RATE // 2).astype(np.float32)
    quiet_speech = speech_like(1.0) * np.float32(10 ** (-30 / 20))
    features = featuriser.features(np.concatenate([hiss, quiet_speech, hiss]), sample_rate=RATE)
    assert abs(features["leading_silence_s"] - 0.5) <= FRAME_S
    assert abs(features["trailing_silence_s"] - 0.5) <= FRAME_S


def test_a_soft_ending_30_db_below_the_peak_is_still_sound(featuriser):
    loud = sine(0.5, 0.5, freq=300.0)
    soft = sine(0.5 * 10 ** (-30 / 20), 0.3, freq=300.0)
    clip = np.concatenate([loud, soft, np.zeros(RATE // 5, np.float32)])
    features = featuriser.features(clip, sample_rate=RATE)
    assert features["leading_silence_s"] == 0.0
    assert abs(features["trailing_silence_s"] - 0.2) <= FRAME_S


def test_twenty_db_quieter_is_twenty_db_less_loud_and_keeps_its_silences(featuriser):
    clip = np.concatenate([np.zeros(RATE // 4, np.float32), speech_like(1.5, seed=2)])
    loud = featuriser.features(clip, sample_rate=RATE)
    quiet = featuriser.features(clip * np.float32(0.1), sample_rate=RATE)
    assert quiet["loudness_db"] - loud["loudness_db"] == pytest.approx(-20.0, abs=0.05)
    assert quiet["rms_dbfs"] - loud["rms_dbfs"] == pytest.approx(-20.0, abs=0.05)
    assert quiet["leading_silence_s"] == loud["leading_silence_s"]
    assert quiet["trailing_silence_s"] == loud["trailing_silence_s"]
    # the level lives in the 0th cepstral coefficient; the spectral shape is unchanged
    assert quiet["mfcc_mean_0"] < loud["mfcc_mean_0"] - 50
    for k in range(1, 13):
        assert quiet[f"mfcc_mean_{k}"] == pytest.approx(loud[f"mfcc_mean_{k}"], abs=0.5)


@pytest.mark.parametrize("amplitude", [1.02, 2.0])
def test_clipping_ratio_of_a_hard_clipped_sine(featuriser, amplitude):
    # a sine limited to [-1, 1] reads >= 0.999 where |sin| >= 0.999 / amplitude
    clipped = np.clip(sine(amplitude, 1.0, freq=50.0), -1.0, 1.0)
    expected = 1 - (2 / math.pi) * math.asin(0.999 / amplitude)
    features = featuriser.features(clipped, sample_rate=RATE)
    assert features["clipping_ratio"] == pytest.approx(expected, abs=0.003)


def test_clipping_counts_samples_at_or_above_0_999_of_full_scale(featuriser):
    samples = np.array([0.998, 0.999, -1.0, 0.5, -0.9989, 0.0, 1.0, -0.999], np.float32)
    clip = np.tile(samples, 1000)
    assert featuriser.features(clip, sample_rate=RATE)["clipping_ratio"] == 0.5
    assert featuriser.features(sine(0.9, 1.0), sample_rate=RATE)["clipping_ratio"] == 0.0


def test_short_clip_falls_back_to_rms_level_for_loudness(featuriser):
    features = featuriser.features(sine(0.3, 0.25), sample_rate=RATE)
    assert features["loudness_db"] == features["rms_dbfs"]
    assert all(math.isfinite(v) for v in features.values())


def test_digital_silence_reads_the_floor_and_is_all_silence(featuriser):
    features = featuriser.features(np.zeros(RATE, np.float32), sample_rate=RATE)
    assert features["rms_dbfs"] == SILENCE_FLOOR_DB
    assert features["loudness_db"] == SILENCE_FLOOR_DB
    assert features["leading_silence_s"] == features["trailing_silence_s"] == 1.0
    assert all(math.isfinite(v) for v in features.values())


def test_names_are_stable_and_every_value_is_a_finite_float(featuriser):
    features = featuriser.features(speech_like(0.9), sample_rate=RATE)
    assert tuple(features) == featuriser.feature_names
    assert len(features) == 6 + 2 * 13
    assert all(type(v) is float and math.isfinite(v) for v in features.values())


def test_another_sample_rate_is_resampled_first(featuriser):
    native = featuriser.features(sine(0.5, 1.0, freq=440.0), sample_rate=RATE)
    cd_rate = featuriser.features(sine(0.5, 1.0, freq=440.0, rate=44_100), sample_rate=44_100)
    assert cd_rate["clip_duration_s"] == pytest.approx(1.0, abs=1e-3)
    assert cd_rate["rms_dbfs"] == pytest.approx(native["rms_dbfs"], abs=0.1)


def test_a_wav_file_and_integer_pcm_give_the_array_features(featuriser, tmp_path):
    clip = np.concatenate([np.zeros(RATE // 5, np.float32), speech_like(1.0, seed=4)])
    path = tmp_path / "clip.wav"
    soundfile.write(path, clip, RATE, subtype="PCM_16")
    pcm = np.round(clip * 32767).astype(np.int16)
    from_array = featuriser.features(clip, sample_rate=RATE)
    for other in (featuriser.features(path), featuriser.features(pcm, sample_rate=RATE)):
        assert other["rms_dbfs"] == pytest.approx(from_array["rms_dbfs"], abs=0.01)
        assert other["leading_silence_s"] == pytest.approx(from_array["leading_silence_s"])
        assert other["mfcc_mean_3"] == pytest.approx(from_array["mfcc_mean_3"], abs=0.1)


@pytest.mark.parametrize(
    "waveform, rate, message",
    [
        (np.zeros(0, np.float32), RATE, "empty"),
        (np.zeros((2, 100), np.float32), RATE, "mono"),
        (np.array([0.1, np.nan, 0.2], np.float32), RATE, "NaN"),
        (np.zeros(100, np.float32), None, "sample_rate"),
    ],
)
def test_unusable_clips_are_refused_with_the_reason(featuriser, waveform, rate, message):
    with pytest.raises(InvalidAudioError, match=message):
        featuriser.features(waveform, sample_rate=rate)


def test_missing_torch_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(AudioBackendMissingError, match=r"pip install 'driftloop\[audio\]'"):
        AudioFeaturiser()


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="n_mfcc"):
        AudioFeaturiser(n_mfcc=0)
    with pytest.raises(ValueError, match="sample_rate"):
        AudioFeaturiser(sample_rate=100)
