"""Errors raised by the model pipelines. All derive from :class:`ModelError`."""

from __future__ import annotations

__all__ = ["ComparisonError", "InvalidParamsError", "ModelError", "UnknownModelError"]


class ModelError(Exception):
    """Base of every error raised by :mod:`online_models.models`."""


class UnknownModelError(ModelError, KeyError):
    """A model name that no pipeline is registered under."""

    def __str__(self) -> str:
        # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else "unknown model"


class InvalidParamsError(ModelError, ValueError):
    """Training parameters a pipeline does not accept (unknown name or bad value)."""


class ComparisonError(ModelError, ValueError):
    """Two evaluations that cannot be compared (not made on the same rows)."""
