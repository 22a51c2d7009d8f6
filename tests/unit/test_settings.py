"""Settings from the environment (streams/settings.py), independent of the machine's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.settings import Settings

_UNPREFIXED = {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DRIFTLOOP_*, KAFKA_BOOTSTRAP_SERVERS or REDIS_URL from the machine (any case)."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith("DRIFTLOOP_") or upper in _UNPREFIXED:
            monkeypatch.delenv(name)


def _settings() -> Settings:
    return Settings(_env_file=None)


def test_defaults_point_at_the_local_services() -> None:
    config = _settings()
    assert config.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.topic_prefix == "driftloop."


def test_kafka_port_moves_the_default_bootstrap_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_KAFKA_PORT", "19092")
    config = _settings()
    assert config.kafka_port == 19092
    assert config.kafka_bootstrap_servers == "127.0.0.1:19092"


def test_redis_port_moves_the_default_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_REDIS_PORT", "16379")
    assert _settings().redis_url == "redis://127.0.0.1:16379/0"


@pytest.mark.parametrize(
    "variable", ["KAFKA_BOOTSTRAP_SERVERS", "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"]
)
def test_bootstrap_servers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "broker-a:29092,broker-b:29092")
    monkeypatch.setenv("DRIFTLOOP_KAFKA_PORT", "19092")  # only shapes the default
    assert _settings().kafka_bootstrap_servers == "broker-a:29092,broker-b:29092"


@pytest.mark.parametrize("variable", ["REDIS_URL", "DRIFTLOOP_REDIS_URL"])
def test_redis_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "redis://cache.internal:6380/2")
    monkeypatch.setenv("DRIFTLOOP_REDIS_PORT", "16379")  # only shapes the default
    assert _settings().redis_url == "redis://cache.internal:6380/2"


def test_topic_prefix_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_TOPIC_PREFIX", "staging.")
    assert _settings().topic("alerts") == "staging.alerts"


def test_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS", "from-env:9092")
    config = Settings(kafka_bootstrap_servers="from-arg:9092", _env_file=None)
    assert config.kafka_bootstrap_servers == "from-arg:9092"


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("DRIFTLOOP_KAFKA_PORT", "abc", "kafka_port"),
        ("DRIFTLOOP_KAFKA_PORT", "70000", "kafka_port"),
        ("DRIFTLOOP_REDIS_PORT", "0", "redis_port"),
        ("DRIFTLOOP_PUBLISH_BATCH_EVENTS", "0", "publish_batch_events"),
        ("DRIFTLOOP_PUBLISH_MAX_RECORD_BYTES", "100", "publish_max_record_bytes"),
        ("DRIFTLOOP_KAFKA_VERSION", "3.9.0", "kafka_version"),
        ("DRIFTLOOP_KAFKA_HEAP", "lots", "kafka_heap"),
        ("DRIFTLOOP_START_TIMEOUT_S", "0", "start_timeout_s"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as exc_info:
        _settings()
    assert [error["loc"][0] for error in exc_info.value.errors()] == [field]
    assert field in str(exc_info.value)


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / "driftloop.env"
    env_file.write_text("DRIFTLOOP_KAFKA_PORT=29092\nDRIFTLOOP_TOPIC_PREFIX=dev.\n")
    config = Settings(_env_file=env_file)
    assert config.kafka_bootstrap_servers == "127.0.0.1:29092"
    assert config.topic_prefix == "dev."
