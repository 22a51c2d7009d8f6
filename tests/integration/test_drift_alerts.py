"""Drift end to end: events published with kcat -> worker -> alerts and retrain requests.

One worker process on the real broker. Two models share it:

- ``shift-model``: a feature's mean jumps by 2 sd half-way (data drift, sudden);
  no labels change, so the default retrain policy must not ask for a retrain;
- ``concept-model``: the features stay put but the labels stop agreeing with
  the predictions half-way (error rate 0.1 -> 0.5: concept drift), which the
  default policy turns into a retrain request;
- ``ref-model``: stationary traffic that differs from the reference a user
  registered with ``driftloop reference set``: drift from the first events.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from producers.publisher import Publisher, partition_for_key
from streams.admin import create_topics
from streams.alerts_cli import alerts_app
from streams.events import AlertEvent, RetrainRequestEvent
from streams.reference_cli import reference_app
from streams.settings import Settings
from streams.testing import WorkerProcess

KCAT = shutil.which("kcat") or "kcat"
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
EVENTS = 8_000
CHANGE_AT = 4_000
PARTITIONS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_settings(services, folder, *, retrain: str = "", **overrides) -> Settings:
    """A worker's settings on fresh topics and registry keys, with topics created."""
    policy = folder / "alert-policy.yaml"
    # short timers so the test does not wait minutes of event time for a group to be sent
    policy.write_text(
        "grouping: {group_wait: 1s, group_interval: 5s, resolve_timeout: 1h}\n"
        + (f"retrain: {retrain}\n" if retrain else "")
    )
    unique = f"drift-{os.getpid()}-{random.randrange(1 << 30):x}"
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        topic_prefix=f"{unique}.",
        web_port=_free_port(),
        window_sizes_s=[10],
        idle_close_s=2,
        checkpoint_interval_s=0.5,
        feedback_grace_s=2,
        drift_reference_first_n=1000,
        alert_policy_file=policy,
        redis_url=services.redis_url,
        registry_namespace=f"{unique}:",
        _env_file=None,
        **overrides,
    )
    create_topics(settings)
    return settings


@pytest.fixture(scope="module")
def worker(services, tmp_path_factory) -> Iterator[Settings]:
    folder = tmp_path_factory.mktemp("drift")
    settings = _worker_settings(services, folder)
    with WorkerProcess(settings, folder / "worker.log") as process:
        yield settings
        assert process.running(), f"the worker died:\n{process.log_tail()}"


def _event(kind: str, i: int, model: str, when: datetime, data: dict) -> dict:
    return {
        "specversion": "1.0",
        "id": f"{model}-{kind}-{i}",
        "source": "urn:test:kcat",
        "type": f"driftloop.{kind}.v1",
        "time": when.isoformat().replace("+00:00", "Z"),
        "data": data,
    }


def _kcat_publish(settings: Settings, topic: str, events: list[dict]) -> None:
    """Events grouped by the partition of their request id, 100 per record, sent with kcat."""
    by_partition: dict[int, list[dict]] = defaultdict(list)
    for event in events:
        by_partition[partition_for_key(event["data"]["request_id"], PARTITIONS)].append(event)
    for partition, group in by_partition.items():
        lines = [json.dumps(group[i : i + 100]) for i in range(0, len(group), 100)]
        subprocess.run(
            [KCAT, "-b", settings.kafka_bootstrap_servers, "-P", "-t", settings.topic(topic),
             "-p", str(partition)],
            input="\n".join(lines).encode(),
            check=True,
            timeout=60,
        )  # fmt: skip


def _traffic(model: str, *, shift: float, wrong_after_change: float) -> tuple[list, list]:
    rng = np.random.default_rng(7 if model.startswith("shift") else 8)
    predictions, feedback = [], []
    for i in range(EVENTS):
        when = T0 + timedelta(milliseconds=10 * i)
        changed = i >= CHANGE_AT
        request_id = f"{model}-r{i}"
        label = ("weather", "music", "news")[i % 3]
        predictions.append(
            _event("prediction", i, model, when, {
                "request_id": request_id, "model": model, "model_version": "1",
                "features": {
                    "loudness_db": float(rng.normal(-20 + (shift if changed else 0.0), 1.0)),
                    "duration_s": float(rng.normal(2.0, 0.3)),
                },
                "prediction": {"label": label, "score": float(rng.uniform(0.5, 1.0))},
                "latency_ms": float(rng.lognormal(3.5, 0.3)),
            })
        )  # fmt: skip
        wrong = rng.random() < (wrong_after_change if changed else 0.1)
        truth = "shopping" if wrong else label
        feedback.append(
            _event("feedback", i, model, when + timedelta(milliseconds=500), {
                "request_id": request_id, "model": model, "label": truth,
            })
        )  # fmt: skip
    return predictions, feedback


def _read_topic(settings: Settings, topic: str) -> list[dict]:
    done = subprocess.run(
        [KCAT, "-b", settings.kafka_bootstrap_servers, "-C", "-t", settings.topic(topic),
         "-o", "beginning", "-e", "-q"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def _wait_for(settings: Settings, topic: str, found, timeout_s: float = 150) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    events: list[dict] = []
    while time.monotonic() < deadline:
        events = _read_topic(settings, topic)
        if found(events):
            return events
        time.sleep(2)
    return events


def test_drift_published_with_kcat_is_alerted_and_concept_drift_asks_for_a_retrain(
    worker, tmp_path
):
    # ref-model's reference, registered the way a user does: loudness around -24 dB
    rng = np.random.default_rng(3)
    reference = tmp_path / "reference.csv"
    reference.write_text(
        "loudness_db,duration_s\n"
        + "".join(f"{rng.normal(-24, 1):.3f},{rng.normal(2.0, 0.3):.3f}\n" for _ in range(3000))
    )
    done = CliRunner().invoke(
        reference_app,
        ["set", "ref-model", str(reference), "--version", "1",
         "--redis-url", worker.redis_url, "--namespace", worker.registry_namespace],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    for model, shift, wrong in (
        ("shift-model", 2.0, 0.1),
        ("concept-model", 0.0, 0.5),
        ("ref-model", 0.0, 0.1),
    ):
        predictions, feedback = _traffic(model, shift=shift, wrong_after_change=wrong)
        _kcat_publish(worker, "predictions", predictions)
        _kcat_publish(worker, "feedback", feedback)

    def both_alerted(events: list[dict]) -> bool:
        kinds = {(e["data"]["model"], e["data"]["kind"]) for e in events}
        return {
            ("shift-model", "data_drift"),
            ("concept-model", "concept_drift"),
            ("ref-model", "data_drift"),
        } <= kinds

    alerts = [AlertEvent.model_validate(e) for e in _wait_for(worker, "alerts", both_alerted)]
    for a in alerts:  # shown with -s: what a person would read
        print(a.data.model, a.data.status, a.data.kind, a.data.pattern, a.data.signal,
              a.data.detected_at, a.data.summary)  # fmt: skip
    assert both_alerted([a.model_dump() for a in alerts]), [a.data for a in alerts]

    data = [a.data for a in alerts if a.data.model == "shift-model" and a.data.status == "firing"]
    assert data and all(a.kind == "data_drift" for a in data), data
    first = data[0]
    assert "loudness_db" in first.signal and first.pattern == "sudden", first
    change = T0 + timedelta(milliseconds=10 * CHANGE_AT)
    # detected after the change, and within 1 000 events of it (a quarter of them per partition)
    assert change <= first.detected_at <= change + timedelta(seconds=10), first
    assert "duration_s" not in first.signal  # the feature that did not move is not blamed

    concept = [a.data for a in alerts if a.data.model == "concept-model"]
    assert concept[0].kind == "concept_drift" and concept[0].severity == "critical", concept
    assert not [a for a in concept if a.kind == "data_drift"], "concept-model's inputs never moved"

    requests = [
        RetrainRequestEvent.model_validate(e)
        for e in _wait_for(
            worker,
            "retrain-requests",
            lambda events: any(e["data"]["model"] == "concept-model" for e in events),
            timeout_s=60,
        )
    ]
    by_model = defaultdict(list)
    for request in requests:
        by_model[request.data.model].append(request.data)
    [request] = by_model["concept-model"]
    assert request.requested_by == "policy" and request.alert_ids, request
    assert request.window.start < request.window.end, request.window
    assert request.window.start <= change, "the window to train on starts at or before the drift"
    assert not by_model["shift-model"], "data drift alone is not a retrain trigger by default"

    # ref-model's traffic never changes: only the registered reference (-24 dB, where the
    # traffic is at -20) makes it drift, and from its first events
    ref = [a.data for a in alerts if a.data.model == "ref-model"]
    assert ref and "loudness_db" in ref[0].signal, ref
    assert ref[0].detected_at < T0 + timedelta(seconds=10), "not learned from the first events"

    # the same alerts, readable by a person
    done = CliRunner().invoke(
        alerts_app,
        ["tail", "--from-beginning", "--until-idle", "2", "--model", "shift-model",
         "-b", worker.kafka_bootstrap_servers, "--prefix", worker.topic_prefix],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "FIRING" in done.stdout and "shift-model:1 data_drift sudden" in done.stdout


def _counter(worker: WorkerProcess, metric: str) -> float:
    """A counter of the worker's /metrics page (0 until counted, or when it does not answer)."""
    for line in worker.metrics_page().splitlines():
        if line.startswith(metric + " ") or line.startswith(metric + "{"):
            return float(line.split()[-1])
    return 0.0


def _stationary_then_shifted(model: str, start: int, count: int, shift: float) -> list[dict]:
    rng = np.random.default_rng(start)
    return [
        _event("prediction", i, model, T0 + timedelta(milliseconds=10 * i), data)
        for i in range(start, start + count)
        for data in [{
            "request_id": f"{model}-r{i}", "model": model, "model_version": "1",
            "features": {"loudness_db": float(rng.normal(-20 + shift, 1.0)),
                         "duration_s": float(rng.normal(2.0, 0.3))},
            "prediction": {"label": "weather", "score": float(rng.uniform(0.5, 1.0))},
            "latency_ms": 20.0,
        }]
    ]  # fmt: skip


def test_a_restarted_worker_resumes_its_drift_detectors_from_the_changelog(services, tmp_path):
    """Detectors learned on clean traffic survive a kill -9: the shift after it is alerted.

    A worker that started its detectors afresh would learn its reference from
    the shifted traffic and never alert.
    """
    settings = _worker_settings(services, tmp_path, drift_checkpoint_interval_s=1.0)
    model = "restart-model"
    first = WorkerProcess(settings, tmp_path / "worker-a.log").start()
    try:
        _kcat_publish(settings, "predictions", _stationary_then_shifted(model, 0, 4000, 0.0))
        deadline = time.monotonic() + 60
        while _counter(first, 'driftloop_events_total{topic="predictions"}') < 4000:
            assert time.monotonic() < deadline, first.log_tail()
            time.sleep(0.5)
        # the partitions go idle: then the detectors are written, with every event in them
        time.sleep(settings.idle_close_s + 3)
        assert _counter(first, 'driftloop_drift_checkpoints_total{action="saved"}') >= PARTITIONS
        first.kill()
    finally:
        first.stop()
    assert not [e for e in _read_topic(settings, "alerts") if e["data"]["model"] == model]

    with WorkerProcess(settings, tmp_path / "worker-b.log") as second:
        _kcat_publish(settings, "predictions", _stationary_then_shifted(model, 4000, 4000, 2.0))
        alerts = _wait_for(
            settings,
            "alerts",
            lambda events: any(e["data"]["model"] == model for e in events),
            timeout_s=90,
        )
        restored = _counter(second, 'driftloop_drift_checkpoints_total{action="restored"}')
        log_tail = second.log_tail()
    mine = [AlertEvent.model_validate(e).data for e in alerts if e["data"]["model"] == model]
    assert mine, f"no alert after the restart (detectors restored: {restored}):\n{log_tail}"
    assert restored >= 1
    assert mine[0].kind == "data_drift" and "loudness_db" in mine[0].signal, mine[0]
    assert mine[0].detected_at >= T0 + timedelta(milliseconds=10 * 4000), mine[0]


def test_a_rejected_retrain_lets_the_still_firing_alert_ask_again(services, tmp_path):
    """A ``rejected`` model event, sent batched by the SDK, re-arms the model's firing alerts.

    The concept drift asks for one retrain; the cooldown passes and nothing
    more is asked (the alert asked already). Once the retrained version is
    rejected, the drift is unanswered, and the same alert asks again.
    """
    settings = _worker_settings(services, tmp_path, retrain="{cooldown: 5s, min_span: 1s}")
    model = "concept-rearm"
    predictions, feedback = _traffic(model, shift=0.0, wrong_after_change=0.5)

    def requests_of(events: list[dict]) -> list[RetrainRequestEvent]:
        return [RetrainRequestEvent.model_validate(e) for e in events
                if e["data"]["model"] == model]  # fmt: skip

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        _kcat_publish(settings, "predictions", predictions)
        _kcat_publish(settings, "feedback", feedback)
        [first] = requests_of(
            _wait_for(settings, "retrain-requests", lambda e: bool(requests_of(e)))
        ) or [None]
        assert first is not None, worker.log_tail()
        time.sleep(8)  # past the 5-s cooldown: still one request, the alert asked already
        assert len(requests_of(_read_topic(settings, "retrain-requests"))) == 1
        with Publisher(settings) as publisher:
            publisher.publish("model-event", {
                "model": model, "version": 2, "action": "rejected",
                "retrain_request_id": first.data.request_id,
                "reason": "below the bar",
            })  # fmt: skip
        found = _wait_for(
            settings, "retrain-requests", lambda e: len(requests_of(e)) >= 2, timeout_s=60
        )
        log_tail = worker.log_tail()
    later = requests_of(found)
    assert len(later) == 2, f"no second request after the rejection:\n{log_tail}"
    second = later[1].data
    assert second.alert_ids == first.data.alert_ids  # the same, still firing, alert
    assert second.window.end > first.data.window.end


def _errors_then_redos(model: str, start: int, count: int, *, error: float, redo: float) -> tuple:
    rng = np.random.default_rng(start + 11)
    predictions, feedback = [], []
    for i in range(start, start + count):
        when = T0 + timedelta(milliseconds=10 * i)
        label = ("weather", "music", "news")[i % 3]
        predictions.append(_event("prediction", i, model, when, {
            "request_id": f"{model}-r{i}", "model": model, "model_version": "1",
            "features": {"loudness_db": float(rng.normal(-20, 1.0))},
            "prediction": {"label": label, "score": 0.9}, "latency_ms": 20.0,
        }))  # fmt: skip
        feedback.append(_event("feedback", i, model, when + timedelta(milliseconds=500), {
            "request_id": f"{model}-r{i}", "model": model,
            "label": "shopping" if rng.random() < error else label,
            "redo_search": bool(rng.random() < redo),
        }))  # fmt: skip
    return predictions, feedback


def test_a_restarted_worker_resumes_its_alert_groups_and_retrain_cooldown(services, tmp_path):
    """After a kill -9, a new drifting signal joins the alert already firing, under its id.

    A worker that started its alert stage afresh would open a new alert (a new
    id) for it, as if the drift had just begun.
    """
    settings = _worker_settings(services, tmp_path, drift_checkpoint_interval_s=1.0)
    model = "concept-restart"

    def firing(events: list[dict]) -> list[AlertEvent]:
        return [AlertEvent.model_validate(e) for e in events
                if e["data"]["model"] == model and e["data"]["status"] == "firing"]  # fmt: skip

    first = WorkerProcess(settings, tmp_path / "worker-a.log").start()
    try:
        predictions, feedback = _errors_then_redos(model, 0, 4_000, error=0.1, redo=0.05)
        drifted = _errors_then_redos(model, 4_000, 4_000, error=0.5, redo=0.05)
        _kcat_publish(settings, "predictions", predictions + drifted[0])
        _kcat_publish(settings, "feedback", feedback + drifted[1])
        before = firing(_wait_for(settings, "alerts", lambda e: bool(firing(e))))
        assert before, first.log_tail()
        requests = _wait_for(settings, "retrain-requests", lambda e: bool(e), timeout_s=60)
        assert len(requests) == 1, first.log_tail()
        time.sleep(settings.idle_close_s + 3)  # quiet: the detectors and the stage are written
        first.kill()
    finally:
        first.stop()
    [alert] = {a.data.alert_id: a.data for a in before}.values()
    assert alert.kind == "concept_drift" and "redo_rate" not in alert.signal, alert

    with WorkerProcess(settings, tmp_path / "worker-b.log") as second:
        predictions, feedback = _errors_then_redos(model, 8_000, 4_000, error=0.5, redo=0.5)
        _kcat_publish(settings, "predictions", predictions)
        _kcat_publish(settings, "feedback", feedback)
        after = _wait_for(
            settings,
            "alerts",
            lambda e: any("redo_rate" in a.data.signal for a in firing(e)),
            timeout_s=90,
        )
        time.sleep(3)
        requests = _read_topic(settings, "retrain-requests")
        log_tail = second.log_tail()
    redo = [a.data for a in firing(after) if "redo_rate" in a.data.signal]
    assert redo, f"the redo rate's drift was not alerted after the restart:\n{log_tail}"
    assert {a.alert_id for a in redo} == {alert.alert_id}, (redo, alert)
    assert len(requests) == 1, "the restarted worker asked for a retrain again (cooldown lost)"
