"""Train a registered pipeline on labelled rows."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from online_models.models.classifier import OnlineClassifier
from online_models.models.pipelines import build_model

__all__ = ["train"]


def train(
    name: str,
    rows: Iterable[Sequence[Any]],
    params: Mapping[str, Any] | None = None,
    *,
    online_learning: bool = False,
) -> OnlineClassifier:
    """A model of pipeline ``name`` trained on ``rows``, one pass in order.

    Parameters
    ----------
    name
        A registered pipeline (see :func:`~online_models.models.model_names`).
    rows
        ``(features, label)`` pairs, or longer tuples whose first two items
        are those (such as :class:`~online_models.models.datasets.LabelledRow`).
        Order matters to an online learner: pass them in event-time order.
    params
        Pipeline parameters over its defaults.
    online_learning
        Whether the served model keeps learning from labelled feedback.

    Returns
    -------
    OnlineClassifier
        With ``training_seconds`` (wall time of the pass) and ``learned`` set.

    Examples
    --------
    >>> from online_models.models.datasets import tabular_rows
    >>> model = train("tabular", tabular_rows(3_000, seed=0))
    >>> model.learned, sorted(model.labels)
    (3000, ['churn', 'stay'])
    >>> model.predict_one({"tenure_months": 1.0, "support_calls": 6.0, "plan": "basic"}).label
    'churn'
    """
    model = build_model(name, params, online_learning=online_learning)
    started = time.perf_counter()
    model.learn_many(rows)
    model.training_seconds = time.perf_counter() - started
    return model
