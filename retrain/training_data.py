"""The training set of a retrain request: labelled outcomes of one model, read back from Kafka.

Kafka is the store of record for traffic, so a retrain window is a range of
the ``outcomes`` topic. :class:`OutcomeReader` turns a request's
:class:`~streams.events.DataWindow` into offset ranges, one per partition, and
reads them:

- with explicit ``offsets`` for the outcomes topic in the window, exactly
  those ranges (the offsets are the truth; nothing is filtered by time);
- otherwise from ``offsets_for_times(window.start)`` to the end of the
  partition. A record's timestamp is when it was produced, never before the
  event time of the outcomes in it, so the start is a safe lower bound; there
  is no such upper bound (a worker catching up, or a replay of last month's
  traffic, produces outcomes long after their event time), so everything
  after it is read and the events are kept when their event time is in
  ``[start, end)``.

Only outcomes of the requested model that carry a label are rows
(:class:`OutcomeRow`); the rest are counted, so that an empty or unlabelled
window can say why. :func:`select_rows` and :func:`holdout_split` are the pure
core; the reader is the I/O around them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from streams.codec import decode_record
from streams.events import CloudEvent, DataWindow, OffsetRange, OutcomeEvent
from streams.settings import Settings

__all__ = [
    "OutcomeReader",
    "OutcomeRow",
    "RetrainError",
    "TrainingDataError",
    "TrainingSet",
    "WindowError",
    "holdout_split",
    "select_rows",
]


class RetrainError(Exception):
    """Base of every error raised by ``retrain``."""


class TrainingDataError(RetrainError):
    """The outcomes could not be read (broker unreachable, topic missing): retry later."""


class WindowError(RetrainError):
    """The request's window cannot be read as given (wrong topic, offsets gone): fix the request."""


class OutcomeRow(NamedTuple):
    """One labelled outcome: features as served, true label, segment, event time.

    The first three items are what :func:`~online_models.models.train` and
    :func:`~online_models.models.evaluate` read.
    """

    features: dict[str, float | str | None]
    label: str
    segment: dict[str, str]
    time: datetime


@dataclass(frozen=True)
class TrainingSet:
    """The labelled rows of one model in one window, oldest first, and what was read.

    Parameters
    ----------
    model
        The model the rows belong to.
    rows
        Labelled outcomes in event-time order.
    spans
        The offset ranges actually read, one per partition (the lineage).
    counts
        Events read, by what became of them: ``labelled``, ``unlabelled``,
        ``other_model``, ``outside_window``, ``not_an_outcome``, ``refused``.
    """

    model: str
    rows: tuple[OutcomeRow, ...]
    spans: tuple[OffsetRange, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def outcomes(self) -> int:
        """Outcomes of this model in the window, labelled or not."""
        return len(self.rows) + self.counts.get("unlabelled", 0)

    def describe(self) -> str:
        """One line for a person: how many rows, out of what.

        Examples
        --------
        >>> TrainingSet("m", (), counts={"unlabelled": 40, "other_model": 7}).describe()
        '0 labelled outcomes of m (40 unlabelled, 7 of other models) in 0 offset ranges'
        """
        extras = [
            f"{self.counts[key]} {text}"
            for key, text in (
                ("unlabelled", "unlabelled"),
                ("other_model", "of other models"),
                ("outside_window", "outside the window"),
                ("refused", "refused as invalid"),
            )
            if self.counts.get(key)
        ]
        detail = f" ({', '.join(extras)})" if extras else ""
        return (
            f"{len(self.rows)} labelled outcomes of {self.model}{detail} "
            f"in {len(self.spans)} offset ranges"
        )


def select_rows(
    events: Iterable[CloudEvent],
    model: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[list[OutcomeRow], Counter[str]]:
    """The labelled outcomes of ``model`` whose event time is in ``[start, end)``, oldest first.

    ``start`` / ``end`` of ``None`` do not filter by time. Returns the rows and
    a count of every event by what became of it.

    Examples
    --------
    >>> from datetime import UTC, timedelta
    >>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
    >>> def outcome(i, label, model="m"):
    ...     return OutcomeEvent.new({
    ...         "request_id": f"r{i}", "model": model, "model_version": "1",
    ...         "features": {"x": float(i)}, "segment": {"device": "ios"},
    ...         "predicted_label": "a", "label": label, "prediction_time": t0,
    ...         "label_delay_ms": 0.0}, time=t0 + timedelta(minutes=i))
    >>> events = [outcome(3, "b"), outcome(1, "a"), outcome(2, None), outcome(4, "a", "n"),
    ...           outcome(90, "a")]
    >>> rows, counts = select_rows(events, "m", t0, t0 + timedelta(hours=1))
    >>> [(r.features["x"], r.label) for r in rows]
    [(1.0, 'a'), (3.0, 'b')]
    >>> dict(sorted(counts.items()))
    {'labelled': 2, 'other_model': 1, 'outside_window': 1, 'unlabelled': 1}
    """
    rows: list[OutcomeRow] = []
    counts: Counter[str] = Counter()
    for event in events:
        if not isinstance(event, OutcomeEvent):
            counts["not_an_outcome"] += 1
            continue
        data = event.data
        if data.model != model:
            counts["other_model"] += 1
            continue
        if (start is not None and event.time < start) or (end is not None and event.time >= end):
            counts["outside_window"] += 1
            continue
        if data.label is None:
            counts["unlabelled"] += 1
            continue
        counts["labelled"] += 1
        rows.append(
            OutcomeRow(dict(data.features), data.label, dict(data.segment or {}), event.time)
        )
    rows.sort(key=lambda row: row.time)  # stable: records of one partition keep their order
    return rows, counts


def holdout_split(rows: Sequence[Any], fraction: float = 0.2) -> tuple[list[Any], list[Any]]:
    """Training rows and the most recent ``fraction`` of ``rows`` (already in time order).

    Examples
    --------
    >>> train_rows, holdout = holdout_split(list(range(10)), 0.2)
    >>> train_rows, holdout
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"the holdout fraction must be between 0 and 1 (exclusive), got {fraction}"
        )
    cut = len(rows) - round(len(rows) * fraction)
    return list(rows[:cut]), list(rows[cut:])


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class OutcomeReader:
    """Reads the labelled outcomes of a retrain window from the ``outcomes`` topic.

    Parameters
    ----------
    settings
        Broker address and topic prefix.
    stall_timeout_s
        Give up when the broker sends nothing for this long while records of
        the range are still missing.

    Examples
    --------
    With a broker (see ``make up``)::

        reader = OutcomeReader(Settings())
        training_set = reader.read("voice-intent", request.window)
        print(training_set.describe())
    """

    def __init__(self, settings: Settings, *, stall_timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.topic = settings.topic("outcomes")
        self.stall_timeout_s = stall_timeout_s

    def _consumer(self) -> KafkaConsumer:
        try:
            return KafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id="driftloop-retrainer-reader",
                group_id=None,
                enable_auto_commit=False,
                bootstrap_timeout_ms=self.settings.connect_timeout_ms,
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_bytes=64 * 1024 * 1024,
            )
        except KafkaTimeoutError:
            raise TrainingDataError(
                f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers}; start it with "
                "`make up` or set DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"
            ) from None

    def _ranges(
        self, consumer: KafkaConsumer, window: DataWindow
    ) -> dict[TopicPartition, tuple[int, int]]:
        ids = consumer.partitions_for_topic(self.topic)
        if not ids:
            raise TrainingDataError(
                f"topic {self.topic} does not exist; create it with `driftloop topics create`"
            )
        partitions = [TopicPartition(self.topic, p) for p in sorted(ids)]
        first = consumer.beginning_offsets(partitions)
        last = consumer.end_offsets(partitions)
        if window.offsets:
            mine = [span for span in window.offsets if span.topic == self.topic]
            if not mine:
                named = sorted({span.topic for span in window.offsets})
                raise WindowError(
                    f"the request's offsets name {', '.join(named)}, not the outcomes topic "
                    f"{self.topic}; give offsets of {self.topic} or none (then the window's "
                    "start and end are used)"
                )
            ranges = {}
            for span in mine:
                tp = TopicPartition(self.topic, span.partition)
                if tp not in first:
                    raise WindowError(
                        f"{self.topic} has no partition {span.partition} (it has "
                        f"{len(partitions)}); fix the request's offsets"
                    )
                if span.start < first[tp] or span.end > last[tp]:
                    raise WindowError(
                        f"offsets {span.start}..{span.end} of {self.topic}[{span.partition}] are "
                        f"not all on the broker (it holds {first[tp]}..{last[tp]}; older records "
                        "were deleted by retention): request a window it still holds"
                    )
                ranges[tp] = (span.start, span.end)
            return ranges
        starts = consumer.offsets_for_times({tp: _millis(window.start) for tp in partitions})
        ranges = {}
        for tp in partitions:
            start = starts.get(tp)
            # no record at or after the time: the range starts at the partition's end
            begin = max(first[tp], start.offset if start is not None else last[tp])
            ranges[tp] = (begin, max(begin, last[tp]))
        return ranges

    def read(self, model: str, window: DataWindow) -> TrainingSet:
        """The labelled outcomes of ``model`` in ``window``, oldest first, and the ranges read.

        Raises :class:`WindowError` when the window cannot be read as given and
        :class:`TrainingDataError` when the broker cannot be read.
        """
        consumer = self._consumer()
        try:
            ranges = self._ranges(consumer, window)
            events, refused = self._events(consumer, ranges)
        except KafkaError as exc:
            raise TrainingDataError(f"reading {self.topic} failed: {exc}") from None
        finally:
            consumer.close()
        timed = not window.offsets
        rows, counts = select_rows(
            events, model, window.start if timed else None, window.end if timed else None
        )
        counts["refused"] += refused
        spans = tuple(
            OffsetRange(topic=tp.topic, partition=tp.partition, start=start, end=end)
            for tp, (start, end) in sorted(ranges.items(), key=lambda item: item[0].partition)
        )
        return TrainingSet(model, tuple(rows), spans, dict(+counts))

    def _events(
        self, consumer: KafkaConsumer, ranges: Mapping[TopicPartition, tuple[int, int]]
    ) -> tuple[list[CloudEvent], int]:
        wanted = {tp: bounds for tp, bounds in ranges.items() if bounds[1] > bounds[0]}
        refused = 0
        events: list[CloudEvent] = []
        if not wanted:
            return events, refused
        consumer.assign(list(wanted))
        for tp, (start, _end) in wanted.items():
            consumer.seek(tp, start)
        pending = set(wanted)
        last_progress = time.monotonic()
        while pending:
            batches = consumer.poll(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                stop = wanted[tp][1]
                for record in records:
                    if record.offset >= stop:
                        break
                    decoded = decode_record(record.value)
                    events.extend(decoded.events)
                    refused += len(decoded.errors)
            if batches:
                last_progress = time.monotonic()
            for tp in list(pending):
                if consumer.position(tp) >= wanted[tp][1]:
                    pending.discard(tp)
                    consumer.pause(tp)
            if pending and time.monotonic() - last_progress > self.stall_timeout_s:
                missing = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending))
                raise TrainingDataError(
                    f"the broker sent nothing for {self.stall_timeout_s:g} s while records of "
                    f"{missing} were still missing; is it still up?"
                )
        return events, refused
