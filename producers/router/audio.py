"""Audio requests: a base64 WAV clip turned into the features the voice models learn from.

torch, torchaudio and soundfile are the ``audio`` extra; they are imported the
first time a clip arrives, so a router installed without them serves feature
requests and answers an audio request with a 400 that says what to install.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from typing import Any

from producers.router.exceptions import AudioUnavailableError, BadRequestError

__all__ = ["WavClipFeaturiser"]

_INSTALL_HINT = "pip install 'driftloop[audio]'"


class WavClipFeaturiser:
    """Decode a base64 WAV clip and featurise it with ``AudioFeaturiser``.

    Thread-safe; the featuriser (a few seconds to import torch) is built once,
    on first use.

    Examples
    --------
    >>> import wave, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(16_000) / 16_000
    >>> tone = 0.3 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 1e-3, t.size)
    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as w:
    ...     w.setnchannels(1); w.setsampwidth(2); w.setframerate(16_000)
    ...     w.writeframes((tone * 32767).astype("<i2").tobytes())
    >>> clip = base64.b64encode(buffer.getvalue()).decode()
    >>> features = WavClipFeaturiser().features(clip)
    >>> features["clip_duration_s"], round(features["rms_dbfs"], 1)
    (1.0, -13.5)
    >>> WavClipFeaturiser().features("not base64!")
    Traceback (most recent call last):
    ...
    producers.router.exceptions.BadRequestError: audio_wav_base64 is not valid base64: ...
    """

    def __init__(self) -> None:
        self._featuriser: Any = None
        self._soundfile: Any = None
        self._lock = threading.Lock()

    def _backend(self) -> tuple[Any, Any]:
        with self._lock:
            if self._featuriser is None:
                try:
                    import soundfile

                    from online_models.featurisers import AudioFeaturiser

                    featuriser = AudioFeaturiser()
                except ImportError as exc:
                    raise AudioUnavailableError(
                        "this router cannot featurise audio: torch, torchaudio and soundfile "
                        f"are missing ({exc}); install them with {_INSTALL_HINT}, or send "
                        "'features' instead of 'audio_wav_base64'"
                    ) from None
                self._soundfile, self._featuriser = soundfile, featuriser
            return self._soundfile, self._featuriser

    def features(self, clip_base64: str) -> dict[str, float]:
        """The audio features of one base64-encoded WAV clip (channels averaged)."""
        try:
            raw = base64.b64decode(clip_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequestError(f"audio_wav_base64 is not valid base64: {exc}") from None
        if not raw:
            raise BadRequestError("audio_wav_base64 is empty: send a WAV clip")
        soundfile, featuriser = self._backend()
        try:
            data, rate = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise BadRequestError(
                f"audio_wav_base64 is not a WAV clip soundfile can read: {exc}"
            ) from None
        from online_models.featurisers import FeaturiserError

        try:
            return featuriser.features(data.mean(axis=1), sample_rate=int(rate))
        except FeaturiserError as exc:
            raise BadRequestError(f"the audio clip cannot be featurised: {exc}") from None
