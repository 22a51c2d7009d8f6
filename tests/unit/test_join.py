"""Feedback meets its prediction in event time (streams/join.py), without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.events import FeedbackEvent, OutcomeEvent, PredictionEvent
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


def test_entries_reload_from_the_changelog():
    original = PendingPredictions(ttl_s=600)
    entries = original.add([prediction("r1", 0, label=None), prediction("r2", 1)])
    recovered = PendingPredictions(ttl_s=600)
    recovered.load(entries)
    out = recovered.match(feedback("r1", 5, label="weather"))
    assert isinstance(out, OutcomeEvent)
    assert out.data.predicted_label is None and out.data.correct is False
