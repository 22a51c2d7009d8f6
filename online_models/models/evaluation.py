"""How well a model answers labelled rows, overall and per segment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from online_models.models.classifier import OnlineClassifier

__all__ = ["Evaluation", "Tally", "evaluate"]


@dataclass(frozen=True)
class Tally:
    """Counts of one slice of rows: how many, how many right, how many null returns.

    A null return (label ``None``) is an error: the user got no answer.

    Examples
    --------
    >>> tally = Tally(count=200, correct=170, nulls=10)
    >>> tally.accuracy, tally.error_rate, tally.null_rate
    (0.85, 0.15, 0.05)
    >>> Tally().accuracy is None
    True
    """

    count: int = 0
    correct: int = 0
    nulls: int = 0

    @property
    def accuracy(self) -> float | None:
        """Share of rows answered with the true label (0–1); ``None`` without rows."""
        return self.correct / self.count if self.count else None

    @property
    def error_rate(self) -> float | None:
        """Share of rows answered wrongly or not at all (0–1); ``None`` without rows."""
        return (self.count - self.correct) / self.count if self.count else None

    @property
    def null_rate(self) -> float | None:
        """Share of rows given a null return (0–1); ``None`` without rows."""
        return self.nulls / self.count if self.count else None

    def to_dict(self) -> dict[str, float | int | None]:
        """Counts and rates as a JSON-able dict."""
        return {
            "count": self.count,
            "correct": self.correct,
            "nulls": self.nulls,
            "accuracy": self.accuracy,
            "error_rate": self.error_rate,
            "null_rate": self.null_rate,
        }


@dataclass(frozen=True)
class Evaluation:
    """A model's :class:`Tally` over all rows and over each segment ``"key=value"``."""

    overall: Tally
    segments: Mapping[str, Tally] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as a JSON-able dict (for a model version's metadata)."""
        return {
            "overall": self.overall.to_dict(),
            "segments": {name: tally.to_dict() for name, tally in self.segments.items()},
        }


def _segment_values(row: Sequence[Any], keys: Sequence[str] | None) -> list[str]:
    segment: Mapping[str, Any] = row[2] if len(row) > 2 and row[2] else {}
    features: Mapping[str, Any] = row[0]
    if keys is None:
        return [f"{key}={value}" for key, value in segment.items()]
    names = []
    for key in keys:
        value = segment.get(key, features.get(key))
        if value is not None:
            names.append(f"{key}={value}")
    return names


def evaluate(
    model: OnlineClassifier,
    rows: Iterable[Sequence[Any]],
    segments: Sequence[str] | None = None,
) -> Evaluation:
    """Accuracy, error rate and null rate of ``model`` on ``rows``, overall and per segment.

    The model only predicts; it learns nothing here.

    Parameters
    ----------
    model
        The model to evaluate.
    rows
        ``(features, label)`` or ``(features, label, segment)`` tuples, where
        ``segment`` maps a dimension to its value (``{"locale": "de-DE"}``).
    segments
        Dimensions to break the results down by. A dimension is read from the
        row's segment, or else from a feature of that name. ``None`` (the
        default) takes every dimension of each row's segment; ``()`` gives the
        overall result alone.

    Examples
    --------
    >>> from online_models.models import train
    >>> from online_models.models.datasets import voice_intent_rows
    >>> model = train("voice_intent", voice_intent_rows(2_000, seed=1))
    >>> result = evaluate(model, voice_intent_rows(1_500, seed=2), segments=["device"])
    >>> result.overall.count, sorted(result.segments)
    (1500, ['device=android', 'device=ios', 'device=speaker'])
    >>> speaker, ios = result.segments["device=speaker"], result.segments["device=ios"]
    >>> speaker.accuracy < ios.accuracy  # the far-field speaker is the hard segment
    True
    """
    rows = list(rows)
    predictions = model.predict_many(row[0] for row in rows)
    overall = [0, 0, 0]
    by_segment: dict[str, list[int]] = {}
    for row, prediction in zip(rows, predictions, strict=True):
        hit = int(prediction.label is not None and prediction.label == row[1])
        null = int(prediction.label is None)
        overall[0] += 1
        overall[1] += hit
        overall[2] += null
        for name in _segment_values(row, segments):
            counts = by_segment.setdefault(name, [0, 0, 0])
            counts[0] += 1
            counts[1] += hit
            counts[2] += null
    return Evaluation(
        overall=Tally(*overall),
        segments={name: Tally(*by_segment[name]) for name in sorted(by_segment)},
    )
