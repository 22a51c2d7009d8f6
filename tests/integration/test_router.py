"""The prediction router (``driftloop serve``) against the real broker and Redis.

Each test registers a champion and a challenger (tiny tabular models), writes a
routing state to Redis, runs the router in this process on a free port, talks
to it over HTTP and reads the prediction events back from the topic.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import urllib.error
import urllib.request
import wave
import zlib
from collections import Counter
from dataclasses import dataclass

import aiohttp
import numpy as np
import pytest
from pydantic import SecretStr

from online_models.models import train
from online_models.models.datasets import tabular_rows
from online_models.registry import ModelRegistry, VersionMetadata
from online_models.routing import RoutingPolicy
from producers.publisher import Publisher
from producers.router import RouterService, routing_key
from producers.router.testing import RouterThread
from streams.reader import EventReader
from streams.settings import Settings

SECRET = "router integration secret, 32 b."
MODEL = "churn"


@dataclass(frozen=True)
class Setup:
    settings: Settings
    registry: ModelRegistry
    client: object
    namespace: str


@pytest.fixture
def setup(topics: Settings, redis_client) -> Setup:
    client, namespace = redis_client
    settings = topics.model_copy(
        update={"registry_secret": SecretStr(SECRET), "registry_namespace": namespace}
    )
    registry = ModelRegistry(client, SECRET, namespace)
    champion = train("tabular", tabular_rows(400, seed=0))
    challenger = train("tabular", tabular_rows(400, seed=1, drift=1.0))
    tags = {"pipeline": "tabular"}
    registry.register_version(MODEL, champion, VersionMetadata(), alias="champion", tags=tags)
    registry.register_version(MODEL, challenger, VersionMetadata(), alias="challenger", tags=tags)
    return Setup(settings, registry, client, namespace)


def _write_state(setup: Setup, policy: RoutingPolicy) -> None:
    setup.client.set(routing_key(setup.namespace, MODEL), policy.to_json())


def _publish_model_event(setup: Setup, policy: RoutingPolicy, version: int) -> float:
    """Publish the model event of the state just written; return when it was acknowledged."""
    with Publisher(setup.settings, source="urn:test:rollout") as publisher:
        publisher.publish(
            "model-event",
            {
                "model": MODEL,
                "version": version,
                "action": policy.last_action,
                "traffic": policy.traffic,
                "reason": policy.reason,
            },
            id=f"test:{policy.revision}:{policy.last_action}",
        )
        publisher.flush()
        return time.time()


def _router(setup: Setup, *, poll_interval_s: float = 60.0) -> RouterThread:
    # a long poll: a switch within a second can only come from the model event
    service = RouterService.from_settings(
        setup.settings, models=[MODEL], poll_interval_s=poll_interval_s
    )
    return RouterThread(service).start()


FEATURES = [r.features for r in tabular_rows(64, seed=9)]


def _body(request_id: str, *, user_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "request_id": request_id,
        "model": MODEL,
        "features": FEATURES[zlib.crc32(request_id.encode()) % len(FEATURES)],
    }
    if user_id is not None:
        body["user_id"] = user_id
    return body


async def _ask_all(url: str, bodies: list[dict[str, object]], concurrency: int = 16) -> list[dict]:
    answers: list[dict] = [{}] * len(bodies)
    queue = list(enumerate(bodies))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while queue:
                index, body = queue.pop()
                async with session.post(url + "/predict", json=body) as reply:
                    assert reply.status == 200, await reply.text()
                    answers[index] = await reply.json()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answers


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def _post(url: str, payload: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, payload, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _predictions(settings: Settings, expected: int) -> list:
    events = []
    with EventReader(settings, ["predictions"]) as reader:
        for item in reader.items(until_idle_s=2.0, max_wait_s=30.0):
            assert item.error is None, item.error.reason
            events.append(item.event)
            if len(events) >= expected:
                break
    return events


def test_shadow_then_canary_routes_and_publishes_the_route_that_answered(setup):
    shadow = RoutingPolicy(MODEL, champion=1).start_shadow(2)
    _write_state(setup, shadow)
    router = _router(setup)
    try:
        status = _get(router.url + "/status")["models"][MODEL]
        assert (status["champion"], status["challenger"], status["phase"]) == (1, 2, "shadow")

        # shadow: the challenger scores every request and answers none
        shadow_answers = asyncio.run(_ask_all(router.url, [_body(f"s-{i}") for i in range(300)]))
        assert {(a["route"], a["model_version"]) for a in shadow_answers} == {("champion", "1")}

        # canary: a model event switches the router within a second
        canary = shadow.start_canary()
        probe = next(f"k-{i}" for i in range(10_000) if canary.route(f"k-{i}").route_name
                     == "challenger")  # fmt: skip
        _write_state(setup, canary)
        published_at = _publish_model_event(setup, canary, 2)
        for attempt in range(100_000):
            body = _body(f"p-{attempt}", user_id=probe)
            status_code, answer = _post(router.url + "/predict", json.dumps(body).encode())
            assert status_code == 200
            if answer["route"] == "challenger":
                switched_after = time.time() - published_at
                break
            assert time.time() - published_at < 5, "the router never switched to the canary"
        assert switched_after < 1.0, f"switched {switched_after:.2f} s after the model event"
        last = _get(router.url + "/status")["models"][MODEL]["last_model_event"]
        assert last["action"] == "canary_started" and last["applied_at"] is not None

        # 5 % of 2 000 request ids, chosen by the same stable hash as the policy
        ids = [f"c-{i}" for i in range(2_000)]
        answers = asyncio.run(_ask_all(router.url, [_body(i) for i in ids]))
        got = [a["route"] for a in answers]
        assert got == [canary.route(i).route_name for i in ids]
        share = got.count("challenger") / len(got)
        assert 0.035 <= share <= 0.065, share
        assert {a["model_version"] for a in answers if a["route"] == "challenger"} == {"2"}
        again = asyncio.run(_ask_all(router.url, [_body(i) for i in ids[:500]]))
        assert [a["route"] for a in again] == got[:500]  # stable assignment
        # a user keeps their route whatever the request id
        user = next(u for u in (f"u-{i}" for i in range(1000)) if canary.route(u).route_name
                    == "challenger")  # fmt: skip
        by_user = asyncio.run(
            _ask_all(router.url, [_body(f"x-{i}", user_id=user) for i in range(20)])
        )
        assert {a["route"] for a in by_user} == {"challenger"}
    finally:
        router.stop()  # flushes the prediction events

    sent = 300 + 2_000 + 500 + 20  # answered requests, and the switch probes (p-*) on top
    events = _predictions(setup.settings, expected=sent + 300 + 2 * (attempt + 1))
    shadow_events = {e.data.request_id: e for e in events if e.data.route == "shadow"}
    # one shadow scoring per request answered in shadow (and by probes sent before the switch)
    assert Counter(e.data.request_id[:2] for e in events if e.data.route == "shadow") == Counter(
        {"s-": 300, "p-": attempt}
    )
    assert {e.data.model_version for e in shadow_events.values()} == {"2"}
    assert all(e.data.latency_ms >= 0 and e.data.features for e in shadow_events.values())
    served = {e.data.request_id: e for e in events if e.data.route != "shadow"}
    for request_id, answer in zip(ids, answers, strict=True):
        event = served[request_id]
        assert (event.data.route, event.data.model_version) == (
            answer["route"],
            answer["model_version"],
        )
        assert event.data.prediction.label == answer["label"]
        assert event.id == f"{request_id}:{answer['route']}"


def test_no_request_is_answered_by_the_challenger_after_the_rollback_event(setup):
    ramp = RoutingPolicy(MODEL, champion=1).start_shadow(2).start_canary(0.5)
    _write_state(setup, ramp)
    router = _router(setup)
    results: list[tuple[float, str, str]] = []  # (sent at, route, request id)
    rolled_back = ramp.rollback("error rate up")

    async def load(stop_at: float) -> None:
        counter = iter(range(10**9))
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                while time.time() < stop_at:
                    request_id = f"r-{next(counter)}"
                    sent_at = time.time()
                    async with session.post(router.url + "/predict", json=_body(request_id)) as r:
                        assert r.status == 200
                        results.append((sent_at, (await r.json())["route"], request_id))

            await asyncio.gather(*(worker() for _ in range(12)))

    async def roll_back_during_load() -> float:
        loop = asyncio.get_running_loop()
        traffic = asyncio.create_task(load(time.time() + 3.0))
        await asyncio.sleep(1.0)
        _write_state(setup, rolled_back)
        published = await loop.run_in_executor(None, _publish_model_event, setup, rolled_back, 2)
        await traffic
        return published

    try:
        published_at = asyncio.run(roll_back_during_load())
        last = _get(router.url + "/status")["models"][MODEL]
    finally:
        router.stop()
    applied_at = last["last_model_event"]["applied_at"]
    assert last["challenger"] is None and last["rolled_back"] == [2]
    assert applied_at - published_at < 1.0
    before = [route for sent, route, _ in results if sent < published_at]
    after = [(sent, route, rid) for sent, route, rid in results if sent > applied_at]
    assert before.count("challenger") > 50, "the challenger never answered: the test proves nothing"
    assert len(after) > 100, f"only {len(after)} requests after the rollback"
    assert [a for a in after if a[1] == "challenger"] == []

    late = {rid for sent, _, rid in results if sent > applied_at}
    events = _predictions(setup.settings, expected=len(results))
    assert len({e.data.request_id for e in events}) == len(results)
    assert not [e for e in events if e.data.request_id in late and e.data.route == "challenger"]


def test_a_blue_green_switch_moves_every_request_at_once_and_back(setup):
    """Blue/green: one model event moves all traffic to v2, the next one all back to v1."""
    shadow = RoutingPolicy(MODEL, champion=1, strategy="blue_green").start_shadow(2)
    _write_state(setup, shadow)
    router = _router(setup)
    switched = shadow.next_step()
    back = switched.rollback("switched back by hand")
    try:

        def switch_to(policy: RoutingPolicy) -> None:
            _write_state(setup, policy)
            _publish_model_event(setup, policy, 2)
            deadline = time.time() + 5
            while _get(router.url + "/status")["models"][MODEL]["revision"] != policy.revision:
                assert time.time() < deadline, f"{policy.phase} was not applied within 5 s"
                time.sleep(0.05)

        first = asyncio.run(_ask_all(router.url, [_body(f"a-{i}") for i in range(200)]))
        switch_to(switched)
        second = asyncio.run(_ask_all(router.url, [_body(f"b-{i}") for i in range(200)]))
        switch_to(back)
        third = asyncio.run(_ask_all(router.url, [_body(f"c-{i}") for i in range(200)]))
    finally:
        router.stop()
    assert {(a["model_version"], a["route"]) for a in first} == {("1", "champion")}
    assert {(a["model_version"], a["route"]) for a in second} == {("2", "challenger")}
    assert {(a["model_version"], a["route"]) for a in third} == {("1", "champion")}


def test_a_tampered_challenger_is_refused_and_the_previous_state_keeps_serving(setup):
    router = _router(setup)
    try:
        before = _get(router.url + "/status")["models"][MODEL]
        assert (before["champion"], before["challenger"], before["source"]) == (
            1,
            None,
            "registry-alias",
        )
        # version 3 is published, then its bytes are changed in Redis
        third = train("tabular", tabular_rows(400, seed=3, drift=0.5))
        setup.registry.register_version(MODEL, third, alias="challenger")
        blob_key = f"{setup.namespace}registry:{MODEL}:blob:3"
        blob = setup.client.get(blob_key)
        setup.client.set(blob_key, blob[:-2] + bytes([blob[-2] ^ 1]) + blob[-1:])
        policy = RoutingPolicy(MODEL, champion=1).start_shadow(3).start_canary(0.5)
        _write_state(setup, policy)
        _publish_model_event(setup, policy, 3)
        deadline = time.time() + 5
        while (
            not _get(router.url + "/status")["models"][MODEL]
            .get("last_model_event", {})
            .get("applied_at")
        ):
            assert time.time() < deadline, "the model event never arrived"
            time.sleep(0.05)
        after = _get(router.url + "/status")["models"][MODEL]
        assert (after["champion"], after["challenger"], after["phase"]) == (1, None, "serving")
        assert "changed" in after["last_error"] or "signature" in after["last_error"]
        answers = asyncio.run(_ask_all(router.url, [_body(f"t-{i}") for i in range(200)]))
        assert {(a["route"], a["model_version"]) for a in answers} == {("champion", "1")}
    finally:
        router.stop()


def _wav_base64(seconds: float, rate: int = 16_000) -> str:
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 300 * t) + rng.normal(0, 1e-3, t.size)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((tone * 32767).astype("<i2").tobytes())
    return base64.b64encode(buffer.getvalue()).decode()


def test_bad_requests_get_a_reason_and_audio_is_featurised(setup):
    router = _router(setup)
    try:
        url = router.url + "/predict"
        code, body = _post(url, b"{not json")
        assert code == 400 and "not valid JSON" in body["error"]
        code, body = _post(url, json.dumps({"request_id": "b1", "model": "churm"}).encode())
        assert code == 400 and "give 'features'" in body["error"]
        code, body = _post(url, json.dumps({**_body("b2"), "model": "churm"}).encode())
        assert code == 404 and body["known_models"] == [MODEL] and "churm" in body["error"]
        code, body = _post(url, json.dumps({**_body("b3"), "features": {"x": [1]}}).encode())
        assert code == 400 and "features.x" in body["error"]
        code, body = _post(
            url, json.dumps({"request_id": "b4", "model": MODEL, "audio_wav_base64": "%%"}).encode()
        )
        assert code == 400 and "base64" in body["error"]
        clip = {"request_id": "a1", "model": MODEL, "audio_wav_base64": _wav_base64(1.5)}
        code, body = _post(url, json.dumps(clip).encode())
        assert code == 200 and body["route"] == "champion", body
        assert _get(router.url + "/healthz")["models"] == [MODEL]
    finally:
        router.stop()
    (event,) = _predictions(setup.settings, expected=1)
    assert event.data.request_id == "a1"
    assert event.data.features["clip_duration_s"] == 1.5
