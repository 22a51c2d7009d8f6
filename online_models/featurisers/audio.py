"""Features of a spoken clip: length, level, silence, clipping and an MFCC summary.

:class:`AudioFeaturiser` turns a mono waveform (or a WAV file) into a flat dict
of numbers — what a voice-search request looks like to the monitors, and what
a simple intent model can learn from. torch and torchaudio do the signal
processing (``torchaudio.transforms.Loudness`` and ``MFCC``); soundfile reads
WAV files. They are the ``audio`` extra (``pip install 'driftloop[audio]'``)
and are imported only when a featuriser is built, so the rest of driftloop
never pays for them.

Features
--------
``clip_duration_s``
    Length of the clip in seconds (samples / sample rate).
``loudness_db``
    Integrated loudness per ITU-R BS.1770-4 (K-weighted, gated), in LUFS, from
    ``torchaudio.transforms.Loudness``. BS.1770 measures 400 ms blocks, so for
    a clip shorter than 400 ms — or one with no block above the standard's
    −70 LUFS absolute gate (near silence), where the measure is undefined — it
    falls back to ``rms_dbfs``. A 1 kHz sine reads within 0.1 dB of its RMS
    dBFS; a gain of *g* dB moves it by exactly *g* dB.
``rms_dbfs``
    Unweighted RMS level of the whole clip, ``20·log10(rms)`` in dB relative to
    full scale (a full-scale sine reads −3.01). Digital silence reads
    ``SILENCE_FLOOR_DB`` (−120).
``leading_silence_s``, ``trailing_silence_s``
    Seconds before the first and after the last *sounding* frame. The clip is
    cut into frames of ``frame_s`` (10 ms); a frame sounds when its RMS level
    is within ``silence_range_db`` (40 dB) of the loudest frame's **and** above
    ``silence_floor_dbfs`` (−60 dBFS). The relative rule keeps the measure
    the same under a gain change; the absolute floor stops the hiss of a
    near-silent clip from counting as speech. Exact to within one frame. An
    all-silent clip has both equal to its duration. (``torchaudio.functional.vad``
    was measured as the alternative: ~24 ms per 2 s clip, and it trims only the
    front, so the energy rule is used.)
``clipping_ratio``
    Share of samples with ``|x| >= 0.999`` (0–1): a microphone driven past
    full scale.
``mfcc_mean_<k>``, ``mfcc_std_<k>`` for ``k`` in ``0 .. n_mfcc-1``
    Mean and standard deviation over frames of the ``k``-th MFCC
    (``torchaudio.transforms.MFCC``, 25 ms windows every 10 ms, 40 mel bands,
    dB-scaled power). ``mfcc_mean_0`` follows the level of the clip; the
    others describe the shape of its spectrum.

All values are finite floats.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from online_models.featurisers.base import Featuriser
from online_models.featurisers.exceptions import AudioBackendMissingError, InvalidAudioError

__all__ = ["SILENCE_FLOOR_DB", "AudioFeaturiser"]

SILENCE_FLOOR_DB = -120.0
CLIPPING_LEVEL = 0.999
_BS1770_BLOCK_S = 0.4
_INSTALL_HINT = "pip install 'driftloop[audio]'"


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        import torchaudio
    except ImportError as exc:
        raise AudioBackendMissingError(
            f"audio features need torch and torchaudio ({exc.name} is missing): {_INSTALL_HINT}"
        ) from exc
    return torch, torchaudio


def _level_db(mean_square: float) -> float:
    if mean_square <= 0.0:
        return SILENCE_FLOOR_DB
    return max(SILENCE_FLOOR_DB, 10.0 * math.log10(mean_square))


class AudioFeaturiser(Featuriser):
    """Duration, loudness, RMS level, silences, clipping and MFCC statistics of a clip.

    Parameters
    ----------
    sample_rate
        Rate (Hz) the features are computed at; input at another rate is
        resampled (``torchaudio.functional.resample``) first.
    n_mfcc
        How many cepstral coefficients to summarise.
    frame_s
        Frame length of the silence rule (seconds).
    silence_range_db
        A frame quieter than the loudest frame by more than this is silent.
    silence_floor_dbfs
        A frame at or below this level is silent whatever the loudest frame.
    torch_threads
        Sets torch's intra-op threads **for the whole process**
        (``torch.set_num_threads``); ``None`` leaves torch's setting alone.
        The default is 1 because one clip is too little work to share: on a
        busy 2-core machine, torch's default of 2 threads made a 2-second clip
        cost 214 ms instead of 22 ms. Run several featurising processes to use
        more cores.

    Raises
    ------
    AudioBackendMissingError
        When torch or torchaudio is not installed; the message says how to
        install them.

    Examples
    --------
    Half a second of silence, one second of a 440 Hz tone at half scale, then
    a quarter second of silence:

    >>> import numpy as np
    >>> rate = 16_000
    >>> rng = np.random.default_rng(3)
    >>> t = np.arange(rate) / rate
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 1e-4, rate)
    >>> clip = np.concatenate([np.zeros(rate // 2), tone, np.zeros(rate // 4)])
    >>> featuriser = AudioFeaturiser(sample_rate=rate, n_mfcc=13)
    >>> f = featuriser.features(clip.astype(np.float32), sample_rate=rate)
    >>> f["clip_duration_s"], f["leading_silence_s"], f["trailing_silence_s"]
    (1.75, 0.5, 0.25)
    >>> round(f["rms_dbfs"], 2), f["clipping_ratio"], len(f)
    (-11.46, 0.0, 32)
    """

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_mfcc: int = 13,
        *,
        frame_s: float = 0.010,
        silence_range_db: float = 40.0,
        silence_floor_dbfs: float = -60.0,
        torch_threads: int | None = 1,
    ) -> None:
        if sample_rate < 8_000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
        if not 1 <= n_mfcc <= 40:
            raise ValueError(f"n_mfcc must be between 1 and 40 (the mel bands), got {n_mfcc}")
        if not 0 < frame_s <= 0.1:
            raise ValueError(f"frame_s must be in (0, 0.1] seconds, got {frame_s}")
        self.sample_rate = sample_rate
        self.n_mfcc = n_mfcc
        self.frame_s = frame_s
        self.silence_range_db = silence_range_db
        self.silence_floor_dbfs = silence_floor_dbfs
        if torch_threads is not None and torch_threads < 1:
            raise ValueError(f"torch_threads must be at least 1 or None, got {torch_threads}")
        self._torch, torchaudio = _import_torch()
        if torch_threads is not None and self._torch.get_num_threads() != torch_threads:
            self._torch.set_num_threads(torch_threads)
        self._functional = torchaudio.functional
        window = round(0.025 * sample_rate)
        self._mfcc = torchaudio.transforms.MFCC(
            sample_rate=sample_rate,
            n_mfcc=n_mfcc,
            melkwargs={
                "n_fft": 1 << (window - 1).bit_length(),
                "win_length": window,
                "hop_length": round(0.010 * sample_rate),
                "n_mels": 40,
                "center": True,
            },
        )
        self._loudness = torchaudio.transforms.Loudness(sample_rate)
        self._names = (
            "clip_duration_s",
            "loudness_db",
            "rms_dbfs",
            "leading_silence_s",
            "trailing_silence_s",
            "clipping_ratio",
            *(f"mfcc_mean_{k}" for k in range(n_mfcc)),
            *(f"mfcc_std_{k}" for k in range(n_mfcc)),
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names :meth:`features` returns, in its order.

        Examples
        --------
        >>> AudioFeaturiser(n_mfcc=2).feature_names[-4:]
        ('mfcc_mean_0', 'mfcc_mean_1', 'mfcc_std_0', 'mfcc_std_1')
        """
        return self._names

    def features(
        self,
        sample: np.ndarray | str | os.PathLike[str],
        sample_rate: int | None = None,
    ) -> dict[str, float]:
        """The features of one clip.

        Parameters
        ----------
        sample
            A mono waveform (1-D; floats in [-1, 1], or integer PCM, scaled by
            its type's range) with its ``sample_rate``, or the path of an audio
            file soundfile reads (channels are averaged; its own rate is used).
        sample_rate
            The waveform's rate in Hz; required for arrays, ignored for files.

        Raises
        ------
        InvalidAudioError
            When the clip is empty, not mono, holds NaN or infinity, or has no rate.
        """
        waveform, rate = self._load(sample, sample_rate)
        torch = self._torch
        signal = torch.from_numpy(waveform)
        if rate != self.sample_rate:
            signal = self._functional.resample(signal, rate, self.sample_rate)
            waveform = signal.numpy()
        count = waveform.size
        duration = count / self.sample_rate
        mean_square = float(np.dot(waveform, waveform)) / count
        rms_dbfs = _level_db(mean_square)
        leading, trailing = self._silences(waveform, duration)
        clipping = float(np.count_nonzero(np.abs(waveform) >= CLIPPING_LEVEL)) / count
        with torch.inference_mode():
            loudness = rms_dbfs
            if duration >= _BS1770_BLOCK_S:
                measured = float(self._loudness(signal.unsqueeze(0)))
                if math.isfinite(measured):
                    loudness = measured
            cepstrum = self._mfcc(signal)  # (n_mfcc, frames)
            means = cepstrum.mean(dim=1).tolist()
            stds = cepstrum.std(dim=1).tolist() if cepstrum.shape[1] > 1 else [0.0] * self.n_mfcc
        values = [duration, loudness, rms_dbfs, leading, trailing, clipping, *means, *stds]
        return dict(zip(self._names, (float(v) for v in values), strict=True))

    def _load(
        self, sample: np.ndarray | str | os.PathLike[str], sample_rate: int | None
    ) -> tuple[np.ndarray, int]:
        if isinstance(sample, str | os.PathLike):
            try:
                import soundfile
            except ImportError as exc:
                raise AudioBackendMissingError(
                    f"reading audio files needs soundfile: {_INSTALL_HINT}"
                ) from exc
            data, rate = soundfile.read(os.fspath(sample), dtype="float32", always_2d=True)
            waveform = data.mean(axis=1, dtype=np.float32)
        else:
            if sample_rate is None:
                raise InvalidAudioError("a waveform needs its sample_rate (Hz)")
            rate = sample_rate
            waveform = np.asarray(sample)
            if waveform.ndim != 1:
                raise InvalidAudioError(
                    f"expected a mono waveform (1-D array), got shape {waveform.shape}; "
                    "average the channels first"
                )
            if np.issubdtype(waveform.dtype, np.integer):
                scale = float(np.iinfo(waveform.dtype).max) + 1.0
                waveform = waveform.astype(np.float32) / np.float32(scale)
        waveform = np.ascontiguousarray(waveform, dtype=np.float32)
        if rate <= 0:
            raise InvalidAudioError(f"sample_rate must be positive, got {rate}")
        if waveform.size == 0:
            raise InvalidAudioError("the clip is empty (no samples)")
        if not np.isfinite(waveform).all():
            raise InvalidAudioError("the clip holds NaN or infinite samples")
        return waveform, int(rate)

    def _silences(self, waveform: np.ndarray, duration: float) -> tuple[float, float]:
        """Seconds of silence before the first and after the last sounding frame."""
        frame = max(1, round(self.frame_s * self.sample_rate))
        frames = -(-waveform.size // frame)
        padded = np.zeros(frames * frame, dtype=np.float64)
        padded[: waveform.size] = waveform
        sums = np.square(padded).reshape(frames, frame).sum(axis=1)
        lengths = np.full(frames, frame, dtype=np.float64)
        lengths[-1] = waveform.size - (frames - 1) * frame  # the last frame may be short
        with np.errstate(divide="ignore"):
            levels = 10.0 * np.log10(sums / lengths)
        threshold = max(float(levels.max()) - self.silence_range_db, self.silence_floor_dbfs)
        sounding = np.flatnonzero(levels > threshold)
        if sounding.size == 0:
            return duration, duration
        start = sounding[0] * frame / self.sample_rate
        end = min(waveform.size, (sounding[-1] + 1) * frame) / self.sample_rate
        return start, max(0.0, duration - end)
