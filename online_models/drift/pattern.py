"""Sudden or gradual: how a change arrived, read from a CUSUM's evidence.

The rule
--------
A CUSUM statistic stays near zero while the signal is at its reference and
climbs once it has moved; the last time it was zero is its estimate of the
change point, and the climb after it (the *run*) is the evidence that crossed
the threshold. Alongside the CUSUM, the detector keeps a slow exponential
moving average of the standardised signal (``window`` events, weight
``1 / window``), restarted at zero with the CUSUM after every alarm.

At an alarm, ``drift_before`` is that average *at the change point*, signed
in the alarm's direction: how far the signal had already moved before the run
began. On a stationary signal it is noise with standard deviation
``sqrt(a / (2 - a) * (1 - (1 - a) ** (2 * m)))`` (``a = 1 / window``, ``m``
events since the restart; :func:`drift_noise`).

- **gradual** when ``drift_before`` exceeds ``z`` (default 3) times that noise:
  the signal was already drifting before the run that raised the alarm (a
  ramp crosses the CUSUM's allowance slowly, so the average has moved by the
  time the run starts);
- **sudden** otherwise: the signal sat at its reference until the change
  point, and the run alone carried it across (a step).

A stationary signal is called gradual by mistake about once in 740 alarms
(the one-sided 3-sigma tail). A step smaller than the CUSUM's allowance
cannot be told from the start of a ramp by this or any rule that has seen no
more than the run.

Measured on error rates (concept drift)
---------------------------------------
:class:`~online_models.drift.bernoulli.BernoulliCusum` uses the same rule.
Configured as the drift monitor does (rate learned from 2 000 outcomes,
watched against rate + 2 standard errors, one false alarm per 6 million
outcomes), first alarm, 100 seeds per stream:

- steps (0 -> 78%, 0.3% -> 78% / 5% / 2%, 1.5% -> 50%, 2% -> 6% / 30%,
  10% -> 20% / 30%, 30% -> 50%): sudden in 96-100 of 100 (30% -> 50%, below
  the doubling the CUSUM is tuned for: 96; 10% -> 20%: 99; the rest 100);
- linear ramps from 10% to 30% over 5 000 / 10 000 / 20 000 events:
  gradual in 14 / 64 / 78 of 100;
- linear ramps to 30% from 0%, 0.3% or 2%, and logistic switches (0.3% +
  78% and 1.5% + 50% x the drifted share, widths 2 000-10 000): gradual in
  **0 of 100** -- every one is labelled sudden.

Why, and what the rules tried at the alarm could not do: with a reference
rate of a few percent or less the CUSUM's allowance, in reference standard
deviations, is tiny (about ``0.44 * sqrt(p0)`` for a rate ratio of 2), so a
ramp starts the run as soon as it leaves the reference and the run holds the
whole rise; the slow average before it has not moved. The run itself holds
about ``h / log(rate_ratio)`` errors more than the reference explains (11-18
for the monitor's thresholds), and a rate that doubles across the run moves
their mean position by less than one standard error. Measured (40 seeds):
with the threshold set so that at most 5% of every step size above is called
gradual, the likelihood ratio of a ramp (flat, then rising linearly) against
a step fitted to the 8 000 events before the alarm called 0-10% of the ramps
from 0-2% gradual (15-33% from 10%); a trend test on the run's errors and an
excess-count test before the run did no better. Given 1 000 more events
after the alarm the same ratio called 57-100% of them gradual (60% of the
5 000-wide logistic switch), given 2 000, 80-100%, with at most 7% of steps
gradual (30 seeds, threshold set on those same seeds). So the drift monitor
decides the label of a sudden concept-drift alarm again 2 000 outcomes after
it (:mod:`online_models.drift.reassess`), and reports a ramp then as gradual.
"""

from __future__ import annotations

import math

from online_models.drift.base import Pattern

__all__ = ["classify_pattern", "drift_noise"]


def drift_noise(window: int, events: int) -> float:
    """Standard deviation of the slow average of a unit-variance stationary signal.

    Parameters
    ----------
    window
        Events the average spans (weight ``1 / window``).
    events
        Events averaged since the average restarted at zero.

    Examples
    --------
    >>> round(drift_noise(2_000, 10**9), 4), drift_noise(2_000, 0)
    (0.0158, 0.0)
    """
    weight = 1.0 / window
    return math.sqrt(weight / (2.0 - weight) * (1.0 - (1.0 - weight) ** (2 * events)))


def classify_pattern(drift_before: float, noise: float, z: float = 3.0) -> Pattern:
    """``"gradual"`` if the signal had moved before the change point, else ``"sudden"``.

    Parameters
    ----------
    drift_before
        The slow average of the standardised signal at the change point, signed
        in the alarm's direction (positive: it had moved the way it alarmed).
    noise
        Its standard deviation on a stationary signal (:func:`drift_noise`).
    z
        How many standard deviations count as having moved.

    Examples
    --------
    >>> noise = drift_noise(2_000, 50_000)
    >>> classify_pattern(0.004, noise), classify_pattern(0.21, noise)
    ('sudden', 'gradual')
    """
    return "gradual" if noise > 0.0 and drift_before > z * noise else "sudden"
