"""The local Kafka broker and Redis server, started and stopped for real.

The tests share one state directory and one set of free ports and run in file
order: start, use, restart Redis, stop. They never touch the default ports, so
a broker someone runs with ``make up`` is left alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from driftloop.infra import InfraError, down, status, up
from driftloop.infra.process import port_accepts
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    kafka_port, controller_port, redis_port = _free_ports(3)
    s = Settings(
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        redis_port=redis_port,
        state_dir=tmp_path_factory.mktemp("infra-state"),
        start_timeout_s=60,
        kafka_heap="512m",
        _env_file=None,
    )
    yield s
    # Whatever a failing test left running must not outlive the session.
    down(s, echo=lambda _: None)


def _pids(s: Settings) -> dict[str, int]:
    files = {
        "kafka": Path(s.state_dir, "kafka", "kafka.pid"),
        "redis": Path(s.state_dir, "redis", "redis.pid"),
    }
    return {name: int(f.read_text()) for name, f in files.items() if f.exists()}


def test_up_starts_both_and_status_says_running(settings: Settings) -> None:
    lines: list[str] = []
    assert up(settings, echo=lines.append) == ["kafka", "redis"]
    report = status(settings)
    assert list(report) == ["kafka", "redis"]
    assert all(st.running for st in report.values()), report
    assert {name: st.pid for name, st in report.items()} == _pids(settings)
    assert report["kafka"].address == settings.kafka_bootstrap_servers
    assert any("kafka: ready" in line for line in lines)


def test_second_up_starts_nothing(settings: Settings) -> None:
    before = _pids(settings)
    lines: list[str] = []
    assert up(settings, echo=lines.append) == []
    assert _pids(settings) == before
    assert sum("already running" in line for line in lines) == 2


def test_broker_and_redis_serve_clients(settings: Settings) -> None:
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000
    )
    try:
        admin.create_topics([NewTopic("driftloop.infra-test", 1, 1)])
        assert "driftloop.infra-test" in admin.list_topics()
    finally:
        admin.close()
    client = redis.Redis.from_url(settings.redis_url)
    client.set("driftloop:infra-test", b"v1")
    assert client.get("driftloop:infra-test") == b"v1"
    client.close()


def test_redis_data_survives_restart(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    client.set("driftloop:persisted", b"kept")
    client.close()
    assert down(settings, ["redis"], echo=lambda _: None) == ["redis"]
    assert not status(settings)["redis"].running
    assert up(settings, ["redis"], echo=lambda _: None) == ["redis"]
    client = redis.Redis.from_url(settings.redis_url)
    assert client.get("driftloop:persisted") == b"kept"
    client.close()


def test_down_stops_everything(settings: Settings) -> None:
    pids = _pids(settings)
    assert set(pids) == {"kafka", "redis"}
    assert sorted(down(settings, echo=lambda _: None)) == ["kafka", "redis"]
    assert not any(_pid_alive(pid) for pid in pids.values())
    assert _pids(settings) == {}
    for port in (settings.kafka_port, settings.kafka_controller_port, settings.redis_port):
        assert not port_accepts(port)
    assert not any(st.running for st in status(settings).values())


def test_down_again_is_harmless(settings: Settings) -> None:
    assert down(settings, echo=lambda _: None) == []


@pytest.mark.parametrize(
    ("service", "field", "variable"),
    [
        ("kafka", "kafka_port", "DRIFTLOOP_KAFKA_PORT"),
        ("redis", "redis_port", "DRIFTLOOP_REDIS_PORT"),
    ],
)
def test_taken_port_fails_with_its_number(
    tmp_path: Path, service: str, field: str, variable: str
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        others = dict(
            zip(("kafka_port", "kafka_controller_port", "redis_port"), _free_ports(3), strict=True)
        )
        others[field] = port
        s = Settings(**others, state_dir=tmp_path, _env_file=None)
        with pytest.raises(InfraError, match=rf"port {port}\b.*{variable}"):
            up(s, [service], echo=lambda _: None)
    assert not any(st.running or st.pid for st in status(s).values())
