"""``driftloop demo --story loop``: the README's main command tells a true story (issue 6).

The command runs as a user runs it (a subprocess of the console script) against
the real broker and Redis, with ``--keep`` so that its topics and registry keys
are still there to check, and ``--json`` for its summary. The summary's claims
are then checked against what is on the topics and in the registry, read here
independently of the demo's own code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient

from online_models.registry import ModelRegistry
from streams.events import AlertEvent, ModelEventEvent, RetrainRequestEvent
from streams.reader import EventReader
from streams.settings import Settings

DRIFTLOOP = str(Path(sys.executable).with_name("driftloop"))
SECRET = "full-loop secret of 32 bytes...."  # the one driftloop.loop signs the demo's models with


def _cleanup(settings: Settings, prefix: str, namespace_prefix: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=namespace_prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.timeout(600)  # the whole loop: a few minutes, not the suite's 300 s per test
def test_demo_loop_story_closes_the_loop_and_its_summary_matches_topics_and_registry(
    settings: Settings, tmp_path: Path
) -> None:
    prefix = f"{settings.topic_prefix}demo."
    summary_path = tmp_path / "summary.json"
    env = {
        **os.environ,
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DRIFTLOOP_REDIS_URL": settings.redis_url,
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "COLUMNS": "200",
    }
    started = time.monotonic()
    done = subprocess.run(
        [DRIFTLOOP, "demo", "--story", "loop", "--keep", "--json", str(summary_path),
         "--prefix", prefix],
        capture_output=True, text=True, env=env, timeout=560, check=False,
    )  # fmt: skip
    wall_s = time.monotonic() - started
    out = done.stdout
    dashboard = re.search(r"dashboard:\s*(http://\S+)\s+\(left running: kill (\d+)\)", out)
    try:
        assert done.returncode == 0, out[-6000:] + done.stderr[-3000:]
        assert wall_s < 360, f"the demo took {wall_s:.0f} s"
        # --keep leaves a dashboard up, on the demo's topics
        assert dashboard, out[-3000:]
        with urllib.request.urlopen(dashboard.group(1), timeout=10) as reply:
            assert reply.status == 200

        # the story was told live: windows, the alert, every step of the rollout
        assert "window" in out and "ALERT firing: concept_drift" in out
        for step in ("retrain request", "published v2", "shadow_started v2",
                     "canary_started v2", "ramp_step v2", "promoted v2"):  # fmt: skip
            assert step in out, step
        assert "the loop closed: v2 serves" in out

        summary = json.loads(summary_path.read_text())
        assert summary["finished"] is True and summary["stuck_at"] is None
        run_settings = settings.model_copy(update={"topic_prefix": summary["topic_prefix"]})
        assert summary["topic_prefix"].startswith(prefix)
        onset = datetime.fromisoformat(summary["onset"])

        # the registry: what the summary says serves is what the champion alias points at
        client = redis.Redis.from_url(settings.redis_url)
        try:
            registry = ModelRegistry(client, SECRET, summary["registry_namespace"])
            assert registry.get_alias("voice_intent", "champion") == summary["champion_after"] == 2
            versions = {v.version: v for v in registry.list_versions("voice_intent")}
            assert {v["version"]: v["status"] for v in summary["versions"]} == {
                n: v.status for n, v in versions.items()
            }
            assert versions[2].metadata.parent_version == 1
        finally:
            client.close()

        # the topics: every alert and step the summary lists is an event there, at that time
        events = []
        with EventReader(run_settings, ["alerts", "retrain-requests", "model-events"]) as reader:
            events = [i.event for i in reader.items(until_idle_s=2.0, max_wait_s=30.0) if i.event]
        firing = sorted(
            (a.data for a in events if isinstance(a, AlertEvent) and a.data.status == "firing"),
            key=lambda a: a.detected_at,
        )
        assert [(a["kind"], a["signal"], datetime.fromisoformat(a["detected_at"]))
                for a in summary["alerts"]] == [
            (a.kind, a.signal, a.detected_at) for a in firing
        ]  # fmt: skip
        concept = [a for a in firing if a.kind == "concept_drift" and a.detected_at >= onset]
        assert concept, "no concept-drift alert after the onset"
        assert "error_rate" in summary["drifted_signals"]["concept_drift"]
        # the quieter microphones show on the loudness feature, after the onset
        assert any(
            a.kind == "data_drift" and "loudness_db" in a.signal.split(",") for a in firing
            if a.detected_at >= onset
        ), [(a.kind, a.signal, a.detected_at) for a in firing]  # fmt: skip
        # detection: the first alert after the onset naming a signal no earlier alert named
        named: set[tuple[str, str]] = set()
        first = None
        for alert in firing:
            new = {(alert.kind, n) for n in alert.signal.split(",")} - named
            named |= new
            if new and alert.detected_at >= onset and first is None:
                first = alert.detected_at
        assert first is not None
        assert summary["first_detection_s"] == pytest.approx(
            (first - onset).total_seconds(), abs=1e-3
        )

        model_events = [e for e in events if isinstance(e, ModelEventEvent) and e.time >= onset]
        listed = {(s["name"], datetime.fromisoformat(s["at"])) for s in summary["steps"]}
        for event in model_events:
            assert (f"{event.data.action} v{event.data.version}", event.time) in listed
        requests = [e for e in events if isinstance(e, RetrainRequestEvent)]
        assert len(requests) == sum(s["name"] == "retrain request" for s in summary["steps"]) >= 1
        promoted = next(e for e in model_events if e.data.action == "promoted")
        assert promoted.data.version == 2
        assert concept[0].detected_at < promoted.time

        # the users noticed the drift, and the new champion helped
        rates = summary["error_rates"]
        assert rates["drift until promotion"] > rates["before drift"] + 0.2, rates
        assert rates["after promotion"] < rates["drift until promotion"] - 0.1, rates
    finally:
        if dashboard:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(dashboard.group(2)), signal.SIGTERM)
        _cleanup(settings, prefix, f"{prefix.rstrip('.')}:")


def test_demo_refuses_an_unknown_story_or_scenario(settings: Settings) -> None:
    env = {**os.environ, "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix, "COLUMNS": "200",
           "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "DRIFTLOOP_REDIS_URL": settings.redis_url}  # fmt: skip
    prefix = f"{settings.topic_prefix}demo."
    story = subprocess.run(
        [DRIFTLOOP, "demo", "--story", "movie", "--prefix", prefix],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert story.returncode == 2 and "valid stories: loop, smoke" in story.stdout
    scenario = subprocess.run(
        [DRIFTLOOP, "demo", "--story", "loop", "--scenario", "loud", "--prefix", prefix],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert scenario.returncode == 1, scenario.stdout + scenario.stderr
    assert "known: gradual, sudden-mic, sudden-vocab" in scenario.stdout
