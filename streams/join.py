"""Joining feedback to its prediction by ``request_id``, in event time, with a TTL.

Kafka-free. Per source partition (``predictions`` and ``feedback`` are
co-partitioned, so a request's prediction and feedback meet in one partition)
a :class:`PendingPredictions` keeps what an outcome needs of each prediction
until ``ttl_s`` of event time has passed. Feedback that finds its prediction
becomes an outcome; each piece of feedback does (a redo at once and a label an
hour later are two outcomes). Feedback that finds nothing is *unknown*, or
*expired* when its prediction was dropped for age (the ids of recently expired
predictions are remembered, in bounded memory).

A worker keeps a prediction per request for the TTL: a million of them. They
are kept as the columns of the batches they came in (:class:`_Block`: tuples,
the features as one float matrix when they are all numbers), and a request's
place in them by an :class:`~streams.ordered_index.OrderedIndex`: no object per
prediction, nothing the garbage collector walks, and about a tenth of the
memory of a features dict per prediction. :class:`PendingEntry` is built when
feedback asks for it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from streams.dedup import RecentIds
from streams.events import FeedbackEvent, OutcomeEvent, PredictionEvent
from streams.frames import PredictionFrame
from streams.ordered_index import OrderedIndex

__all__ = ["JoinMiss", "PendingEntry", "PendingPredictions", "outcome_for"]


@dataclass(frozen=True)
class JoinMiss:
    """Feedback that met no prediction, and why: ``unknown`` or ``expired``."""

    reason: str
    detail: str


class PendingEntry(msgspec.Struct, gc=False):
    """What an outcome needs of a prediction waiting for its feedback."""

    request_id: str
    model: str
    model_version: str
    segment: dict[str, str] | None
    route: str | None
    features: dict[str, Any]
    label: str | None
    time_ms: int


@dataclass(frozen=True, slots=True)
class _Block:
    """The predictions of one batch, as columns; rows ``first`` .. ``first + len - 1``."""

    first: int
    request_ids: tuple[str, ...]
    models: tuple[str, ...]
    versions: tuple[str, ...]
    segments: tuple[dict[str, str] | None, ...]
    routes: tuple[str | None, ...]
    labels: tuple[str | None, ...]
    time_ms: np.ndarray
    # the features: a (rows, names) float matrix when every event has the same numeric
    # features, else a dict per event
    names: tuple[str, ...] | None
    matrix: np.ndarray | None
    features: tuple[dict[str, Any], ...] | None

    @classmethod
    def of(cls, frame: PredictionFrame, first: int) -> _Block:
        found = frame.feature_matrix()
        names, matrix = found if found is not None else (None, None)
        return cls(
            first,
            tuple(frame.request_ids),
            tuple(frame.models),
            tuple(frame.versions),
            tuple(frame.segments),
            tuple(frame.routes),
            tuple(frame.labels),
            frame.time_ms,
            names,
            matrix,
            None if matrix is not None else tuple(frame.features),
        )

    @property
    def end(self) -> int:
        return self.first + len(self.request_ids)

    def entry(self, row: int) -> PendingEntry:
        at = row - self.first
        if self.matrix is not None:
            assert self.names is not None
            features = dict(zip(self.names, self.matrix[at].tolist(), strict=True))
        else:
            assert self.features is not None
            features = self.features[at]
        return PendingEntry(
            self.request_ids[at],
            self.models[at],
            self.versions[at],
            self.segments[at],
            self.routes[at],
            features,
            self.labels[at],
            int(self.time_ms[at]),
        )


class PendingPredictions:
    """Predictions of one partition waiting for feedback, expired by event time.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> pred = PredictionEvent.new({"request_id": "r1", "model": "m", "model_version": "1",
    ...     "features": {"x": 1.0}, "prediction": {"label": "a"}, "latency_ms": 5}, time=t0)
    >>> pending = PendingPredictions(ttl_s=60)
    >>> pending.add([pred])
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
        # request id -> row of its latest answered (or shadow) prediction in the blocks
        self._rows: OrderedIndex[int] = OrderedIndex()
        self._shadow_rows: OrderedIndex[int] = OrderedIndex()
        self._blocks: list[_Block] = []
        self._firsts: list[int] = []  # the blocks' first rows, for bisect
        self._next_row = 0
        self._expired = RecentIds(expired_memory)
        self.watermark_ms = 0
        self.evicted_for_space = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, predictions: list[PredictionEvent]) -> int:
        """Remember predictions; how many."""
        return self.add_rows([event.model_dump() for event in predictions])

    def add_rows(self, rows: list[dict[str, Any]]) -> int:
        """:meth:`add` for predictions given as rows (:mod:`streams.rows`).

        A shadow prediction (route ``shadow``: the challenger scored the request
        but did not answer) is kept apart from the answered one of the same
        request, so feedback meets both (see :meth:`match_shadow`). A request
        predicted again keeps its latest prediction: adding the same predictions
        twice (a recovery reads them again) leaves the join as it was.
        """
        return self.add_frame(PredictionFrame.from_rows(rows))

    def add_frame(self, frame: PredictionFrame) -> int:
        """:meth:`add_rows` for predictions given as a frame."""
        n = len(frame)
        if not n:
            return 0
        first = self._next_row
        self._next_row += n
        self._blocks.append(_Block.of(frame, first))
        self._firsts.append(first)
        rows = range(first, first + n)
        routes = frame.routes
        if "shadow" not in routes:
            # the usual batch: answered predictions, appended in order
            self._rows.put_many(frame.request_ids, rows)
            self.watermark_ms = max(self.watermark_ms, int(frame.time_ms.max()))
        else:
            for index, shadow in ((self._rows, False), (self._shadow_rows, True)):
                chosen = [i for i, route in enumerate(routes) if (route == "shadow") == shadow]
                index.put_many([frame.request_ids[i] for i in chosen], [rows[i] for i in chosen])
                if not shadow and chosen:
                    newest = int(frame.time_ms[chosen].max())
                    self.watermark_ms = max(self.watermark_ms, newest)
            for _ in range(len(self._shadow_rows) - self.max_pending):
                self._shadow_rows.pop_oldest()
        excess = len(self._rows) - self.max_pending
        if excess > 0:
            self._expired.seen_many([self._rows.pop_oldest()[0] for _ in range(excess)])
            self.evicted_for_space += excess
        self._drop_blocks()
        return n

    def entries(self) -> list[PendingEntry]:
        """The answered predictions waiting, oldest first."""
        return [self._entry(row) for _, row in self._rows.items()]

    def _entry(self, row: int) -> PendingEntry:
        return self._blocks[bisect_right(self._firsts, row) - 1].entry(row)

    def _waiting(self, request_id: str, row: int) -> bool:
        """Whether ``row`` is the prediction of ``request_id`` still waiting (not one
        replaced by a later prediction of the same request, or dropped)."""
        return self._rows.get(request_id) == row or self._shadow_rows.get(request_id) == row

    def _drop_blocks(self) -> None:
        """Forget the blocks no waiting prediction is in any more."""
        live = [found[1] for found in (self._rows.oldest(), self._shadow_rows.oldest()) if found]
        oldest = min(live, default=self._next_row)
        drop = 0
        while drop < len(self._blocks) and self._blocks[drop].end <= oldest:
            drop += 1
        if drop:
            del self._blocks[:drop], self._firsts[:drop]

    def advance(self, now_ms: int) -> int:
        """Move event time on to ``now_ms``; drop predictions past the TTL and say how many."""
        self.watermark_ms = max(self.watermark_ms, now_ms)
        horizon = self.watermark_ms - self.ttl_ms
        # predictions go in the order they came, up to the first one inside the TTL (they
        # come mostly in time order; a few late ones may wait one more round)
        bound = self._next_row
        for block in self._blocks:
            bound = next(
                (
                    block.first + at
                    for at in np.flatnonzero(block.time_ms >= horizon).tolist()
                    if self._waiting(block.request_ids[at], block.first + at)
                ),
                bound,
            )
            if bound < self._next_row:
                break
        self._shadow_rows.pop_oldest_below(bound)
        dropped = self._rows.pop_oldest_below(bound)
        self._expired.seen_many(dropped)
        self._drop_blocks()
        return len(dropped)

    def match(self, feedback: FeedbackEvent) -> OutcomeEvent | JoinMiss:
        """The outcome of this feedback, or why there is none."""
        request_id = feedback.data.request_id
        row = self._rows.get(request_id)
        if row is None:
            if request_id in self._expired:
                return JoinMiss(
                    "expired",
                    f"the prediction of request {request_id} is older than the "
                    f"{self.ttl_ms / 1000:g} s TTL",
                )
            return JoinMiss("unknown", f"no prediction of request {request_id} was seen")
        entry = self._entry(row)
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
        row = self._shadow_rows.get(feedback.data.request_id)
        if row is None or feedback.data.label is None:
            return None
        return outcome_for(self._entry(row), feedback, implicit=False)


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
