"""Errors raised by the featurisers. All derive from :class:`FeaturiserError`."""

from __future__ import annotations

__all__ = ["AudioBackendMissingError", "FeaturiserError", "InvalidAudioError"]


class FeaturiserError(Exception):
    """Base of every error raised by ``online_models.featurisers``."""


class AudioBackendMissingError(FeaturiserError, ImportError):
    """torch, torchaudio or soundfile is not installed (they are the ``audio`` extra)."""


class InvalidAudioError(FeaturiserError, ValueError):
    """A waveform that cannot be featurised: empty, not mono, not finite, or a bad rate."""
