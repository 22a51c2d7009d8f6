"""The rollout controller against the real broker and Redis: shadow → canary → ramp → promote.

Model events and metric windows go through real topics; the controller keeps
its state, the routing policy and the registry aliases in the real Redis, and
survives a kill -9.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from online_models.registry import ModelRegistry
from online_models.routing import RolloutGate, RoutingPolicy
from producers.publisher import Publisher
from retrain.rollout import RolloutController
from retrain.rollout_cli import serve
from streams.events import CloudEvent, ModelEventEvent
from streams.reader import EventReader
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "voice_intent"
SECRET = b"integration-test secret, 32 byte"
SOURCE = "urn:driftloop:rollout"


@pytest.fixture
def rollout_settings(
    topics: Settings, redis_client: tuple[redis.Redis, str]
) -> Iterator[tuple[Settings, ModelRegistry]]:
    """This test's topics and Redis namespace, and a registry with a champion and a challenger."""
    client, namespace = redis_client
    settings = topics.model_copy(update={"registry_namespace": namespace})
    registry = ModelRegistry(client, SECRET, namespace)
    registry.register_version(MODEL, {"weights": [0.1]}, alias="champion")
    registry.register_version(MODEL, {"weights": [0.2]}, alias="challenger")
    yield settings, registry


def publish_window(
    pub: Publisher, version: int, start: datetime, *, requests: int, redo: int
) -> None:
    """One closed 10 s window of one version, split over two segments, as the monitor sends it."""
    for i, locale in enumerate(("en-GB", "de-DE")):
        n = requests // 2 + (i < requests % 2)
        errors = redo // 2 + (i < redo % 2)
        pub.publish(
            "metrics",
            {
                "model": MODEL,
                "model_version": str(version),
                "segment": {"locale": locale},
                "window_start": start,
                "window_end": start + timedelta(seconds=10),
                "count": n,
                "metrics": {
                    "count": float(n),
                    "outcomes": float(n),
                    "redo_rate": errors / n,
                    "null_rate": 0.0,
                    "latency_p99_ms": 140.0,
                    "accuracy": None,
                },
            },
        )
    pub.flush()


def controller_events(
    reader: EventReader,
    seen: list[ModelEventEvent],
    done: Callable[[list[ModelEventEvent]], bool],
    timeout_s: float = 30.0,
) -> list[ModelEventEvent]:
    """Read the controller's model events until ``done(seen)`` (duplicates by id dropped)."""
    deadline = time.monotonic() + timeout_s
    ids = {e.id for e in seen}
    while not done(seen):
        if time.monotonic() > deadline:
            pytest.fail(f"controller events so far: {[e.data.action for e in seen]}")
        for item in list(reader.items(until_idle_s=0.3, max_wait_s=1.0)):
            event: CloudEvent | None = item.event
            if (
                isinstance(event, ModelEventEvent)
                and event.source == SOURCE
                and event.id not in ids
            ):
                ids.add(event.id)
                seen.append(event)
    return seen


def test_better_challenger_goes_from_shadow_to_promoted(
    rollout_settings: tuple[Settings, ModelRegistry], redis_client: tuple[redis.Redis, str]
) -> None:
    settings, registry = rollout_settings
    client, namespace = redis_client
    controller = RolloutController(
        RolloutGate(min_samples=200), error_signal="redo_rate", window_s=10
    )
    stop, lines = threading.Event(), []
    worker = threading.Thread(
        target=serve,
        args=(settings, controller),
        kwargs={"poll_s": 0.2, "stop": stop, "log": lines.append},
        daemon=True,
    )
    worker.start()
    seen: list[ModelEventEvent] = []
    try:
        with (
            Publisher(settings, source="urn:driftloop:retrain") as pub,
            EventReader(settings, ["model-events"]) as reader,
        ):
            pub.publish(
                "model-event",
                {"model": MODEL, "version": 2, "action": "published", "retrain_request_id": "rr"},
            )
            pub.flush()
            for steps in range(1, 6):  # shadow, canary, ramp 25 %, 50 %, 100 %: a gate each
                controller_events(reader, seen, lambda s, steps=steps: len(s) >= steps)
                step = seen[-1]
                assert step.data.action in ("shadow_started", "canary_started", "ramp_step")
                start = step.time + timedelta(seconds=1)
                if step.data.traffic["challenger"] < 1.0:  # the champion still answers some
                    publish_window(pub, 1, start, requests=300, redo=36)
                publish_window(pub, 2, start, requests=300, redo=18)
            controller_events(reader, seen, lambda s: s[-1].data.action == "promoted")
    finally:
        stop.set()
        worker.join(timeout=15)
    assert not worker.is_alive()

    assert [e.data.action for e in seen] == [
        "shadow_started",
        "canary_started",
        "ramp_step",
        "ramp_step",
        "ramp_step",
        "promoted",
    ]
    assert [e.data.traffic["challenger"] for e in seen] == [0.0, 0.05, 0.25, 0.5, 1.0, 0.0]
    assert all(e.data.version == 2 and e.data.retrain_request_id == "rr" for e in seen)
    assert [e.time for e in seen] == sorted(e.time for e in seen)
    policy = RoutingPolicy.from_json(client.get(f"{namespace}routing:{MODEL}"))
    assert (policy.champion, policy.challenger, policy.phase) == (2, None, "serving")
    assert registry.aliases(MODEL) == {"champion": 2}
    assert registry.get_version(MODEL, 1).status == "archived"
    assert any("promoted" in line for line in lines)


def start_controller(settings: Settings, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DRIFTLOOP_REDIS_URL": settings.redis_url,
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLOOP_REGISTRY_NAMESPACE": settings.registry_namespace,
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "retrain.rollout_cli", "--poll-interval", "0.2"]
    command += ["--window-s", "10", "--min-samples", "200", "--error-signal", "redo_rate"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, *extra], cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def test_worse_challenger_is_rolled_back_by_a_controller_restarted_after_kill_9(
    rollout_settings: tuple[Settings, ModelRegistry],
    redis_client: tuple[redis.Redis, str],
    tmp_path: Path,
) -> None:
    settings, registry = rollout_settings
    client, namespace = redis_client
    log = tmp_path / "rollout.log"
    first = start_controller(settings, log)
    seen: list[ModelEventEvent] = []
    try:
        with (
            Publisher(settings, source="urn:driftloop:retrain") as pub,
            EventReader(settings, ["model-events"]) as reader,
        ):
            pub.publish("model-event", {"model": MODEL, "version": 2, "action": "published"})
            pub.flush()
            controller_events(reader, seen, lambda s: len(s) >= 1, timeout_s=60)
            assert seen[0].data.action == "shadow_started"
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)

            start = seen[0].time + timedelta(seconds=1)
            publish_window(pub, 1, start, requests=400, redo=40)  # 10 % redo
            publish_window(pub, 2, start, requests=400, redo=120)  # 30 % redo
            second = start_controller(settings, log, "--until-idle", "2")
            try:
                assert second.wait(timeout=60) == 0, log.read_text()
            finally:
                if second.poll() is None:
                    second.kill()
            controller_events(reader, seen, lambda s: len(s) >= 2, timeout_s=10)
            # nothing more: the restarted controller did not start the shadow again
            time.sleep(0.5)
            controller_events(reader, seen, lambda s: True)
    finally:
        if first.poll() is None:
            first.kill()

    output = log.read_text()
    assert [e.data.action for e in seen] == ["shadow_started", "rolled_back"], output
    rolled = seen[1]
    assert rolled.data.reason.startswith("gate failed: error rate 30.00 % vs 10.00 %")
    assert rolled.data.details["challenger_requests"] == 400
    assert rolled.data.traffic == {"champion": 1.0, "challenger": 0.0}
    policy = RoutingPolicy.from_json(client.get(f"{namespace}routing:{MODEL}"))
    assert (policy.champion, policy.challenger, policy.rolled_back) == (1, None, (2,))
    assert registry.aliases(MODEL) == {"champion": 1}
    assert registry.get_version(MODEL, 2).status == "rolled_back"
    assert "rolled_back" in output and "loaded from Redis" in output


def test_blue_green_controller_switches_all_traffic_at_once_then_promotes(
    rollout_settings: tuple[Settings, ModelRegistry],
    redis_client: tuple[redis.Redis, str],
    tmp_path: Path,
) -> None:
    """``driftloop rollout --strategy blue-green`` as a process: shadow, one switch, promote."""
    settings, registry = rollout_settings
    client, namespace = redis_client
    log = tmp_path / "rollout.log"
    process = start_controller(settings, log, "--strategy", "blue-green")
    seen: list[ModelEventEvent] = []
    policies = []
    try:
        with (
            Publisher(settings, source="urn:driftloop:retrain") as pub,
            EventReader(settings, ["model-events"]) as reader,
        ):
            pub.publish("model-event", {"model": MODEL, "version": 2, "action": "published"})
            pub.flush()
            for steps in (1, 2):  # shadow, then the switch: a gate each
                controller_events(reader, seen, lambda s, n=steps: len(s) >= n, timeout_s=60)
                policies.append(RoutingPolicy.from_json(client.get(f"{namespace}routing:{MODEL}")))
                start = seen[-1].time + timedelta(seconds=1)
                if seen[-1].data.traffic["challenger"] < 1.0:
                    publish_window(pub, 1, start, requests=300, redo=36)
                publish_window(pub, 2, start, requests=300, redo=18)
            controller_events(reader, seen, lambda s: s[-1].data.action == "promoted")
    finally:
        process.terminate()
        process.wait(timeout=15)

    output = log.read_text()
    assert [e.data.action for e in seen] == ["shadow_started", "ramp_step", "promoted"], output
    assert [e.data.traffic["challenger"] for e in seen] == [0.0, 1.0, 0.0]
    assert seen[1].data.details["phase"] == "switched"
    switched = policies[1]
    assert (switched.phase, switched.strategy, switched.champion) == ("switched", "blue_green", 1)
    assert {switched.route(f"user-{i}").answer_version for i in range(1000)} == {2}
    assert registry.aliases(MODEL) == {"champion": 2}
