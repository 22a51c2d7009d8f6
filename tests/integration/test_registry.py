"""The model registry against the real Redis, and ``driftloop models`` on top of it."""

from __future__ import annotations

import json
import random
import threading

import pytest
from river import linear_model, preprocessing
from typer.testing import CliRunner

from online_models.registry import (
    ArtifactRefusedError,
    ModelRegistry,
    VersionMetadata,
)
from retrain.models_cli import models_app

SECRET = b"integration secret, 32 bytes...."
MODEL = "voice-intent"


@pytest.fixture
def registry(redis_client) -> ModelRegistry:
    client, namespace = redis_client
    return ModelRegistry(client, SECRET, namespace)


def _river_pipeline(seed: int):
    rng = random.Random(seed)
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for _ in range(300):
        x = {"loudness_db": rng.gauss(-25, 5), "clip_duration_s": rng.uniform(0.5, 4)}
        model.learn_one(x, x["loudness_db"] > -25)
    return model


def test_a_river_pipeline_round_trips_with_its_lineage(registry):
    pipeline = _river_pipeline(seed=1)
    meta = VersionMetadata(
        training_window={
            "start": "2026-01-02T00:00:00Z",
            "end": "2026-01-02T06:00:00Z",
            "offsets": [{"topic": "driftloop.outcomes", "partition": 0, "start": 0, "end": 300}],
        },
        trigger={"requested_by": "policy", "alert_ids": ["al-9"], "retrain_request_id": "rr-3"},
        metrics={"accuracy": 0.97},
        reference={"loudness_db": {"mean": -25.0, "std": 5.0}},
    )
    published = registry.register_version(MODEL, pipeline, meta, alias="champion")
    loaded, info = registry.load(MODEL, "champion")
    probe = {"loudness_db": -18.0, "clip_duration_s": 2.0}
    assert loaded.predict_proba_one(probe) == pipeline.predict_proba_one(probe)
    assert info == published
    assert info.metadata.trigger.alert_ids == ["al-9"] and info.status == "champion"


def test_versions_stay_unique_under_concurrent_publishers(redis_client):
    client, namespace = redis_client
    versions: list[int] = []

    def publish(worker: int) -> None:
        mine = ModelRegistry(client, SECRET, namespace)
        for n in range(15):
            versions.append(mine.register_version(MODEL, {"worker": worker, "n": n}).version)

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(1, 46))
    registry = ModelRegistry(client, SECRET, namespace)
    assert [v.version for v in registry.list_versions(MODEL)] == list(range(1, 46))


def test_tampered_unsigned_and_foreign_artifacts_are_refused_in_redis(registry, redis_client):
    client, namespace = redis_client
    registry.register_version(MODEL, {"v": 1}, alias="champion")
    registry.register_version(MODEL, {"v": 2}, alias="challenger")
    blob_key = f"{namespace}registry:{MODEL}:blob:1"
    record_key = f"{namespace}registry:{MODEL}:record:2"

    original = client.get(blob_key)
    client.set(blob_key, original[:-1] + bytes([original[-1] ^ 0xFF]))
    with pytest.raises(ArtifactRefusedError, match="tampered with or corrupted"):
        registry.load(MODEL, "champion")
    client.set(blob_key, client.get(f"{namespace}registry:{MODEL}:blob:2"))
    with pytest.raises(ArtifactRefusedError):  # version 2's genuine bytes under version 1
        registry.load(MODEL, "champion")
    client.set(blob_key, original)
    assert registry.load(MODEL, "champion").artifact == {"v": 1}

    record = json.loads(client.get(record_key))
    del record["signature"]
    client.set(record_key, json.dumps(record))
    with pytest.raises(ArtifactRefusedError, match="no signature"):
        registry.load(MODEL, "challenger")

    stranger = ModelRegistry(client, b"not the secret it was signed with", namespace)
    with pytest.raises(ArtifactRefusedError, match="DRIFTLOOP_REGISTRY_SECRET"):
        stranger.load(MODEL, "champion")


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(settings, redis_client, monkeypatch):
    _, namespace = redis_client
    runner = CliRunner()
    env = {
        "DRIFTLOOP_REDIS_URL": settings.redis_url,
        "DRIFTLOOP_REGISTRY_SECRET": SECRET.decode(),
        "COLUMNS": "200",
    }

    def run(*args: str):
        return runner.invoke(models_app, [*args, "--namespace", namespace], env=env)

    return run


def test_cli_lists_shows_promotes_approves_and_rolls_back(registry, cli):
    registry.register_version(MODEL, {"v": 1}, {"metrics": {"accuracy": 0.9}}, alias="champion")
    registry.register_version(
        MODEL,
        {"v": 2},
        {"metrics": {"accuracy": 0.93}, "trigger": {"requested_by": "policy", "alert_ids": ["a7"]}},
        alias="challenger",
    )

    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0] | {"aliases": None, "tags": None} == {
        "name": MODEL, "versions": 2, "latest": 2, "champion": 1, "challenger": 2,
        "aliases": None, "tags": None,
    }  # fmt: skip
    table = cli("list")
    assert MODEL in table.output and "challenger" in table.output

    shown = cli("show", MODEL, "--version", "challenger", "--verify")
    assert shown.exit_code == 0, shown.output
    assert "policy (alerts a7)" in shown.output and "metric accuracy" in shown.output
    assert "artifact verified" in shown.output

    approved = cli("approve", MODEL, "2", "--step", "canary-5", "--by", "ops")
    assert approved.exit_code == 0, approved.output
    assert registry.is_approved(MODEL, 2, "canary-5")

    promoted = cli("promote", MODEL, "--json")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.output)["previous_version"] == 1
    assert registry.get_alias(MODEL, "champion") == 2

    rolled = cli("rollback", MODEL)
    assert rolled.exit_code == 0, rolled.output
    assert "version 2 rolled back; champion is 1" in rolled.output
    assert registry.get_version(MODEL, 2).status == "rolled_back"


def test_cli_errors_say_what_to_do(registry, cli, redis_client):
    client, namespace = redis_client
    registry.register_version(MODEL, {"v": 1}, alias="champion")
    unknown = cli("show", "voice-serch")
    assert unknown.exit_code == 1
    assert "registered models: voice-intent" in unknown.output

    nothing = cli("rollback", MODEL)
    assert nothing.exit_code == 1 and "no earlier champion" in nothing.output.replace("\n", " ")

    blob_key = f"{namespace}registry:{MODEL}:blob:1"
    client.set(blob_key, b"not the pickle that was signed")
    tampered = cli("show", MODEL, "--verify")
    assert tampered.exit_code == 1 and "tampered" in tampered.output
