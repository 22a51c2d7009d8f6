"""A mergeable quantile sketch with a relative-error guarantee (DDSketch)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["QuantileSketch"]


class QuantileSketch:
    """Quantiles of a stream within a relative error, in bounded memory, mergeable.

    The DDSketch of Masson, Rim and Lee (VLDB 2019): a value ``x != 0`` is
    counted in bucket ``i = ceil(log_gamma(|x|))`` of the store of its sign,
    with ``gamma = (1 + alpha) / (1 - alpha)``; bucket ``i`` holds magnitudes in
    ``(gamma**(i-1), gamma**i]`` and answers with ``2 * gamma**i / (gamma + 1)``,
    which is within a relative ``alpha`` of every magnitude in the bucket.
    Zeros are counted apart. Exact minimum and maximum are kept: ``quantile``
    answers them exactly for the lowest and highest rank, and clamps every
    other answer to them.

    **Guarantee.** For ``q`` in [0, 1] and ``n`` values counted, let
    ``x = numpy.quantile(values, q, method="lower")``, the value of 0-based rank
    ``floor(q * (n - 1))`` in sorted order. Then::

        |quantile(q) - x| <= alpha * |x|

    (up to floating-point rounding of the logarithm, ~1e-13 relative), as long
    as ``x`` is zero or lies in a bucket that was not folded (below). The
    comparison is with the *lower* order statistic because that is what the
    sketch answers: a bucket that holds one of the values, never an
    interpolation between two. An interpolating definition (numpy's default
    ``"linear"``) can answer a point between two values far apart relative to
    their size — between -1 and 1 it answers 0 — where no relative bound can hold.

    **Bounded size.** Each sign's store spans at most ``max_buckets``
    consecutive bucket indices. When values would span more, the lowest
    buckets — the smallest magnitudes of that sign — are folded into the lowest
    kept one, and quantiles that land there report it (their magnitude is
    overestimated, then clamped to the exact min/max). With the defaults
    (``alpha = 0.01``, 2048 buckets) one store spans a ratio of
    ``gamma**2048 ≈ 6e17`` between its largest and smallest magnitude before
    anything is folded; in general about ``exp(2 * alpha * max_buckets)``, so a
    finer ``alpha`` needs more buckets for the same data (``alpha = 0.001``
    with 2048 buckets spans only a ratio of 60). Folding depends only on the largest index seen, so
    single adds, batches and merges in any order give the same sketch: merging
    the sketches of two halves equals the sketch of the whole, bucket for bucket.

    Parameters
    ----------
    relative_accuracy
        ``alpha``, in (0, 1).
    max_buckets
        Most buckets kept per sign (each bucket is one integer count).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> values = rng.lognormal(mean=3.0, sigma=1.0, size=10_000)
    >>> first, second = QuantileSketch(), QuantileSketch()
    >>> first.add_many(values[:5_000])
    >>> second.add_many(values[5_000:])
    >>> first.merge(second)
    >>> first.count
    10000
    >>> for q in (0.5, 0.99):
    ...     exact = float(np.quantile(values, q, method="lower"))
    ...     estimate = first.quantile(q)
    ...     print(q, round(exact, 2), round(estimate, 2), abs(estimate - exact) <= 0.01 * exact)
    0.5 19.82 19.89 True
    0.99 211.84 210.64 True
    """

    __slots__ = ("_alpha", "_gamma_log", "_max", "_min", "_negative", "_positive", "_zero_count")

    def __init__(self, relative_accuracy: float = 0.01, max_buckets: int = 2048) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be at least 1, got {max_buckets!r}")
        self._alpha = float(relative_accuracy)
        self._gamma_log = math.log((1.0 + self._alpha) / (1.0 - self._alpha))
        self._positive = _BucketStore(max_buckets)
        self._negative = _BucketStore(max_buckets)
        self._zero_count = 0
        self._min = math.inf
        self._max = -math.inf

    # ------------------------------------------------------------------ updates

    def add(self, x: float) -> None:
        """Count one finite value."""
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"a quantile sketch counts finite values only, got {x!r}")
        # numpy's log may differ from math.log in the last bit; one code path for both
        # keeps add() and add_many() putting a value on a bucket boundary in the same bucket
        if x > 0:
            self._positive.add_index(int(self._indices(np.array([x]))[0]))
        elif x < 0:
            self._negative.add_index(int(self._indices(np.array([-x]))[0]))
        else:
            self._zero_count += 1
        self._min = min(self._min, x)
        self._max = max(self._max, x)

    def add_many(self, values: ArrayLike) -> None:
        """Count a batch of finite values (vectorised: one log and one bincount per sign).

        Raises ``ValueError`` if any value is NaN or infinite; filter missing
        values out first.
        """
        batch = np.asarray(values, dtype=np.float64).ravel()
        if batch.size == 0:
            return
        low, high = float(np.minimum.reduce(batch)), float(np.maximum.reduce(batch))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("a quantile sketch counts finite values only; drop NaN/inf first")
        if low > 0:  # the common case of a positive quantity: no sign split needed
            self._positive.add_indices(self._indices(batch))
        else:
            positive = batch[batch > 0]
            negative = batch[batch < 0]
            self._zero_count += batch.size - positive.size - negative.size
            if positive.size:
                self._positive.add_indices(self._indices(positive))
            if negative.size:
                self._negative.add_indices(self._indices(-negative))
        self._min = min(self._min, low)
        self._max = max(self._max, high)

    def bucket_indices(self, magnitudes: np.ndarray) -> np.ndarray:
        """The bucket of each positive value (any shape): what :meth:`add_many` computes.

        Sketches of one relative accuracy share buckets: the indices of many columns
        can be computed at once and given to their sketches by
        :meth:`add_positive_columns`.
        """
        return self._indices(np.asarray(magnitudes, dtype=np.float64))

    @staticmethod
    def add_positive_columns(
        sketches: Sequence[QuantileSketch],
        indices: np.ndarray,
        lows: Sequence[float],
        highs: Sequence[float],
    ) -> None:
        """Count the positive values of each column in its sketch, given their
        :meth:`bucket_indices` and each column's smallest and largest value, with one
        bincount for all columns.

        Examples
        --------
        >>> values = np.array([[0.5, 10.0], [2.0, 12.0], [3.0, 900.0]])
        >>> apart = [QuantileSketch(0.01), QuantileSketch(0.01)]
        >>> for sketch, column in zip(apart, values.T):
        ...     sketch.add_many(column)
        >>> together = [QuantileSketch(0.01), QuantileSketch(0.01)]
        >>> QuantileSketch.add_positive_columns(together, together[0].bucket_indices(values),
        ...                                     values.min(axis=0), values.max(axis=0))
        >>> [a.to_state() == b.to_state() for a, b in zip(apart, together)]
        [True, True]
        """
        if not indices.size:
            return
        size = indices.shape[0]
        low_indices = np.minimum.reduce(indices, axis=0)
        spans = np.maximum.reduce(indices, axis=0) - low_indices + 1
        starts = np.concatenate(([0], np.cumsum(spans)[:-1]))
        counts = np.bincount((indices - low_indices + starts).ravel(), minlength=int(spans.sum()))
        for j, sketch in enumerate(sketches):
            store = sketch._positive
            low, span = int(low_indices[j]), int(spans[j])
            high = low + span - 1
            if store.counts.size:
                high = max(high, store._highest)
            if low < high - store.max_buckets + 1:  # folds: the column on its own
                store.add_indices(indices[:, j])
            else:
                store._add_counts(low, counts[starts[j] : starts[j] + span], size)
            sketch._min = min(sketch._min, float(lows[j]))
            sketch._max = max(sketch._max, float(highs[j]))

    def _indices(self, magnitudes: np.ndarray) -> np.ndarray:
        logs = np.log(magnitudes)
        logs /= self._gamma_log
        return np.ceil(logs, out=logs).astype(np.int64)

    def merge(self, other: QuantileSketch) -> None:
        """Add the counts of a sketch of another, disjoint stream (same parameters)."""
        if (other._alpha, other.max_buckets) != (self._alpha, self.max_buckets):
            raise ValueError(
                "can only merge sketches with the same parameters: "
                f"relative_accuracy {self._alpha} vs {other._alpha}, "
                f"max_buckets {self.max_buckets} vs {other.max_buckets}"
            )
        self._positive.merge(other._positive)
        self._negative.merge(other._negative)
        self._zero_count += other._zero_count
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    # ------------------------------------------------------------------ results

    @property
    def count(self) -> int:
        """How many values were counted."""
        return self._negative.total + self._zero_count + self._positive.total

    @property
    def max_buckets(self) -> int:
        """Most buckets kept per sign."""
        return self._positive.max_buckets

    @property
    def relative_accuracy(self) -> float:
        """The ``alpha`` of the guarantee."""
        return self._alpha

    @property
    def min(self) -> float | None:
        """Smallest value counted (exact), ``None`` when empty."""
        return self._min if self.count else None

    @property
    def max(self) -> float | None:
        """Largest value counted (exact), ``None`` when empty."""
        return self._max if self.count else None

    @property
    def bucket_count(self) -> int:
        """Buckets held (both signs): the memory the sketch uses, in counts."""
        return self._positive.counts.size + self._negative.counts.size

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (see the guarantee above), ``None`` when empty.

        Examples
        --------
        >>> sketch = QuantileSketch()
        >>> sketch.add_many([-3.0, 0.0, 0.0, 5.0, 100.0])
        >>> [round(sketch.quantile(q), 2) for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
        [-3.0, 0.0, 0.0, 5.0, 100.0]
        >>> print(QuantileSketch().quantile(0.5))
        None
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        count = self.count
        if count == 0:
            return None
        # the same rank as numpy's method="lower": floor((n - 1) * q)
        rank = math.floor((count - 1) * q)
        if rank == 0:  # the extremes are kept exactly: answer them exactly
            return self._min
        if rank == count - 1:
            return self._max
        negatives = self._negative.total
        if rank < negatives:
            # negative values in increasing order are magnitudes in decreasing order
            index = self._negative.index_at_rank(negatives - 1 - rank)
            estimate = -self._representative(index)
        elif rank < negatives + self._zero_count:
            estimate = 0.0
        else:
            index = self._positive.index_at_rank(rank - negatives - self._zero_count)
            estimate = self._representative(index)
        return min(max(estimate, self._min), self._max)

    def _representative(self, index: int) -> float:
        gamma = math.exp(self._gamma_log)
        try:
            return 2.0 * math.exp(index * self._gamma_log) / (gamma + 1.0)
        except OverflowError:  # a bucket next to the largest float; clamping to max fixes it
            return math.inf

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_state` turns back into an equal sketch.

        Each store is its lowest bucket index and the counts from there up.
        """
        return {
            "relative_accuracy": self._alpha,
            "max_buckets": self.max_buckets,
            "zero_count": self._zero_count,
            "min": self.min,
            "max": self.max,
            "positive": self._positive.to_state(),
            "negative": self._negative.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> QuantileSketch:
        """Rebuild a sketch from :meth:`to_state` output (after a JSON round trip too).

        Examples
        --------
        >>> import json
        >>> sketch = QuantileSketch()
        >>> sketch.add_many([0.5, 1.0, 2.0, -4.0, 0.0])
        >>> again = QuantileSketch.from_state(json.loads(json.dumps(sketch.to_state())))
        >>> again.to_state() == sketch.to_state(), again.quantile(0.5) == sketch.quantile(0.5)
        (True, True)
        """
        new = cls(float(state["relative_accuracy"]), int(state["max_buckets"]))
        new._positive.load(state["positive"])
        new._negative.load(state["negative"])
        new._zero_count = int(state["zero_count"])
        if new.count:
            new._min = float(state["min"])
            new._max = float(state["max"])
        return new

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(relative_accuracy={self._alpha}, count={self.count}, "
            f"buckets={self.bucket_count})"
        )


class _BucketStore:
    """Counts of one sign: a dense array of counts for consecutive bucket indices.

    ``counts[j]`` is the count of bucket ``offset + j``. The span never exceeds
    ``max_buckets``: indices below ``highest - max_buckets + 1`` are folded into
    that lowest kept bucket.
    """

    __slots__ = ("counts", "max_buckets", "offset", "total")

    def __init__(self, max_buckets: int) -> None:
        self.max_buckets = max_buckets
        self.offset = 0
        self.counts = np.zeros(0, dtype=np.int64)
        self.total = 0

    @property
    def _highest(self) -> int:
        return self.offset + self.counts.size - 1

    def add_index(self, index: int) -> None:
        position = index - self.offset
        if self.counts.size and 0 <= position < self.counts.size:
            self.counts[position] += 1
            self.total += 1
        else:
            self._add_counts(index, np.ones(1, dtype=np.int64), 1)

    def add_indices(self, indices: np.ndarray) -> None:
        low, high = int(np.minimum.reduce(indices)), int(np.maximum.reduce(indices))
        if self.counts.size:
            high = max(high, self._highest)
        floor = high - self.max_buckets + 1
        if low < floor:  # fold before bincount, so a batch spanning 1e-300..1e300 stays small
            indices = np.maximum(indices, floor)
            low = floor
        self._add_counts(low, np.bincount(indices - low), indices.size)

    def merge(self, other: _BucketStore) -> None:
        if other.total:
            self._add_counts(other.offset, other.counts, other.total)

    def _add_counts(self, offset: int, counts: np.ndarray, total: int) -> None:
        """Add ``counts`` (summing to ``total``) of buckets ``offset, offset + 1, ...``.

        Folds the lowest buckets when the union would span more than ``max_buckets``.
        """
        high = offset + counts.size - 1
        low = offset
        if self.counts.size:
            low, high = min(low, self.offset), max(high, self._highest)
        floor = high - self.max_buckets + 1
        if low < floor:
            offset, counts = _fold(offset, counts, floor)
            if self.counts.size:
                self.offset, self.counts = _fold(self.offset, self.counts, floor)
            low = floor
        if not self.counts.size:
            self.offset, self.counts = offset, counts.astype(np.int64, copy=True)
        elif (low, high) == (self.offset, self._highest):
            self.counts[offset - low : offset - low + counts.size] += counts
        else:
            grown = np.zeros(high - low + 1, dtype=np.int64)
            grown[self.offset - low : self.offset - low + self.counts.size] = self.counts
            grown[offset - low : offset - low + counts.size] += counts
            self.offset, self.counts = low, grown
        self.total += total

    def index_at_rank(self, rank: int) -> int:
        """Index of the bucket holding the value of 0-based ``rank`` in increasing magnitude."""
        cumulative = np.cumsum(self.counts)
        return self.offset + int(np.searchsorted(cumulative, rank, side="right"))

    def to_state(self) -> dict[str, Any]:
        """Sparse: the span's size, the gaps between its non-empty buckets, and their counts.

        A window of a hundred values spans thousands of buckets of which a few
        percent are non-empty, so this is an order of magnitude smaller (and
        quicker to write) than the dense counts. ``gaps[0]`` is the first
        non-empty bucket's position in the span, ``gaps[i]`` the distance from
        the one before.
        """
        if not self.counts.size:
            return {"offset": self.offset, "size": 0, "gaps": [], "n": []}
        at = np.flatnonzero(self.counts)
        gaps = at.copy()  # (np.diff with prepend costs more than the rest together)
        gaps[1:] -= at[:-1]
        return {
            "offset": self.offset,
            "size": int(self.counts.size),
            "gaps": gaps.tolist(),
            "n": self.counts[at].tolist(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.offset = int(state["offset"])
        if "counts" in state:  # the dense form written before sparse states
            self.counts = np.asarray(state["counts"], dtype=np.int64)
        else:
            self.counts = np.zeros(int(state["size"]), dtype=np.int64)
            self.counts[np.cumsum(np.asarray(state["gaps"], dtype=np.int64))] = state["n"]
        self.total = int(self.counts.sum())


def _fold(offset: int, counts: np.ndarray, floor: int) -> tuple[int, np.ndarray]:
    """Move the counts of buckets below ``floor`` into bucket ``floor``."""
    if offset >= floor:
        return offset, counts
    cut = floor - offset
    if cut >= counts.size:
        return floor, np.array([counts.sum()], dtype=np.int64)
    folded = counts[cut:].copy()
    folded[0] += counts[:cut].sum()
    return floor, folded
