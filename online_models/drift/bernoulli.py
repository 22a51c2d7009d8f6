"""A Bernoulli CUSUM: a rise (or fall) of a rate of 0/1 events, e.g. errors, redos, clicks.

Concept drift shows first in the error bits (a wrong answer, a redone search,
a switch to typing). The log-likelihood-ratio CUSUM of a reference rate ``p0``
against a rate ``p1 = rate_ratio * p0`` adds, per event ``x`` in {0, 1}::

    u = x * log(p1 / p0) + (1 - x) * log((1 - p1) / (1 - p0))

which is the optimal sequential test between the two rates (Page; Reynolds and
Stoumbos). Its increments are an affine function of the standardised bit
``z = (x - p0) / sqrt(p0 (1 - p0))``, so it runs on the same vectorised engine,
alarms, restarts and sudden/gradual rule as :class:`~online_models.drift.cusum.Cusum`
(which, measured, calls a gradual rise from an error rate of a few percent or
less sudden: see :mod:`online_models.drift.pattern`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from online_models.drift.cusum import Cusum, Direction, InvalidReferenceError

__all__ = ["BernoulliCusum"]


class BernoulliCusum(Cusum):
    """CUSUM of a rate of 0/1 events against its reference rate.

    The reference rate ``p0`` is given or learned from the first
    ``reference_size`` events (clipped to ``[0.5 / n, 1 - 0.5 / n]`` so that
    a reference without a single error still works). It watches for the rate
    becoming ``rate_ratio`` times larger (``"up"``, the default: errors rising;
    halfway to 1 when that would pass 1) and/or ``rate_ratio`` times smaller
    (``"down"``: e.g. clicks falling).

    The threshold is in log-likelihood-ratio units; without one it comes from
    ``false_alarm_budget`` by Siegmund's approximation (``theta = 1`` for a
    likelihood ratio). See :class:`~online_models.drift.cusum.Cusum` for
    everything else (batches, alarms, restarts, patterns).

    Parameters
    ----------
    threshold
        ``h``, one for all signals or one per signal; ``None``: from the budget.
    rate_ratio
        Change of the rate to detect fastest (``p1 = rate_ratio * p0``).
    reference_rate
        ``p0``, one or one per signal; ``None``: learned.
    reference_size, n_signals, direction, false_alarm_budget, pattern_window
        As for :class:`~online_models.drift.cusum.Cusum`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(4)
    >>> errors = np.concatenate([rng.random(20_000) < 0.1, rng.random(2_000) < 0.3])
    >>> detector = BernoulliCusum(reference_size=5_000)
    >>> alarms = detector.update_many(errors)
    >>> round(detector.reference[0][0], 3), round(detector.thresholds[0], 2)
    (0.105, 7.98)
    >>> first = alarms[0]
    >>> print(f"Change detected at index {first.index} ({first.pattern}), "
    ...       f"{first.position - 20_000} events after it began")
    Change detected at index 20096 (sudden), 96 events after it began
    """

    def __init__(
        self,
        threshold: float | list[float] | None = None,
        *,
        rate_ratio: float = 2.0,
        reference_rate: float | list[float] | None = None,
        reference_size: int = 5_000,
        n_signals: int | None = None,
        direction: Direction = "up",
        false_alarm_budget: float = 100_000.0,
        pattern_window: int = 1_000,
    ) -> None:
        if not rate_ratio > 1:
            raise ValueError(f"rate_ratio must exceed 1, got {rate_ratio}")
        self.rate_ratio = float(rate_ratio)
        self.reference_rate = reference_rate
        if reference_rate is not None:
            rate = np.asarray(reference_rate, dtype=np.float64)
            if not ((rate > 0) & (rate < 1)).all():
                raise InvalidReferenceError(
                    f"reference_rate must be strictly between 0 and 1, got {reference_rate}"
                )
            reference_mean: Any = reference_rate
            reference_std: Any = np.sqrt(rate * (1 - rate)).tolist()
        else:
            reference_mean = reference_std = None
        super().__init__(
            threshold,
            shift=1.0,  # unused: the design change is rate_ratio
            reference_mean=reference_mean,
            reference_std=reference_std,
            reference_size=reference_size,
            n_signals=n_signals,
            direction=direction,
            false_alarm_budget=false_alarm_budget,
            pattern_window=pattern_window,
        )

    @classmethod
    def from_reference(cls, sample: ArrayLike, **params: Any) -> BernoulliCusum:
        """A detector whose reference rate is learned from 0/1 ``sample`` (``(n,)`` or ``(n, d)``).

        Examples
        --------
        >>> BernoulliCusum.from_reference([0, 0, 1, 0]).reference[0]
        [0.25]
        """
        detector = super().from_reference(sample, **params)
        assert isinstance(detector, BernoulliCusum)
        return detector

    def _learn(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = np.isfinite(rows).sum(axis=0)
        if (counts == 0).any():
            raise InvalidReferenceError(
                f"signals {np.flatnonzero(counts == 0).tolist()} have no value in the reference"
            )
        floor = 0.5 / counts
        rate = np.clip(np.nanmean(rows, axis=0), floor, 1.0 - floor)
        return rate, np.sqrt(rate * (1.0 - rate))

    def _columns(self) -> tuple[np.ndarray, np.ndarray]:
        assert self._mean is not None
        p0 = self._mean
        scale, offset = [], []
        for direction in self._directions():
            if direction == "up":
                p1 = np.minimum(p0 * self.rate_ratio, (1.0 + p0) / 2.0)
            else:
                p1 = p0 / self.rate_ratio
            on_one = np.log(p1 / p0)
            on_zero = np.log((1.0 - p1) / (1.0 - p0))
            scale.append((on_one - on_zero) * self._std)
            offset.append(on_zero + (on_one - on_zero) * p0)
        return np.stack(scale, axis=1), np.stack(offset, axis=1)

    def _default_thresholds(self) -> np.ndarray:
        from online_models.drift.calibration import siegmund_threshold

        target = self.false_alarm_budget * self.n_signals
        values = [
            siegmund_threshold(
                target,
                theta=[1.0] * self._scale.shape[1],
                drift=self._offset[signal].tolist(),
                spread=np.abs(self._scale[signal]).tolist(),
            )
            for signal in range(self.n_signals)
        ]
        return np.asarray(values)

    def __repr__(self) -> str:
        return (
            f"BernoulliCusum(n_signals={self.n_signals}, rate_ratio={self.rate_ratio}, "
            f"direction={self.direction!r}, thresholds={self.thresholds})"
        )
