"""How fast the prediction router answers, and how fast it switches on a model event.

Starts ``driftloop serve`` (``python -m producers.router.cli``) as a child
process against the real broker and Redis, with a tabular champion and
challenger in a registry namespace of its own, then measures:

- **requests/s of /predict**: ``--requests`` POSTs from an aiohttp client with
  ``--concurrency`` connections, with the champion alone (``serving``) and with
  the challenger in shadow (every request scored twice, two events published).
  Client-side latency percentiles are printed too. Client and router share
  the machine's cores.
- **switch time**: ``--switches`` times, the routing state in Redis is changed
  (shadow <-> canary 50 %) and a model event published; a probe key that the
  new state routes the other way is sent in a loop, and the time from the
  ``publish`` call to the first answer from the new route is recorded.

Run with ``python bench/router.py`` (the broker and Redis must be up: ``make up``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import redis
from kafka import KafkaAdminClient

from online_models.models import train
from online_models.models.datasets import tabular_rows
from online_models.registry import ModelRegistry
from online_models.routing import RoutingPolicy
from producers.publisher import Publisher
from producers.router import routing_key
from producers.router.testing import free_port
from streams.admin import create_topics
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "churn"
SECRET = "bench secret for the router, 32b"
FEATURES = [r.features for r in tabular_rows(256, seed=11)]


async def _load(url: str, requests: int, concurrency: int, prefix: str) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            for i in counter:
                body = {
                    "request_id": f"{prefix}-{i}",
                    "model": MODEL,
                    "features": FEATURES[i % 256],
                }
                started = time.perf_counter()
                async with session.post(url + "/predict", json=body) as reply:
                    if reply.status != 200:
                        raise RuntimeError(
                            f"/predict answered {reply.status}: {await reply.text()}"
                        )
                    await reply.read()
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_s": requests / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
    }


def _publish(settings: Settings, policy: RoutingPolicy) -> None:
    with Publisher(settings, source="urn:bench:router") as publisher:
        publisher.publish(
            "model-event",
            {"model": MODEL, "version": 2, "action": policy.last_action, "traffic": policy.traffic},
        )


async def _switch_once(
    url: str, settings: Settings, client: redis.Redis, policy: RoutingPolicy, probe: str
) -> float:
    wanted = policy.route(probe).route_name
    client.set(routing_key(settings.registry_namespace, MODEL), policy.to_json())
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    publishing = loop.run_in_executor(None, _publish, settings, policy)
    async with aiohttp.ClientSession() as session:
        while True:
            body = {"request_id": f"probe-{uuid.uuid4().hex[:8]}", "user_id": probe, "model": MODEL,
                    "features": FEATURES[0]}  # fmt: skip
            async with session.post(url + "/predict", json=body) as reply:
                route = (await reply.json())["route"]
            if route == wanted:
                switched = time.perf_counter() - started
                break
            if time.perf_counter() - started > 30:
                raise RuntimeError("the router did not switch within 30 s")
    await publishing
    return switched


def _wait_healthy(url: str, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the router exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the router did not answer in 60 s:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    base = Settings()
    run = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={"topic_prefix": f"bench-router-{run}.", "registry_namespace": f"bench:{run}:"}
    )
    create_topics(settings, ["predictions", "model-events"])
    client = redis.Redis.from_url(settings.redis_url)
    registry = ModelRegistry(client, SECRET, settings.registry_namespace)
    registry.register_version(MODEL, train("tabular", tabular_rows(2_000, seed=0)),
                              alias="champion", tags={"pipeline": "tabular"})  # fmt: skip
    registry.register_version(MODEL, train("tabular", tabular_rows(2_000, seed=1, drift=1.0)),
                              alias="challenger", tags={"pipeline": "tabular"})  # fmt: skip
    serving = RoutingPolicy(MODEL, champion=1)
    client.set(routing_key(settings.registry_namespace, MODEL), serving.to_json())

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DRIFTLOOP_REDIS_URL": settings.redis_url,
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLOOP_REGISTRY_SECRET": SECRET,
        "DRIFTLOOP_REGISTRY_NAMESPACE": settings.registry_namespace,
    }
    command = [sys.executable, "-m", "producers.router.cli", "--port", str(port),
               "--model", MODEL, "--loglevel", "warning", "--poll-interval-s", "60"]  # fmt: skip
    results: dict[str, object] = {}
    with tempfile.NamedTemporaryFile("w+b", suffix=".log") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_healthy(url, child, Path(log.name))
            asyncio.run(_load(url, 500, args.concurrency, "warm"))
            results["serving"] = asyncio.run(_load(url, args.requests, args.concurrency, "serve"))

            shadow = serving.start_shadow(2)
            asyncio.run(_switch_once(url, settings, client, shadow, "any-user"))
            results["shadow"] = asyncio.run(_load(url, args.requests, args.concurrency, "shadow"))

            canary = shadow.start_canary(0.5)
            probe = next(f"user-{i}" for i in range(1000)
                         if canary.route(f"user-{i}").route_name == "challenger")  # fmt: skip
            switches = []
            current = shadow
            for k in range(args.switches):
                # alternate canary 50 % and shadow: the probe flips route each time
                target = canary if k % 2 == 0 else shadow
                target = RoutingPolicy.from_dict({**target.to_dict(),
                                                  "revision": current.revision + 1})  # fmt: skip
                switches.append(asyncio.run(_switch_once(url, settings, client, target, probe)))
                current = target
            results["switch_s"] = {
                "median": statistics.median(switches),
                "max": max(switches),
                "all": [round(s, 4) for s in switches],
            }
            with urllib.request.urlopen(url + "/status", timeout=5) as reply:
                results["router_events"] = json.loads(reply.read())["events"]
        finally:
            child.terminate()
            child.wait(30)
            admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
            admin.delete_topics(
                [settings.topic("predictions"), settings.topic("model-events")], raise_errors=False
            )
            admin.close()
            keys = list(client.scan_iter(match=settings.registry_namespace + "*"))
            if keys:
                client.delete(*keys)

    if args.json:
        print(json.dumps(results))
        return
    print(f"driftloop serve, {args.requests} requests, {args.concurrency} connections "
          f"(client and router on {os.cpu_count()} cores)")  # fmt: skip
    for phase in ("serving", "shadow"):
        r = results[phase]
        print(f"  {phase:<8} {r['requests_s']:>8,.0f} requests/s   "  # type: ignore[index]
              f"p50 {r['p50_ms']:.1f} ms   p99 {r['p99_ms']:.1f} ms")  # type: ignore[index]  # fmt: skip
    s = results["switch_s"]
    print(f"  switch after a model event: median {s['median'] * 1000:.0f} ms, "  # type: ignore[index]
          f"max {s['max'] * 1000:.0f} ms over {args.switches} switches")  # type: ignore[index]  # fmt: skip
    print(f"  prediction events: {results['router_events']}")


if __name__ == "__main__":
    main()
