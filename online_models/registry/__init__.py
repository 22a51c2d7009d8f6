"""The model registry: names, versions that only grow, aliases, tags and signed artifacts.

Kept in Redis by :class:`ModelRegistry`; artifacts are checked with an HMAC
(:class:`ArtifactSigner`) before they are unpickled; publishing writes the
blob first and the pointer last, so a crash never leaves an alias on a
half-written model.
"""

from online_models.registry.artifact import ArtifactSigner, SignedArtifact, serialize
from online_models.registry.exceptions import (
    ArtifactRefusedError,
    IncompleteVersionError,
    InvalidNameError,
    InvalidTransitionError,
    MissingSecretError,
    RegistryError,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
)
from online_models.registry.registry import (
    CHALLENGER,
    CHAMPION,
    PUBLISH_STEPS,
    LoadedVersion,
    ModelRegistry,
    ModelSummary,
)
from online_models.registry.transition import Approval, Transition
from online_models.registry.version import (
    STATUSES,
    OffsetSpan,
    TrainingWindow,
    Trigger,
    VersionInfo,
    VersionMetadata,
    VersionRecord,
    VersionStatus,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PUBLISH_STEPS",
    "STATUSES",
    "Approval",
    "ArtifactRefusedError",
    "ArtifactSigner",
    "IncompleteVersionError",
    "InvalidNameError",
    "InvalidTransitionError",
    "LoadedVersion",
    "MissingSecretError",
    "ModelRegistry",
    "ModelSummary",
    "OffsetSpan",
    "RegistryError",
    "SignedArtifact",
    "TrainingWindow",
    "Transition",
    "Trigger",
    "UnknownAliasError",
    "UnknownModelError",
    "UnknownVersionError",
    "VersionInfo",
    "VersionMetadata",
    "VersionRecord",
    "VersionStatus",
    "serialize",
]
