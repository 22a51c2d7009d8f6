"""Drift detection, Kafka-free: per-event detectors and comparisons against a reference.

Per-event detectors (:mod:`~online_models.drift.registry`, chosen by name):
our calibrated :class:`Cusum` (numeric features, the score) and
:class:`BernoulliCusum` (error bits, implicit-feedback proxies), vectorised
over batches and thresholded from a false-alarm budget
(:mod:`~online_models.drift.calibration`), and river's ADWIN, PageHinkley,
KSWIN, DDM, EDDM and HDDM_W behind the same protocol. Every alarm says
whether the change looks sudden or gradual (:mod:`~online_models.drift.pattern`).

Reference comparisons (:mod:`~online_models.drift.two_sample`): KS and PSI for
numeric signals, chi-square and Jensen–Shannon for categorical ones, over a
window against a :class:`ReferenceProfile` (training data, a user's file, or
the first events of a version), with thresholds bootstrapped from the
reference for the same budget. They catch changes of shape and slow drifts
that a mean-tracking detector misses.
"""

from online_models.drift.base import Alarm, DriftDetector, DriftError, Pattern
from online_models.drift.bernoulli import BernoulliCusum
from online_models.drift.calibration import (
    Calibration,
    CalibrationError,
    calibrate_threshold,
    siegmund_threshold,
    signal_arl0,
)
from online_models.drift.cusum import Cusum, InvalidReferenceError
from online_models.drift.detectors import RiverDetector
from online_models.drift.reference import (
    LABEL_SIGNAL,
    SCORE_SIGNAL,
    CategoricalReference,
    NumericReference,
    ReferenceBook,
    ReferenceBuilder,
    ReferenceFileError,
    ReferenceProfile,
    ReferenceProfileError,
)
from online_models.drift.registry import (
    DetectorSpec,
    UnknownDetectorError,
    detector_names,
    make_detector,
    register_detector,
)
from online_models.drift.two_sample import (
    DEFAULT_EVENTS_PER_FALSE_ALARM,
    ComparisonResult,
    ReferenceComparison,
    TwoSampleTest,
    UnknownTwoSampleTestError,
    bootstrap_threshold,
    divergence_trend,
    false_alarm_alpha,
    register_two_sample_test,
    two_sample_test,
    two_sample_tests,
)

__all__ = [
    "DEFAULT_EVENTS_PER_FALSE_ALARM",
    "LABEL_SIGNAL",
    "SCORE_SIGNAL",
    "Alarm",
    "BernoulliCusum",
    "Calibration",
    "CalibrationError",
    "CategoricalReference",
    "ComparisonResult",
    "Cusum",
    "DetectorSpec",
    "DriftDetector",
    "DriftError",
    "InvalidReferenceError",
    "NumericReference",
    "Pattern",
    "ReferenceBook",
    "ReferenceBuilder",
    "ReferenceComparison",
    "ReferenceFileError",
    "ReferenceProfile",
    "ReferenceProfileError",
    "RiverDetector",
    "TwoSampleTest",
    "UnknownDetectorError",
    "UnknownTwoSampleTestError",
    "bootstrap_threshold",
    "calibrate_threshold",
    "detector_names",
    "divergence_trend",
    "false_alarm_alpha",
    "make_detector",
    "register_detector",
    "register_two_sample_test",
    "siegmund_threshold",
    "signal_arl0",
    "two_sample_test",
    "two_sample_tests",
]
