"""river's drift detectors behind driftloop's :class:`~online_models.drift.base.DriftDetector`.

river already has the right shape (``update(x)``, ``drift_detected``); the
adapter adds a public :meth:`RiverDetector.reset` and keeps river's object
reachable (``.detector``) for its own statistics (ADWIN's ``width``,
``estimation``…). It changes nothing else: the same stream gives the same
detection indices as river itself.
"""

from __future__ import annotations

import copy

from river.base import BinaryDriftDetector
from river.base import DriftDetector as RiverBase

from online_models.drift.base import DriftDetector

__all__ = ["RiverDetector"]


class RiverDetector(DriftDetector):
    """A river drift detector (``river.drift`` or ``river.drift.binary``) as ours.

    Parameters
    ----------
    detector
        The river detector to wrap, as built (its parameters are kept for
        :meth:`reset`).

    Examples
    --------
    >>> import random
    >>> from river import drift
    >>> rng = random.Random(12345)
    >>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    >>> detector = RiverDetector(drift.ADWIN())
    >>> for index, value in enumerate(stream):
    ...     detector.update(value)
    ...     if detector.drift_detected:
    ...         print(f"Change detected at index {index}")
    Change detected at index 1023
    >>> detector.reset(); detector.detector.width
    0.0
    """

    def __init__(self, detector: RiverBase | BinaryDriftDetector) -> None:
        if not isinstance(detector, RiverBase | BinaryDriftDetector):
            raise TypeError(
                f"expected a river drift detector (river.drift or river.drift.binary), "
                f"got {type(detector).__name__}"
            )
        # river's clone() is not a reset for every detector: KSWIN's clone starts from the
        # current window (its `window` parameter shares the attribute's name)
        self._pristine = copy.deepcopy(detector)
        self.detector = detector

    @property
    def binary(self) -> bool:
        """Whether the river detector takes 0/1 values only."""
        return isinstance(self.detector, BinaryDriftDetector)

    def update(self, x: float) -> None:
        """Pass one value to the river detector."""
        self.detector.update(x)

    def reset(self) -> None:
        """A copy of the river detector as it was given."""
        self.detector = copy.deepcopy(self._pristine)

    @property
    def drift_detected(self) -> bool:
        """Whether river's detector flagged the last value."""
        return bool(self.detector.drift_detected)

    def __repr__(self) -> str:
        return f"RiverDetector({self.detector!r})"
