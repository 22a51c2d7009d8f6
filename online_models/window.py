"""Event-time windows: tumbling windows, the watermark that closes them, rolling windows of panes.

Events are assigned to windows by their own time (the CloudEvents ``time``,
in milliseconds since the Unix epoch), never by the time they are processed,
so a replay of the same events gives the same windows. A :class:`Watermark`
says how far event time has progressed; a window is final once the watermark
has passed its end plus the allowed lateness (:meth:`TumblingWindows.closed`).
A :class:`PanedRollingWindow` builds a rolling value ("the last minute") out
of closed tumbling panes ("six 10-second windows") without keeping events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from online_models.window_metrics import WindowMetrics

__all__ = ["PanedRollingWindow", "TumblingWindows", "Watermark"]


def _milliseconds(seconds: float, what: str, *, allow_zero: bool = False) -> int:
    """Seconds as a whole number of milliseconds (windows are aligned to the millisecond)."""
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(
            f"{what} must be a {'non-negative' if allow_zero else 'positive'} "
            f"number of seconds, got {seconds!r}"
        )
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6:
        raise ValueError(f"{what} must be a whole number of milliseconds, got {seconds!r} s")
    return millis


class TumblingWindows:
    """Fixed-size, non-overlapping event-time windows aligned to the Unix epoch.

    Window ``[start, start + size)`` holds the events with ``start <= time <
    start + size``, where ``start`` is a multiple of the size counted from
    1970-01-01T00:00:00Z, so every worker assigns an event to the same window
    without talking to the others.

    Parameters
    ----------
    size_s
        Window length in seconds (a whole number of milliseconds, e.g. 10, 60, 0.5).

    Examples
    --------
    >>> windows = TumblingWindows(10)
    >>> windows.window_start(1_767_225_604_321)  # 2026-01-01T00:00:04.321Z
    1767225600000
    >>> windows.window_end(1_767_225_600_000)
    1767225610000
    >>> windows.closed(1_767_225_600_000, watermark_ms=1_767_225_609_999)
    False
    >>> windows.closed(1_767_225_600_000, watermark_ms=1_767_225_610_000)
    True
    >>> windows.closed(1_767_225_600_000, watermark_ms=1_767_225_610_000, allowed_lateness_s=5)
    False
    """

    def __init__(self, size_s: float) -> None:
        self.size_ms = _milliseconds(size_s, "size_s")

    @property
    def size_s(self) -> float:
        """Window length in seconds."""
        return self.size_ms / 1000

    def window_start(self, event_time_ms: int) -> int:
        """Start (ms since the epoch) of the window holding an event of this time."""
        event_time_ms = int(event_time_ms)
        # Python's % floors, so times before the epoch align the same way
        return event_time_ms - event_time_ms % self.size_ms

    def window_starts(self, event_times_ms: ArrayLike) -> np.ndarray:
        """:meth:`window_start` of a batch of event times, vectorised (int64).

        Examples
        --------
        >>> TumblingWindows(60).window_starts([59_999, 60_000, 185_000]).tolist()
        [0, 60000, 180000]
        """
        times = np.asarray(event_times_ms, dtype=np.int64)
        return times - times % self.size_ms

    def window_end(self, window_start_ms: int) -> int:
        """End (exclusive, ms since the epoch) of the window starting at ``window_start_ms``."""
        return int(window_start_ms) + self.size_ms

    def closed(
        self, window_start_ms: int, watermark_ms: int | None, allowed_lateness_s: float = 0.0
    ) -> bool:
        """Whether the window is final: ``watermark >= window end + allowed lateness``.

        Before any event (``watermark_ms`` is ``None``) nothing is closed. Once
        a window is closed, an event that still belongs to it is too late to
        count; what happens to it is the caller's decision.
        """
        if watermark_ms is None:
            return False
        lateness_ms = _milliseconds(allowed_lateness_s, "allowed_lateness_s", allow_zero=True)
        return watermark_ms >= self.window_end(window_start_ms) + lateness_ms

    def __repr__(self) -> str:
        return f"TumblingWindows(size_s={self.size_s})"


class Watermark:
    """How far event time has progressed: the largest event time seen minus a slack.

    Events arrive slightly out of order — clients' clocks differ, the SDK
    batches events for a few milliseconds, and a Kafka partition interleaves
    producers — so the watermark trails the largest event time by
    ``out_of_orderness_s`` (default 2 s): an event up to that much older than
    the newest one seen is still on time. Keep it small: every window closes
    that much later. Stragglers beyond it are handled by the allowed lateness
    of :meth:`TumblingWindows.closed`.

    A watermark belongs to one partition. The watermark of several partitions
    merged is the smallest of theirs (a partition that has seen nothing holds
    everything back).

    Parameters
    ----------
    out_of_orderness_s
        How far behind the newest event time the watermark trails, in seconds.

    Examples
    --------
    >>> watermark = Watermark(out_of_orderness_s=2)
    >>> print(watermark.value_ms)
    None
    >>> watermark.observe_many([10_000, 12_500, 11_000])
    >>> watermark.value_ms
    10500
    >>> watermark.is_late(10_000), watermark.is_late(11_000)
    (True, False)
    """

    def __init__(self, out_of_orderness_s: float = 2.0) -> None:
        self.out_of_orderness_ms = _milliseconds(
            out_of_orderness_s, "out_of_orderness_s", allow_zero=True
        )
        self.max_event_time_ms: int | None = None

    def observe(self, event_time_ms: int) -> None:
        """Take one event time into account (the watermark never goes back)."""
        event_time_ms = int(event_time_ms)
        if self.max_event_time_ms is None or event_time_ms > self.max_event_time_ms:
            self.max_event_time_ms = event_time_ms

    def observe_many(self, event_times_ms: Iterable[int]) -> None:
        """Take a batch of event times into account."""
        newest = max(event_times_ms, default=None)
        if newest is not None:
            self.observe(newest)

    @property
    def value_ms(self) -> int | None:
        """The watermark (ms since the epoch), ``None`` before the first event."""
        if self.max_event_time_ms is None:
            return None
        return self.max_event_time_ms - self.out_of_orderness_ms

    def is_late(self, event_time_ms: int) -> bool:
        """Whether an event of this time is behind the watermark."""
        value = self.value_ms
        return value is not None and event_time_ms < value

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_state` turns back into an equal watermark."""
        return {
            "out_of_orderness_ms": self.out_of_orderness_ms,
            "max_event_time_ms": self.max_event_time_ms,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Watermark:
        """Rebuild a watermark from :meth:`to_state` output."""
        new = cls(int(state["out_of_orderness_ms"]) / 1000)
        newest = state["max_event_time_ms"]
        new.max_event_time_ms = None if newest is None else int(newest)
        return new

    def __repr__(self) -> str:
        return (
            f"Watermark(value_ms={self.value_ms}, out_of_orderness_ms={self.out_of_orderness_ms})"
        )


class PanedRollingWindow:
    """A rolling window over the last ``panes × pane_s`` seconds, made of closed tumbling panes.

    Each closed tumbling window (a *pane*) is added once it is final; the
    rolling value is the :meth:`WindowMetrics.merge` of the panes that start
    within the last ``panes`` pane lengths before the newest one, e.g. a
    1-minute rolling value from six 10-second panes, moving every 10 seconds.
    Panes that have no events are simply not added: they count as empty.

    Parameters
    ----------
    pane_s
        Length of a pane (the tumbling window size) in seconds.
    panes
        How many panes the rolling window spans.
    new_aggregate
        Makes the empty aggregate the panes are merged into; use it to pass
        ``WindowMetrics`` parameters (they must match the panes').

    Examples
    --------
    >>> from online_models.window_metrics import PredictionBatch
    >>> rolling = PanedRollingWindow(pane_s=10, panes=6)
    >>> for pane_index in range(8):  # 80 s of traffic, one event per second
    ...     pane = WindowMetrics()
    ...     pane.add_predictions(PredictionBatch.from_rows(
    ...         [{"features": {}, "prediction": {"label": "a"}, "latency_ms": float(pane_index)}]
    ...         * 10))
    ...     _ = rolling.add(pane_index * 10_000, pane)
    >>> rolling.start_ms, rolling.end_ms, rolling.covered_s
    (20000, 80000, 60.0)
    >>> metrics = rolling.metrics()
    >>> metrics["count"], metrics["qps"], metrics["latency_mean_ms"]
    (60.0, 1.0, 4.5)
    """

    def __init__(
        self,
        pane_s: float,
        panes: int,
        new_aggregate: Callable[[], WindowMetrics] = WindowMetrics,
    ) -> None:
        if panes < 1:
            raise ValueError(f"panes must be at least 1, got {panes!r}")
        self.pane_ms = _milliseconds(pane_s, "pane_s")
        self.panes = panes
        self._new_aggregate = new_aggregate
        self._panes: dict[int, WindowMetrics] = {}
        self._first_start_ms: int | None = None

    @property
    def span_s(self) -> float:
        """Length of the rolling window in seconds (``panes × pane_s``)."""
        return self.pane_ms * self.panes / 1000

    @property
    def end_ms(self) -> int | None:
        """End (exclusive) of the newest pane, ``None`` before the first one."""
        return max(self._panes) + self.pane_ms if self._panes else None

    @property
    def start_ms(self) -> int | None:
        """Start of the rolling window (``end_ms`` minus the span), ``None`` before any pane."""
        end = self.end_ms
        return None if end is None else end - self.pane_ms * self.panes

    @property
    def covered_s(self) -> float:
        """Seconds of event time the window covers: the span, or less just after start-up."""
        end, start = self.end_ms, self.start_ms
        if end is None or start is None or self._first_start_ms is None:
            return 0.0
        return (end - max(start, self._first_start_ms)) / 1000

    def add(self, pane_start_ms: int, pane: WindowMetrics) -> bool:
        """Add a closed pane; ``False`` (and nothing changes) when it is older than the span.

        A second pane with the same start (a late partial) is merged with the
        first. The window keeps ``pane`` itself: do not change it afterwards.
        """
        pane_start_ms = int(pane_start_ms)
        if pane_start_ms % self.pane_ms:
            raise ValueError(
                f"pane start {pane_start_ms} is not aligned to the pane size {self.pane_ms} ms"
            )
        start = self.start_ms
        if start is not None and pane_start_ms < start:
            return False
        if pane_start_ms in self._panes:
            combined = self._new_aggregate()
            combined.merge(self._panes[pane_start_ms])
            combined.merge(pane)  # a fresh aggregate, so the caller's panes stay untouched
            pane = combined
        self._panes[pane_start_ms] = pane
        if self._first_start_ms is None or pane_start_ms < self._first_start_ms:
            self._first_start_ms = pane_start_ms
        start = self.start_ms
        for old in [s for s in self._panes if start is not None and s < start]:
            del self._panes[old]
        return True

    def value(self) -> WindowMetrics:
        """The panes of the span merged into a new aggregate."""
        merged = self._new_aggregate()
        for start in sorted(self._panes):
            merged.merge(self._panes[start])
        return merged

    def metrics(self) -> dict[str, float | None]:
        """The metrics of :meth:`value`, with rates per second of :attr:`covered_s`."""
        seconds = self.covered_s
        return self.value().metrics(seconds if seconds > 0 else self.span_s)

    def __repr__(self) -> str:
        return (
            f"PanedRollingWindow(pane_s={self.pane_ms / 1000}, panes={self.panes}, "
            f"held={sorted(self._panes)})"
        )
