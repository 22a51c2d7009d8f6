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

import numpy as np

from online_models.window_metrics import OutcomeBatch, PredictionBatch, WindowMetrics
from streams.events import CloudEvent
from streams.frames import PredictionFrame

__all__ = ["OTHER_SEGMENT", "OpenWindow", "PartitionWindows", "WindowId", "segment_key"]

Kind = Literal["prediction", "outcome"]
_SEGMENT_CACHE = 10_000
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
    reported: bool = False  # its final partial went out; it stays for late outcomes

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able state: one changelog value."""
        return {
            "metrics": self.metrics.to_state(),
            "offsets": self.offsets,
            "revision": self.revision,
            "reported": self.reported,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OpenWindow:
        """Rebuild from :meth:`to_state`."""
        return cls(
            WindowMetrics.from_state(state["metrics"]),
            dict(state["offsets"]),
            int(state.get("revision", 0)),
            bool(state.get("reported", False)),
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
        outcome_lateness_s: float = 600.0,
    ) -> None:
        self.window_sizes_s = tuple(window_sizes_s)
        self.allowed_lateness_ms = int(allowed_lateness_s * 1000)
        self.outcome_lateness_ms = int(outcome_lateness_s * 1000)
        # outcomes come later than predictions (feedback, then a round trip through the
        # outcomes topic): they have a watermark of their own
        self.outcome_watermark_ms = 0
        self.max_segments = max_segments
        self.max_categories = max_categories
        self.windows: dict[str, OpenWindow] = {}
        self.dirty: set[str] = set()
        self.watermark_ms = 0
        self.late_events = 0
        self._segments: dict[tuple[str, str], set[str]] = defaultdict(set)
        # canonical keys of segments as spelled in events (a cache: keys are sorted pairs)
        self._segment_keys: dict[tuple[tuple[str, str], ...], str] = {}

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
        if not segment:
            key = ""
        else:
            spelled = tuple(segment.items())
            key = self._segment_keys.get(spelled)  # type: ignore[assignment]
            if key is None:
                if len(self._segment_keys) >= _SEGMENT_CACHE:
                    self._segment_keys.clear()
                key = self._segment_keys[spelled] = segment_key(segment)
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
        return self.apply_many(kind, topic, [(offset, [event.model_dump() for event in events])])

    def apply_many(
        self,
        kind: Kind,
        topic: str,
        records: Sequence[tuple[int, Sequence[dict[str, Any]]]],
    ) -> int:
        """Apply the events of several records of ``topic``, in offset order, at once.

        Events are given as rows: the event as a dict with ``time`` a datetime
        and ``data`` a dict (:mod:`streams.rows`, or ``model_dump()`` of a model).

        The same result as :meth:`apply` record by record, except that lateness
        is judged against the watermark before the first of them; vectorised
        per window rather than per record, which is what makes it fast: a
        window gets one update per call instead of one per record.

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> from streams.events import PredictionEvent
        >>> def prediction(second, locale):
        ...     return PredictionEvent.new(
        ...         {"request_id": f"r{second}", "model": "m", "model_version": "1",
        ...          "features": {"x": float(second)}, "prediction": {"label": "a"},
        ...          "latency_ms": 5.0, "segment": {"locale": locale}},
        ...         time=datetime.fromtimestamp(1_700_000_000 + second, UTC))
        >>> windows = PartitionWindows([10])
        >>> records = [(7, [prediction(0, "en").model_dump(), prediction(1, "fr").model_dump()]),
        ...            (8, [prediction(2, "en").model_dump()])]
        >>> windows.apply_many("prediction", "predictions", records)
        3
        >>> windows.apply_many("prediction", "predictions", records)  # redelivered: skipped
        0
        >>> sorted((k.split("|")[2], w.metrics.count) for k, w in windows.windows.items())
        [('locale=en', 2), ('locale=fr', 1)]
        """
        if kind == "prediction":
            return self.apply_frame(topic, PredictionFrame.from_records(records))
        events: list[dict[str, Any]] = []
        offsets: list[int] = []
        for offset, record_events in records:
            events.extend(record_events)
            offsets.extend([offset] * len(record_events))
        if not events:
            return 0
        times = np.fromiter(
            (event["time"].timestamp() for event in events), dtype=np.float64, count=len(events)
        )
        groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        segment_for = self._segment_for
        for index, event in enumerate(events):
            data = event["data"]
            model, version = data["model"], data["model_version"]
            groups[(model, version, segment_for(model, version, data.get("segment")))].append(index)
        return self._apply_groups(
            kind,
            topic,
            groups,
            _outcome_columns(events),
            (times * 1000).astype(np.int64),
            np.asarray(offsets, dtype=np.int64),
        )

    def apply_frame(self, topic: str, frame: PredictionFrame) -> int:
        """:meth:`apply_many` for predictions given as a frame (offsets in ``frame.offsets``).

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> from streams.events import PredictionEvent
        >>> rows = [PredictionEvent.new(
        ...     {"request_id": f"r{i}", "model": "m", "model_version": "1",
        ...      "features": {"x": float(i)}, "prediction": {"label": "a"}, "latency_ms": 5.0},
        ...     time=datetime.fromtimestamp(1_700_000_000 + i, UTC)).model_dump() for i in range(4)]
        >>> windows = PartitionWindows([10])
        >>> windows.apply_frame("predictions", PredictionFrame.from_rows(rows, offset=3))
        4
        >>> [w.metrics.count for w in windows.windows.values()]
        [4]
        """
        if not len(frame):
            return 0
        groups: dict[tuple[str, str, str], list[int]] = {}
        spelled: dict[tuple[str, str, Any], list[int]] = {}
        no_segment: tuple[()] = ()
        for index, key in enumerate(
            zip(
                frame.models,
                frame.versions,
                [tuple(s.items()) if s else no_segment for s in frame.segments],
                strict=True,
            )
        ):
            members = spelled.get(key)
            if members is None:
                spelled[key] = [index]
            else:
                members.append(index)
        segment_for = self._segment_for
        for (model, version, items), members in spelled.items():
            group = (model, version, segment_for(model, version, dict(items) if items else None))
            if group in groups:  # the same segment spelled in another order, or __other__
                groups[group] = sorted(groups[group] + members)
            else:
                groups[group] = members
        columns = {
            "latency_ms": frame.numbers("latency_ms"),
            "labels": frame.label_array(),
            "scores": frame.numbers("scores"),
            "errors": frame.error_flags(),
            "cpu_percent": frame.host_numbers("cpu_percent"),
            "memory_mb": frame.host_numbers("memory_mb"),
            "features": frame.feature_columns(),
            "numeric": frame.feature_matrix(),
        }
        return self._apply_groups(
            "prediction",
            topic,
            groups,
            columns,
            frame.time_ms,
            np.asarray(frame.offsets, dtype=np.int64),
        )

    def _apply_groups(
        self,
        kind: Kind,
        topic: str,
        groups: dict[tuple[str, str, str], list[int]],
        columns: dict[str, Any],
        time_ms: np.ndarray,
        record_offsets: np.ndarray,
    ) -> int:
        # Lateness is judged against the watermark as it was before these records: one
        # batched record can span many seconds, and must not close windows on its own events.
        watermark_before = self.watermark_ms if kind == "prediction" else self.outcome_watermark_ms
        applied = 0
        smallest = self.window_sizes_s[0]
        for (model, version, segment), indices in groups.items():
            members = np.asarray(indices, dtype=np.int64)
            member_ms = time_ms[members]
            for size in self.window_sizes_s:
                size_ms = size * 1000
                starts = member_ms - member_ms % size_ms
                first = int(starts[0])
                if (starts == first).all():
                    parts = [(first, members)]
                else:
                    parts = [(int(s), members[starts == s]) for s in np.unique(starts)]
                for start, selected in parts:
                    wid = WindowId(model, version, segment, size, start)
                    applied_here = self._apply_window(
                        wid, kind, topic, columns, selected, record_offsets, watermark_before
                    )
                    if size == smallest:
                        applied += applied_here
        newest = max(watermark_before, int(time_ms.max()))
        if kind == "prediction":
            self.watermark_ms = newest
        else:
            self.outcome_watermark_ms = newest
        return applied

    def _apply_window(
        self,
        wid: WindowId,
        kind: Kind,
        topic: str,
        columns: dict[str, Any],
        selected: np.ndarray,
        record_offsets: np.ndarray,
        watermark_before: int,
    ) -> int:
        key = wid.key()
        window = self.windows.get(key)
        if window is None:
            # a window is gone for good once its kind's watermark passed its end by the
            # allowed lateness, or (for outcomes) predictions passed it by both latenesses
            late = wid.end_ms + self.allowed_lateness_ms <= watermark_before or (
                kind == "outcome" and self._outcomes_closed(wid)
            )
        else:
            late = window.reported and kind == "prediction"  # reported final: no more of those
        # records the window holds already (a redelivery) are skipped before lateness is
        # judged: a recovered window that was reported is not late for its own records
        stored = -1 if window is None else window.offsets.get(topic, -1)
        offsets = record_offsets[selected]
        if stored >= offsets[-1]:
            return 0
        if stored >= offsets[0]:
            selected = selected[offsets > stored]
            offsets = record_offsets[selected]
        if late:
            self.late_events += len(selected)
            return 0
        if window is None:
            window = self.windows[key] = OpenWindow(
                WindowMetrics(max_categories=self.max_categories)
            )
        if kind == "prediction":
            window.metrics.add_predictions(_take_predictions(columns, selected))
        else:
            window.metrics.add_outcomes(_take_outcomes(columns, selected))
        window.offsets[topic] = int(offsets[-1])
        # the events it holds: a later state of the same window always has at least as many,
        # however its records were batched (the merge stage keeps the highest revision)
        window.revision += len(selected)
        self.dirty.add(key)
        return len(selected)

    # ---------------------------------------------------------------- closing

    def _outcomes_closed(self, wid: WindowId) -> bool:
        return wid.end_ms + self.allowed_lateness_ms + self.outcome_lateness_ms <= self.watermark_ms

    def closable(self) -> list[str]:
        """Keys of windows to report as final: their end plus the allowed lateness is past.

        A reported window stays (see :meth:`removable`): outcomes, which come
        later than predictions, are still added to it and it is reported again.
        """
        return [
            k
            for k, window in self.windows.items()
            if not window.reported and self._is_closed(WindowId.parse(k))
        ]

    def mark_reported(self, key: str) -> OpenWindow:
        """Note that the window's final partial went out; returns the window."""
        window = self.windows[key]
        window.reported = True
        self.dirty.add(key)
        return window

    def removable(self) -> list[str]:
        """Keys of reported windows that can take nothing more: to forget.

        When the outcomes' watermark passed their end plus the allowed lateness
        too, or the predictions' passed it plus both latenesses (outcomes may
        never come at all).
        """
        gone = []
        for key, window in self.windows.items():
            if not window.reported:
                continue
            wid = WindowId.parse(key)
            if (
                wid.end_ms + self.allowed_lateness_ms <= self.outcome_watermark_ms
                or self._outcomes_closed(wid)
            ):
                gone.append(key)
        return gone

    def take_dirty(self) -> dict[str, dict[str, Any]]:
        """The states of the windows changed since the last call (to write to the changelog)."""
        out = {k: self.windows[k].to_state() for k in self.dirty if k in self.windows}
        self.dirty.clear()
        return out

    def close(self, key: str) -> OpenWindow:
        """Forget a closed window and return it."""
        self.dirty.discard(key)
        return self.windows.pop(key)


# --------------------------------------------------------------------------- columns


def _take_predictions(columns: dict[str, Any], selected: np.ndarray) -> PredictionBatch:
    features = {}
    numeric = columns["numeric"]
    if numeric is not None:  # every event has the same numeric features: one matrix
        numeric = (numeric[0], numeric[1][selected])
    else:
        for name, (values, present) in columns["features"].items():
            if present is None or present[selected].any():
                features[name] = values[selected]
    return PredictionBatch(
        numeric=numeric,
        latency_ms=columns["latency_ms"][selected],
        labels=columns["labels"][selected],
        scores=columns["scores"][selected],
        errors=columns["errors"][selected],
        cpu_percent=columns["cpu_percent"][selected],
        memory_mb=columns["memory_mb"][selected],
        features=features,
    )


def _outcome_columns(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    batch = OutcomeBatch.from_rows(event["data"] for event in events)
    columns = {}
    for name in ("correct", "redo_search", "switched_to_typing", "clicked", "labelled"):
        column = np.empty(len(batch), dtype=object)
        column[:] = list(getattr(batch, name))
        columns[name] = column
    columns["label_delay_ms"] = np.asarray(batch.label_delay_ms, dtype=np.float64)
    return columns


def _take_outcomes(columns: dict[str, Any], selected: np.ndarray) -> OutcomeBatch:
    return OutcomeBatch(**{name: column[selected] for name, column in columns.items()})
