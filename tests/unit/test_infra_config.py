"""The parts of driftloop.infra that need no running service."""

from __future__ import annotations

import base64
import os
import socket
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftloop.infra import InfraError, PortInUseError, down, status, up
from driftloop.infra.cli import app
from driftloop.infra.kafka import KafkaBroker, new_cluster_id, render_server_properties
from driftloop.infra.process import port_is_free
from driftloop.infra.redis import RedisServer, redis_server_args
from streams.settings import Settings


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        kafka_port=29092,
        kafka_controller_port=29093,
        redis_port=26379,
        state_dir=tmp_path / "state",
        _env_file=None,
    )


def test_server_properties_use_configured_ports_on_loopback(settings: Settings) -> None:
    props = _props(render_server_properties(settings, Path("/data/kafka")))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    assert props["log.dirs"] == "/data/kafka"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "true"
    assert "controller.quorum.voters" not in props
    assert "0.0.0.0" not in str(props)


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
        assert not cid.startswith("-")


def test_redis_runs_in_foreground_with_aof_on_loopback(tmp_path: Path) -> None:
    args = redis_server_args(26379, tmp_path)
    opts = dict(zip(args[::2], args[1::2], strict=True))
    assert opts["--bind"] == "127.0.0.1"
    assert opts["--port"] == "26379"
    assert opts["--appendonly"] == "yes"
    assert opts["--daemonize"] == "no"
    assert opts["--dir"] == str(tmp_path)


def test_pom_template_names_the_broker_and_the_log_binding() -> None:
    pom = resources.files("driftloop.infra").joinpath("kafka-runtime.pom.xml").read_text()
    rendered = pom.replace("@KAFKA_VERSION@", "4.1.1")
    assert "@" not in rendered
    assert "<artifactId>kafka_2.13</artifactId>\n      <version>4.1.1</version>" in rendered
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom


def test_state_layout(settings: Settings) -> None:
    kafka, redis = KafkaBroker(settings), RedisServer(settings)
    home = settings.state_dir.absolute()
    assert kafka.pid_file == home / "kafka" / "kafka.pid"
    assert kafka.data_dir == home / "kafka" / "data"
    assert kafka.log_file == home / "kafka" / "server.log"
    assert redis.pid_file == home / "redis" / "redis.pid"
    assert redis.log_file == home / "redis" / "redis.log"


def test_status_of_a_fresh_state_dir(settings: Settings) -> None:
    report = status(settings)
    assert list(report) == ["kafka", "redis"]
    for st in report.values():
        assert not st.running and st.pid is None
    assert report["kafka"].address == "127.0.0.1:29092"


@pytest.mark.parametrize("content", [f"{os.getpid()}\n", "999999999\n", "garbage"])
def test_stale_pid_file_is_removed(settings: Settings, content: str) -> None:
    # This test's own pid is alive but is no Kafka; the others name nothing.
    for svc in (KafkaBroker(settings), RedisServer(settings)):
        svc.home.mkdir(parents=True, exist_ok=True)
        svc.pid_file.write_text(content)
        assert svc.live_pid() is None
        assert not svc.pid_file.exists()
    assert down(settings, echo=lambda _: None) == []


def test_unknown_service_is_refused(settings: Settings) -> None:
    with pytest.raises(InfraError, match="unknown service 'zookeeper'"):
        up(settings, ["zookeeper"])


def test_equal_kafka_ports_are_refused(tmp_path: Path) -> None:
    s = Settings(kafka_port=29094, kafka_controller_port=29094, state_dir=tmp_path, _env_file=None)
    with pytest.raises(InfraError, match="DRIFTLOOP_KAFKA_CONTROLLER_PORT"):
        up(s, ["kafka"], echo=lambda _: None)


def test_taken_controller_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port)
        s = Settings(
            kafka_controller_port=port, kafka_port=29095, state_dir=tmp_path, _env_file=None
        )
        with pytest.raises(PortInUseError, match=rf"port {port}.*DRIFTLOOP_KAFKA_CONTROLLER_PORT"):
            up(s, ["kafka"], echo=lambda _: None)
        assert "DRIFTLOOP_KAFKA_CONTROLLER_PORT" in status(s)["kafka"].detail


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "DRIFTLOOP_KAFKA_PORT": "29092",
        "DRIFTLOOP_KAFKA_CONTROLLER_PORT": "29093",
        "DRIFTLOOP_REDIS_PORT": "26379",
        "DRIFTLOOP_STATE_DIR": str(tmp_path / "state"),
    }


def test_cli_down_with_missing_started_file_stops_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["down", "--started-file", str(tmp_path / "absent")], env=_env(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "nothing to stop" in result.output


def test_cli_status_exit_code_and_quiet(tmp_path: Path) -> None:
    runner = CliRunner()
    quiet = runner.invoke(app, ["status", "--quiet"], env=_env(tmp_path))
    assert quiet.exit_code == 1
    assert quiet.output == ""
    loud = runner.invoke(app, ["status", "--only", "redis"], env=_env(tmp_path))
    assert loud.exit_code == 1
    assert "redis" in loud.output and "kafka" not in loud.output


def test_cli_rejects_unknown_service(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["up", "--only", "zookeeper"], env=_env(tmp_path))
    assert result.exit_code == 2
