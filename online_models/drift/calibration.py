"""Thresholds from a false-alarm budget: analytic first, then fitted to the reference.

The user states a budget once — "at most one false alarm per ``B`` events per
model". With ``m`` signals monitored for a model, each signal gets an
in-control average run length ``ARL0 = B * m`` (:func:`signal_arl0`,
Bonferroni), so the model as a whole stays within budget.

A CUSUM's ARL0 grows exponentially with its threshold ``h``. Siegmund's
approximation (:func:`siegmund_arl0`) gives it from three numbers per
statistic: the in-control mean ``drift`` (negative) and standard deviation
``spread`` of its increments, and ``theta``, the positive root of
``E[exp(theta * u)] = 1`` (``2k`` for a standardised normal signal, exactly 1
for a log-likelihood ratio)::

    h' = h + 1.166 * spread
    ARL0 = (exp(theta * h') - theta * h' - 1) / (theta * |drift|)

Real references are not normal. :func:`calibrate_threshold` resamples the
reference (iid bootstrap), runs many copies of the detector's own CUSUM
engine on it at a moderate threshold where false alarms are frequent,
counts them per statistic, and extrapolates each count with the exponential
tail ``exp(-theta * h)``, ``theta`` solved on the resampled increments
(:func:`adjustment_coefficient`). A last simulation at the chosen threshold
checks the result. It takes a few seconds; results are cached by the caller
(they depend only on the reference sample, the detector and the target).

The calibration treats the detector's reference as exact. A reference learned
from few events is not, and its error costs false alarms: measured in
``bench/drift.py`` with references learned from 5 000 events, thresholds
calibrated for ARL0 = 100 000 gave 76 000–91 000 events per false alarm on
fresh data. Calibrate for twice the budget in that case (it delays detection
by about ``log(2) / (drift per event after the change)``, ~5 events here), or
learn the reference from more events.

The live detectors use neither. A :class:`~online_models.drift.cusum.Cusum`
whose reference is learned from a sample gets each direction's threshold from
:func:`reference_threshold`, analytically and in about a millisecond: the
sample's own ``theta`` (skew, discreteness) with one value at the clipping cap
that the sample did not show (the rare value a short reference misses),
lowered by an allowance for the sampling error of the reference's mean and sd
(which is what makes a 300-event reference raise false alarms 5-10 times too
often under the normal rule). Measured figures are in
:mod:`online_models.drift.cusum`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from online_models.drift.base import DriftError
from online_models.drift.cusum import Cusum, scan

__all__ = [
    "Calibration",
    "CalibrationError",
    "ReferenceThreshold",
    "adjustment_coefficient",
    "calibrate_threshold",
    "reference_threshold",
    "siegmund_arl0",
    "siegmund_threshold",
    "signal_arl0",
    "simulate_arl0",
]

_OVERSHOOT = 1.166  # 2 * 0.583: Siegmund's correction for the overshoot of a normal walk
_TOP_OVERSHOOT = 0.583  # the top boundary's share only: see reference_threshold
_CONFIDENCE = 2.0  # standard errors of theta: the threshold holds for 97.7 % of references


class CalibrationError(DriftError):
    """A threshold that cannot be calibrated from what was given."""


def signal_arl0(budget_events: float, n_signals: int) -> float:
    """Per-signal ARL0 that keeps ``n_signals`` within one false alarm per ``budget_events``.

    Examples
    --------
    >>> signal_arl0(100_000, n_signals=11)
    1100000.0
    """
    if budget_events <= 1 or n_signals < 1:
        raise CalibrationError(
            f"need a budget above 1 event and at least one signal, "
            f"got {budget_events} events and {n_signals} signals"
        )
    return float(budget_events) * n_signals


def siegmund_arl0(
    threshold: float,
    theta: Sequence[float],
    drift: Sequence[float],
    spread: Sequence[float],
    *,
    overshoot: float = _OVERSHOOT,
) -> float:
    """In-control ARL of a signal whose CUSUM statistics (one per direction) share a threshold.

    Each statistic's ARL by Siegmund's approximation; the signal alarms when
    any does: ``1 / ARL = sum(1 / ARL_i)``. ``overshoot`` is the correction
    added to the threshold, in increment standard deviations (1.166 for a
    normal walk; see :func:`reference_threshold` for discrete ones).

    Examples
    --------
    >>> round(siegmund_arl0(5.0, theta=[1.0], drift=[-0.5], spread=[1.0]))
    938
    """
    rate = 0.0
    for rate_theta, mean, sd in zip(theta, drift, spread, strict=True):
        if not (rate_theta > 0 and mean < 0 and sd > 0):
            raise CalibrationError(
                f"an in-control CUSUM needs theta > 0, a negative drift and a positive spread, "
                f"got theta={rate_theta}, drift={mean}, spread={sd}: the increments must "
                "have a negative mean on the reference (raise k or the design shift)"
            )
        scaled = rate_theta * (threshold + overshoot * sd)
        rate += rate_theta * abs(mean) / (math.expm1(scaled) - scaled)
    return 1.0 / rate


def siegmund_threshold(
    target_arl0: float,
    theta: Sequence[float],
    drift: Sequence[float],
    spread: Sequence[float],
    *,
    overshoot: float = _OVERSHOOT,
) -> float:
    """Threshold whose :func:`siegmund_arl0` is ``target_arl0`` (bisection).

    Examples
    --------
    >>> h = siegmund_threshold(1_000_000, theta=[0.5, 0.5], drift=[-0.25, -0.25],
    ...                        spread=[1.0, 1.0])
    >>> round(h, 2), round(siegmund_arl0(h, [0.5, 0.5], [-0.25, -0.25], [1.0, 1.0]))
    (23.69, 1000000)
    """
    if target_arl0 <= 1:
        raise CalibrationError(f"target_arl0 must exceed 1 event, got {target_arl0}")
    low, high = 0.0, 1.0
    while siegmund_arl0(high, theta, drift, spread, overshoot=overshoot) < target_arl0:
        low, high = high, high * 2.0
    for _ in range(100):
        middle = (low + high) / 2.0
        if siegmund_arl0(middle, theta, drift, spread, overshoot=overshoot) < target_arl0:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def adjustment_coefficient(increments: ArrayLike, weights: ArrayLike | None = None) -> float:
    """The positive root ``theta`` of ``mean(exp(theta * u)) = 1`` over a sample of increments.

    The exponential rate at which a CUSUM's false-alarm rate falls with its
    threshold (Lundberg's adjustment coefficient). With ``weights`` (one per
    increment, summing to one), the mean is weighted.

    Solved by Newton's method on the log of the (convex) moment generating
    function, from the right of the root, where it converges monotonically.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(1).normal(0.0, 1.0, 200_000)
    >>> round(adjustment_coefficient(z - 0.25), 1)  # 2k for a normal signal
    0.5
    >>> round(adjustment_coefficient([-1.0, 1.0], weights=[0.75, 0.25]), 4)  # log(3)
    1.0986
    """
    u = np.asarray(increments, dtype=np.float64).ravel()
    if weights is None:
        w = np.full(u.size, 1.0 / max(u.size, 1))
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != u.shape or not (w >= 0).all() or not math.isclose(w.sum(), 1.0):
            raise CalibrationError(
                f"weights must be one non-negative number per increment summing to 1, got "
                f"{w.size} weights for {u.size} increments summing to {w.sum():.6g}"
            )
    mean = float(w @ u) if u.size else math.nan
    top = float(u[w > 0].max()) if u.size else math.nan
    if not (mean < 0 < top):
        raise CalibrationError(
            "the increments must have a negative mean and some positive values on the "
            f"reference (mean {mean:.4g}, max {top:.4g}): the detector would alarm "
            "on its own reference, or never"
        )

    def log_mgf(theta: float) -> tuple[float, float]:
        """``log E[exp(theta u)]`` and its derivative (the tilted mean of ``u``)."""
        tilted = w * np.exp(theta * (u - top))
        total = float(tilted.sum())
        return theta * top + math.log(total), float(tilted @ u) / total

    variance = float(w @ (u - mean) ** 2)
    theta = 2.0 * -mean / variance  # exact for normal increments
    value, slope = log_mgf(theta)
    while value < 0.0:  # left of the root: jump to its right
        theta = theta - value / slope if slope > 0.0 else 2.0 * theta
        value, slope = log_mgf(theta)
    for _ in range(100):
        step = value / slope
        theta -= step
        if step <= 1e-12 * theta:
            break
        value, slope = log_mgf(theta)
    return theta


def _one_sided_arl0(threshold: float, theta: float, drift: float, spread: float) -> float:
    """:func:`siegmund_arl0` of one statistic, top-boundary overshoot, without checks."""
    scaled = theta * (threshold + _TOP_OVERSHOOT * spread)
    return (math.expm1(scaled) - scaled) / (theta * -drift)


def _one_sided_threshold(target_arl0: float, theta: float, drift: float, spread: float) -> float:
    """The threshold where :func:`_one_sided_arl0` is ``target_arl0`` (``h >= 0``)."""
    goal = target_arl0 * theta * -drift  # solve exp(x) - x - 1 = goal for x = theta * h'
    scaled = math.log1p(goal) + 1.0
    for _ in range(200):  # x = log(1 + goal + x) is a contraction
        following = math.log1p(goal + scaled)
        if abs(following - scaled) <= 1e-13 * scaled:
            break
        scaled = following
    return max(scaled / theta - _TOP_OVERSHOOT * spread, 0.0)


@dataclass(frozen=True)
class ReferenceThreshold:
    """The threshold of one direction of a CUSUM standardised against a sampled reference.

    Attributes
    ----------
    threshold
        ``h`` in standardised units (reference standard deviations).
    theta
        Adjustment coefficient of the capped reference increments, the unseen
        event included (see :func:`reference_threshold`).
    theta_used
        ``theta`` after the allowance for the reference's sampling error, the
        one ``threshold`` was solved with.
    theta_se
        Standard error of ``theta`` from that sampling error (delta method).
    drift, spread
        Mean and standard deviation of the increments.
    """

    threshold: float
    theta: float
    theta_used: float
    theta_se: float
    drift: float
    spread: float


def reference_threshold(
    standardised: ArrayLike,
    target_arl0: float,
    *,
    allowance: float,
    cap: float,
    direction: Literal["up", "down"] = "up",
) -> ReferenceThreshold:
    """Threshold of one direction of a CUSUM on values standardised by their own sample.

    ``standardised`` is the reference sample as the detector sees it,
    ``z = (x - mean) / sd`` with the mean and sd of that same sample; the
    detector adds ``u = clip(z, -cap, cap) - allowance`` per event (``-z`` for
    ``"down"``). Four steps, all on the sample (no simulation):

    1. the increments of the sample, plus one event at the cap with weight
       ``1 / (n + 1)``: a value the reference did not show (a rare value
       absent from a short reference, or the first departure of a feature
       constant in it) is allowed for as if it had been seen once;
    2. their adjustment coefficient ``theta`` (:func:`adjustment_coefficient`),
       which replaces the normal ``2k`` and knows the skew of the sample;
    3. its standard error ``se`` from the sampling error of the reference's
       mean and sd (delta method, with the sample's skewness and kurtosis):
       live values are standardised by estimates, so the true ``theta`` of the
       stream differs from the sample's;
    4. ``h``, the smaller of two solutions of Siegmund's approximation:
       at ``theta - h se^2 / 2``, which makes the false-alarm rate averaged
       over the reference's sampling error meet the target (the mean of
       ``exp(-theta h)`` for a normal ``theta``; it has a solution only while
       ``theta(h) * h`` still rises), and at ``theta - 2 se`` (not below
       ``theta / 4``), which meets it for 97.7 % of references: the one that
       asks less, the first for long references, the second for short ones
       and large targets. The overshoot correction is ``0.583`` increment sds
       (the top boundary's share): the full ``1.166`` of a continuous walk
       overstates the run length of discrete features (measured with the
       exact distribution of ``leading_silence_s``: 17 500 events simulated
       for 20 000 predicted).

    Parameters
    ----------
    standardised
        The reference values standardised by their own mean and sd (NaN ignored).
    target_arl0
        Events per false alarm wanted for this direction.
    allowance
        ``k``, subtracted from every increment.
    cap
        Standardised values are clipped to ``[-cap, cap]``; must exceed ``allowance``.
    direction
        ``"up"`` (increments ``z - k``) or ``"down"`` (``-z - k``).

    Examples
    --------
    >>> import numpy as np
    >>> def standardised(x):
    ...     return (x - x.mean()) / x.std(ddof=1)
    >>> rng = np.random.default_rng(0)
    >>> result = reference_threshold(standardised(rng.normal(0.0, 1.0, 5_000)), 200_000,
    ...                              allowance=0.25, cap=4.0)
    >>> round(result.theta, 2), round(result.theta_used, 2), round(result.threshold, 1)
    (0.5, 0.49, 20.2)
    >>> short = reference_threshold(standardised(rng.normal(0.0, 1.0, 300)), 200_000,
    ...                             allowance=0.25, cap=4.0)
    >>> round(short.theta_used, 2), round(short.threshold, 1)  # a 300-event reference
    (0.23, 39.8)
    """
    if direction not in ("up", "down"):
        raise CalibrationError(f"direction must be 'up' or 'down', got {direction!r}")
    if not cap > allowance > 0:
        raise CalibrationError(
            f"need cap > allowance > 0 (standardised units), got cap {cap}, allowance {allowance}"
        )
    if target_arl0 <= 1:
        raise CalibrationError(f"target_arl0 must exceed 1 event, got {target_arl0}")
    z = np.asarray(standardised, dtype=np.float64).ravel()
    z = z[np.isfinite(z)]
    n = z.size
    if n < 2:
        raise CalibrationError(f"the reference has {n} finite values; give at least 2")
    sign = 1.0 if direction == "up" else -1.0
    unseen = 1.0 / (n + 1)
    increments = np.append(sign * np.clip(z, -cap, cap) - allowance, cap - allowance)
    weights = np.full(n + 1, (1.0 - unseen) / n)
    weights[-1] = unseen
    drift = float(weights @ increments)
    if not drift < 0:
        shortest = math.ceil(cap / allowance)
        raise CalibrationError(
            f"a reference of {n} events cannot bound the false alarms of a shift of "
            f"{2 * allowance:g} sd: learn it from at least {shortest} events"
        )
    spread = math.sqrt(float(weights @ (increments - drift) ** 2))
    theta = adjustment_coefficient(increments, weights)
    tilted = weights * np.exp(theta * increments)
    slope = float(tilted @ increments)  # d/dtheta of E[exp(theta u)] at the root
    # sensitivity of theta to the reference's mean and sd (z units): a value at the cap
    # does not move with them
    inside = tilted[:-1] * (np.abs(z) < cap)
    by_mean = theta * float(inside.sum()) / slope
    by_sd = theta * float(inside @ z) / slope
    squares = z * z
    second, third, fourth = (float(np.mean(m)) for m in (squares, squares * z, squares * squares))
    variance = by_mean**2 * second / n
    if second > 0:
        variance += by_sd**2 * max(fourth - second**2, 0.0) / (4.0 * second * n)
        variance += 2.0 * by_mean * by_sd * third / (2.0 * math.sqrt(second) * n)
    variance = max(variance, 0.0)
    se = math.sqrt(variance)
    used = max(theta - _CONFIDENCE * se, theta / 4.0)
    threshold = _one_sided_threshold(target_arl0, used, drift, spread)
    # averaged over the reference's error, theta(h) = theta - h se^2 / 2: used where it
    # asks less, on the stretch where the exponent theta(h) * h still rises
    peak = min(theta / variance - _TOP_OVERSHOOT * spread / 2.0, threshold) if se else 0.0
    if peak > 0 and _one_sided_arl0(peak, theta - peak * variance / 2.0, drift, spread) >= (
        target_arl0
    ):
        low, high = 0.0, peak
        while high - low > 1e-9 * high:
            middle = (low + high) / 2.0
            if _one_sided_arl0(middle, theta - middle * variance / 2.0, drift, spread) < (
                target_arl0
            ):
                low = middle
            else:
                high = middle
        threshold, used = high, theta - high * variance / 2.0
    return ReferenceThreshold(
        threshold=threshold,
        theta=theta,
        theta_used=used,
        theta_se=se,
        drift=drift,
        spread=spread,
    )


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold and how it was found.

    Attributes
    ----------
    threshold
        The threshold to use.
    target_arl0
        The in-control ARL asked for (events).
    analytic_threshold
        Siegmund's threshold for the same target, the starting point.
    theta
        Exponential tail rate of each statistic (per direction).
    check_arl0
        ARL0 measured by simulation at ``threshold`` (events per false alarm).
    check_alarms, check_events
        False alarms and events of that simulation.
    seconds
        Wall time the calibration took.
    """

    threshold: float
    target_arl0: float
    analytic_threshold: float
    theta: tuple[float, ...]
    check_arl0: float
    check_alarms: int
    check_events: int
    seconds: float


def simulate_arl0(
    increments: np.ndarray,
    threshold: float,
    events: int,
    *,
    seed: int,
    replicas: int = 1_000,
) -> tuple[float, np.ndarray]:
    """False-alarm rate of a CUSUM on iid resamples of a signal's in-control increments.

    Runs ``replicas`` independent copies side by side through
    :func:`~online_models.drift.cusum.scan` (the detector's engine) for
    ``events`` events in all.

    Parameters
    ----------
    increments
        ``(n, c)`` increments of one signal on its reference (one column per
        direction); events are drawn from the ``n`` rows with replacement.
    threshold
        The threshold to run at.
    events
        Total events simulated over all replicas.
    seed
        Seed of the resampling.
    replicas
        Copies run side by side.

    Returns
    -------
    arl0, alarms
        Events per false alarm (``inf`` with none) and the ``(c,)`` alarm count
        of each direction.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(5).normal(0.0, 1.0, 5_000)
    >>> arl0, alarms = simulate_arl0((z - 0.5)[:, None], 4.0, 2_000_000, seed=1)
    >>> round(arl0), int(alarms.sum())  # Siegmund: 284 events
    (276, 7254)
    """
    table = np.asarray(increments, dtype=np.float64)
    if table.ndim == 1:
        table = table[:, None]
    rng = np.random.default_rng(seed)
    replicas = max(1, min(replicas, events))
    rows = max(1, events // replicas)
    chunk = 256
    columns = table.shape[1]
    level = np.zeros((replicas, columns))
    limits = np.full(replicas, float(threshold))
    alarms = np.zeros(columns, dtype=np.int64)
    done = 0
    while done < rows:
        size = min(chunk, rows - done)
        block = table[rng.integers(0, table.shape[0], (size, replicas))]
        crossings, level, _ = scan(block, level, limits, track_zeros=False)
        for crossing in crossings:
            alarms[crossing.column] += 1
        done += size
    total = int(alarms.sum())
    return (rows * replicas / total if total else math.inf), alarms


def calibrate_threshold(
    detector_factory: Callable[[float], Cusum],
    reference_sample: ArrayLike,
    target_arl0: float,
    *,
    seed: int,
    moderate_arl0: float = 2_000.0,
    events: int = 2_000_000,
    check_events: int = 10_000_000,
) -> Calibration:
    """Threshold of a one-signal CUSUM whose in-control ARL on the reference is ``target_arl0``.

    1. Siegmund's threshold for a moderate ARL0 (``moderate_arl0``) on the
       increments' own mean, spread and ``theta``;
    2. ``events`` resampled events at that threshold: false alarms counted per
       direction give each direction's rate ``A_i * exp(-theta_i * h)``;
    3. the threshold where the extrapolated rates add up to ``1 / target_arl0``;
    4. ``check_events`` resampled events at that threshold (reported, not used).

    Parameters
    ----------
    detector_factory
        Builds the detector for a threshold, with its reference already set
        (e.g. ``lambda h: Cusum.from_reference(sample, threshold=h)``).
    reference_sample
        Stationary values of the signal (``(n,)``), resampled with replacement.
    target_arl0
        Events per false alarm wanted for this signal (see :func:`signal_arl0`).
    seed
        Seed of the resampling.
    moderate_arl0, events, check_events
        Sizes of the simulations (more: slower and more precise).

    Examples
    --------
    >>> import numpy as np
    >>> sample = np.random.default_rng(3).normal(0.0, 1.0, 5_000)
    >>> result = calibrate_threshold(lambda h: Cusum.from_reference(sample, threshold=h),
    ...                              sample, target_arl0=100_000, seed=7,
    ...                              events=1_000_000, check_events=3_000_000)
    >>> round(result.threshold, 1), round(result.analytic_threshold, 1)
    (19.1, 19.1)
    >>> result.check_alarms, round(result.check_arl0)
    (27, 111111)
    """
    began = time.perf_counter()
    if target_arl0 <= moderate_arl0:
        raise CalibrationError(
            f"target_arl0 ({target_arl0}) must exceed moderate_arl0 ({moderate_arl0})"
        )
    sample = np.asarray(reference_sample, dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size < 100:
        raise CalibrationError(
            f"the reference sample has {sample.size} finite values; give at least 100 "
            "(a few thousand for a stable calibration)"
        )
    probe = detector_factory(1.0)
    if probe.n_signals != 1:
        raise CalibrationError(
            f"calibrate one signal at a time: the factory built {probe.n_signals} signals"
        )
    table = probe.increments(sample)[:, 0, :]
    thetas = [adjustment_coefficient(table[:, column]) for column in range(table.shape[1])]
    drift = table.mean(axis=0).tolist()
    spread = table.std(axis=0).tolist()
    moderate = siegmund_threshold(moderate_arl0, thetas, drift, spread)
    analytic = siegmund_threshold(target_arl0, thetas, drift, spread)
    simulated, alarms = simulate_arl0(table, moderate, events, seed=seed)
    if not math.isfinite(simulated) or alarms.sum() < 50:
        raise CalibrationError(
            f"too few false alarms ({int(alarms.sum())}) at the moderate threshold to "
            "extrapolate: raise events"
        )
    rates = alarms / float(events)  # per event, at the moderate threshold

    def arl0(threshold: float) -> float:
        total = sum(
            rate * math.exp(-theta * (threshold - moderate))
            for rate, theta in zip(rates, thetas, strict=True)
        )
        return math.inf if total == 0 else 1.0 / total

    low, high = moderate, moderate + 1.0
    while arl0(high) < target_arl0:
        low, high = high, high + (high - moderate)
    for _ in range(80):
        middle = (low + high) / 2.0
        if arl0(middle) < target_arl0:
            low = middle
        else:
            high = middle
    threshold = (low + high) / 2.0
    check, check_alarms = simulate_arl0(table, threshold, check_events, seed=seed + 1)
    return Calibration(
        threshold=threshold,
        target_arl0=float(target_arl0),
        analytic_threshold=analytic,
        theta=tuple(thetas),
        check_arl0=check,
        check_alarms=int(check_alarms.sum()),
        check_events=int(check_events),
        seconds=time.perf_counter() - began,
    )
