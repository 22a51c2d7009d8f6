"""Sudden or gradual, decided again once the change has gone on for a while.

At a concept-drift alarm from a low error rate the run that crossed the
threshold holds the whole rise, so the label given at the alarm
(:mod:`online_models.drift.pattern`) cannot tell a ramp from a step. A few
thousand outcomes later it can: the rates after the alarm either sit at the
level the step jumped to, or keep climbing.

The test
--------
The error bits around the alarm (``before`` the alarm and ``after`` it,
unlabelled ones dropped) are counted in bins of ``bin_events``. Two models of
the error rate are fitted by maximum likelihood (binomial counts per bin):

- **step**: rate ``a`` before bin ``t``, rate ``c`` after it (bin ``t``, where
  the change falls, has a rate of its own);
- **ramp**: rate ``a`` until bin ``t``, then a straight line to ``c`` over
  ``w >= min_width`` bins, then ``c``.

The statistic is the log-likelihood ratio ``ramp - step`` (at least 0: a ramp
one bin wide is nearly a step). It is **gradual** when the ratio exceeds
``threshold``. The fits are grids (every second bin for ``t``, 16 widths, 24
levels for the ramp's ``c``; the step's levels are exact), so the ramp's fit
is the coarser one and the ratio errs towards ``sudden``.

Measured
--------
On the drift monitor's own outcome detector, first alarm, 8 000 bits before
it and 2 000 after, 30 seeds per stream (``bench/reassess.py`` reproduces
them), at the default threshold of 4:

- steps (0.3% -> 5% / 78%, 2% -> 6% / 30%, 10% -> 20% / 30%, 1.5% -> 50%,
  30% -> 50%, 0 -> 78%): gradual in **0 of 270**; the largest ratio was 3.2;
- linear ramps to 30% from 0%, 0.3%, 2%: over 5 000 events gradual in 97-100%,
  over 10 000 in 67-97%, over 20 000 in 33-77% (the slower the ramp, the less
  of it the 2 000 outcomes after the alarm show); from 10%: 30-80%;
- logistic switches (0.3% + 78%, 1.5% + 50%): widths 2 000 and 5 000 all
  gradual, width 10 000 70-77%.

At the alarm, the same ramps from 0-2% and switches were labelled gradual in
0 of 30 (:mod:`online_models.drift.pattern`). A fit costs about 50 ms, once
per alarm.
"""

from __future__ import annotations

import math

import numpy as np

from online_models.drift.base import Pattern

__all__ = ["DEFAULT_THRESHOLD", "ramp_vs_step", "ramp_vs_step_normal", "reassess_pattern"]

DEFAULT_THRESHOLD = 4.0
"""Log-likelihood ratio above which a change is called gradual."""

_EPS = 1e-6


def _loglik(k: np.ndarray, n: float, p: np.ndarray) -> np.ndarray:
    """Binomial log-likelihood (without the constant) of ``k`` of ``n`` at rate ``p``."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return k * np.log(p) + (n - k) * np.log1p(-p)


def _best_step(k: np.ndarray, n: float) -> float:
    """Highest log-likelihood of a step model over every change bin (exact levels).

    The bin the change falls in gets a rate of its own: a step in the middle of
    a bin is still a step, not a ramp one bin wide.
    """
    m = k.size
    cum = np.concatenate([[0.0], np.cumsum(k)])
    total = cum[-1]
    t = np.arange(1, m - 1)  # the change bin; bins before it at a, after it at c
    left_k, left_n = cum[t], n * t
    right_k, right_n = total - cum[t + 1], n * (m - t - 1)
    mid_k = k[t]
    a, c, b = left_k / left_n, right_k / right_n, mid_k / n
    ll = _xlogy(left_k, a) + _xlogy(left_n - left_k, 1.0 - a)
    ll += _xlogy(right_k, c) + _xlogy(right_n - right_k, 1.0 - c)
    ll += _xlogy(mid_k, b) + _xlogy(n - mid_k, 1.0 - b)
    return float(ll.max())


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    mask = x > 0
    out[mask] = x[mask] * np.log(np.clip(y[mask], _EPS, None))
    return out


def ramp_vs_step(
    bits: np.ndarray, *, bin_events: int = 50, min_width: int = 4, widths: int = 16
) -> float:
    """Log-likelihood ratio of the best ramp over the best step, on 0/1 error bits.

    ``bits`` is the sequence around the change, oldest first; NaN (no label)
    is dropped. Fewer than 8 bins give 0.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> step = (rng.random(10_000) < np.where(np.arange(10_000) < 6_000, 0.01, 0.3)) * 1.0
    >>> ramp = (rng.random(10_000) < np.clip((np.arange(10_000) - 4_000) / 6_000, 0, 1) * 0.3)
    >>> round(ramp_vs_step(step), 1), round(ramp_vs_step(ramp * 1.0))
    (0.0, 127)
    """
    x = np.asarray(bits, dtype=np.float64)
    x = x[np.isfinite(x)]
    m = x.size // bin_events
    if m < 8:
        return 0.0
    k = x[x.size - m * bin_events :].reshape(m, bin_events).sum(axis=1)
    n = float(bin_events)
    step = _best_step(k, n)
    centres = np.arange(m) + 0.5
    cum = np.cumsum(k)
    best = -math.inf
    top = min(1.0 - _EPS, max(float(k.max()) / n, _EPS) * 1.2)
    for t in range(1, m - 1, 2):
        errors, count = float(cum[t - 1]), n * t
        a = max(errors / count, _EPS)
        flat = (errors * math.log(a) if errors > 0 else 0.0) + (
            (count - errors) * math.log(max(1.0 - a, _EPS)) if count > errors else 0.0
        )
        rest = k[t:]
        pos = centres[t:] - t  # bins since the change
        span = m - t
        if span < min_width:
            break
        ws = np.unique(np.geomspace(min_width, span, widths).astype(int))
        cs = np.linspace(a, top, 24) if top > a else np.array([a])
        # rate of every (width, level, bin): a straight line from a to c over w bins
        frac = np.clip(pos[None, :] / ws[:, None], 0.0, 1.0)  # (W, bins)
        p = a + (cs[None, :, None] - a) * frac[:, None, :]  # (W, C, bins)
        ll = _loglik(rest[None, None, :], n, p).sum(axis=2)
        best = max(best, flat + float(ll.max()))
    return float(max(0.0, best - step))


def reassess_pattern(bits: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> Pattern:
    """``"gradual"`` when the bits around a change fit a ramp better than a step by ``threshold``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rates = np.where(np.arange(10_000) < 7_000, 0.02, 0.3)
    >>> reassess_pattern((rng.random(10_000) < rates) * 1.0)
    'sudden'
    """
    return "gradual" if ramp_vs_step(bits) > threshold else "sudden"


def ramp_vs_step_normal(
    sums: np.ndarray,
    squares: np.ndarray,
    counts: np.ndarray,
    *,
    min_width: int = 4,
    widths: int = 16,
) -> float:
    """Log-likelihood ratio of the best ramp over the best step, on a numeric signal's bins.

    The signal comes in consecutive bins, oldest first: each bin's ``sums``,
    sums of ``squares`` and ``counts`` of values (empty bins are dropped).
    The values of a bin are taken as normal around the bin's level, with one
    standard deviation shared by all bins (pooled within the bins, so a
    moving level does not inflate it). The two models of the level, fitted by
    least squares on the bin means (weighted by their counts), are those of
    :func:`ramp_vs_step`: a **step** (level ``a``, then ``c``; the bin the
    change falls in has a level of its own) and a **ramp** (``a`` until bin
    ``t``, a straight line over ``w >= min_width`` bins, then its end level,
    fitted exactly). Fewer than 8 bins, or no spread within the bins, give 0.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> def bins(values):
    ...     v = values.reshape(-1, 50)
    ...     return v.sum(axis=1), (v**2).sum(axis=1), np.full(len(v), 50.0)
    >>> step = rng.normal(np.where(np.arange(6_000) < 4_000, 0.0, 1.0), 1.0)
    >>> ramp = rng.normal(np.clip((np.arange(6_000) - 3_000) / 3_000, 0, 1), 1.0)
    >>> round(ramp_vs_step_normal(*bins(step)), 1), round(ramp_vs_step_normal(*bins(ramp)))
    (0.0, 39)
    """
    keep = np.asarray(counts, dtype=np.float64) > 0
    s = np.asarray(sums, dtype=np.float64)[keep]
    q = np.asarray(squares, dtype=np.float64)[keep]
    n = np.asarray(counts, dtype=np.float64)[keep]
    m = n.size
    if m < 8:
        return 0.0
    means = s / n
    within = float((q - s * means).sum())  # sum of squares about each bin's own mean
    dof = float(n.sum()) - m
    if dof <= 0 or within <= 0:
        return 0.0
    variance = within / dof
    # the step: weighted least squares, every change bin t in 1 .. m-2
    cn, cs, cq = (np.concatenate([[0.0], np.cumsum(x)]) for x in (n, s, n * means**2))
    t = np.arange(1, m - 1)
    left = cq[t] - cs[t] ** 2 / cn[t]
    right_n, right_s = cn[-1] - cn[t + 1], cs[-1] - cs[t + 1]
    right = (cq[-1] - cq[t + 1]) - right_s**2 / right_n
    step = float((left + right).min())
    # the ramp: level a (the mean before t), then a + d * f over w bins; d fitted exactly
    best = math.inf
    for start in range(1, m - 1):
        span = m - start
        if span < min_width:
            break
        a = cs[start] / cn[start]
        flat = cq[start] - cs[start] ** 2 / cn[start]
        rest, weight = means[start:] - a, n[start:]
        ws = np.unique(np.geomspace(min_width, span, widths).astype(int))
        f = np.clip((np.arange(span)[None, :] + 0.5) / ws[:, None], 0.0, 1.0)  # (W, bins)
        d = (weight * f * rest).sum(axis=1) / (weight * f**2).sum(axis=1)
        sse = (weight * (rest[None, :] - d[:, None] * f) ** 2).sum(axis=1)
        best = min(best, flat + float(sse.min()))
    return float(max(0.0, (step - best) / (2.0 * variance)))
