"""The featuriser protocol: one raw request in, a flat dict of named numbers out."""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["Featuriser"]


class Featuriser(abc.ABC):
    """Turns one raw input (an audio clip, a row) into the features a model and its monitors see.

    Subclasses implement :meth:`features`. The result is a flat ``dict`` from
    feature name to a finite ``float``, with the same names in the same order
    for every input, so it can go on the wire as a prediction event's
    ``features`` and be stacked into a matrix by a model.
    """

    @abc.abstractmethod
    def features(self, sample: Any) -> dict[str, float]:
        """The named features of one input."""
