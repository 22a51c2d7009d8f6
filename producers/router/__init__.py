"""The prediction router (``driftloop serve``): champion and challenger behind one HTTP API.

:class:`RouterService` answers ``POST /predict`` with the version the model's
routing policy picks (champion, canary challenger, or champion with the
challenger in shadow), publishes a prediction event per answer through the SDK
(:class:`PredictionSink`), and hot-swaps models when a model event arrives
(:class:`ModelEventWatcher`) — :class:`ServedModels` rebuilds them from the
routing state in Redis and the signed artifacts in the registry.
"""

from producers.router.audio import WavClipFeaturiser
from producers.router.exceptions import (
    AudioUnavailableError,
    BadRequestError,
    ModelNotServedError,
    ModelUnavailableError,
    RouterError,
)
from producers.router.models import Candidate, LoadedModel, ServedModel, ServedModels, routing_key
from producers.router.service import PredictRequest, RouterService, build_app
from producers.router.sink import PredictionSink, SinkStats
from producers.router.watcher import ModelEventWatcher

__all__ = [
    "AudioUnavailableError",
    "BadRequestError",
    "Candidate",
    "LoadedModel",
    "ModelEventWatcher",
    "ModelNotServedError",
    "ModelUnavailableError",
    "PredictRequest",
    "PredictionSink",
    "RouterError",
    "RouterService",
    "ServedModel",
    "ServedModels",
    "SinkStats",
    "WavClipFeaturiser",
    "build_app",
    "routing_key",
]
