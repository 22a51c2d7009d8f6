"""A river classifier behind one small interface: learn, predict, pickle.

Every model the system trains, serves and compares is an
:class:`OnlineClassifier`, whatever river pipeline is inside, so the retrain
worker, the prediction service and the evaluation code never look at river
types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from river import base

__all__ = ["Features", "OnlineClassifier", "Prediction"]

Features = Mapping[str, float | int | bool | str | None]
"""A request as features: name → number, string, or ``None`` (missing)."""


class Prediction(NamedTuple):
    """What a model answers: a label and its probability, or ``None`` for a null return."""

    label: str | None
    score: float | None


_NULL = Prediction(None, None)


def clean_features(features: Features) -> dict[str, float | str]:
    """The features a river pipeline can take: missing and non-finite values dropped.

    River's scalers turn one NaN into NaN forever, so missing values are left
    out (a linear model then gives that feature no weight, the same as the
    standardised mean). Booleans become 0.0 / 1.0.

    Examples
    --------
    >>> clean_features({"a": 1, "b": None, "c": float("nan"), "d": "en-GB", "e": True})
    {'a': 1.0, 'd': 'en-GB', 'e': 1.0}
    """
    clean: dict[str, float | str] = {}
    for name, value in features.items():
        if isinstance(value, str):
            clean[name] = value
        elif value is not None:
            number = float(value)
            if math.isfinite(number):
                clean[name] = number
    return clean


class OnlineClassifier:
    """A river classifier that learns one example at a time and answers with a score.

    Parameters
    ----------
    name
        Registry name of the pipeline (e.g. ``"voice_intent"``).
    estimator
        The river classifier (usually a pipeline) that does the work.
    params
        The parameters it was built with (kept for lineage).
    online_learning
        When true, :meth:`learn_from_feedback` keeps teaching the served model
        with the labels that users' feedback brings back.
    abstain_below
        Answer with a null return (label ``None``, score kept) when the top
        probability is below this; ``None`` never abstains.

    Notes
    -----
    A model that has learned nothing answers ``Prediction(None, None)``: the
    system's null return, never an arbitrary label. Instances pickle (artifacts
    are pickled) and predict the same after a round trip.

    Examples
    --------
    >>> from river import linear_model, multiclass, preprocessing
    >>> model = OnlineClassifier(
    ...     "demo",
    ...     preprocessing.StandardScaler()
    ...     | multiclass.OneVsRestClassifier(linear_model.LogisticRegression()),
    ... )
    >>> model.predict_one({"x": 1.0})
    Prediction(label=None, score=None)
    >>> model.learn_many([({"x": float(i % 2)}, "odd" if i % 2 else "even") for i in range(200)])
    200
    >>> model.predict_one({"x": 1.0}).label, model.predict_one({"x": 0.0}).label
    ('odd', 'even')
    """

    def __init__(
        self,
        name: str,
        estimator: base.Classifier,
        *,
        params: Mapping[str, Any] | None = None,
        online_learning: bool = False,
        abstain_below: float | None = None,
    ) -> None:
        if abstain_below is not None and not 0.0 <= abstain_below <= 1.0:
            raise ValueError(f"abstain_below must be in [0, 1] or None, got {abstain_below}")
        self.name = name
        self.estimator = estimator
        self.params: dict[str, Any] = dict(params or {})
        self.online_learning = online_learning
        self.abstain_below = abstain_below
        self.learned = 0
        self.labels: set[str] = set()
        self.training_seconds: float | None = None

    def __repr__(self) -> str:
        return (
            f"OnlineClassifier(name={self.name!r}, learned={self.learned}, "
            f"labels={sorted(self.labels)}, online_learning={self.online_learning})"
        )

    def learn_one(self, features: Features, label: str) -> None:
        """Learn one labelled example."""
        self.estimator.learn_one(clean_features(features), label)
        self.learned += 1
        self.labels.add(label)

    def learn_many(self, rows: Iterable[Sequence[Any]]) -> int:
        """Learn ``(features, label)`` rows (extra items such as a segment are ignored).

        Returns how many rows were learned.
        """
        learn = self.estimator.learn_one
        labels = self.labels
        count = 0
        for row in rows:
            features, label = row[0], row[1]
            learn(clean_features(features), label)
            labels.add(label)
            count += 1
        self.learned += count
        return count

    def learn_from_feedback(self, features: Features, label: str | None) -> bool:
        """Learn a served request's ground truth, when online learning is on.

        Returns whether the model learned (``False`` when online learning is
        off or the feedback carried no label).
        """
        if not self.online_learning or label is None:
            return False
        self.learn_one(features, label)
        return True

    def predict_one(self, features: Features) -> Prediction:
        """The most probable label and its probability, or a null return."""
        if not self.learned:
            return _NULL
        probabilities = self.estimator.predict_proba_one(clean_features(features))
        if not probabilities:
            return _NULL
        label = max(probabilities, key=probabilities.__getitem__)
        score = float(probabilities[label])
        if self.abstain_below is not None and score < self.abstain_below:
            return Prediction(None, score)
        return Prediction(label, score)

    def predict_many(self, batch: Iterable[Features]) -> list[Prediction]:
        """:meth:`predict_one` for each request of a batch."""
        return [self.predict_one(features) for features in batch]
