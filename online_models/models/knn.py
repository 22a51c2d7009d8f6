"""A k-nearest-neighbours classifier over a sliding window, vectorised with numpy.

river's :class:`~river.neighbors.KNNClassifier` keeps its window as dicts and
measures distances one pair at a time in Python: about 1 ms per prediction
over 1 000 examples of 30 features. :class:`WindowKNNClassifier` keeps the
window as one numpy matrix (a ring buffer) and measures every distance in one
vectorised step, which is what a model answering live requests needs.

Old examples leave the window as new ones arrive, so a model warm-started on
drifted traffic forgets the old concept after ``window_size`` examples.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from river import base

__all__ = ["WindowKNNClassifier"]

_SAME = 1e-9
"""Squared distances up to this count as an exact match (rounding of the dot products)."""


class WindowKNNClassifier(base.Classifier):
    """The ``n_neighbors`` nearest of the last ``window_size`` examples vote.

    Features are read by name; a feature first seen later adds a column (0.0
    for the examples before it), a feature missing from an example counts as
    0.0, and a value that is not a finite number is ignored the same way. Put
    a scaler in front (as the ``voice_intent`` pipeline does): distances are
    Euclidean over the raw values given.

    Parameters
    ----------
    n_neighbors
        How many neighbours vote.
    window_size
        How many of the latest examples are kept.
    weighted
        Weigh each vote by the inverse of its distance (an exact match
        outvotes the rest); otherwise each neighbour is one vote.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> model = WindowKNNClassifier(n_neighbors=3, window_size=50)
    >>> for _ in range(200):
    ...     label = rng.choice(["left", "right"])
    ...     x = {"a": rng.gauss(-1.0 if label == "left" else 1.0, 0.3)}
    ...     model.learn_one(x, label)
    >>> model.predict_one({"a": -0.9}), model.predict_one({"a": 1.2})
    ('left', 'right')
    >>> model.n_examples
    50

    The vote shares are the probabilities, for every label learned:

    >>> sorted(model.predict_proba_one({"a": 1.2}).items())
    [('left', 0.0), ('right', 1.0)]
    """

    def __init__(self, n_neighbors: int = 5, window_size: int = 1000, weighted: bool = True):
        if n_neighbors < 1:
            raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors}")
        if window_size < 1:
            raise ValueError(f"window_size must be at least 1, got {window_size}")
        self.n_neighbors = n_neighbors
        self.window_size = window_size
        self.weighted = weighted
        self._columns: dict[Hashable, int] = {}
        self._labels: list[Any] = []  # code -> label, in the order first seen
        self._codes: dict[Any, int] = {}
        self._x = np.zeros((window_size, 0), dtype=np.float64)
        self._norms = np.zeros(window_size, dtype=np.float64)  # squared length of each row
        self._y = np.zeros(window_size, dtype=np.intp)  # label code of each row
        self._n = 0  # rows filled
        self._next = 0  # the row the next example overwrites once the window is full

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def n_examples(self) -> int:
        """How many examples the window holds."""
        return self._n

    def learn_one(self, x: Mapping[Hashable, Any], y: Any) -> None:
        """Add one example, pushing out the oldest once the window is full."""
        for name, value in x.items():
            if name not in self._columns and _number(value) is not None:
                self._columns[name] = len(self._columns)
        if self._x.shape[1] < len(self._columns):
            grown = np.zeros((self.window_size, len(self._columns)), dtype=np.float64)
            grown[:, : self._x.shape[1]] = self._x
            self._x = grown
        code = self._codes.get(y)
        if code is None:
            code = self._codes[y] = len(self._labels)
            self._labels.append(y)
        if self._n < self.window_size:
            row = self._n
            self._n += 1
        else:
            row = self._next
            self._next = (row + 1) % self.window_size
        vector = self._vector(x)
        self._x[row] = vector
        self._norms[row] = vector @ vector
        self._y[row] = code

    def predict_proba_one(self, x: Mapping[Hashable, Any]) -> dict[Any, float]:
        """Each label's share of the (weighted) votes of the nearest examples.

        Every label learned so far is a key, with 0.0 when no neighbour has it.
        """
        n = self._n
        if n == 0:
            return {}
        vector = self._vector(x)
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2: one matrix-vector product per prediction
        squared = self._norms[:n] - 2.0 * (self._x[:n] @ vector) + vector @ vector
        np.maximum(squared, 0.0, out=squared)
        k = min(self.n_neighbors, n)
        nearest = np.argpartition(squared, k - 1)[:k]
        if not self.weighted:
            weights = np.ones(k)
        elif squared[nearest].min() <= _SAME:
            weights = (squared[nearest] <= _SAME).astype(np.float64)  # exact matches decide
        else:
            weights = 1.0 / np.sqrt(squared[nearest])
        votes = np.bincount(self._y[nearest], weights=weights, minlength=len(self._labels))
        shares = votes / votes.sum()
        return {label: float(share) for label, share in zip(self._labels, shares, strict=True)}

    def _vector(self, x: Mapping[Hashable, Any]) -> np.ndarray:
        vector = np.zeros(self._x.shape[1], dtype=np.float64)
        columns = self._columns
        for name, value in x.items():
            column = columns.get(name)
            if column is None:
                continue
            if type(value) is float:  # the usual case, checked fast
                if math.isfinite(value):
                    vector[column] = value
            else:
                number = _number(value)
                if number is not None:
                    vector[column] = number
        return vector


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
