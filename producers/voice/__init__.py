"""The voice-search scenario: intents and phrases, synthesised clips, perturbations,
drift scenarios, simulated users, and the traffic they make.

Synthesis needs the Debian packages ``espeak-ng`` and ``sox``; reading the
clips needs the ``audio`` extra (``pip install 'driftloop[audio]'``).
"""

from producers.voice.champion import CHAMPION_PARAMS, measure_champion, train_champion
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
from producers.voice.scenario import (
    PRE_DRIFT,
    SCENARIOS,
    Mix,
    Phase,
    Scenario,
    UnknownScenarioError,
    get_scenario,
    register_scenario,
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
from producers.voice.traffic import (
    DEFAULT_FEATURE_CACHE_DIR,
    ClipFeatures,
    ClipKey,
    PhaseTally,
    TrafficError,
    TrafficReport,
    VoiceRequest,
    VoiceTraffic,
    run_voice_traffic,
)
from producers.voice.users import Choices, Reaction, SimulatedUsers

__all__ = [
    "CHAMPION_PARAMS",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_FEATURE_CACHE_DIR",
    "DEFAULT_SPEEDS",
    "DEFAULT_VOICES",
    "INTENT_NAMES",
    "PERTURBATIONS",
    "PRE_DRIFT",
    "SCENARIOS",
    "VOCABULARIES",
    "Choices",
    "ClipFeatures",
    "ClipInfo",
    "ClipKey",
    "ClipSpec",
    "Mix",
    "Perturbation",
    "Phase",
    "PhaseTally",
    "Reaction",
    "Scenario",
    "SimulatedUsers",
    "SynthesisError",
    "SynthesisToolMissingError",
    "TrafficError",
    "TrafficReport",
    "UnknownPerturbationError",
    "UnknownScenarioError",
    "UnknownVocabularyError",
    "Utterance",
    "Vocabulary",
    "VoiceClip",
    "VoiceRequest",
    "VoiceSynthesiser",
    "VoiceTraffic",
    "get_perturbation",
    "get_scenario",
    "get_vocabulary",
    "measure_champion",
    "read_wav",
    "register_perturbation",
    "register_scenario",
    "register_vocabulary",
    "run_voice_traffic",
    "train_champion",
    "voice_clips",
]
