"""Fixtures that give every integration test a real Kafka broker and a real Redis.

Where the services come from, in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` (or their ``DRIFTLOOP_`` forms, or
   the defaults 127.0.0.1:9092 and redis://127.0.0.1:6379/0) when they answer;
2. testcontainers, when a Docker engine answers a ping;
3. the project's own local services (``driftloop.infra``, what ``make up``
   runs), started here and stopped at the end of the session.

A service that cannot be had is a test **failure**, never a skip: on CI, and
everywhere else too, since option 3 needs nothing but the machine.

Each test gets its own topic prefix (its own topics) and its own Redis key
namespace, so tests never see each other's records.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from streams.admin import create_topics
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_IMAGE = "apache/kafka:4.1.1"
REDIS_IMAGE = "redis:7.4"


@dataclass(frozen=True)
class Services:
    """Where the real services are for this test session, and how they were obtained."""

    kafka_bootstrap_servers: str
    redis_url: str
    origin: str


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration talks to real services: mark it so."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


def _kafka_answers(bootstrap: str) -> bool:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, bootstrap_timeout_ms=3000, request_timeout_ms=5000
        )
    except KafkaError:
        return False
    admin.close()
    return True


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def _docker_answers() -> bool:
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:  # no engine, no socket, no permission: all mean "not available"
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _containers() -> Iterator[Services]:
    """Kafka (KRaft, official image) and Redis in Docker, through testcontainers."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    kafka_port = _free_port()
    kafka = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, kafka_port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{kafka_port}")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        )
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    cache = DockerContainer(REDIS_IMAGE).with_exposed_ports(6379).with_command("--appendonly yes")
    with kafka, cache:
        wait_for_logs(kafka, "Kafka Server started", timeout=120)
        wait_for_logs(cache, "Ready to accept connections", timeout=60)
        redis_host = cache.get_container_host_ip()
        yield Services(
            f"127.0.0.1:{kafka_port}",
            f"redis://{redis_host}:{cache.get_exposed_port(6379)}/0",
            "testcontainers",
        )


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """The real Kafka broker and Redis server for this session (see the module docstring)."""
    wanted = Settings()
    if _kafka_answers(wanted.kafka_bootstrap_servers) and _redis_answers(wanted.redis_url):
        yield Services(wanted.kafka_bootstrap_servers, wanted.redis_url, "already running")
        return
    if _docker_answers():
        with _containers() as found:
            yield found
        return

    from driftloop.infra import InfraError, down, up

    local = Settings(state_dir=REPO_ROOT / ".driftloop")
    try:
        started = up(local, echo=lambda line: print(f"[services] {line}"))
    except InfraError as exc:
        pytest.fail(
            f"no Kafka/Redis for the integration tests: {exc}\n"
            "Fix the cause above, or point KAFKA_BOOTSTRAP_SERVERS / REDIS_URL at running ones.",
            pytrace=False,
        )
    try:
        if not (_kafka_answers(local.kafka_bootstrap_servers) and _redis_answers(local.redis_url)):
            pytest.fail("the local services started but do not answer", pytrace=False)
        yield Services(local.kafka_bootstrap_servers, local.redis_url, "started by the tests")
    finally:
        down(local, tuple(started), echo=lambda line: print(f"[services] {line}"))


@pytest.fixture
def settings(services: Services) -> Settings:
    """Settings pointing at the real services, with a topic prefix of this test's own."""
    return Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        redis_url=services.redis_url,
        topic_prefix=f"test-{uuid.uuid4().hex[:10]}.",
        connect_timeout_ms=10_000,
        _env_file=None,
    )


@pytest.fixture
def topics(settings: Settings) -> Iterator[Settings]:
    """This test's topics, created on the broker (and deleted afterwards)."""
    report = create_topics(settings)
    yield settings
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_topics([t.name for t in report.topics], raise_errors=False)
    finally:
        admin.close()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[tuple[redis.Redis, str]]:
    """A client of the real Redis and a key namespace of this test's own (cleaned up after)."""
    client = redis.Redis.from_url(settings.redis_url)
    namespace = f"test:{uuid.uuid4().hex[:10]}:"
    yield client, namespace
    keys = list(client.scan_iter(match=namespace + "*"))
    if keys:
        client.delete(*keys)
    client.close()
