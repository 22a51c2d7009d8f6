"""What every per-event drift detector is: a tiny protocol, its alarm, and its errors.

A detector sees one value at a time (:meth:`DriftDetector.update`) and says,
through :attr:`DriftDetector.drift_detected`, whether that value raised an
alarm; :meth:`DriftDetector.reset` forgets everything it learned. That is
river's ``DriftDetector`` contract with ``_reset`` made public, so river's
detectors fit it behind a thin adapter
(:class:`~online_models.drift.detectors.RiverDetector`) and ours implement it
directly. Our calibrated detectors also describe each alarm with an
:class:`Alarm`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

__all__ = ["Alarm", "DriftDetector", "DriftError", "Pattern"]

Pattern = Literal["sudden", "gradual"]
"""How a change arrived (the ``pattern`` of an alert)."""


class DriftError(Exception):
    """Base of every error raised by ``online_models.drift``."""


class DriftDetector(abc.ABC):
    """Something that watches a stream of numbers and says when it changed.

    Subclasses implement :meth:`update` and :meth:`reset` and set
    ``self._drift_detected``. Instances must pickle (stream-processor tables
    store them) and, after :meth:`reset`, must behave exactly like a new one.

    Examples
    --------
    >>> class Above(DriftDetector):
    ...     def __init__(self, limit: float) -> None:
    ...         self.limit = limit
    ...         self.reset()
    ...     def update(self, x: float) -> None:
    ...         self._drift_detected = x > self.limit
    ...     def reset(self) -> None:
    ...         self._drift_detected = False
    >>> detector = Above(limit=3.0)
    >>> for index, value in enumerate([1.0, 2.0, 5.0, 1.0]):
    ...     detector.update(value)
    ...     if detector.drift_detected:
    ...         print(f"Change detected at index {index}")
    Change detected at index 2
    """

    _drift_detected: bool = False

    @abc.abstractmethod
    def update(self, x: float) -> None:
        """Take one value (a number, or ``True``/``False`` for binary detectors)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the stream seen so far: behave like a newly built detector."""

    @property
    def drift_detected(self) -> bool:
        """Whether the last update raised an alarm."""
        return self._drift_detected


@dataclass(frozen=True)
class Alarm:
    """One alarm of a calibrated detector, with the evidence behind it.

    Positions count the events a detector has taken since it was built or
    reset, from 0 (events of a reference warm-up included).

    Parameters
    ----------
    index
        Row of the alarming event in the batch given to ``update_many`` (0 for
        ``update``).
    position
        Position of the alarming event in the stream.
    signal
        Which monitored signal (column of the batch) alarmed.
    direction
        ``"up"`` (the signal rose above its reference) or ``"down"``.
    statistic
        The CUSUM statistic when it crossed the threshold.
    threshold
        The threshold it crossed.
    change_position
        Estimated change point: the last position at which the statistic was
        zero; the change is estimated to start right after it.
    run_length
        ``position - change_position``: events of evidence.
    shift
        Mean standardised value (reference standard deviations, signed) over
        the run: the estimated size of the change.
    drift_before
        Slow moving average of the standardised signal at the change point,
        in the alarm's direction: how far the signal had already moved before
        the run began (reference standard deviations).
    pattern
        ``"sudden"`` or ``"gradual"``, from ``drift_before`` (see
        :func:`~online_models.drift.pattern.classify_pattern`).

    Examples
    --------
    >>> alarm = Alarm(index=4, position=1_204, signal=0, direction="up", statistic=24.1,
    ...               threshold=23.9, change_position=1_150, run_length=54, shift=0.69,
    ...               drift_before=0.002, pattern="sudden")
    >>> alarm.pattern, alarm.position - alarm.run_length
    ('sudden', 1150)
    """

    index: int
    position: int
    signal: int
    direction: Literal["up", "down"]
    statistic: float
    threshold: float
    change_position: int
    run_length: int
    shift: float
    drift_before: float
    pattern: Pattern
