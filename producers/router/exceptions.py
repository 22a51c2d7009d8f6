"""Errors raised by the prediction router. All derive from :class:`RouterError`."""

from __future__ import annotations

from producers.exceptions import ProducersError

__all__ = [
    "AudioUnavailableError",
    "BadRequestError",
    "ModelNotServedError",
    "ModelUnavailableError",
    "RouterError",
]


class RouterError(ProducersError):
    """Base of every error raised by :mod:`producers.router`."""


class BadRequestError(RouterError, ValueError):
    """A predict request that cannot be answered as sent (HTTP 400); the message says why."""


class AudioUnavailableError(BadRequestError):
    """An audio request to a router installed without the ``audio`` extra (HTTP 400)."""


class ModelNotServedError(RouterError, KeyError):
    """A request for a model this router does not serve (HTTP 404); lists the served ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "model not served"


class ModelUnavailableError(RouterError):
    """A model the router knows but cannot answer for: no champion loaded (HTTP 503)."""
