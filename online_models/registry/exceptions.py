"""Errors raised by the model registry. All derive from :class:`RegistryError`."""

from __future__ import annotations

__all__ = [
    "ArtifactRefusedError",
    "IncompleteVersionError",
    "InvalidNameError",
    "InvalidTransitionError",
    "MissingSecretError",
    "RegistryError",
    "UnknownAliasError",
    "UnknownModelError",
    "UnknownVersionError",
]


class RegistryError(Exception):
    """Base of every error raised by ``online_models.registry``."""


class MissingSecretError(RegistryError):
    """The registry has no signing secret (or a too short one) but was asked to sign or verify."""


class ArtifactRefusedError(RegistryError):
    """An artifact whose bytes, checksum or signature do not check out: it is never unpickled."""


class InvalidNameError(RegistryError, ValueError):
    """A model name, alias, tag key or approval step that does not follow the naming rules."""


class UnknownModelError(RegistryError, KeyError):
    """A model name that was never registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


class UnknownVersionError(RegistryError, KeyError):
    """A version number that the model does not have; the message lists the ones it has."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown version"


class UnknownAliasError(RegistryError, KeyError):
    """An alias that points nowhere; the message lists the aliases the model has."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown alias"


class IncompleteVersionError(RegistryError):
    """A version whose publication never finished (the process died before its pointer)."""


class InvalidTransitionError(RegistryError):
    """A promotion, rollback or alias change that the model's current state does not allow."""
