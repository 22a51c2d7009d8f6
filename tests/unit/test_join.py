"""Feedback meets its prediction in event time (streams/join.py), without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.events import FeedbackEvent, OutcomeEvent, PredictionEvent
from streams.frames import PredictionFrame
from streams.join import JoinMiss, PendingPredictions

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def prediction(request_id: str, seconds: float, label: str | None = "weather") -> PredictionEvent:
    return PredictionEvent.new(
        {
            "request_id": request_id,
            "model": "voice",
            "model_version": "2",
            "features": {"loudness_db": -20.0, "locale": "en-GB"},
            "prediction": {"label": label, "score": 0.7},
            "latency_ms": 30.0,
            "segment": {"device": "ios"},
            "route": "champion",
        },
        time=T0 + timedelta(seconds=seconds),
    )


def feedback(request_id: str, seconds: float, **signals: object) -> FeedbackEvent:
    return FeedbackEvent.new(
        {"request_id": request_id, "model": "voice", **signals},
        time=T0 + timedelta(seconds=seconds),
    )


def test_a_label_within_the_ttl_becomes_an_outcome_with_everything_retraining_needs():
    pending = PendingPredictions(ttl_s=3600)
    pending.add([prediction("r1", 0)])
    fb = feedback("r1", 1800, label="music")  # half an hour later, long after its window
    out = pending.match(fb)
    assert isinstance(out, OutcomeEvent)
    d = out.data
    assert (d.request_id, d.model, d.model_version, d.route) == ("r1", "voice", "2", "champion")
    assert d.features == {"loudness_db": -20.0, "locale": "en-GB"}
    assert d.segment == {"device": "ios"}
    assert (d.predicted_label, d.label, d.correct) == ("weather", "music", False)
    assert d.label_delay_ms == 1_800_000.0
    assert out.time == fb.time and out.id == f"outcome:{fb.id}"


def test_every_piece_of_feedback_is_an_outcome_of_its_own():
    pending = PendingPredictions(ttl_s=3600)
    pending.add([prediction("r1", 0)])
    first = pending.match(feedback("r1", 3, redo_search=True))
    second = pending.match(feedback("r1", 600, label="weather"))
    assert isinstance(first, OutcomeEvent) and isinstance(second, OutcomeEvent)
    assert first.data.redo_search is True and first.data.correct is None
    assert second.data.correct is True and first.id != second.id


def test_a_label_after_the_ttl_is_expired_even_before_the_prediction_is_dropped():
    pending = PendingPredictions(ttl_s=60)
    pending.add([prediction("r1", 0)])
    miss = pending.match(feedback("r1", 61, label="weather"))
    assert isinstance(miss, JoinMiss) and miss.reason == "expired"
    assert "61 s after its prediction" in miss.detail


def test_predictions_past_the_ttl_are_dropped_and_remembered_as_expired():
    pending = PendingPredictions(ttl_s=60)
    pending.add([prediction("r1", 0), prediction("r2", 50)])
    assert pending.advance(int((T0 + timedelta(seconds=100)).timestamp() * 1000)) == 1
    assert len(pending) == 1
    miss = pending.match(feedback("r1", 30, clicked=True))
    assert isinstance(miss, JoinMiss) and miss.reason == "expired"
    assert isinstance(pending.match(feedback("r2", 100, clicked=True)), OutcomeEvent)


def test_feedback_for_a_request_never_seen_is_unknown():
    pending = PendingPredictions(ttl_s=60)
    miss = pending.match(feedback("ghost", 1, clicked=False))
    assert miss == JoinMiss("unknown", "no prediction of request ghost was seen")


def test_memory_is_bounded_and_the_oldest_are_dropped_first():
    pending = PendingPredictions(ttl_s=10_000, max_pending=100)
    pending.add([prediction(f"r{i}", i) for i in range(250)])
    assert len(pending) == 100 and pending.evicted_for_space == 150
    assert pending.match(feedback("r0", 300, clicked=True)).reason == "expired"
    assert isinstance(pending.match(feedback("r249", 300, clicked=True)), OutcomeEvent)


def test_predictions_read_again_after_a_restart_leave_the_join_as_it_was():
    pending = PendingPredictions(ttl_s=600)
    batch = [prediction("r1", 0, label=None), prediction("r2", 1)]
    assert pending.add(batch) == 2
    before = pending.entries()
    pending.add(batch)  # a recovery reads the same predictions again
    assert pending.entries() == before and len(pending) == 2
    out = pending.match(feedback("r1", 5, label="weather"))
    assert isinstance(out, OutcomeEvent)
    assert out.data.predicted_label is None and out.data.correct is False


def test_an_outcome_carries_the_features_exactly_whether_kept_as_a_matrix_or_as_dicts():
    numeric = {"loudness_db": -20.123456789, "snr_db": 1e-300, "duration_s": 3.0}
    frames_of = {
        "matrix": PredictionFrame.from_rows([_row("r1", numeric)]),
        "dicts": PredictionFrame.from_rows([_row("r1", {**numeric, "locale": "en-GB"})]),
    }
    for kind, frame in frames_of.items():
        pending = PendingPredictions(ttl_s=600)
        pending.add_frame(frame)
        assert (frame.feature_matrix() is not None) is (kind == "matrix")
        out = pending.match(feedback("r1", 5, clicked=True))
        assert out.data.features == frame.features[0], kind


def test_shadow_and_answered_predictions_of_one_batch_expire_together_and_free_their_blocks():
    pending = PendingPredictions(ttl_s=60)
    rows = [
        _row("r1", {"x": 1.0, "y": 2.0}, seconds=0),
        _row("r1", {"x": 1.0, "y": 2.0}, seconds=0, route="shadow", version="3"),
        _row("r2", {"x": 5.0, "y": 6.0}, seconds=30),
    ]
    pending.add_rows(rows)
    fb = feedback("r1", 10, label="weather")
    assert pending.match(fb).data.model_version == "2"
    assert pending.match_shadow(fb).data.model_version == "3"
    assert pending.advance(int((T0 + timedelta(seconds=70)).timestamp() * 1000)) == 1
    assert pending.match_shadow(fb) is None and pending.match(fb).reason == "expired"
    assert len(pending._blocks) == 1  # r2 keeps its batch
    pending.advance(int((T0 + timedelta(seconds=100)).timestamp() * 1000))
    assert len(pending) == 0 and pending._blocks == []


@settings(max_examples=300, deadline=None)
@example([[(1, 5), (2, 0), (1, 1)], 30])  # r1 at 5 s, put again at 1 s: only r1 at 1 s counts
@given(
    st.lists(
        st.one_of(
            st.lists(st.tuples(st.integers(0, 9), st.integers(0, 5)), min_size=1, max_size=5),
            st.integers(0, 20).map(lambda step: step * 10),
        ),
        max_size=25,
    )
)
def test_it_answers_as_a_dict_of_the_latest_prediction_per_request_expired_in_order(steps):
    """Against a model: request -> latest prediction, dropped oldest first, in time order."""
    pending = PendingPredictions(ttl_s=30, max_pending=6)
    model: dict[str, int] = {}  # request -> its prediction's time (s), in insertion order
    clock = 0
    for step in steps:
        if isinstance(step, list):  # a batch: (request, seconds after the clock)
            batch = [(f"r{r}", clock + dt) for r, dt in step]
            clock = max(t for _, t in batch)
            pending.add_rows([_row(r, {"x": float(t), "y": 0.0}, seconds=t) for r, t in batch])
            for request, t in batch:
                model.pop(request, None)
                model[request] = t
            while len(model) > 6:
                model.pop(next(iter(model)))
        else:  # advance event time
            clock += step
            pending.advance(int((T0 + timedelta(seconds=clock)).timestamp() * 1000))
            # the oldest go while older than the TTL, up to the first that is not
            for request in list(model):
                if model[request] >= max(clock, pending.watermark_ms // 1000 - T0_S) - 30:
                    break
                del model[request]
        assert [e.request_id for e in pending.entries()] == list(model)
        assert [e.features["x"] for e in pending.entries()] == [float(t) for t in model.values()]


T0_S = int(T0.timestamp())


def _row(
    request_id: str,
    features: dict[str, object],
    *,
    seconds: float = 0,
    route: str = "champion",
    version: str = "2",
) -> dict[str, object]:
    return (
        prediction(request_id, seconds)
        .model_copy(
            update={
                "data": prediction(request_id, seconds).data.model_copy(
                    update={"features": features, "route": route, "model_version": version}
                )
            }
        )
        .model_dump()
    )
