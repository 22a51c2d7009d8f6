"""Seeded synthetic labelled traffic for the two reference workloads.

The test doubles of the model pipelines: labelled rows whose feature
distribution depends on the label (and on the segment), so that a model can
learn something, a segment can be harder than another, and a concept can
drift. Each row is a :class:`LabelledRow` ``(features, label, segment)``,
which :func:`~online_models.models.train` and
:func:`~online_models.models.evaluate` take as they are.

The class prototypes are fixed (they do not depend on ``seed``), so rows drawn
with different seeds come from the same concept: train on one seed, evaluate
on another.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["INTENTS", "LabelledRow", "tabular_rows", "voice_intent_rows"]

INTENTS = ("weather", "music", "news", "navigation", "timer", "shopping")
LOCALES = ("en-GB", "en-US", "de-DE")
DEVICES = ("android", "ios", "speaker")
MFCC_COEFFICIENTS = 13


class LabelledRow(NamedTuple):
    """One labelled request: its features, its true label and its segment."""

    features: dict[str, float | str]
    label: str
    segment: dict[str, str]


def _prototypes(concept: int) -> dict[str, np.ndarray]:
    """Per-intent means of every numeric feature for one concept (fixed, not seeded by callers)."""
    rng = np.random.default_rng(1000 + concept)
    return {
        "mfcc": rng.normal(0.0, 0.9, size=(len(INTENTS), MFCC_COEFFICIENTS)),
        "clip_duration_s": rng.uniform(1.0, 3.4, size=len(INTENTS)),
        "trailing_silence_s": rng.uniform(0.2, 0.6, size=len(INTENTS)),
    }


def voice_intent_rows(
    n: int, *, seed: int = 0, drift: float = 0.0, categorical: bool = True
) -> list[LabelledRow]:
    """``n`` voice searches: audio features, the user's true intent, locale and device.

    Numeric features are ``clip_duration_s``, ``loudness_db``,
    ``leading_silence_s``, ``trailing_silence_s``, ``clipping_ratio`` and
    ``mfcc_mean_0`` … ``mfcc_mean_12`` (the names
    :class:`~online_models.featurisers.AudioFeaturiser` gives them). Duration,
    trailing silence and the MFCC means depend on the intent; a per-speaker
    offset shifts all MFCC means together (so they are correlated), the
    ``speaker`` device is quieter, noisier and has more leading silence (a
    harder segment), and ``de-DE`` shifts the first MFCCs.

    Parameters
    ----------
    n
        Rows to draw.
    seed
        Seed of the draw (the concept itself does not depend on it).
    drift
        0.0 is the original concept, 1.0 a different one (the intents' MFCC
        and duration prototypes move); in between is a mix.
    categorical
        Also put ``locale`` and ``device`` in the features (they are always in
        the segment).

    Examples
    --------
    >>> rows = voice_intent_rows(1_000, seed=3)
    >>> rows[0].label in INTENTS, sorted(rows[0].segment)
    (True, ['device', 'locale'])
    >>> len(rows[0].features)
    20
    >>> timer = [r.features["clip_duration_s"] for r in rows if r.label == "timer"]
    >>> navigation = [r.features["clip_duration_s"] for r in rows if r.label == "navigation"]
    >>> round(sum(timer) / len(timer), 1), round(sum(navigation) / len(navigation), 1)
    (3.3, 1.5)
    """
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift}")
    rng = np.random.default_rng(seed)
    old, new = _prototypes(0), _prototypes(1)
    proto = {key: (1.0 - drift) * old[key] + drift * new[key] for key in old}
    intent = rng.integers(0, len(INTENTS), size=n)
    locale = rng.integers(0, len(LOCALES), size=n)
    device = rng.integers(0, len(DEVICES), size=n)
    speaker_device = device == DEVICES.index("speaker")
    noise = np.where(speaker_device, 1.3, 1.0)[:, None]

    mfcc = (
        proto["mfcc"][intent]
        + rng.normal(0.0, 0.6, size=(n, 1))  # the speaker's voice moves every coefficient
        + rng.normal(0.0, 1.0, size=(n, MFCC_COEFFICIENTS)) * noise
    )
    mfcc[locale == LOCALES.index("de-DE"), :3] += 0.5
    duration = np.maximum(0.3, proto["clip_duration_s"][intent] + rng.normal(0.0, 0.5, size=n))
    loudness = rng.normal(-23.0, 3.0, size=n) - 6.0 * speaker_device
    leading = np.abs(rng.normal(0.25, 0.1, size=n)) + 0.3 * speaker_device
    trailing = np.abs(proto["trailing_silence_s"][intent] + rng.normal(0.0, 0.12, size=n))
    clipping = np.maximum(0.0, rng.normal(0.002, 0.002, size=n))

    rows: list[LabelledRow] = []
    for i in range(n):
        features: dict[str, float | str] = {
            "clip_duration_s": round(float(duration[i]), 3),
            "loudness_db": round(float(loudness[i]), 2),
            "leading_silence_s": round(float(leading[i]), 3),
            "trailing_silence_s": round(float(trailing[i]), 3),
            "clipping_ratio": round(float(clipping[i]), 5),
        }
        for k in range(MFCC_COEFFICIENTS):
            features[f"mfcc_mean_{k}"] = round(float(mfcc[i, k]), 4)
        segment = {"locale": LOCALES[locale[i]], "device": DEVICES[device[i]]}
        if categorical:
            features.update(segment)
        rows.append(LabelledRow(features, INTENTS[intent[i]], segment))
    return rows


PLANS = ("basic", "pro", "enterprise")
REGIONS = ("eu", "us", "apac")


def tabular_rows(n: int, *, seed: int = 0, drift: float = 0.0) -> list[LabelledRow]:
    """``n`` customers: numeric and categorical features and whether they churned.

    Features are ``tenure_months``, ``monthly_spend``, ``support_calls``
    (numbers), ``plan`` and ``region`` (strings); the label is ``"churn"`` or
    ``"stay"`` from a logistic model of them. ``drift`` (0 to 1) flips the
    effect of spend and moves the base rate. The segment is the region.

    Examples
    --------
    >>> rows = tabular_rows(2_000, seed=1)
    >>> sorted(rows[0].features)
    ['monthly_spend', 'plan', 'region', 'support_calls', 'tenure_months']
    >>> churned = sum(r.label == "churn" for r in rows) / len(rows)
    >>> 0.2 < churned < 0.5
    True
    """
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift}")
    rng = np.random.default_rng(seed)
    tenure = rng.exponential(18.0, size=n)
    spend = rng.gamma(4.0, 15.0, size=n)
    calls = rng.poisson(1.5, size=n)
    plan = rng.integers(0, len(PLANS), size=n)
    region = rng.integers(0, len(REGIONS), size=n)
    plan_effect = np.array([0.8, 0.0, -1.0])[plan]
    region_effect = np.array([0.0, 0.3, -0.3])[region]
    spend_effect = (1.0 - 2.0 * drift) * 0.025 * (spend - 60.0)
    logit = -0.6 - 0.06 * (tenure - 18.0) + 0.55 * (calls - 1.5) + spend_effect
    logit = logit + plan_effect + region_effect + 1.0 * drift
    churn = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    rows: list[LabelledRow] = []
    for i in range(n):
        features: dict[str, float | str] = {
            "tenure_months": round(float(tenure[i]), 1),
            "monthly_spend": round(float(spend[i]), 2),
            "support_calls": float(calls[i]),
            "plan": PLANS[plan[i]],
            "region": REGIONS[region[i]],
        }
        label = "churn" if churn[i] else "stay"
        rows.append(LabelledRow(features, label, {"region": REGIONS[region[i]]}))
    return rows
