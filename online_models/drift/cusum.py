"""A calibrated CUSUM on standardised signals, vectorised over events and signals.

Each monitored signal (a feature, a score) is standardised against its
reference, ``z = (x - mean) / std``, and fed to Page's CUSUM, one per
direction::

    up:    S = max(0, S + z - k)        down:  S = max(0, S - z - k)

with ``k`` half the smallest shift of interest (in reference standard
deviations). A signal alarms when either statistic exceeds its threshold
``h``; both restart at zero and the detector keeps watching against the same
reference. ``h`` comes from a false-alarm budget (Siegmund's approximation by
default; :func:`~online_models.drift.calibration.calibrate_threshold` fits it
to the reference by simulation).

A batch of ``n`` events by ``d`` signals is processed with a handful of numpy
passes: the recursion above equals the cumulative sum of the increments minus
its running minimum (clipped at zero), ``S_t = C_t - min(0, min_{s<=t} C_s)``;
after an alarm, the rest of the batch is processed again for the signals that
alarmed only, from zero.

Learned references: skewed and near-constant signals
----------------------------------------------------
A reference given as a mean and sd is taken as exact and the signal as
normal. A reference learned from a sample (:meth:`Cusum.from_reference`,
:meth:`Cusum.from_samples`, the warm-up) is neither, and the normal rule
breaks on real features: a ``clipping_ratio`` that is 0 in 97 % of events,
a ``leading_silence_s`` on a 10 ms grid, and any signal whose reference
mean, learned from 300 events, is off by a tenth of a sd. So, for a learned
reference:

- values are clipped to ``[-cap, cap]`` reference sds (``cap = max(4,
  2 * shift)``): one extreme value adds at most ``cap - k`` and never alarms
  on its own;
- a sd below ``2**-20`` of the largest absolute reference value (a signal
  constant in its reference, to float32 rounding) is raised to that floor:
  every departure from the constant counts as a step of ``cap``, and the
  signal is watched rather than refused. One departure now and then does
  not alarm; a share of them that lasts does (measured, reference of 300
  zeros, budget 100 000, 400 000 events: no alarm with 0.1 % departures,
  14 with 1 %; with 3 % the first after ~440 events);
- each direction's threshold ``h_d`` comes from the reference sample itself
  (:func:`~online_models.drift.calibration.reference_threshold`: the
  sample's own adjustment coefficient instead of ``2k``, one unseen value
  at the cap, and an allowance for the sampling error of the reference's
  mean and sd). The signal keeps one threshold ``h``, the normal rule's
  (:attr:`Cusum.thresholds`); a direction's increments are weighted by
  ``h / h_d``, which is the same as giving it ``h_d``
  (:attr:`Cusum.direction_thresholds`).

Measured, budget 100 000 events per false alarm per signal, a reference of
the first ``N`` events, streams drawn from the voice demo's cached clean
clips with its pre-drift weights; events per false alarm pooled over seeds,
before (4 seeds x 200 000 events) -> after (10 seeds x 400 000 events):

==================  ============================  ============================
feature             N = 300                       N = 5 000
==================  ============================  ============================
clipping_ratio      2 400 -> 571 000              2 500 -> 800 000
leading_silence_s   15 000 -> 2 000 000           73 000 -> 125 000
trailing_silence_s  12 500 -> 667 000             73 000 -> 174 000
clip_duration_s     89 000 -> 800 000             133 000 -> 211 000
loudness_db         14 000 -> no alarm            133 000 -> 167 000
mfcc_mean_0..12     8 700-89 000 -> >= 2 million  53 000-114 000 -> 114 000-222 000
==================  ============================  ============================

At a budget of 1 000 000 (8 seeds x 2 000 000 events), the six features
measured (clipping, silences, loudness, two MFCCs) stay within it (N = 5 000:
1.07-3.2 million). On ``voice_intent_rows`` (6 seeds x 300 000 events, 18
features): N = 300, no alarm at all (before: 9 400-150 000 events per false
alarm); N = 5 000, 100 000-300 000 (before: 55 000-200 000).

A 300-event reference pays in detection: a 0.5 sd shift of N(0, 1) is found
after 180 events on average instead of 77 (N = 5 000: 67 instead of 63; 30
seeds), the 77 having come with one false alarm per 8 800 events. Nor can it
hold every budget on average over references: with N(0, 1) and N = 300, 100
seeds x 200 000 events gave 385 000 events per false alarm at a budget of
100 000, but 60 seeds x 2 000 000 gave 710 000 at 1 000 000 (2 references of
60 above twice the budget); beyond that the rule holds the budget for about
97.7 % of references per direction. Learning costs 0.5-0.7 ms per signal at
N = 300, 1.8-2.7 ms at N = 5 000; monitoring, two ufunc passes more (0.14 µs
per feature per event in batches of 1 000, as before).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import lfilter

from online_models.drift.base import Alarm, DriftDetector, DriftError
from online_models.drift.pattern import classify_pattern, drift_noise

__all__ = ["Crossing", "Cusum", "InvalidReferenceError", "scan"]

Direction = Literal["up", "down", "both"]

CAP = 4.0
"""Standardised values of a learned reference's signals are clipped to ``[-cap, cap]``,
``cap = max(CAP, 2 * shift)`` (reference standard deviations)."""
RESOLUTION = 2.0**-20
"""Smallest reference sd, relative to the largest absolute reference value (about 8 float32
steps): a reference constant to within float32 rounding is taken as constant."""
SMALLEST_SCALE = 2.0**-40
"""Smallest reference sd for a reference of zeros."""


class InvalidReferenceError(DriftError):
    """A reference a detector cannot standardise against (constant, empty, wrong shape)."""


@dataclass(frozen=True)
class _Tails:
    """What a learned reference says beyond its mean and sd (see :meth:`Cusum._learn`)."""

    cap: float
    # (n_signals, directions) thresholds in standardised units; None with given thresholds
    thresholds: np.ndarray | None


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class Crossing:
    """A threshold crossing found by :func:`scan` (batch rows, not stream positions).

    ``zero_row`` is the last row at or before ``row`` where the crossing
    column's statistic was zero, or ``-1`` when that was before the batch.
    """

    row: int
    signal: int
    column: int
    statistic: float
    zero_row: int


def scan(
    increments: np.ndarray,
    level: np.ndarray,
    threshold: np.ndarray,
    *,
    track_zeros: bool = True,
) -> tuple[list[Crossing], np.ndarray, np.ndarray]:
    """Run CUSUMs over a batch, restarting a signal at zero after each crossing.

    Each statistic follows ``S = max(0, S + u)``, computed for all rows at once
    as ``S_t = C_t - min(0, min_{s<=t} C_s)`` with ``C`` the cumulative sum of
    the increments from the starting level; after a crossing, the rest of the
    batch is processed again for the signals that crossed only.

    Parameters
    ----------
    increments
        ``(n, s, c)``: ``n`` events, ``s`` signals, ``c`` statistics per signal
        (e.g. up and down). A signal crosses when any of its ``c`` statistics
        exceeds its threshold; all ``c`` then restart at zero.
    level
        ``(s, c)`` statistics before the batch.
    threshold
        ``(s,)`` threshold of each signal.
    track_zeros
        Also return the last row of the batch where each statistic was zero.

    Returns
    -------
    crossings, level, zero_rows
        The crossings in the order found (by signal, then row), the ``(s, c)``
        statistics after the batch, and the ``(s, c)`` last rows where they
        were zero (``-1``: not in this batch; all ``-1`` if not tracked).

    Examples
    --------
    >>> import numpy as np
    >>> steps = np.array([1.0, 1.0, 1.0, 1.0, 1.0]).reshape(5, 1, 1)
    >>> crossings, after, zeros = scan(steps, np.zeros((1, 1)), np.array([1.5]))
    >>> [(c.row, c.statistic) for c in crossings], after.ravel().tolist()
    ([(1, 2.0), (3, 2.0)], [1.0])
    """
    n, s, c = increments.shape
    crossings: list[Crossing] = []
    level_out = np.zeros((s, c))
    zero_out = np.full((s, c), -1, dtype=np.intp)
    signals = np.arange(s)
    start = np.zeros(s, dtype=np.intp)
    fallback = np.full(s, -1, dtype=np.intp)  # zero row when none is seen in the segment
    current = level
    restarted = False
    while signals.size:
        first_row = int(start.min())
        if restarted:
            block = increments[first_row:, signals]
            masked = np.arange(n - first_row)[:, None] < (start - first_row)[None, :]
            block[masked] = 0.0  # before its restart a signal stays at zero
        else:
            block = increments
        rows, count = block.shape[0], signals.size
        # the walk C, its running minimum, and S = C - min(0, running minimum)
        walk = np.cumsum(block.reshape(rows, count * c), axis=0)
        walk += current.reshape(-1)
        low = np.minimum.accumulate(walk, axis=0)
        floor = np.minimum(low, 0.0)
        path = walk - floor
        limits = np.repeat(threshold[signals], c)
        has = (path.max(axis=0) > limits).reshape(count, c).any(axis=1)
        done = ~has
        if done.any():
            columns = np.repeat(done, c)
            level_out[signals[done]] = path[-1, columns].reshape(-1, c)
            if track_zeros:
                # S is zero where C sits at a running minimum <= 0: the last time is the
                # last occurrence of C's overall minimum, if that minimum is <= 0
                tail = walk[::-1, columns]
                last = rows - 1 - tail.argmin(axis=0) + first_row
                seen = (low[-1, columns] <= 0.0).reshape(-1, c)
                zero_out[signals[done]] = np.where(
                    seen, last.reshape(-1, c), fallback[done][:, None]
                )
        if not has.any():
            break
        alarmed = np.flatnonzero(has)
        first = np.empty(count, dtype=np.intp)
        for j in alarmed:
            segment = path[:, j * c : (j + 1) * c]
            over = segment > threshold[signals[j]]
            row = int(over.any(axis=1).argmax())
            first[j] = row
            values = segment[row]
            column = int(np.argmax(np.where(over[row], values, -np.inf)))
            index = j * c + column
            zeros = np.flatnonzero(walk[: row + 1, index] == floor[row, index])
            zero_row = int(zeros[-1]) + first_row if zeros.size else int(fallback[j])
            crossings.append(
                Crossing(row + first_row, int(signals[j]), column, float(values[column]), zero_row)
            )
        alarm_rows = first[has] + first_row
        again = alarm_rows < n - 1
        ended = signals[has][~again]
        level_out[ended] = 0.0
        zero_out[ended] = n - 1
        signals, start = signals[has][again], alarm_rows[again]
        start = start + 1
        fallback = start - 1
        current = np.zeros((signals.size, c))
        restarted = True
    return crossings, level_out, zero_out


# --------------------------------------------------------------------------- detector


class Cusum(DriftDetector):
    """Two-sided CUSUM of standardised signals, with a threshold from a false-alarm budget.

    Watches ``n_signals`` numeric signals at once (columns of a batch).
    Each is standardised against a reference mean and standard deviation —
    given, or learned from the first ``reference_size`` events (no alarm
    during that warm-up) — and monitored for a shift of its mean of at least
    ``shift`` reference standard deviations, up, down or both.

    Thresholds: when ``threshold`` is not given, each signal gets the
    threshold whose in-control average run length (ARL0) is
    ``false_alarm_budget * n_signals`` by Siegmund's approximation (Bonferroni:
    the signals together then raise at most about one false alarm per
    ``false_alarm_budget`` events). With a given mean and sd that assumes
    normal signals and an exact reference; a reference learned from a sample
    gets clipped values and thresholds fitted to that sample (module
    docstring, "Learned references"), and
    :func:`~online_models.drift.calibration.calibrate_threshold` fits a
    given threshold to it by simulation.

    After an alarm the signal's statistics restart at zero and it keeps being
    watched against the same reference; every alarm says whether the change
    was sudden or gradual (rule in :mod:`online_models.drift.pattern`).
    Missing values (NaN) leave the statistics unchanged.

    Parameters
    ----------
    threshold
        ``h``, one for all signals or one per signal; ``None``: from the budget.
    shift
        Smallest shift of interest in reference standard deviations
        (``k = shift / 2``).
    reference_mean, reference_std
        The reference, one value or one per signal; ``None``: learned.
    reference_size
        Events of warm-up that the reference is learned from.
    n_signals
        Signals per event; inferred from the reference or thresholds if given.
    direction
        ``"both"``, ``"up"`` or ``"down"``.
    false_alarm_budget
        Events per false alarm allowed for all signals together.
    pattern_window
        Events spanned by the slow average that tells gradual from sudden.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.normal(0, 1, 3_000), rng.normal(0.5, 1, 1_000)])
    >>> detector = Cusum(reference_mean=0.0, reference_std=1.0)
    >>> round(detector.thresholds[0], 2)  # one false alarm per 100 000 events
    19.09
    >>> alarms = detector.update_many(stream)
    >>> first = alarms[0]
    >>> print(f"Change detected at index {first.index} ({first.pattern}), "
    ...       f"estimated start {first.change_position + 1}, shift {first.shift:.2f} sd")
    Change detected at index 3048 (sudden), estimated start 2979, shift 0.53 sd
    >>> len(alarms)  # it keeps alarming while the shift lasts
    13
    """

    _cap: float | None = None  # class default: states pickled before caps existed

    def __init__(
        self,
        threshold: float | Sequence[float] | None = None,
        *,
        shift: float = 0.5,
        reference_mean: float | Sequence[float] | None = None,
        reference_std: float | Sequence[float] | None = None,
        reference_size: int = 5_000,
        n_signals: int | None = None,
        direction: Direction = "both",
        false_alarm_budget: float = 100_000.0,
        pattern_window: int = 1_000,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be 'up', 'down' or 'both', got {direction!r}")
        if not shift > 0:
            raise ValueError(f"shift must be positive (reference standard deviations), got {shift}")
        if (reference_mean is None) != (reference_std is None):
            raise InvalidReferenceError("give both reference_mean and reference_std, or neither")
        if reference_size < 2:
            raise ValueError(f"reference_size must be at least 2 events, got {reference_size}")
        if false_alarm_budget <= 1:
            raise ValueError(f"false_alarm_budget must exceed 1 event, got {false_alarm_budget}")
        if pattern_window < 1:
            raise ValueError(f"pattern_window must be at least 1 event, got {pattern_window}")
        sizes = {
            np.size(value)
            for value in (threshold, reference_mean, reference_std)
            if value is not None and np.ndim(value) > 0
        }
        if n_signals is not None:
            sizes.add(n_signals)
        if len(sizes) > 1:
            raise InvalidReferenceError(
                f"thresholds, reference and n_signals disagree on the number of signals: {sizes}"
            )
        self.n_signals = sizes.pop() if sizes else 1
        self.threshold = threshold
        self.shift = float(shift)
        self.reference_mean = reference_mean
        self.reference_std = reference_std
        self.reference_size = int(reference_size)
        self.direction: Direction = direction
        self.false_alarm_budget = float(false_alarm_budget)
        self.pattern_window = int(pattern_window)
        self.reset()

    @classmethod
    def from_reference(cls, sample: ArrayLike, **params: Any) -> Cusum:
        """A detector whose reference is learned from ``sample`` (``(n,)`` or ``(n, d)``).

        NaN values are missing; a signal needs two finite values. Values are
        clipped and thresholds fitted to the sample (module docstring,
        "Learned references"); a signal constant in it is watched for
        departures.

        Examples
        --------
        >>> import numpy as np
        >>> sample = np.random.default_rng(0).normal(10.0, 2.0, (5_000, 3))
        >>> detector = Cusum.from_reference(sample)
        >>> detector.n_signals, np.round(detector.reference[0], 1).tolist()
        (3, [10.0, 10.0, 10.0])
        """
        rows = _as_rows(sample, None)
        detector = cls(n_signals=rows.shape[1], reference_size=max(rows.shape[0], 2), **params)
        detector._set_reference(*detector._learn(rows))
        return detector

    @classmethod
    def from_samples(cls, samples: Sequence[ArrayLike], **params: Any) -> Cusum:
        """A detector whose reference is learned from one sample per signal (sizes may differ).

        What :meth:`from_reference` does with the samples as the columns of a
        table, the shorter ones padded with NaN (missing).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> detector = Cusum.from_samples([rng.normal(5.0, 1.0, 300), np.zeros(200)])
        >>> detector.n_signals, [round(mean, 1) for mean in detector.reference[0]]
        (2, [5.0, 0.0])
        """
        columns = [np.asarray(sample, dtype=np.float64).ravel() for sample in samples]
        if not columns:
            raise InvalidReferenceError("give at least one sample (one per signal)")
        rows = np.full((max(column.size for column in columns), len(columns)), np.nan)
        for signal, column in enumerate(columns):
            rows[: column.size, signal] = column
        return cls.from_reference(rows, **params)

    # ------------------------------------------------------------------ protocol

    def reset(self) -> None:
        """Forget everything seen, the learned reference too (a given one is kept)."""
        self._drift_detected = False
        self._alarms: list[Alarm] = []
        self._position = 0
        self._warmup: list[np.ndarray] = []
        self._warmup_count = 0
        self._mean: np.ndarray | None = None
        if self.reference_mean is not None:
            mean = np.broadcast_to(np.asarray(self.reference_mean, float), (self.n_signals,))
            std = np.broadcast_to(np.asarray(self.reference_std, float), (self.n_signals,))
            self._set_reference(mean.copy(), std.copy())

    def update(self, x: float | Sequence[float]) -> None:
        """Take one event: a number, or one number per signal.

        Same statistics and alarms as :meth:`update_many` (up to float
        rounding), without the cost of batch machinery for one row.
        """
        row = np.asarray(x, dtype=np.float64).reshape(1, self.n_signals)
        if self._mean is None:
            self.update_many(row)
            return
        self._alarms = self._monitor_one(row[0])
        self._drift_detected = bool(self._alarms)

    def update_many(self, values: ArrayLike) -> list[Alarm]:
        """Take a batch of events, ``(n, n_signals)`` (or ``(n,)`` for one signal).

        Returns the alarms it raised, in order of position (``Alarm.index`` is
        the row in ``values``); :attr:`drift_detected` says whether there was any.
        """
        rows = _as_rows(values, self.n_signals)
        alarms: list[Alarm] = []
        skipped = 0
        if self._mean is None:
            before = rows.shape[0]
            rows = self._warm_up(rows)
            skipped = before - rows.shape[0]
        if rows.shape[0]:
            alarms = self._monitor(rows, skipped)
        self._alarms = alarms
        self._drift_detected = bool(alarms)
        return alarms

    # ------------------------------------------------------------------ results

    @property
    def alarms(self) -> list[Alarm]:
        """The alarms of the last update."""
        return list(self._alarms)

    @property
    def thresholds(self) -> list[float]:
        """Threshold of each signal (empty until the reference is known).

        With a learned reference and no given threshold, each direction's
        increments are weighted so that this threshold acts as
        :attr:`direction_thresholds` (the alarms' statistics are weighted too).
        """
        return [] if self._mean is None else self._threshold.tolist()

    @property
    def direction_thresholds(self) -> list[list[float]]:
        """Effective threshold of each signal and direction, in unweighted increment units."""
        if self._mean is None:
            return []
        weights = getattr(self, "_weights", np.ones_like(self._scale))
        return (self._threshold[:, None] / weights).tolist()

    @property
    def reference(self) -> tuple[list[float], list[float]] | None:
        """``(means, standard deviations)`` of the reference, ``None`` during warm-up."""
        if self._mean is None:
            return None
        return self._mean.tolist(), self._std.tolist()

    @property
    def statistics(self) -> np.ndarray:
        """Current ``(n_signals, directions)`` CUSUM statistics (zeros during warm-up)."""
        if self._mean is None:
            return np.zeros((self.n_signals, len(self._directions())))
        return self._level.copy()

    @property
    def position(self) -> int:
        """Events taken since the detector was built or reset."""
        return self._position

    def increments(self, values: ArrayLike) -> np.ndarray:
        """``(n, n_signals, directions)`` CUSUM increments of a batch (reference must be known).

        What the statistics add per event; calibration resamples these.
        """
        if self._mean is None:
            raise InvalidReferenceError(
                "the reference is not known yet: give reference_mean/reference_std, "
                "use from_reference(sample), or feed reference_size events first"
            )
        z = (_as_rows(values, self.n_signals) - self._mean) / self._std
        missing = np.isnan(z)
        z[missing] = 0.0
        if self._cap is not None:
            np.minimum(z, self._cap, out=z)  # two ufuncs: np.clip's wrapper costs more
            np.maximum(z, -self._cap, out=z)
        increments = z[:, :, None] * self._scale + self._offset
        increments[missing] = 0.0  # as in the detector: a missing value changes nothing
        return increments

    # ------------------------------------------------------------------ subclass hooks

    def _directions(self) -> list[Literal["up", "down"]]:
        return ["up", "down"] if self.direction == "both" else [self.direction]

    def _learn(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Tails]:
        """Reference ``(mean, std, tails)`` per signal from warm-up rows (NaN: missing).

        A sd below :data:`RESOLUTION` of the largest absolute value (a signal
        constant in the reference) is raised to it, so that departures from
        the constant count as steps of ``cap``.
        """
        usable = np.isfinite(rows)
        counts = usable.sum(axis=0)
        if (counts < 2).any():
            raise InvalidReferenceError(
                f"signals {np.flatnonzero(counts < 2).tolist()} have fewer than 2 finite values "
                "in the reference: give a longer reference or reference_mean/reference_std"
            )
        values = np.where(usable, rows, np.nan)
        mean = np.nanmean(values, axis=0)
        floor = np.maximum(RESOLUTION * np.nanmax(np.abs(values), axis=0), SMALLEST_SCALE)
        std = np.maximum(np.nanstd(values, axis=0, ddof=1), floor)
        return mean, std, self._tails(values, mean, std)

    def _tails(self, values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> _Tails:
        """The cap, and each direction's threshold from the reference sample itself."""
        from online_models.drift.calibration import CalibrationError, reference_threshold

        cap = max(CAP, 2.0 * self.shift)
        if self.threshold is not None:
            return _Tails(cap, None)
        directions = self._directions()
        # each direction gets an equal share of the signal's false alarms
        target = self.false_alarm_budget * self.n_signals * len(directions)
        standardised = np.ascontiguousarray(((values - mean) / std).T)
        thresholds = np.empty((self.n_signals, len(directions)))
        for signal, column in enumerate(standardised):
            column = column[np.isfinite(column)]
            for index, direction in enumerate(directions):
                try:
                    thresholds[signal, index] = reference_threshold(
                        column, target, allowance=self.shift / 2.0, cap=cap, direction=direction
                    ).threshold
                except CalibrationError as error:
                    raise InvalidReferenceError(
                        f"signal {signal}: {error}, or give a threshold"
                    ) from None
        return _Tails(cap, thresholds)

    def _columns(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, offset)``, each ``(n_signals, directions)``: increment = z * scale + offset."""
        signs = np.array([1.0 if d == "up" else -1.0 for d in self._directions()])
        scale = np.broadcast_to(signs, (self.n_signals, signs.size)).copy()
        return scale, np.full_like(scale, -self.shift / 2.0)

    def _default_thresholds(self) -> np.ndarray:
        from online_models.drift.calibration import siegmund_threshold

        k = self.shift / 2.0
        value = siegmund_threshold(
            self.false_alarm_budget * self.n_signals,
            theta=[2.0 * k] * self._scale.shape[1],
            drift=[-k] * self._scale.shape[1],
            spread=[1.0] * self._scale.shape[1],
        )
        return np.full(self.n_signals, value)

    # ------------------------------------------------------------------ internals

    def _set_reference(
        self, mean: np.ndarray, std: np.ndarray, tails: _Tails | None = None
    ) -> None:
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        if mean.shape != (self.n_signals,) or std.shape != (self.n_signals,):
            raise InvalidReferenceError(
                f"the reference needs {self.n_signals} means and standard deviations, "
                f"got shapes {mean.shape} and {std.shape}"
            )
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std) & (std > 0)))
        if bad.size:
            raise InvalidReferenceError(
                f"signals {bad.tolist()} have a constant or non-finite reference "
                f"(mean {mean[bad].tolist()}, std {std[bad].tolist()}): a constant signal "
                "cannot be standardised; drop it or give a positive reference_std"
            )
        self._mean, self._std = mean, std
        self._scale, self._offset = self._columns()
        self._cap = None if tails is None else tails.cap
        columns = self._scale.shape[1]
        self._weights = np.ones((self.n_signals, columns))
        if self.threshold is None:
            self._threshold = self._default_thresholds()
            if tails is not None and tails.thresholds is not None:
                # weighting a direction's increments by h / h_d is the same as giving it h_d
                self._weights = self._threshold[:, None] / tails.thresholds
                self._scale = self._scale * self._weights
                self._offset = self._offset * self._weights
        else:
            self._threshold = np.broadcast_to(
                np.asarray(self.threshold, float), (self.n_signals,)
            ).copy()
            if not (self._threshold > 0).all():
                raise ValueError(f"thresholds must be positive, got {self._threshold.tolist()}")
        shape = (self.n_signals, columns)
        self._level = np.zeros(shape)
        self._zero_position = np.full(shape, self._position - 1, dtype=np.int64)
        self._zero_ewma = np.zeros(shape)
        self._ewma = np.zeros(self.n_signals)
        self._restart_position = np.full(self.n_signals, self._position - 1, dtype=np.int64)
        self._restart_ewma = np.zeros(self.n_signals)

    def _warm_up(self, rows: np.ndarray) -> np.ndarray:
        take = min(self.reference_size - self._warmup_count, rows.shape[0])
        self._warmup.append(rows[:take].copy())
        self._warmup_count += take
        self._position += take
        if self._warmup_count >= self.reference_size:
            sample = np.concatenate(self._warmup)
            self._warmup = []
            self._set_reference(*self._learn(sample))
        return rows[take:]

    def _monitor(self, rows: np.ndarray, skipped: int) -> list[Alarm]:
        base = self._position
        z = (rows - self._mean) / self._std
        missing = np.isnan(z)
        any_missing = bool(missing.any())
        if any_missing:
            z[missing] = 0.0
        if self._cap is not None:
            np.minimum(z, self._cap, out=z)
            np.maximum(z, -self._cap, out=z)
        increments = z[:, :, None] * self._scale + self._offset
        if any_missing:
            increments[missing] = 0.0  # a missing value leaves the statistics unchanged
        weight = 1.0 / self.pattern_window
        ewma = lfilter(
            [weight], [1.0, weight - 1.0], z, axis=0, zi=((1.0 - weight) * self._ewma)[None, :]
        )[0]
        crossings, level, zero_rows = scan(increments, self._level, self._threshold)
        alarms = []
        for crossing in crossings:  # in order of position within each signal
            signal, column, row = crossing.signal, crossing.column, crossing.row
            if crossing.zero_row >= 0:
                change = base + crossing.zero_row
                ewma_at_change = float(ewma[crossing.zero_row, signal])
            else:
                change = int(self._zero_position[signal, column])
                ewma_at_change = float(self._zero_ewma[signal, column])
            alarms.append(
                self._alarm(
                    skipped + row,
                    base + row,
                    signal,
                    column,
                    crossing.statistic,
                    change,
                    ewma_at_change,
                    float(ewma[row, signal]),
                )
            )
        seen = zero_rows >= 0
        if seen.any():
            self._zero_position[seen] = base + zero_rows[seen]
            self._zero_ewma[seen] = ewma[zero_rows, np.arange(self.n_signals)[:, None]][seen]
        self._level = level
        self._ewma = ewma[-1].copy()
        self._position = base + rows.shape[0]
        alarms.sort(key=lambda alarm: (alarm.position, alarm.signal))
        return alarms

    def _monitor_one(self, x: np.ndarray) -> list[Alarm]:
        position = self._position
        z = (x - self._mean) / self._std
        missing = np.isnan(z)
        z[missing] = 0.0
        if self._cap is not None:
            np.minimum(z, self._cap, out=z)
            np.maximum(z, -self._cap, out=z)
        increments = z[:, None] * self._scale + self._offset
        increments[missing] = 0.0
        weight = 1.0 / self.pattern_window
        ewma = (1.0 - weight) * self._ewma + weight * z
        level = np.maximum(self._level + increments, 0.0)
        at_zero = level == 0.0
        self._zero_position[at_zero] = position
        self._zero_ewma[at_zero] = np.broadcast_to(ewma[:, None], level.shape)[at_zero]
        alarms = []
        for signal in np.flatnonzero((level > self._threshold[:, None]).any(axis=1)):
            values = level[signal]
            column = int(np.argmax(values))
            alarms.append(
                self._alarm(
                    0,
                    position,
                    int(signal),
                    column,
                    float(values[column]),
                    int(self._zero_position[signal, column]),
                    float(self._zero_ewma[signal, column]),
                    float(ewma[signal]),
                )
            )
            level[signal] = 0.0
            self._zero_position[signal] = position
            self._zero_ewma[signal] = ewma[signal]
        self._level = level
        self._ewma = ewma
        self._position = position + 1
        return alarms

    def _alarm(
        self,
        index: int,
        position: int,
        signal: int,
        column: int,
        statistic: float,
        change: int,
        ewma_at_change: float,
        ewma_now: float,
    ) -> Alarm:
        """Describe a crossing, and restart the signal's slow average bookkeeping."""
        weight = 1.0 / self.pattern_window
        since_restart = change - int(self._restart_position[signal])
        # the slow average restarted at the last alarm: subtract what it held then
        drifted = ewma_at_change - float(self._restart_ewma[signal]) * (
            (1.0 - weight) ** since_restart
        )
        scale = float(self._scale[signal, column])
        drift_before = drifted * math.copysign(1.0, scale)
        run = position - change
        total = (statistic - float(self._offset[signal, column]) * run) / scale
        self._restart_position[signal] = position
        self._restart_ewma[signal] = ewma_now
        return Alarm(
            index=index,
            position=position,
            signal=signal,
            direction=self._directions()[column],
            statistic=statistic,
            threshold=float(self._threshold[signal]),
            change_position=change,
            run_length=run,
            shift=total / run,
            drift_before=drift_before,
            pattern=classify_pattern(drift_before, drift_noise(self.pattern_window, since_restart)),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_signals={self.n_signals}, shift={self.shift}, "
            f"direction={self.direction!r}, thresholds={self.thresholds})"
        )


def _as_rows(values: ArrayLike, n_signals: int | None) -> np.ndarray:
    rows = np.array(values, dtype=np.float64)
    if rows.ndim == 1 and n_signals in (None, 1):
        rows = rows.reshape(-1, 1)
    if rows.ndim != 2 or (n_signals is not None and rows.shape[1] != n_signals):
        raise InvalidReferenceError(
            f"expected a batch of shape (events, {n_signals or 'signals'}), got {rows.shape}"
        )
    return rows
