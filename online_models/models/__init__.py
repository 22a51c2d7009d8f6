"""Model pipelines by name, their training, evaluation and comparison — Kafka-free.

:func:`build_model` / :func:`train` make an :class:`OnlineClassifier` of a
registered pipeline (``voice_intent``, ``tabular``) from configuration;
:func:`evaluate` scores it overall and per segment; :func:`compare` says where
a candidate beats or loses to the champion and whether it clears a
:class:`ComparisonBar`. Seeded synthetic rows for tests and demos are in
:mod:`online_models.models.datasets`.
"""

from online_models.models.classifier import Features, OnlineClassifier, Prediction
from online_models.models.comparison import Comparison, ComparisonBar, SegmentDelta, compare
from online_models.models.evaluation import Evaluation, Tally, evaluate
from online_models.models.exceptions import (
    ComparisonError,
    InvalidParamsError,
    ModelError,
    UnknownModelError,
)
from online_models.models.pipelines import (
    ESTIMATORS,
    ModelSpec,
    build_model,
    model_names,
    model_spec,
    register_model,
)
from online_models.models.training import train

__all__ = [
    "ESTIMATORS",
    "Comparison",
    "ComparisonBar",
    "ComparisonError",
    "Evaluation",
    "Features",
    "InvalidParamsError",
    "ModelError",
    "ModelSpec",
    "OnlineClassifier",
    "Prediction",
    "SegmentDelta",
    "Tally",
    "UnknownModelError",
    "build_model",
    "compare",
    "evaluate",
    "model_names",
    "model_spec",
    "register_model",
    "train",
]
