"""Joining feedback to its prediction by ``request_id``, in event time, with a TTL.

Kafka-free. Per source partition (``predictions`` and ``feedback`` are
co-partitioned, so a request's prediction and feedback meet in one partition)
a :class:`PendingPredictions` keeps what an outcome needs of each prediction
until ``ttl_s`` of event time has passed. Feedback that finds its prediction
becomes an outcome; each piece of feedback does (a redo at once and a label an
hour later are two outcomes). Feedback that finds nothing is *unknown*, or
*expired* when its prediction was dropped for age (the ids of recently expired
predictions are remembered, in bounded memory).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from streams.dedup import RecentIds
from streams.events import FeedbackEvent, OutcomeEvent, PredictionEvent
from streams.frames import PredictionFrame

__all__ = ["JoinMiss", "PendingEntry", "PendingPredictions", "outcome_for"]


@dataclass(frozen=True)
class JoinMiss:
    """Feedback that met no prediction, and why: ``unknown`` or ``expired``."""

    reason: str
    detail: str


class PendingEntry(msgspec.Struct, gc=False):
    """What an outcome needs of a prediction waiting for its feedback.

    Not tracked by Python's garbage collector (it cannot be part of a cycle:
    strings, numbers and dicts of them): a worker keeps one per prediction
    for the TTL, and the collector's full passes would otherwise walk every
    one of them.
    """

    request_id: str
    model: str
    model_version: str
    segment: dict[str, str] | None
    route: str | None
    features: dict[str, Any]
    label: str | None
    time_ms: int


class PendingPredictions:
    """Predictions of one partition waiting for feedback, expired by event time.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> pred = PredictionEvent.new({"request_id": "r1", "model": "m", "model_version": "1",
    ...     "features": {"x": 1.0}, "prediction": {"label": "a"}, "latency_ms": 5}, time=t0)
    >>> pending = PendingPredictions(ttl_s=60)
    >>> len(pending.add([pred]))
    1
    >>> fb = FeedbackEvent.new({"request_id": "r1", "model": "m", "label": "b"},
    ...                        time=t0 + timedelta(seconds=30), id="fb-1")
    >>> out = pending.match(fb)
    >>> out.data.correct, out.data.label_delay_ms, out.id
    (False, 30000.0, 'outcome:fb-1')
    >>> pending.advance(int((t0 + timedelta(minutes=5)).timestamp() * 1000))  # 5 min later
    1
    >>> pending.match(FeedbackEvent.new({"request_id": "r1", "model": "m", "clicked": True}))
    JoinMiss(reason='expired', detail='the prediction of request r1 is older than the 60 s TTL')
    """

    def __init__(
        self, ttl_s: float, *, max_pending: int = 1_000_000, expired_memory: int = 200_000
    ):
        self.ttl_ms = int(ttl_s * 1000)
        self.max_pending = max_pending
        self._by_request: OrderedDict[str, PendingEntry] = OrderedDict()
        self._shadow: OrderedDict[str, PendingEntry] = OrderedDict()
        self._expired = RecentIds(expired_memory)
        self.watermark_ms = 0
        self.evicted_for_space = 0

    def __len__(self) -> int:
        return len(self._by_request)

    def add(self, predictions: list[PredictionEvent]) -> list[PendingEntry]:
        """Remember predictions; returns their entries (what the changelog keeps)."""
        return self.add_rows([event.model_dump() for event in predictions])

    def add_rows(self, rows: list[dict[str, Any]]) -> list[PendingEntry]:
        """:meth:`add` for predictions given as rows (:mod:`streams.rows`).

        A shadow prediction (route ``shadow``: the challenger scored the request
        but did not answer) is kept apart from the answered one of the same
        request, so feedback meets both (see :meth:`match_shadow`).
        """
        return self.add_frame(PredictionFrame.from_rows(rows))

    def add_frame(self, frame: PredictionFrame) -> list[PendingEntry]:
        """:meth:`add_rows` for predictions given as a frame."""
        entries = list(
            map(
                PendingEntry,
                frame.request_ids,
                frame.models,
                frame.versions,
                frame.segments,
                frame.routes,
                frame.features,
                frame.labels,
                frame.time_ms.tolist(),
            )
        )
        by_request = self._by_request
        ids = frame.request_ids
        if "shadow" not in frame.routes and by_request.keys().isdisjoint(ids):
            # the usual batch: answered predictions of new requests, appended in order
            # (a request repeated within the batch keeps its last entry, at its first place)
            by_request.update(zip(ids, entries, strict=True))
            if entries:
                self.watermark_ms = max(self.watermark_ms, int(frame.time_ms.max()))
            self._evict()
            return entries
        newest = self.watermark_ms
        for entry in entries:
            request_id = entry.request_id
            if entry.route == "shadow":
                self._shadow[request_id] = entry
                self._shadow.move_to_end(request_id)
                if len(self._shadow) > self.max_pending:
                    self._shadow.popitem(last=False)
                continue
            if request_id in by_request:
                by_request.move_to_end(request_id)
            by_request[request_id] = entry
            if entry.time_ms > newest:
                newest = entry.time_ms
        self.watermark_ms = newest
        self._evict()
        return entries

    def _evict(self) -> None:
        by_request = self._by_request
        while len(by_request) > self.max_pending:
            old_id, _ = by_request.popitem(last=False)
            self._expired.seen(old_id)
            self.evicted_for_space += 1

    def load(self, entries: list[PendingEntry]) -> None:
        """Take entries back from the changelog (in their original order)."""
        for entry in entries:
            self._by_request[entry.request_id] = entry
            self.watermark_ms = max(self.watermark_ms, entry.time_ms)

    def advance(self, now_ms: int) -> int:
        """Move event time on to ``now_ms``; drop predictions past the TTL and say how many."""
        self.watermark_ms = max(self.watermark_ms, now_ms)
        horizon = self.watermark_ms - self.ttl_ms
        dropped = 0
        while self._shadow and next(iter(self._shadow.values())).time_ms < horizon:
            self._shadow.popitem(last=False)
        while self._by_request:
            request_id, entry = next(iter(self._by_request.items()))
            if entry.time_ms >= horizon:
                # mostly in time order; a few late arrivals may wait one more round
                break
            self._by_request.popitem(last=False)
            self._expired.seen(request_id)
            dropped += 1
        return dropped

    def match(self, feedback: FeedbackEvent) -> OutcomeEvent | JoinMiss:
        """The outcome of this feedback, or why there is none."""
        request_id = feedback.data.request_id
        entry = self._by_request.get(request_id)
        if entry is None:
            if request_id in self._expired:
                return JoinMiss(
                    "expired",
                    f"the prediction of request {request_id} is older than the "
                    f"{self.ttl_ms / 1000:g} s TTL",
                )
            return JoinMiss("unknown", f"no prediction of request {request_id} was seen")
        feedback_ms = int(feedback.time.timestamp() * 1000)
        if feedback_ms - entry.time_ms > self.ttl_ms:
            return JoinMiss(
                "expired",
                f"feedback for request {request_id} came "
                f"{(feedback_ms - entry.time_ms) / 1000:g} s after its prediction, "
                f"past the {self.ttl_ms / 1000:g} s TTL",
            )
        return outcome_for(entry, feedback)

    def match_shadow(self, feedback: FeedbackEvent) -> OutcomeEvent | None:
        """The outcome of a shadow prediction of the same request, if there was one.

        Only the label says anything about an answer the user never saw: the
        implicit signals (redo, typing, click) are about the answered one, so
        they are left out of it.

        Examples
        --------
        >>> from datetime import UTC, datetime
        >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
        >>> def pred(version, label, route):
        ...     return PredictionEvent.new({"request_id": "r1", "model": "m",
        ...         "model_version": version, "features": {"x": 1.0},
        ...         "prediction": {"label": label}, "latency_ms": 5, "route": route}, time=t0)
        >>> pending = PendingPredictions(ttl_s=60)
        >>> _ = pending.add([pred("1", "a", "champion"), pred("2", "b", "shadow")])
        >>> fb = FeedbackEvent.new({"request_id": "r1", "model": "m", "label": "b",
        ...                         "redo_search": True}, time=t0, id="fb-1")
        >>> served, shadow = pending.match(fb), pending.match_shadow(fb)
        >>> served.data.model_version, served.data.correct, served.data.redo_search
        ('1', False, True)
        >>> shadow.data.model_version, shadow.data.correct, shadow.data.redo_search, shadow.id
        ('2', True, None, 'outcome:fb-1:shadow')
        """
        entry = self._shadow.get(feedback.data.request_id)
        if entry is None or feedback.data.label is None:
            return None
        outcome = outcome_for(entry, feedback, implicit=False)
        return outcome


def outcome_for(
    entry: PendingEntry, feedback: FeedbackEvent, *, implicit: bool = True
) -> OutcomeEvent:
    """The outcome event of a prediction entry and one piece of its feedback."""
    data = feedback.data
    feedback_ms = int(feedback.time.timestamp() * 1000)
    correct = None if data.label is None else data.label == entry.label
    return OutcomeEvent.new(
        {
            "request_id": entry.request_id,
            "model": entry.model,
            "model_version": entry.model_version,
            "segment": entry.segment,
            "route": entry.route,
            "features": entry.features,
            "predicted_label": entry.label,
            "label": data.label,
            "correct": correct,
            "redo_search": data.redo_search if implicit else None,
            "switched_to_typing": data.switched_to_typing if implicit else None,
            "clicked": data.clicked if implicit else None,
            "prediction_time": datetime.fromtimestamp(entry.time_ms / 1000, UTC),
            "label_delay_ms": float(max(0, feedback_ms - entry.time_ms)),
        },
        id=f"outcome:{feedback.id}" if entry.route != "shadow" else f"outcome:{feedback.id}:shadow",
        time=feedback.time,
        source="urn:driftloop:worker:join",
    )
