"""The topic registry: every driftloop topic, its key, its value schema, its partitions.

Names here are without the configurable prefix (``Settings.topic_prefix``,
default ``driftloop.``). ``predictions`` and ``feedback`` must have the same
number of partitions and the same key (``request_id``), so that the feedback
join is co-partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.events import (
    AlertEvent,
    CloudEvent,
    FeedbackEvent,
    MetricsEvent,
    ModelEventEvent,
    OutcomeEvent,
    PredictionEvent,
    RetrainRequestEvent,
)
from streams.exceptions import UnknownEventTypeError, UnknownTopicError

__all__ = ["TOPICS", "TopicSpec", "get_topic", "register_topic", "topic_for_event"]

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the wire contract.

    Parameters
    ----------
    name
        Name without the prefix, e.g. ``"predictions"``.
    key
        What the record key holds.
    event_class
        Schema of the record values; ``None`` for dead letters, whose values are
        the original bytes of the refused record.
    partitions
        Partitions created by ``driftloop topics create``.
    retention_ms
        How long the broker keeps records (Kafka is the store of record for
        traffic, so retraining windows must fit in it).
    description
        What flows on the topic.
    """

    name: str
    key: str
    event_class: type[CloudEvent] | None
    partitions: int
    retention_ms: int
    description: str

    def full_name(self, prefix: str) -> str:
        """The topic name on the broker."""
        return f"{prefix}{self.name}"


TOPICS: dict[str, TopicSpec] = {}
"""The registry, by name (without prefix)."""


def register_topic(spec: TopicSpec) -> TopicSpec:
    """Add a topic to the registry (a name can be registered once)."""
    if spec.name in TOPICS:
        raise ValueError(f"topic {spec.name!r} is already registered")
    if spec.partitions < 1:
        raise ValueError(f"topic {spec.name!r}: partitions must be >= 1")
    TOPICS[spec.name] = spec
    return spec


def get_topic(name: str) -> TopicSpec:
    """The registered topic of that name (prefix not included).

    Examples
    --------
    >>> get_topic("feedback").key
    'request_id'
    >>> get_topic("feedbacks")
    Traceback (most recent call last):
    ...
    streams.exceptions.UnknownTopicError: unknown topic 'feedbacks'; known: alerts, dead-letters, \
feedback, metrics, model-events, outcomes, predictions, retrain-requests
    """
    try:
        return TOPICS[name]
    except KeyError:
        raise UnknownTopicError(
            f"unknown topic {name!r}; known: {', '.join(sorted(TOPICS))}"
        ) from None


def topic_for_event(event_type: str) -> TopicSpec:
    """The topic that carries events of a given CloudEvents ``type``.

    Examples
    --------
    >>> topic_for_event("driftloop.prediction.v1").name
    'predictions'
    """
    for spec in TOPICS.values():
        if spec.event_class is not None and spec.event_class.type_name == event_type:
            return spec
    raise UnknownEventTypeError(f"no topic carries events of type {event_type!r}")


for _spec in (
    TopicSpec(
        "predictions",
        "request_id",
        PredictionEvent,
        4,
        7 * _DAY_MS,
        "Every answer a model gave: features, prediction, latency, route.",
    ),
    TopicSpec(
        "feedback",
        "request_id",
        FeedbackEvent,
        4,
        7 * _DAY_MS,
        "What users did after an answer: labels, redo search, switch to typing, clicks.",
    ),
    TopicSpec(
        "outcomes",
        "request_id",
        OutcomeEvent,
        4,
        30 * _DAY_MS,
        "Predictions joined with their feedback: the labelled traffic retraining uses.",
    ),
    TopicSpec(
        "metrics",
        "model",
        MetricsEvent,
        1,
        30 * _DAY_MS,
        "One event per closed window per model, version and segment.",
    ),
    TopicSpec(
        "alerts",
        "model",
        AlertEvent,
        1,
        90 * _DAY_MS,
        "Drift and metric alerts, firing then resolved.",
    ),
    TopicSpec(
        "retrain-requests",
        "model",
        RetrainRequestEvent,
        1,
        90 * _DAY_MS,
        "Requests to train a new model version on a window of traffic.",
    ),
    TopicSpec(
        "model-events",
        "model",
        ModelEventEvent,
        1,
        365 * _DAY_MS,
        "Every decision about a model version: published, shadow, canary, promoted, rolled back.",
    ),
    TopicSpec(
        "dead-letters",
        "original key",
        None,
        1,
        30 * _DAY_MS,
        "Records that could not be processed: the original bytes, the reason in headers.",
    ),
):
    register_topic(_spec)
