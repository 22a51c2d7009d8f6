"""Featurisers: raw requests in, flat dicts of named numbers out.

:class:`AudioFeaturiser` (the voice-search clips) needs the ``audio`` extra
(``pip install 'driftloop[audio]'``); it imports torch only when built, so
importing this package costs nothing.
"""

from online_models.featurisers.audio import SILENCE_FLOOR_DB, AudioFeaturiser
from online_models.featurisers.base import Featuriser
from online_models.featurisers.exceptions import (
    AudioBackendMissingError,
    FeaturiserError,
    InvalidAudioError,
)

__all__ = [
    "SILENCE_FLOOR_DB",
    "AudioBackendMissingError",
    "AudioFeaturiser",
    "Featuriser",
    "FeaturiserError",
    "InvalidAudioError",
]
