"""``driftloop retrainer`` against the real broker and Redis: requests in, model events out.

The crash tests run the retrainer as a child process (``python -m retrain.cli``)
that SIGKILLs itself at a publishing step (``DRIFTLOOP_RETRAINER_CRASH_AT``),
then restart it and check what a user would: the champion still loads, a
tampered artifact is refused, and the request ends with one ``published``
event and a loadable challenger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from pydantic import SecretStr
from typer.testing import CliRunner

from online_models.models import train
from online_models.models.datasets import tabular_rows
from online_models.registry import (
    ArtifactRefusedError,
    IncompleteVersionError,
    ModelRegistry,
    VersionMetadata,
)
from producers.publisher import Publisher
from retrain.cli import CRASH_ENV, retrainer
from streams.events import ModelEventEvent
from streams.reader import EventReader
from streams.references import ReferenceStore
from streams.settings import Settings
from streams.testing import worker_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "retrainer test secret, 32 bytes."
MODEL = "churn"
NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = {"start": NOW - timedelta(hours=1), "end": NOW + timedelta(minutes=5)}


@pytest.fixture
def setup(topics: Settings, redis_client) -> tuple[Settings, ModelRegistry, dict[str, str]]:
    """Settings of this test's topics and namespace, a registry with a champion, the env."""
    client, namespace = redis_client
    settings = topics.model_copy(
        update={"registry_namespace": namespace, "registry_secret": SecretStr(SECRET)}
    )
    registry = ModelRegistry(client, SECRET, namespace)
    champion = train("tabular", tabular_rows(1_500, seed=21, drift=0.0))
    registry.register_version(
        MODEL, champion, VersionMetadata(), alias="champion", tags={"pipeline": "tabular"}
    )
    env = {k: v for k, v in worker_environment(settings).items() if v != "None"}
    env["DRIFTLOOP_REGISTRY_SECRET"] = SECRET
    return settings, registry, env


def publish_outcomes(settings: Settings, labelled: int, *, unlabelled: int = 0, other: int = 0):
    """Drifted traffic of MODEL in the last hour (plus unlabelled and another model's)."""
    rows = tabular_rows(labelled + unlabelled + other, seed=22, drift=1.0)
    start = NOW - timedelta(minutes=50)
    with Publisher(settings) as publisher:
        for i, row in enumerate(rows):
            has_label = i < labelled or i >= labelled + unlabelled
            publisher.publish(
                "outcome",
                {
                    "request_id": f"q-{i}",
                    "model": MODEL if i < labelled + unlabelled else "other-model",
                    "model_version": "1",
                    "segment": row.segment,
                    "features": row.features,
                    "predicted_label": "stay",
                    "label": row.label if has_label else None,
                    "prediction_time": start + timedelta(milliseconds=100 * i),
                    "label_delay_ms": 500.0,
                },
                time=start + timedelta(milliseconds=100 * i + 500),
            )


def publish_request(settings: Settings, request_id: str, model: str = MODEL) -> None:
    with Publisher(settings) as publisher:
        publisher.publish(
            "retrain-request",
            {
                "request_id": request_id,
                "model": model,
                "reason": "concept drift on error_rate",
                "alert_ids": ["al-1"],
                "window": WINDOW,
                "requested_by": "policy",
            },
        )


def model_events(settings: Settings) -> list[ModelEventEvent]:
    with EventReader(settings, ["model-events"]) as reader:
        found = [item.event for item in reader.items(until_idle_s=1.5, max_wait_s=20)]
    return [e for e in found if isinstance(e, ModelEventEvent)]


def run_cli(env: dict[str, str], *args: str):
    app = typer.Typer()
    app.command()(retrainer)
    return CliRunner().invoke(app, list(args), env=env)


def test_requests_become_a_challenger_a_no_op_and_a_clear_refusal(setup, redis_client):
    settings, registry, env = setup
    client, namespace = redis_client
    publish_outcomes(settings, 2_500, unlabelled=200, other=100)
    publish_request(settings, "rr-1")
    publish_request(settings, "rr-1")  # the same request twice: the second is a no-op
    publish_request(settings, "rr-ghost", model="ghost")  # a model with no traffic

    result = run_cli(env, "--once")
    assert result.exit_code == 0, result.output
    for stage in ("fetch", "train", "evaluate", "publish", "reference"):
        assert f"  {stage} " in result.output  # one line per stage, with its duration
    assert "2500 labelled outcomes of churn (200 unlabelled, 100 of other models)" in result.output

    events = model_events(settings)
    assert [(e.id, e.data.action) for e in events] == [
        ("rr-1:retrain_started", "retrain_started"),
        ("rr-1:published", "published"),
        ("rr-ghost:retrain_started", "retrain_started"),
        ("rr-ghost:retrain_abandoned", "retrain_abandoned"),
    ]
    published = events[1].data
    assert published.version == 2 and published.retrain_request_id == "rr-1"
    assert published.details["candidate.accuracy"] > published.details["champion.accuracy"]
    assert "no outcomes of model ghost in the window" in events[3].data.reason

    assert registry.aliases(MODEL) == {"champion": 1, "challenger": 2}
    challenger, info = registry.load(MODEL, "challenger")
    assert challenger.learned == 2_000  # 80 % of the labelled window; the rest is the holdout
    window = info.metadata.training_window
    outcomes = settings.topic("outcomes")
    assert {span.topic for span in window.offsets} == {outcomes}
    with EventReader(settings, ["outcomes"]) as reader:
        records = {(i.partition, i.offset) for i in reader.items(until_idle_s=1, max_wait_s=20)}
    assert sum(span.end - span.start for span in window.offsets) == len(records)
    assert info.metadata.trigger.alert_ids == ["al-1"]
    assert info.metadata.metrics["holdout_rows"] == 500
    # the challenger's training distribution is its drift reference, where the worker reads it
    reference = ReferenceStore(client, namespace).get(MODEL, "2")
    assert reference is not None, "the retrainer stored no drift reference for version 2"
    assert (reference.source, reference.rows) == ("training", 2_000)
    assert reference.signals == sorted(tabular_rows(1, seed=22, drift=1.0)[0].features)
    assert ReferenceStore(client, namespace).get(MODEL, "1") is None

    # a restarted worker finds nothing left to do, and a re-sent request stays a no-op
    publish_request(settings, "rr-1")
    again = run_cli(env, "--once")
    assert again.exit_code == 0, again.output
    assert "rr-1: already handled (published version 2); skipped" in again.output
    assert len(model_events(settings)) == 4
    assert [v.version for v in registry.list_versions(MODEL)] == [1, 2]


def test_too_few_labelled_outcomes_end_with_an_event_saying_why(setup):
    settings, registry, env = setup
    publish_outcomes(settings, 150, unlabelled=400)
    publish_request(settings, "rr-few")
    result = run_cli(env, "--until-idle", "2", "--min-examples", "500")
    assert result.exit_code == 0, result.output
    last = model_events(settings)[-1].data
    assert last.action == "retrain_abandoned"
    assert last.reason.startswith("only 150 labelled outcomes of churn in the window")
    assert "400 more have no label" in last.reason
    assert [v.version for v in registry.list_versions(MODEL)] == [1]


def retrainer_process(env: dict[str, str], crash_at: str | None) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    child_env.update(env, PYTHONUNBUFFERED="1")
    if crash_at is not None:
        child_env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "retrain.cli", "--once", "--min-examples", "500"],
        env=child_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def flip_a_byte(client, key: str) -> None:
    blob = bytearray(client.get(key))
    blob[len(blob) // 2] ^= 0x01
    client.set(key, bytes(blob))


# the three steps the issue names; after_pointer and the rest are covered in the unit tests
@pytest.mark.parametrize("step", ["after_blob", "before_pointer", "before_event"])
def test_a_worker_killed_while_publishing_is_finished_by_the_next(setup, redis_client, step):
    settings, registry, env = setup
    client, namespace = redis_client
    publish_outcomes(settings, 1_500)
    publish_request(settings, "rr-crash")

    killed = retrainer_process(env, crash_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert registry.load(MODEL, "champion").info.version == 1  # the champion always loads
    assert registry.get_alias(MODEL, "challenger") in (None, 2)
    assert [e.data.action for e in model_events(settings)] == ["retrain_started"]

    restarted = retrainer_process(env, crash_at=None)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    published = [e for e in model_events(settings) if e.data.action == "published"]
    assert [e.id for e in published] == ["rr-crash:published"]
    resumed = step == "before_event"  # the version was complete
    version = 2 if resumed else 3
    assert published[0].data.version == version
    assert published[0].data.details["resumed"] is resumed
    assert registry.aliases(MODEL) == {"champion": 1, "challenger": version}
    assert registry.load(MODEL, "challenger").artifact.learned == 1_200
    reference = ReferenceStore(client, namespace).get(MODEL, str(version))
    assert (reference.source, reference.rows) == ("training", 1_200)
    if not resumed:  # the half-publication stays invisible
        assert registry.incomplete_versions(MODEL) == [2]
        with pytest.raises(IncompleteVersionError):
            registry.load(MODEL, 2)

    flip_a_byte(client, f"{namespace}registry:{MODEL}:blob:{version}")
    with pytest.raises(ArtifactRefusedError, match="tampered with or corrupted"):
        registry.load(MODEL, "challenger")
    assert registry.load(MODEL, "champion").info.version == 1
