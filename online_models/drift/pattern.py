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
