"""Drift detectors by name, as configuration chooses them.

Built in:

============== ======= ==========================================================
name           input   detector
============== ======= ==========================================================
``adwin``      numeric river's ``ADWIN`` (also fine on 0/1)
``page_hinkley`` numeric river's ``PageHinkley``
``kswin``      numeric river's ``KSWIN``
``ddm``        binary  river's ``binary.DDM``
``eddm``       binary  river's ``binary.EDDM``
``hddm_w``     binary  river's ``binary.HDDMW``
``cusum``      numeric :class:`~online_models.drift.cusum.Cusum` (calibrated)
``bernoulli_cusum`` binary :class:`~online_models.drift.bernoulli.BernoulliCusum`
============== ======= ==========================================================

Parameters given to :func:`make_detector` go to the detector's constructor
(river's parameter names for river's detectors). :func:`register_detector`
adds more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from river import drift
from river.drift import binary

from online_models.drift.base import DriftDetector, DriftError
from online_models.drift.bernoulli import BernoulliCusum
from online_models.drift.cusum import Cusum
from online_models.drift.detectors import RiverDetector

__all__ = [
    "DetectorSpec",
    "UnknownDetectorError",
    "detector_names",
    "detector_spec",
    "make_detector",
    "register_detector",
]


class UnknownDetectorError(DriftError, KeyError):
    """A detector name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown detector"


@dataclass(frozen=True)
class DetectorSpec:
    """How to build a detector chosen by name.

    Parameters
    ----------
    name
        The name configuration uses.
    build
        Called with the parameters given to :func:`make_detector`.
    input
        ``"numeric"`` or ``"binary"`` (0/1 values only).
    description
        One line for listings.
    """

    name: str
    build: Callable[..., DriftDetector]
    input: Literal["numeric", "binary"]
    description: str


_REGISTRY: dict[str, DetectorSpec] = {}


def register_detector(spec: DetectorSpec, *, replace: bool = False) -> None:
    """Make ``spec.name`` available to :func:`make_detector`.

    Examples
    --------
    >>> register_detector(DetectorSpec(
    ...     "adwin_fast", lambda **p: RiverDetector(drift.ADWIN(clock=1, **p)), "numeric",
    ...     "ADWIN checking after every value"))
    >>> make_detector("adwin_fast", delta=0.01)
    RiverDetector(ADWIN (...clock=1...))
    >>> _ = _REGISTRY.pop("adwin_fast")  # an example must not leave a detector behind
    """
    if not replace and spec.name in _REGISTRY:
        raise DriftError(
            f"a detector called {spec.name!r} is already registered; "
            "pass replace=True to replace it"
        )
    _REGISTRY[spec.name] = spec


def detector_names() -> list[str]:
    """Registered names, sorted.

    Examples
    --------
    >>> [name for name in detector_names() if name in ("adwin", "cusum", "hddm_w")]
    ['adwin', 'cusum', 'hddm_w']
    """
    return sorted(_REGISTRY)


def detector_spec(name: str) -> DetectorSpec:
    """The spec registered as ``name``; an unknown name raises an error listing valid ones.

    Examples
    --------
    >>> detector_spec("ddm").input
    'binary'
    >>> detector_spec("adwn")
    Traceback (most recent call last):
    ...
    online_models.drift.registry.UnknownDetectorError: unknown detector 'adwn'; valid names: ...
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownDetectorError(
            f"unknown detector {name!r}; valid names: {', '.join(detector_names())}"
        ) from None


def make_detector(name: str, **params: Any) -> DriftDetector:
    """A new detector of the kind registered as ``name``, built with ``params``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(8)
    >>> errors = np.concatenate([rng.random(3_000) < 0.1, rng.random(1_000) < 0.3])
    >>> detector = make_detector("bernoulli_cusum", reference_rate=0.1)
    >>> for index, error in enumerate(errors):
    ...     detector.update(float(error))
    ...     if detector.drift_detected:
    ...         print(f"Change detected at index {index}")
    ...         break
    Change detected at index 3043
    """
    return detector_spec(name).build(**params)


def _river(factory: Callable[..., Any]) -> Callable[..., RiverDetector]:
    def build(**params: Any) -> RiverDetector:
        return RiverDetector(factory(**params))

    return build


for _spec in (
    DetectorSpec("adwin", _river(drift.ADWIN), "numeric", "river ADWIN: adaptive windowing"),
    DetectorSpec("page_hinkley", _river(drift.PageHinkley), "numeric", "river Page-Hinkley test"),
    DetectorSpec("kswin", _river(drift.KSWIN), "numeric", "river KSWIN: windowed KS test"),
    DetectorSpec("ddm", _river(binary.DDM), "binary", "river DDM on 0/1 errors"),
    DetectorSpec("eddm", _river(binary.EDDM), "binary", "river EDDM on 0/1 errors"),
    DetectorSpec("hddm_w", _river(binary.HDDMW), "binary", "river HDDM_W on 0/1 errors"),
    DetectorSpec("cusum", Cusum, "numeric", "calibrated CUSUM of a standardised mean shift"),
    DetectorSpec(
        "bernoulli_cusum", BernoulliCusum, "binary", "calibrated Bernoulli CUSUM of a rate"
    ),
):
    register_detector(_spec)
