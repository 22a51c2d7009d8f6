"""The voice-search scenario's audio: intents and phrases, synthesised clips, perturbations.

Synthesis needs the Debian packages ``espeak-ng`` and ``sox``; reading the
clips needs the ``audio`` extra (``pip install 'driftloop[audio]'``).
"""

from producers.voice.intents import (
    INTENT_NAMES,
    VOCABULARIES,
    UnknownVocabularyError,
    Utterance,
    Vocabulary,
    get_vocabulary,
    register_vocabulary,
)
from producers.voice.perturbation import (
    PERTURBATIONS,
    Perturbation,
    UnknownPerturbationError,
    get_perturbation,
    register_perturbation,
)
from producers.voice.synth import (
    DEFAULT_CACHE_DIR,
    DEFAULT_SPEEDS,
    DEFAULT_VOICES,
    ClipInfo,
    ClipSpec,
    SynthesisError,
    SynthesisToolMissingError,
    VoiceClip,
    VoiceSynthesiser,
    read_wav,
    voice_clips,
)

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_SPEEDS",
    "DEFAULT_VOICES",
    "INTENT_NAMES",
    "PERTURBATIONS",
    "VOCABULARIES",
    "ClipInfo",
    "ClipSpec",
    "Perturbation",
    "SynthesisError",
    "SynthesisToolMissingError",
    "UnknownPerturbationError",
    "UnknownVocabularyError",
    "Utterance",
    "Vocabulary",
    "VoiceClip",
    "VoiceSynthesiser",
    "get_perturbation",
    "get_vocabulary",
    "read_wav",
    "register_perturbation",
    "register_vocabulary",
    "voice_clips",
]
