"""Two-sample comparisons of a window of recent traffic with the reference.

Per-event detectors (ADWIN, Page-Hinkley) track a mean; a distribution that
widens, narrows or changes shape with the same mean is invisible to them, and a
slow ramp can hide in their noise. Comparing a whole window of recent values
with the reference (:mod:`online_models.drift.reference`) sees both.

Tests, chosen by name from a registry (:func:`two_sample_test`):

``ks`` (numeric)
    Kolmogorov–Smirnov statistic: the largest gap between the two empirical
    distribution functions (0–1). p-value from the asymptotic Kolmogorov
    distribution.
``psi`` (numeric)
    Population stability index over the reference's quantile bins:
    ``sum((w - r) * ln(w / r))`` with shares floored at ``1e-4``.
``chi_square`` (categorical)
    Chi-square test of homogeneity of the window's and the reference's
    category counts (a 2 x K table); categories absent from both are dropped.
    p-value from the chi-square distribution.
``js`` (categorical)
    Jensen–Shannon distance (base 2, 0–1) between the category shares.

A window category the reference never named counts as ``"__other__"``; if the
reference had no ``__other__``, a few such values add a little to the
statistics and many of them flag the window.

Thresholds come from a false-alarm budget (:func:`false_alarm_alpha`) and a
seeded bootstrap from the reference (:func:`bootstrap_threshold`), per signal,
test and window size. :class:`ReferenceComparison` puts it together;
:func:`divergence_trend` tells a gradual rise of the statistics from a sudden one.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special, stats

from online_models.drift.base import Pattern
from online_models.drift.reference import (
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
    ReferenceProfileError,
)

__all__ = [
    "DEFAULT_EVENTS_PER_FALSE_ALARM",
    "ComparisonResult",
    "ReferenceComparison",
    "TwoSampleTest",
    "UnknownTwoSampleTestError",
    "bootstrap_threshold",
    "divergence_trend",
    "false_alarm_alpha",
    "register_two_sample_test",
    "two_sample_test",
    "two_sample_tests",
]

DEFAULT_EVENTS_PER_FALSE_ALARM = 1_000_000
"""Default budget: one false alarm per million events per model, all signals together."""
PSI_EPSILON = 1e-4
DEFAULT_DRAWS = 300
DEFAULT_MIN_VALUES = 50
SHARED_MIN_DISTINCT = 0.5
"""A rank test's threshold is shared (:attr:`TwoSampleTest.distinct_null`) for samples with
at least this share of distinct values. Ties only lower a rank statistic, so the shared
threshold is the higher one; measured for KS (normal samples of 5 000 values rounded to
4, 3, 2 and 1 decimals, windows of 1 000, alpha 2e-5, means over 8 seeds), it is 0.02 %
above the sample's own at 6 % ties, 0.2 % at 44 %, 1.5 % at 90 % and 7 % at 99 %."""

Kind = Literal["numeric", "categorical"]
Tail = Literal["gaussian", "chi2", "chi2_root"]
Window = np.ndarray  # sorted finite floats (numeric) or counts over categories (categorical)
Reference = NumericReference | CategoricalReference


class UnknownTwoSampleTestError(ReferenceProfileError, KeyError):
    """A two-sample test name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown two-sample test"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ComparisonResult:
    """One test of one signal's window against its reference.

    ``drifted`` is ``statistic > threshold``; ``p_value`` is ``None`` for tests
    without one (``psi``, ``js``); ``values`` is how many window values were
    compared.
    """

    signal: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    values: int


# --------------------------------------------------------------------------- statistics


def _at_reference_precision(window: Window) -> np.ndarray:
    # the reference keeps its sample as float32-exact values: a window value float32
    # cannot hold (0.8923333333333333) must be compared as the reference saw it, or a
    # constant signal would differ from its own reference
    return np.asarray(window, dtype=np.float64).astype(np.float32).astype(np.float64)


def _ks(reference: NumericReference, window: Window) -> tuple[float, float | None]:
    statistics, p_values = _ks_many([reference], np.asarray(window, dtype=np.float64)[None, :])
    return float(statistics[0]), float(p_values[0])


def _ks_many(
    references: Sequence[NumericReference], windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_ks` of each row of ``windows`` (sorted, one size) against its reference."""
    windows = _at_reference_precision(windows)
    size = windows.shape[-1]
    sample_sizes = np.array([reference.sample.size for reference in references])
    ranks_right = np.empty(windows.shape, dtype=np.int64)
    ranks_left = np.empty(windows.shape, dtype=np.int64)
    for row, reference in enumerate(references):
        ranks_right[row], ranks_left[row] = reference.ranks(windows[row])
    if np.all(sample_sizes == sample_sizes[0]):
        statistics = _ks_from_ranks(ranks_right, ranks_left, size, int(sample_sizes[0]))
    else:
        statistics = np.array(
            [
                _ks_from_ranks(right, left, size, int(sample_size))
                for right, left, sample_size in zip(
                    ranks_right, ranks_left, sample_sizes, strict=True
                )
            ]
        )
    effective = sample_sizes * size / (sample_sizes + size)
    return statistics, special.kolmogorov(statistics * np.sqrt(effective))


def _ks_from_ranks(
    ranks_right: np.ndarray, ranks_left: np.ndarray, size: int, sample_size: int
) -> np.ndarray:
    """KS statistic of sorted windows (last axis) against a sorted sample.

    ``ranks_right[j]`` / ``ranks_left[j]`` count the sample values ``<=`` /
    ``<`` the window's ``j``-th smallest value. Both distribution functions
    are steps; between two window points the window's is flat, so the window's
    lead is largest at a window point and the sample's just left of one. At
    the ``j``-th value the window's function is at least ``(j + 1) / size``
    and, just left of it, at most ``j / size``, with equality at the last and
    the first of equal values: the maxima below are exact, ties included.
    """
    positions = np.arange(size, dtype=ranks_right.dtype) * sample_size
    window_lead = np.multiply(ranks_right, -size)
    window_lead += positions + sample_size
    sample_lead = np.multiply(ranks_left, size)
    sample_lead -= positions
    return np.maximum(window_lead.max(axis=-1), sample_lead.max(axis=-1)) / (size * sample_size)


def _psi_from_counts(window_counts: np.ndarray, reference_counts: np.ndarray) -> np.ndarray:
    window = np.maximum(window_counts / window_counts.sum(-1, keepdims=True), PSI_EPSILON)
    reference = np.maximum(reference_counts / reference_counts.sum(-1, keepdims=True), PSI_EPSILON)
    return ((window - reference) * np.log(window / reference)).sum(axis=-1)


def _psi(reference: NumericReference, window: Window) -> tuple[float, float | None]:
    statistics, _ = _psi_many([reference], np.asarray(window, dtype=np.float64)[None, :])
    return float(statistics[0]), None


def _psi_many(
    references: Sequence[NumericReference], windows: np.ndarray
) -> tuple[np.ndarray, None]:
    """:func:`_psi` of each row of ``windows`` (one size) against its reference."""
    windows = _at_reference_precision(windows)
    counts = [
        np.bincount(reference.bin_of(window), minlength=reference.bin_edges.size + 1)
        for reference, window in zip(references, windows, strict=True)
    ]
    if len({count.size for count in counts}) == 1:
        reference_counts = np.array([reference.bin_counts for reference in references])
        return _psi_from_counts(np.array(counts), reference_counts), None
    return np.array(
        [
            _psi_from_counts(count, reference.bin_counts)
            for count, reference in zip(counts, references, strict=True)
        ]
    ), None


def _chi_square_from_counts(
    window_counts: np.ndarray, reference_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    window_total = window_counts.sum(-1, keepdims=True)
    reference_total = reference_counts.sum(-1, keepdims=True)
    pooled = window_counts + reference_counts
    expected_window = pooled * (window_total / (window_total + reference_total))
    expected_reference = pooled - expected_window
    present = pooled > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (window_counts - expected_window) ** 2 / expected_window + (
            reference_counts - expected_reference
        ) ** 2 / expected_reference
    statistic = np.where(present, terms, 0.0).sum(axis=-1)
    return statistic, present.sum(axis=-1) - 1


def _chi_square(reference: CategoricalReference, window: Window) -> tuple[float, float | None]:
    statistic, degrees = _chi_square_from_counts(window, reference.counts())
    # the chi-square survival function as scipy.stats.chi2.sf computes it, without its
    # argument checks (30 µs a call)
    p_value = float(special.chdtrc(degrees, statistic)) if degrees > 0 else 1.0
    return float(statistic), p_value


def _js_from_counts(window_counts: np.ndarray, reference_counts: np.ndarray) -> np.ndarray:
    window = window_counts / window_counts.sum(-1, keepdims=True)
    reference = reference_counts / reference_counts.sum(-1, keepdims=True)
    middle = (window + reference) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        divergence = 0.5 * np.where(window > 0, window * np.log2(window / middle), 0.0).sum(
            -1
        ) + 0.5 * np.where(reference > 0, reference * np.log2(reference / middle), 0.0).sum(-1)
    return np.sqrt(np.clip(divergence, 0.0, 1.0))


def _js(reference: CategoricalReference, window: Window) -> tuple[float, float | None]:
    return float(_js_from_counts(window, reference.counts())), None


# --------------------------------------------------------------------------- null draws


def _two_sample_inflation(sample_size: int, size: int) -> float:
    """Variance of a two-sample statistic over that of the window against a fixed sample.

    The windows are drawn from the stored sample and compared with it as is,
    so the draws miss the sample's own noise: ``1/n + 1/m`` of a comparison
    with a fresh sample against ``1/n``. Quadratic statistics (PSI) scale with
    the variance, KS with its square root.
    """
    return 1 + size / sample_size


def _ks_null(
    reference: NumericReference, size: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    sample = reference.sample
    if reference.distinct.size == sample.size:
        return _ks_null_distinct(sample.size, size, draws, rng)
    positions = _sorted_positions(sample.size, size, draws, rng)
    ranks_right, ranks_left = reference.ranks(sample)
    statistics = _ks_from_ranks(ranks_right[positions], ranks_left[positions], size, sample.size)
    return statistics * math.sqrt(_two_sample_inflation(sample.size, size))


def _ks_null_distinct(
    sample_size: int, size: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """KS null statistics against a sample of ``sample_size`` distinct values: its values
    do not matter, only the ranks of the window's draws among them."""
    positions = _sorted_positions(sample_size, size, draws, rng)
    statistics = _ks_from_ranks(positions + 1, positions, size, sample_size)
    return statistics * math.sqrt(_two_sample_inflation(sample_size, size))


def _sorted_positions(
    sample_size: int, size: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """``draws`` windows of ``size`` positions in a sorted sample, each sorted: a window
    drawn from the sample, as the ranks of its values."""
    # 32-bit where the statistics' integer arithmetic fits: half the time of 64-bit
    dtype = np.int32 if (size + 1) * (sample_size + 1) < 2**31 else np.int64
    positions = rng.integers(0, sample_size, size=(draws, size), dtype=dtype)
    positions.sort(axis=1)
    return positions


def _psi_null(
    reference: NumericReference, size: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    # drawing values from the sample and binning them is drawing bins with the sample's shares
    window_counts = rng.multinomial(size, reference.bin_shares(), size=draws)
    statistics = _psi_from_counts(window_counts, reference.bin_counts)
    return statistics * _two_sample_inflation(reference.sample.size, size)


def _categorical_null_counts(
    reference: CategoricalReference, size: int, draws: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    shares = reference.counts() / reference.count
    return (
        rng.multinomial(size, shares, size=draws),
        rng.multinomial(reference.count, shares, size=draws),
    )


def _chi_square_null(
    reference: CategoricalReference, size: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    return _chi_square_from_counts(*_categorical_null_counts(reference, size, draws, rng))[0]


def _js_null(
    reference: CategoricalReference, size: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    return _js_from_counts(*_categorical_null_counts(reference, size, draws, rng))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class TwoSampleTest:
    """A two-sample test of a window against a reference, registered by name.

    Parameters
    ----------
    name
        Registry name, used in configuration and in alerts (``detector``).
    kind
        ``"numeric"`` (window: sorted finite values) or ``"categorical"``
        (window: counts over the reference's categories).
    compare
        ``(reference, window) -> (statistic, p_value or None)``.
    null_statistics
        ``(reference, window_size, draws, rng) -> statistics`` of windows drawn
        from the reference: the bootstrap the threshold is calibrated on.
    tail
        How :func:`bootstrap_threshold` extrapolates beyond what the draws
        can see: ``"gaussian"`` (log-survival linear in the statistic squared,
        as for KS), ``"chi2"`` (a scaled chi-square matched on mean and
        variance, as for quadratic forms like chi-square and PSI) or
        ``"chi2_root"`` (the same on the statistic squared, for distances
        whose square is a quadratic form, like Jensen–Shannon).
    compare_many
        Optional ``(references, windows) -> (statistics, p_values or None)``:
        ``compare`` of each row of a ``(signals, size)`` array against its
        reference, in one call (the drift monitor compares all numeric
        signals of a window at once).
    distinct_null
        Optional ``(sample_size, window_size, draws, rng) -> statistics``: the
        null statistics against a sample of distinct values, when they depend
        on its size only (rank statistics, like KS). Ties only make such a
        statistic smaller, so a threshold from this null holds the false-alarm
        budget for any sample; :class:`ReferenceComparison` uses it, once per
        process and size, for samples with at least half their values
        distinct (see :data:`SHARED_MIN_DISTINCT`).

    Examples
    --------
    >>> import numpy as np
    >>> from online_models.drift.reference import NumericReference
    >>> rng = np.random.default_rng(1)
    >>> reference = NumericReference.from_values(rng.normal(0, 1, 5_000))
    >>> ks = two_sample_test("ks")
    >>> statistic, p_value = ks.compare(reference, np.sort(rng.normal(0, 2, 1_000)))
    >>> round(statistic, 3), p_value < 1e-9
    (0.195, True)
    """

    name: str
    kind: Kind
    compare: Callable[[Reference, Window], tuple[float, float | None]]
    null_statistics: Callable[[Reference, int, int, np.random.Generator], np.ndarray]
    tail: Tail
    compare_many: (
        Callable[[Sequence[NumericReference], np.ndarray], tuple[np.ndarray, np.ndarray | None]]
        | None
    ) = None
    distinct_null: Callable[[int, int, int, np.random.Generator], np.ndarray] | None = None


_TESTS: dict[str, TwoSampleTest] = {}


def register_two_sample_test(test: TwoSampleTest) -> TwoSampleTest:
    """Add ``test`` to the registry (replacing a test of the same name)."""
    _TESTS[test.name] = test
    return test


def two_sample_test(name: str) -> TwoSampleTest:
    """The registered test called ``name``.

    Examples
    --------
    >>> two_sample_test("psi").kind
    'numeric'
    >>> two_sample_test("t-test")
    Traceback (most recent call last):
    ...
    online_models.drift.two_sample.UnknownTwoSampleTestError: unknown two-sample test 't-test'; \
valid names: chi_square, js, ks, psi
    """
    try:
        return _TESTS[name]
    except KeyError:
        raise UnknownTwoSampleTestError(
            f"unknown two-sample test {name!r}; valid names: {', '.join(sorted(_TESTS))}"
        ) from None


def two_sample_tests(kind: Kind | None = None) -> list[str]:
    """Names of the registered tests (of one ``kind``), sorted."""
    return sorted(name for name, test in _TESTS.items() if kind in (None, test.kind))


register_two_sample_test(
    TwoSampleTest("ks", "numeric", _ks, _ks_null, "gaussian", _ks_many, _ks_null_distinct)
)
register_two_sample_test(TwoSampleTest("psi", "numeric", _psi, _psi_null, "chi2", _psi_many))
register_two_sample_test(
    TwoSampleTest("chi_square", "categorical", _chi_square, _chi_square_null, "chi2")
)
register_two_sample_test(TwoSampleTest("js", "categorical", _js, _js_null, "chi2_root"))


# --------------------------------------------------------------------------- thresholds


def false_alarm_alpha(
    events_per_false_alarm: float, window_size: int, comparisons: int = 1
) -> float:
    """Per-comparison false-alarm probability that keeps to a budget (Bonferroni).

    A budget of one false alarm per ``events_per_false_alarm`` events allows
    ``window_size / events_per_false_alarm`` false alarms per window; spread
    evenly over the ``comparisons`` run on each window (signals x tests x
    segments), each may be wrong with that probability divided by
    ``comparisons``. Bonferroni is conservative when comparisons are
    correlated (the same feature under KS and PSI), never optimistic.

    Examples
    --------
    >>> false_alarm_alpha(100_000, window_size=1_000, comparisons=20)
    0.0005
    """
    if events_per_false_alarm <= 0 or window_size <= 0 or comparisons <= 0:
        raise ReferenceProfileError(
            "events_per_false_alarm, window_size and comparisons must be positive, got "
            f"{events_per_false_alarm}, {window_size}, {comparisons}"
        )
    return min(1.0, window_size / events_per_false_alarm) / comparisons


def bootstrap_threshold(
    test: TwoSampleTest | str,
    reference: Reference,
    window_size: int,
    alpha: float,
    *,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> float:
    """The statistic a window of ``window_size`` values exceeds with probability ``alpha``
    when it comes from the reference distribution.

    ``draws`` windows of ``window_size`` values are drawn from the reference
    (and, to include the reference's own noise, as many resampled
    references), and the test's statistic computed on each. Where the draws
    can see the ``1 - alpha`` quantile (``alpha * draws >= 10``) it is the
    answer; beyond, the upper tail is extrapolated by the test's ``tail`` rule
    (see :class:`TwoSampleTest`), fitted on the draws.

    Examples
    --------
    >>> import numpy as np
    >>> from online_models.drift.reference import NumericReference
    >>> reference = NumericReference.from_values(np.random.default_rng(2).normal(size=5_000))
    >>> threshold = bootstrap_threshold("ks", reference, window_size=1_000, alpha=1e-4)
    >>> from scipy.stats import kstwobign  # the asymptotic two-sample KS law, for comparison
    >>> round(threshold, 3), round(float(kstwobign.isf(1e-4)) / (1_000 * 5_000 / 6_000) ** 0.5, 3)
    (0.079, 0.077)
    """
    test = two_sample_test(test) if isinstance(test, str) else test
    if not 0 < alpha < 1:
        raise ReferenceProfileError(f"alpha must be in (0, 1), got {alpha}")
    if window_size < 1:
        raise ReferenceProfileError(f"window_size must be at least 1, got {window_size}")
    draws_statistics = np.sort(
        test.null_statistics(reference, window_size, draws, np.random.default_rng(seed))
    )
    return _upper_quantile(draws_statistics, alpha, test.tail)


def _upper_quantile(sorted_statistics: np.ndarray, alpha: float, tail: Tail) -> float:
    draws = sorted_statistics.size
    if alpha * draws >= 10:
        return float(np.quantile(sorted_statistics, 1 - alpha))
    highest = float(sorted_statistics[-1])
    if tail in ("chi2", "chi2_root"):
        values = sorted_statistics**2 if tail == "chi2_root" else sorted_statistics
        mean, variance = float(values.mean()), float(values.var(ddof=1))
        if mean <= 0 or variance <= 0:
            return highest
        scale, degrees = variance / (2 * mean), 2 * mean**2 / variance
        quantile = scale * float(stats.chi2.isf(alpha, degrees))
        return max(math.sqrt(quantile) if tail == "chi2_root" else quantile, highest)
    # gaussian tail: log P(T > t) = a - b t^2, fitted on the upper half of the draws
    upper = slice(draws // 2, draws - 2)
    survival = 1 - (np.arange(draws) + 0.5) / draws
    squares = sorted_statistics[upper] ** 2
    if np.ptp(squares) <= 0:
        return highest
    slope, intercept = np.polyfit(squares, np.log(survival[upper]), 1)
    if slope >= 0:
        return highest
    return max(math.sqrt(max((math.log(alpha) - intercept) / slope, 0.0)), highest)


# --------------------------------------------------------------------------- comparison


class ReferenceComparison:
    """Compare windows of traffic with a reference profile, within a false-alarm budget.

    Every signal of the profile is compared with each applicable test (numeric
    signals with the numeric ones, categorical with the categorical ones).
    The per-comparison ``alpha`` is :func:`false_alarm_alpha` of the budget,
    the configured ``window_size`` and the number of comparisons (times
    ``segments`` when each segment is compared apart), divided by ``margin``. Thresholds are
    calibrated on first use per signal, test and number of values and cached (a
    rank test, KS, against a sample of mostly distinct values has one threshold
    per sample size and number of values, shared by all signals and comparisons);
    the number of values (a window's non-missing values of a signal) is
    rounded down to two significant digits first (987 -> 980), which keeps
    the cache small and errs on the side of a higher threshold.

    Parameters
    ----------
    profile
        The reference.
    window_size
        Events per window (for the budget).
    tests
        Test names to run; default: all registered.
    events_per_false_alarm
        The budget: one false alarm per this many events, all signals together.
    segments
        How many segments are compared apart with the same budget.
    margin
        The budget's alpha is divided by this before calibrating. Measured at a
        nominal alpha of 1e-3 (100 000 to 120 000 windows of 1 000 values
        against 40 to 60 fresh references), the calibrated thresholds let
        through 0.9x that rate for KS on a normal feature, 1.15x on a Poisson
        one and 1.8x on a binary one (5 % ones); 0.9x to 1.5x for PSI;
        0.9x for chi-square and 1.0x for JS (three categories). On the
        six-signal stationary stream of the tests (20 seeds x 200 windows of
        1 000 events), the default budget of one per million events saw 6
        alarmed windows in 4 million events without the margin, 3 with it.
    min_values
        A signal with fewer values in a window is not compared.
    draws, seed
        Bootstrap draws per calibration, and the seed they derive from.

    Examples
    --------
    >>> import numpy as np
    >>> from online_models.drift.reference import ReferenceProfile
    >>> rng = np.random.default_rng(4)
    >>> training = [{"snr_db": rng.normal(20, 4), "device": str(rng.choice(["ios", "web"]))}
    ...             for _ in range(5_000)]
    >>> profile = ReferenceProfile.from_rows(training, model="asr", model_version="1")
    >>> comparison = ReferenceComparison(profile, window_size=1_000)
    >>> window = {"snr_db": rng.normal(20, 7, 1_000),  # same mean, wider
    ...           "device": rng.choice(["ios", "web"], 1_000).tolist()}
    >>> for result in comparison.compare(window):
    ...     print(result.signal, result.test, result.drifted)
    device chi_square False
    device js False
    snr_db ks True
    snr_db psi True
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        *,
        window_size: int,
        tests: Iterable[str] | None = None,
        events_per_false_alarm: float = DEFAULT_EVENTS_PER_FALSE_ALARM,
        segments: int = 1,
        margin: float = 2.0,
        min_values: int = DEFAULT_MIN_VALUES,
        draws: int = DEFAULT_DRAWS,
        seed: int = 0,
    ) -> None:
        self.profile = profile
        self._tests = [two_sample_test(name) for name in (tests or two_sample_tests())]
        self._plan: list[tuple[str, Reference, TwoSampleTest]] = []
        for signal in profile.signals:
            reference: Reference = profile.numeric.get(signal) or profile.categorical[signal]
            kind = "numeric" if isinstance(reference, NumericReference) else "categorical"
            self._plan.extend(
                (signal, reference, test) for test in self._tests if test.kind == kind
            )
        self.alpha = (
            false_alarm_alpha(
                events_per_false_alarm, window_size, max(1, len(self._plan)) * segments
            )
            / margin
        )
        self._min_values, self._draws, self._seed = min_values, draws, seed
        self._thresholds: dict[tuple[str, str, int], float] = {}

    @property
    def comparisons(self) -> int:
        """Comparisons run on each window (signals x applicable tests)."""
        return len(self._plan)

    def threshold(self, signal: str, test: str, values: int) -> float:
        """The calibrated threshold of ``test`` on ``signal`` for a window of ``values``."""
        size = _two_significant_digits(values)
        key = (signal, test, size)
        if key not in self._thresholds:
            reference = self.profile.numeric.get(signal) or self.profile.categorical.get(signal)
            if reference is None:
                raise ReferenceProfileError(
                    f"signal {signal!r} has no reference; signals: {self.profile.signals}"
                )
            found = two_sample_test(test)
            if (
                found.distinct_null is not None
                and isinstance(reference, NumericReference)
                and reference.distinct.size >= SHARED_MIN_DISTINCT * reference.sample.size
            ):
                self._thresholds[key] = _shared_threshold(
                    found, reference.sample.size, size, self.alpha, self._draws
                )
            else:
                seed = self._seed + zlib.crc32(f"{signal}\0{test}\0{size}".encode())
                self._thresholds[key] = bootstrap_threshold(
                    found, reference, size, self.alpha, draws=self._draws, seed=seed
                )
        return self._thresholds[key]

    def calibrate(self, values: int) -> None:
        """Calibrate every comparison for windows of ``values`` values ahead of time."""
        for signal, _, test in self._plan:
            self.threshold(signal, test.name, values)

    def compare(
        self, window: Mapping[str, Sequence[object] | np.ndarray]
    ) -> list[ComparisonResult]:
        """Compare a window, given as columns (signal -> values), with the reference.

        Signals absent from the window, or with fewer than ``min_values``
        usable values, are not compared; signals without a reference are
        ignored. Results are ordered by signal, then test.
        """
        results: list[ComparisonResult] = []
        prepared: dict[str, np.ndarray] = {}
        for signal, reference, test in self._plan:
            if signal not in window:
                continue
            if signal not in prepared:
                prepared[signal] = (
                    _numeric_window(window[signal])
                    if isinstance(reference, NumericReference)
                    else reference.count_window(window[signal])
                )
            values = prepared[signal]
            size = int(values.size if test.kind == "numeric" else values.sum())
            if size < self._min_values:
                continue
            statistic, p_value = test.compare(reference, values)
            threshold = self.threshold(signal, test.name, size)
            results.append(
                ComparisonResult(
                    signal, test.name, statistic, p_value, threshold, statistic > threshold, size
                )
            )
        return results


_SHARED_THRESHOLDS: dict[tuple[TwoSampleTest, int, int, float, int], float] = {}
_SHARED_LIMIT = 4_096
SHARED_CALIBRATIONS = 10


def _shared_threshold(
    test: TwoSampleTest, sample_size: int, size: int, alpha: float, draws: int
) -> float:
    """The threshold of ``test`` from its :attr:`~TwoSampleTest.distinct_null`, once per
    process: the seed derives from the sizes alone, so every signal and partition
    with samples of one size shares it.

    A shared threshold's error is common to all the comparisons that use it, where
    thresholds of their own err independently and average out in the false-alarm
    rate; so it is the mean of ``SHARED_CALIBRATIONS`` calibrations of ``draws`` each,
    the threshold a signal of its own would get on average, with a third of the
    spread. Measured for KS (5 000 values, windows of 1 000, alpha 4e-5, 30 seeds):
    one calibration of 300 draws has a spread (sd) of 4.4 % of the mean, the mean
    of ten 1.4 %.
    """
    key = (test, sample_size, size, alpha, draws)
    found = _SHARED_THRESHOLDS.get(key)
    if found is None:
        null = test.distinct_null
        assert null is not None
        if len(_SHARED_THRESHOLDS) >= _SHARED_LIMIT:
            _SHARED_THRESHOLDS.clear()
        rng = np.random.default_rng(zlib.crc32(f"{test.name}\0{sample_size}\0{size}".encode()))
        found = _SHARED_THRESHOLDS[key] = float(
            np.mean(
                [
                    _upper_quantile(np.sort(null(sample_size, size, draws, rng)), alpha, test.tail)
                    for _ in range(SHARED_CALIBRATIONS)
                ]
            )
        )
    return found


def _two_significant_digits(values: int) -> int:
    if values < 100:
        return max(1, values)
    scale = 10 ** (len(str(values)) - 2)
    return values // scale * scale


def _numeric_window(values: Sequence[object] | np.ndarray) -> np.ndarray:
    try:
        # numbers, booleans and None (as NaN) convert in one call; strings do not
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.fromiter(
            (
                float(value)  # type: ignore[arg-type]
                if isinstance(value, int | float | np.number) and not isinstance(value, str)
                else np.nan
                for value in values
            ),
            dtype=np.float64,
        )
    return np.sort(array[np.isfinite(array)])


# --------------------------------------------------------------------------- trend


def divergence_trend(
    statistics: Sequence[float], span: int = 10, sudden_ratio: float = 3.0
) -> Pattern | None:
    """Whether a divergence grew steadily (``"gradual"``) or jumped (``"sudden"``).

    The rule, on the last ``span`` statistics (window over window, oldest
    first): fit them with a straight line and with the best single step (two
    flat levels, any breakpoint); ``"sudden"`` when the line's squared error
    is at least ``sudden_ratio`` times the step's (the step explains the
    sequence clearly better), ``"gradual"`` otherwise. ``None`` when there are
    fewer than four statistics or the last one is not above the first
    (nothing grew). Meant for the moment a comparison fires, with the
    statistics up to that window; on statistics that only wobble the answer
    says nothing. The ratio 3 was chosen on KS statistics of seeded streams
    (windows of 1 000, 0.5 sigma): at the first alarm it called 38 of 40
    ramps over 20 000 events gradual (one fired too early to tell) and 37 of 40
    jumps sudden.

    Examples
    --------
    >>> import numpy as np
    >>> noise = np.random.default_rng(3).normal(0, 0.005, 10)
    >>> ramp = 0.03 + 0.01 * np.arange(10) + noise
    >>> jump = np.where(np.arange(10) < 7, 0.03, 0.15) + noise
    >>> divergence_trend(ramp), divergence_trend(jump), divergence_trend([0.1, 0.1])
    ('gradual', 'sudden', None)
    """
    if span < 4:
        raise ReferenceProfileError(f"span must be at least 4, got {span}")
    recent = np.asarray(statistics[-span:], dtype=np.float64)
    if recent.size < 4 or recent[-1] <= recent[0]:
        return None
    positions = np.arange(recent.size)
    line = np.polyval(np.polyfit(positions, recent, 1), positions)
    line_error = float(((recent - line) ** 2).sum())
    step_error = min(
        float(((recent[:cut] - recent[:cut].mean()) ** 2).sum())
        + float(((recent[cut:] - recent[cut:].mean()) ** 2).sum())
        for cut in range(1, recent.size)
    )
    return "sudden" if line_error >= sudden_ratio * step_error else "gradual"
