"""The open windows of one source partition, updated exactly once per record.

The worker keeps, per source partition, one :class:`WindowMetrics` per
(model, version, segment, window size, window start). Each window's stored
state also remembers the offset of the last record applied to it, per topic,
so a record that is delivered again (after a worker died before committing)
is skipped by every window that already holds it. That, and writing each
window's state as one changelog value, is what makes the counts exact across
crashes with an at-least-once consumer.

Kafka-free: the faust agent feeds it decoded events and offsets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from online_models.window_metrics import OutcomeBatch, PredictionBatch, WindowMetrics
from streams.events import CloudEvent

__all__ = ["OTHER_SEGMENT", "OpenWindow", "PartitionWindows", "WindowId", "segment_key"]

Kind = Literal["prediction", "outcome"]
OTHER_SEGMENT = "__other__"
_SEP = "|"


def segment_key(segment: dict[str, str] | None) -> str:
    """A canonical string for a segment: ``k=v`` pairs sorted by key, comma-separated.

    Examples
    --------
    >>> segment_key({"locale": "en-GB", "device": "ios"}), segment_key(None)
    ('device=ios,locale=en-GB', '')
    """
    if not segment:
        return ""
    return ",".join(f"{k}={segment[k]}" for k in sorted(segment))


def parse_segment(key: str) -> dict[str, str] | None:
    """The segment dict back from :func:`segment_key` (``None`` for no segment)."""
    if not key:
        return None
    if key == OTHER_SEGMENT:
        return {"segment": OTHER_SEGMENT}
    return dict(part.split("=", 1) for part in key.split(","))


@dataclass(frozen=True)
class WindowId:
    """Which window: model, version, segment key, size and start (ms since the epoch)."""

    model: str
    version: str
    segment: str
    size_s: int
    start_ms: int

    @property
    def end_ms(self) -> int:
        """End of the window (exclusive)."""
        return self.start_ms + self.size_s * 1000

    def key(self) -> str:
        """A string key for tables and topics.

        Examples
        --------
        >>> WindowId("voice", "3", "locale=en-GB", 60, 1_700_000_040_000).key()
        'voice|3|locale=en-GB|60|1700000040000'
        """
        return _SEP.join(
            (self.model, self.version, self.segment, str(self.size_s), str(self.start_ms))
        )

    @classmethod
    def parse(cls, key: str) -> WindowId:
        """The inverse of :meth:`key` (model names cannot contain ``|``)."""
        model, version, segment, size, start = key.split(_SEP)
        return cls(model, version, segment, int(size), int(start))


@dataclass
class OpenWindow:
    """One window's aggregate and the last offset applied to it from each topic."""

    metrics: WindowMetrics
    offsets: dict[str, int] = field(default_factory=dict)
    revision: int = 0

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able state: one changelog value."""
        return {
            "metrics": self.metrics.to_state(),
            "offsets": self.offsets,
            "revision": self.revision,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OpenWindow:
        """Rebuild from :meth:`to_state`."""
        return cls(
            WindowMetrics.from_state(state["metrics"]),
            dict(state["offsets"]),
            int(state.get("revision", 0)),
        )


class PartitionWindows:
    """Windows of one source partition; see the module docstring.

    Parameters
    ----------
    window_sizes_s
        Tumbling window sizes in seconds.
    allowed_lateness_s
        A window closes once the partition's watermark (its latest event time)
        passes the window's end by this much.
    max_segments
        Distinct segments tracked per (model, version); further ones are
        aggregated as ``__other__``.
    max_categories
        Distinct categories kept per categorical feature and per label.
    """

    def __init__(
        self,
        window_sizes_s: Sequence[int],
        *,
        allowed_lateness_s: float = 30.0,
        max_segments: int = 50,
        max_categories: int = 20,
    ) -> None:
        self.window_sizes_s = tuple(window_sizes_s)
        self.allowed_lateness_ms = int(allowed_lateness_s * 1000)
        self.max_segments = max_segments
        self.max_categories = max_categories
        self.windows: dict[str, OpenWindow] = {}
        self.dirty: set[str] = set()
        self.watermark_ms = 0
        self.late_events = 0
        self._segments: dict[tuple[str, str], set[str]] = defaultdict(set)

    # ---------------------------------------------------------------- recovery

    def load(self, key: str, state: dict[str, Any]) -> None:
        """Take a window back from the changelog (on start-up or rebalance)."""
        window = OpenWindow.from_state(state)
        self.windows[key] = window
        wid = WindowId.parse(key)
        if wid.segment != OTHER_SEGMENT:
            self._segments[(wid.model, wid.version)].add(wid.segment)

    # ---------------------------------------------------------------- updates

    def _segment_for(self, model: str, version: str, segment: dict[str, str] | None) -> str:
        key = segment_key(segment)
        known = self._segments[(model, version)]
        if key in known:
            return key
        if len(known) >= self.max_segments:
            return OTHER_SEGMENT
        known.add(key)
        return key

    def _is_closed(self, wid: WindowId) -> bool:
        return wid.end_ms + self.allowed_lateness_ms <= self.watermark_ms

    def apply(self, kind: Kind, topic: str, offset: int, events: Iterable[CloudEvent]) -> int:
        """Apply the events of one record; returns how many were applied.

        Windows that already hold this record (their stored offset for
        ``topic`` is at or past ``offset``) are left alone, and so are events
        of windows that have closed (counted in :attr:`late_events`).
        """
        groups: dict[WindowId, list[dict[str, Any]]] = defaultdict(list)
        # A record is judged against the watermark as it was before it: one batched
        # record can span many seconds, and must not close windows on its own events.
        watermark_before = self.watermark_ms
        newest = watermark_before
        for event in events:
            data = event.data
            time_ms = int(event.time.timestamp() * 1000)
            segment = self._segment_for(data.model, str(data.model_version), data.segment)
            row = data.model_dump()
            for size in self.window_sizes_s:
                start = time_ms - time_ms % (size * 1000)
                groups[WindowId(data.model, str(data.model_version), segment, size, start)].append(
                    row
                )
            newest = max(newest, time_ms)

        applied = 0
        for wid, rows in groups.items():
            key = wid.key()
            window = self.windows.get(key)
            if window is None:
                if wid.end_ms + self.allowed_lateness_ms <= watermark_before:
                    self.late_events += len(rows)
                    continue
                window = self.windows[key] = OpenWindow(
                    WindowMetrics(max_categories=self.max_categories)
                )
            if window.offsets.get(topic, -1) >= offset:
                continue  # this record is already in the window: a redelivery
            if kind == "prediction":
                window.metrics.add_predictions(PredictionBatch.from_rows(rows))
            else:
                window.metrics.add_outcomes(OutcomeBatch.from_rows(rows))
            window.offsets[topic] = offset
            window.revision += 1
            self.dirty.add(key)
            if wid.size_s == self.window_sizes_s[0]:
                applied += len(rows)
        self.watermark_ms = newest
        return applied

    # ---------------------------------------------------------------- closing

    def closable(self) -> list[str]:
        """Keys of open windows whose end plus the allowed lateness the watermark has passed."""
        return [k for k in self.windows if self._is_closed(WindowId.parse(k))]

    def take_dirty(self) -> dict[str, dict[str, Any]]:
        """The states of the windows changed since the last call (to write to the changelog)."""
        out = {k: self.windows[k].to_state() for k in self.dirty if k in self.windows}
        self.dirty.clear()
        return out

    def close(self, key: str) -> OpenWindow:
        """Forget a closed window and return it."""
        self.dirty.discard(key)
        return self.windows.pop(key)
