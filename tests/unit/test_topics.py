"""The topic registry (streams/topics.py): one topic per event type, co-partitioned join."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.events import EVENT_CLASSES, CloudEvent
from streams.exceptions import UnknownEventTypeError, UnknownTopicError
from streams.settings import Settings
from streams.topics import TOPICS, TopicSpec, get_topic, register_topic, topic_for_event

EXPECTED_NAMES = {
    "predictions",
    "feedback",
    "outcomes",
    "metrics",
    "alerts",
    "retrain-requests",
    "model-events",
    "dead-letters",
}


@pytest.fixture
def restore_topics() -> Iterator[dict[str, TopicSpec]]:
    """The registry, put back as it was after the test."""
    saved = dict(TOPICS)
    yield TOPICS
    TOPICS.clear()
    TOPICS.update(saved)


def _spec(name: str, partitions: int = 1) -> TopicSpec:
    return TopicSpec(name, "model", None, partitions, 1000, "a test topic")


def test_registry_holds_the_contract_topics() -> None:
    assert set(TOPICS) == EXPECTED_NAMES
    assert all(name == spec.name for name, spec in TOPICS.items())


@pytest.mark.parametrize("type_name", sorted(EVENT_CLASSES))
def test_every_event_type_has_exactly_one_topic(type_name: str) -> None:
    cls: type[CloudEvent] = EVENT_CLASSES[type_name]
    carrying = [spec for spec in TOPICS.values() if spec.event_class is cls]

    assert len(carrying) == 1
    assert topic_for_event(type_name) is carrying[0]
    assert carrying[0].key == cls.key_field  # the record key is the topic's key field


def test_dead_letters_carry_no_event_schema() -> None:
    assert get_topic("dead-letters").event_class is None


def test_topic_for_an_unknown_type_is_an_error() -> None:
    with pytest.raises(UnknownEventTypeError, match=r"driftloop\.prediction\.v2"):
        topic_for_event("driftloop.prediction.v2")


def test_predictions_and_feedback_are_co_partitioned() -> None:
    predictions, feedback = get_topic("predictions"), get_topic("feedback")
    assert predictions.key == feedback.key == "request_id"
    assert predictions.partitions == feedback.partitions


def test_unknown_topic_lists_every_valid_name() -> None:
    with pytest.raises(UnknownTopicError) as exc_info:
        get_topic("prediction")
    message = str(exc_info.value)
    assert "'prediction'" in message
    for name in TOPICS:
        assert name in message
    assert isinstance(exc_info.value, KeyError)  # callers that catch KeyError still work


def test_register_topic_adds_it(restore_topics: dict[str, TopicSpec]) -> None:
    spec = register_topic(_spec("test-extra", partitions=3))
    assert get_topic("test-extra") is spec
    assert spec.full_name("t1.") == "t1.test-extra"


def test_register_topic_refuses_a_duplicate_name(restore_topics: dict[str, TopicSpec]) -> None:
    before = dict(TOPICS)
    with pytest.raises(ValueError, match="already registered"):
        register_topic(_spec("predictions"))
    assert dict(TOPICS) == before


@pytest.mark.parametrize("partitions", [0, -1])
def test_register_topic_refuses_fewer_than_one_partition(
    restore_topics: dict[str, TopicSpec], partitions: int
) -> None:
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        register_topic(_spec("test-empty", partitions=partitions))
    assert "test-empty" not in TOPICS


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_full_name_applies_the_prefix(name: str) -> None:
    assert get_topic(name).full_name("driftloop.") == f"driftloop.{name}"
    assert get_topic(name).full_name("") == name


def test_settings_topic_uses_the_configured_prefix() -> None:
    config = Settings(topic_prefix="t1.", _env_file=None)
    assert config.topic("alerts") == "t1.alerts"
    assert config.topic("alerts") == get_topic("alerts").full_name(config.topic_prefix)
