"""Synthetic voice-search traffic: predictions and the users' feedback, seeded.

Stands in for a real prediction service until the audio scenario exists: each
request carries the features the audio featuriser will produce (clip
duration, loudness, leading and trailing silence, clipping), the intent the
model answered, and what the user did next — confirm, redo the search or
switch to typing when the answer was wrong.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["INTENTS", "SimulatedRequest", "VoiceSearchSimulator"]

INTENTS = ("weather", "music", "news", "navigation", "timer", "shopping")
LOCALES = ("en-GB", "en-US", "de-DE")
DEVICES = ("android", "ios", "speaker")


@dataclass(frozen=True)
class SimulatedRequest:
    """One request: the prediction event's data, the feedback's data, and their event times."""

    prediction: dict[str, Any]
    feedback: dict[str, Any]
    predicted_at: datetime
    feedback_at: datetime


class VoiceSearchSimulator:
    """Generate voice-search requests at a given rate of event time.

    Parameters
    ----------
    seed
        Makes the stream reproducible.
    accuracy
        Probability that the model's intent is the user's intent.
    model, model_version
        What the predictions say answered them.
    start
        Event time of the first request.
    requests_per_second
        Spacing of requests in event time.

    Examples
    --------
    >>> sim = VoiceSearchSimulator(seed=7, start=datetime(2026, 1, 1, tzinfo=UTC))
    >>> first = next(iter(sim.requests(1)))
    >>> sorted(first.prediction["features"])
    ['clip_duration_s', 'clipping_ratio', 'leading_silence_s', 'loudness_db', 'trailing_silence_s']
    >>> first.prediction["prediction"]["label"] in INTENTS
    True
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        accuracy: float = 0.85,
        model: str = "voice-intent",
        model_version: str = "1",
        start: datetime | None = None,
        requests_per_second: float = 20.0,
    ) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy must be in [0, 1], got {accuracy}")
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        self.rng = random.Random(seed)
        self.accuracy = accuracy
        self.model = model
        self.model_version = model_version
        self.clock = start or datetime.now(UTC)
        self.spacing = timedelta(seconds=1.0 / requests_per_second)
        self._seed = seed
        self._count = 0

    def requests(self, n: int) -> Iterator[SimulatedRequest]:
        """The next ``n`` requests, in event-time order."""
        for _ in range(n):
            yield self._one()

    def _one(self) -> SimulatedRequest:
        rng = self.rng
        self._count += 1
        request_id = f"sim-{self._seed}-{self._count}"
        truth = rng.choice(INTENTS)
        correct = rng.random() < self.accuracy
        answer = truth if correct else rng.choice([i for i in INTENTS if i != truth])
        null_return = rng.random() < 0.01
        duration = max(0.4, rng.gauss(2.2, 0.6))
        predicted_at = self.clock
        self.clock += self.spacing
        prediction = {
            "request_id": request_id,
            "model": self.model,
            "model_version": self.model_version,
            "features": {
                "clip_duration_s": round(duration, 3),
                "loudness_db": round(rng.gauss(-23.0, 3.0), 2),
                "leading_silence_s": round(abs(rng.gauss(0.25, 0.1)), 3),
                "trailing_silence_s": round(abs(rng.gauss(0.35, 0.12)), 3),
                "clipping_ratio": round(max(0.0, rng.gauss(0.002, 0.002)), 5),
            },
            "prediction": {
                "label": None if null_return else answer,
                "score": None if null_return else round(rng.uniform(0.55, 0.99), 3),
            },
            "latency_ms": round(rng.lognormvariate(3.6, 0.35), 2),
            "segment": {"locale": rng.choice(LOCALES), "device": rng.choice(DEVICES)},
            "route": "champion",
        }
        wrong = null_return or not correct
        feedback: dict[str, Any] = {"request_id": request_id, "model": self.model}
        if wrong:
            feedback["redo_search"] = rng.random() < 0.7
            feedback["switched_to_typing"] = not feedback["redo_search"] and rng.random() < 0.6
            feedback["clicked"] = False
        else:
            feedback["redo_search"] = rng.random() < 0.03
            feedback["switched_to_typing"] = False
            feedback["clicked"] = rng.random() < 0.8
        if rng.random() < 0.3:  # some users' queries get a ground-truth label later
            feedback["label"] = truth
        feedback_at = predicted_at + timedelta(seconds=rng.uniform(1.0, 30.0))
        return SimulatedRequest(prediction, feedback, predicted_at, feedback_at)
