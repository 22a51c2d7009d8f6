"""Synthetic voice-search traffic (producers/simulator.py): seeded, valid, plausible."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from producers.publisher import Publisher
from producers.simulator import INTENTS, SimulatedRequest, VoiceSearchSimulator
from streams.events import FeedbackEvent, PredictionEvent

START = datetime(2026, 1, 1, tzinfo=UTC)


def _requests(n: int, **kwargs: object) -> list[SimulatedRequest]:
    return list(VoiceSearchSimulator(start=START, **kwargs).requests(n))  # type: ignore[arg-type]


def _gave_up_rate(requests: list[SimulatedRequest]) -> float:
    return sum(
        bool(r.feedback["redo_search"] or r.feedback["switched_to_typing"]) for r in requests
    ) / len(requests)


def test_same_seed_gives_identical_requests() -> None:
    assert _requests(300, seed=11) == _requests(300, seed=11)


def test_different_seeds_give_different_traffic() -> None:
    a, b = _requests(50, seed=1), _requests(50, seed=2)
    assert [r.prediction["features"] for r in a] != [r.prediction["features"] for r in b]
    assert [r.feedback_at for r in a] != [r.feedback_at for r in b]


def test_requests_continue_the_stream_rather_than_restart() -> None:
    sim = VoiceSearchSimulator(seed=3, start=START)
    first, second = list(sim.requests(10)), list(sim.requests(10))
    assert first + second == _requests(20, seed=3)
    ids = [r.prediction["request_id"] for r in first + second]
    assert len(set(ids)) == 20


def test_every_generated_request_is_a_valid_prediction_and_feedback() -> None:
    for r in _requests(1000, seed=5):
        prediction = Publisher.build_event("prediction", r.prediction, time=r.predicted_at)
        feedback = Publisher.build_event("feedback", r.feedback, time=r.feedback_at)
        assert isinstance(prediction, PredictionEvent)
        assert isinstance(feedback, FeedbackEvent)
        assert prediction.key == feedback.key == r.prediction["request_id"]
        label = prediction.data.prediction.label
        assert label is None or label in INTENTS


def test_event_times_increase_at_the_requested_rate() -> None:
    requests = _requests(200, seed=9, requests_per_second=50.0)
    times = [r.predicted_at for r in requests]
    assert times[0] == START
    assert all(b - a == timedelta(milliseconds=20) for a, b in itertools.pairwise(times))


def test_feedback_comes_after_its_prediction() -> None:
    for r in _requests(1000, seed=13):
        assert r.predicted_at + timedelta(seconds=1) <= r.feedback_at
        assert r.feedback_at <= r.predicted_at + timedelta(seconds=30)


def test_a_perfect_model_is_never_wrong_when_it_answers() -> None:
    requests = _requests(2000, seed=21, accuracy=1.0)
    answered = [r for r in requests if r.prediction["prediction"]["label"] is not None]
    assert len(answered) > 1900
    for r in answered:
        assert r.feedback["switched_to_typing"] is False
        if "label" in r.feedback:
            assert r.feedback["label"] == r.prediction["prediction"]["label"]


def test_an_always_wrong_model_never_gets_a_click() -> None:
    requests = _requests(2000, seed=21, accuracy=0.0)
    for r in requests:
        assert r.feedback["clicked"] is False
        if "label" in r.feedback:
            assert r.feedback["label"] != r.prediction["prediction"]["label"]


def test_wrong_answers_make_users_redo_or_type_far_more_often() -> None:
    bad = _gave_up_rate(_requests(2000, seed=21, accuracy=0.0))
    good = _gave_up_rate(_requests(2000, seed=21, accuracy=1.0))
    assert bad > 0.8
    assert good < 0.1
    assert bad > 5 * good


def test_lower_accuracy_means_more_redo_searches() -> None:
    rates = [_gave_up_rate(_requests(2000, seed=8, accuracy=a)) for a in (1.0, 0.85, 0.5, 0.0)]
    assert rates == sorted(rates)


@pytest.mark.parametrize("accuracy", [-0.1, 1.01, 2.0, math.nan])
def test_invalid_accuracy_is_refused(accuracy: float) -> None:
    with pytest.raises(ValueError, match="accuracy"):
        VoiceSearchSimulator(accuracy=accuracy)


@pytest.mark.parametrize("rate", [0.0, -5.0])
def test_non_positive_request_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="requests_per_second"):
        VoiceSearchSimulator(requests_per_second=rate)
