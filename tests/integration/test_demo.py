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


def _firing_alerts(events: list) -> list:
    return sorted(
        (a.data for a in events if isinstance(a, AlertEvent) and a.data.status == "firing"),
        key=lambda a: a.detected_at,
    )


def _check_act(act: dict, events: list, start: datetime, end: datetime) -> None:
    """What one act's summary says against the events of its period on the topics.

    An act is what happened from the end of the previous act (its promotion) to
    the next act's onset.
    """
    onset = datetime.fromisoformat(act["onset"])
    steps = act["steps"]
    firing = [a for a in _firing_alerts(events) if start <= a.detected_at < end]
    # every alert the summary lists is an alert on the topic, with its time
    assert [(a["kind"], a["signal"], datetime.fromisoformat(a["detected_at"]))
            for a in act["alerts"]] == [
        (a.kind, a.signal, a.detected_at) for a in firing
    ]  # fmt: skip
    concept = [a for a in firing if a.kind == "concept_drift" and a.detected_at >= onset]
    assert concept, "no concept-drift alert after the onset"
    assert "error_rate" in act["drifted_signals"]["concept_drift"]
    # detection: the first alert after the onset naming a signal no earlier alert named
    named: set[tuple[str, str]] = set()
    first = None
    for alert in firing:
        new = {(alert.kind, n) for n in alert.signal.split(",")} - named
        named |= new
        if new and alert.detected_at >= onset and first is None:
            first = alert.detected_at
    assert first is not None
    assert act["first_detection_s"] == pytest.approx((first - onset).total_seconds(), abs=1e-3)
    # every model event of the act is a step of the summary, at its time
    listed = {(s["name"], datetime.fromisoformat(s["at"])) for s in steps}
    model_events = [e for e in events if isinstance(e, ModelEventEvent) and onset <= e.time < end]
    for event in model_events:
        assert (f"{event.data.action} v{event.data.version}", event.time) in listed
    requests = [e for e in events if isinstance(e, RetrainRequestEvent) and onset <= e.time < end]
    assert len(requests) == sum(s["name"] == "retrain request" for s in steps) >= 1
    # a candidate the retrainer's gate rejects lets the alert ask again after the cooldown:
    # every retrain request but the last ended in a rejected version, the last in the promotion
    rejected = [e.data.version for e in model_events if e.data.action == "rejected"]
    assert len(rejected) == len(requests) - 1, (rejected, len(requests))
    promoted = [e for e in model_events if e.data.action == "promoted"]
    assert [e.data.version for e in promoted] == [act["champion_after"]]
    assert all(v < act["champion_after"] for v in rejected)
    assert concept[0].detected_at < promoted[0].time
    assert concept[0].model_version == str(act["champion_before"])


@pytest.mark.timeout(960)  # two whole loops: minutes, not the suite's 300 s per test
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
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )  # fmt: skip
    wall_s = time.monotonic() - started
    out = done.stdout
    dashboard = re.search(r"dashboard:\s*(http://\S+)\s+\(left running: kill (\d+)\)", out)
    try:
        assert done.returncode == 0, out[-8000:] + done.stderr[-3000:]
        assert wall_s < 720, f"the demo took {wall_s:.0f} s"
        # --keep leaves a dashboard up, on the demo's topics
        assert dashboard, out[-3000:]
        with urllib.request.urlopen(dashboard.group(1), timeout=10) as reply:
            assert reply.status == 200

        # the story was told live, act by act: windows, the alerts, every step of the rollout
        assert "act 1: sudden-mic" in out and "act 2: gradual" in out
        assert "window" in out and "ALERT firing: concept_drift" in out
        result = json.loads(summary_path.read_text())
        assert result["finished"] is True
        first, second = result["acts"]
        assert first["scenario"] == "sudden-mic" and second["scenario"] == "gradual"
        assert [a["finished"] for a in result["acts"]] == [True, True]
        assert [a["stuck_at"] for a in result["acts"]] == [None, None]
        # act 1 promotes v2; in act 2 the gate may reject a candidate that is no better than
        # v2 (the gradual concept is hard for the intent model) and a later one is promoted
        assert (first["champion_before"], first["champion_after"]) == (1, 2)
        last = second["champion_after"]
        assert second["champion_before"] == 2 and last >= 3
        steps = ["retrain request", "published v2", "shadow_started v2", "canary_started v2",
                 "ramp_step v2", "promoted v2"]  # fmt: skip
        steps += [f"published v{last}", f"shadow_started v{last}", f"promoted v{last}"]
        for step in steps:
            assert step in out, step
        for version in range(3, last):
            assert f"rejected v{version}" in out, version
        assert "the loop closed: v2 serves" in out and f"the loop closed: v{last} serves" in out
        run_settings = settings.model_copy(update={"topic_prefix": first["topic_prefix"]})
        assert first["topic_prefix"].startswith(prefix)

        # the registry: what the summary says serves is what the champion alias points at
        client = redis.Redis.from_url(settings.redis_url)
        try:
            registry = ModelRegistry(client, SECRET, second["registry_namespace"])
            assert registry.get_alias("voice_intent", "champion") == last
            versions = {v.version: v for v in registry.list_versions("voice_intent")}
            assert {v["version"]: v["status"] for v in second["versions"]} == {
                n: v.status for n, v in versions.items()
            }
            assert sorted(versions) == list(range(1, last + 1))
            assert versions[2].metadata.parent_version == 1
            # every act-2 candidate, rejected or promoted, was trained from a copy of v2
            assert {versions[n].metadata.parent_version for n in range(3, last + 1)} == {2}
            for n in range(3, last):  # kept, with the gate's verdict, but never served
                verdict = versions[n].tags["verdict"]
                assert (versions[n].status, verdict) == ("candidate", "rejected")
        finally:
            client.close()

        # the topics: every alert and step each act lists is an event there, at that time
        with EventReader(run_settings, ["alerts", "retrain-requests", "model-events"]) as reader:
            events = [i.event for i in reader.items(until_idle_s=2.0, max_wait_s=30.0) if i.event]
        promoted_v2 = next(
            e.time for e in events
            if isinstance(e, ModelEventEvent) and e.data.action == "promoted"
        )  # fmt: skip
        onset = datetime.fromisoformat(first["onset"])
        second_onset = datetime.fromisoformat(second["onset"])
        _check_act(first, events, datetime.min.replace(tzinfo=onset.tzinfo), second_onset)
        _check_act(second, events, promoted_v2, datetime.max.replace(tzinfo=onset.tzinfo))
        # the quieter microphones show on the loudness feature, after the first onset
        assert any(
            a.kind == "data_drift" and "loudness_db" in a.signal.split(",")
            for a in _firing_alerts(events) if onset <= a.detected_at < promoted_v2
        )  # fmt: skip

        # the users noticed the sudden drift, and the new champion helped
        rates = first["error_rates"]
        assert rates["drift until promotion"] > rates["before drift"] + 0.2, rates
        assert rates["after promotion"] < rates["drift until promotion"] - 0.1, rates
        # the gradual drift raised the error rate of v2 too
        rates = second["error_rates"]
        assert rates["drift until promotion"] > rates["before drift"], rates
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
