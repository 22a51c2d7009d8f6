"""The registry's pure core: signing, refusal before unpickling, and the publish/rollout rules.

Runs on the in-memory Redis double; tests/integration/test_registry.py runs the
same registry against the real Redis.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from online_models.registry import (
    PUBLISH_STEPS,
    ArtifactRefusedError,
    ArtifactSigner,
    IncompleteVersionError,
    InvalidNameError,
    InvalidTransitionError,
    MissingSecretError,
    ModelRegistry,
    SignedArtifact,
    TrainingWindow,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
    VersionMetadata,
)
from online_models.registry.testing import InMemoryRedis

SECRET = b"unit-test secret, 32 bytes long."
MODEL = "voice-intent"

EXECUTED: list[str] = []


def _record_execution(tag: str) -> str:
    EXECUTED.append(tag)
    return tag


class Exploit:
    """Unpickling this runs _record_execution: proof of whether bytes were unpickled."""

    def __reduce__(self):
        return (_record_execution, ("unpickled",))


@pytest.fixture
def signer() -> ArtifactSigner:
    return ArtifactSigner(SECRET)


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry(InMemoryRedis(), SECRET, "unit:")


# ----------------------------------------------------------------------------- signing


def test_sealed_object_and_bytes_come_back_equal(signer):
    obj = {"weights": [0.25, -1.5], "classes": ("music", "weather")}
    assert signer.open(signer.seal(obj, model=MODEL, version=1), model=MODEL, version=1) == obj
    raw = b"\x00\x01 onnx bytes"
    sealed = signer.seal(raw, model=MODEL, version=2)
    assert sealed.format == "bytes"
    assert signer.open(sealed, model=MODEL, version=2) == raw


@pytest.mark.parametrize("position", [0, 17, -1])
def test_any_flipped_byte_is_refused_as_tampered(signer, position):
    sealed = signer.seal(list(range(50)), model=MODEL, version=1)
    payload = bytearray(sealed.payload)
    payload[position] ^= 0x01
    tampered = SignedArtifact(bytes(payload), sealed.format, sealed.sha256, sealed.signature)
    with pytest.raises(ArtifactRefusedError, match="bytes changed since it was published"):
        signer.open(tampered, model=MODEL, version=1)


def test_refused_bytes_are_never_unpickled(signer):
    EXECUTED.clear()
    evil = pickle.dumps(Exploit())
    # the attacker recomputes the sha256 but cannot sign without the secret
    forged = ArtifactSigner(b"attacker's guess of the secret!!").seal_payload(
        evil, "pickle", model=MODEL, version=1
    )
    with pytest.raises(ArtifactRefusedError, match="signature does not match"):
        signer.open(forged, model=MODEL, version=1)
    unsigned = SignedArtifact(evil, "pickle", forged.sha256, "")
    with pytest.raises(ArtifactRefusedError, match="no signature"):
        signer.open(unsigned, model=MODEL, version=1)
    assert EXECUTED == []
    # and the same bytes properly signed are unpickled (the exploit is real)
    assert signer.open(signer.seal_payload(evil, "pickle", model=MODEL, version=1),
                       model=MODEL, version=1) == "unpickled"  # fmt: skip
    assert EXECUTED == ["unpickled"]


def test_wrong_secret_is_refused_and_names_the_setting(signer):
    sealed = signer.seal({"a": 1}, model=MODEL, version=3)
    other = ArtifactSigner(b"another secret, also 32 bytes..")
    with pytest.raises(ArtifactRefusedError, match="DRIFTLOOP_REGISTRY_SECRET"):
        other.open(sealed, model=MODEL, version=3)


def test_a_signed_artifact_cannot_stand_in_for_another_version_or_model(signer):
    sealed = signer.seal({"a": 1}, model=MODEL, version=3)
    with pytest.raises(ArtifactRefusedError, match="copied from another version"):
        signer.open(sealed, model=MODEL, version=4)
    with pytest.raises(ArtifactRefusedError):
        signer.open(sealed, model="other-model", version=3)
    relabelled = SignedArtifact(sealed.payload, "bytes", sealed.sha256, sealed.signature)
    with pytest.raises(ArtifactRefusedError):
        signer.open(relabelled, model=MODEL, version=3)


@pytest.mark.parametrize("secret", [b"", "short", b"15 bytes secret"])
def test_short_secret_is_refused_with_how_to_make_one(secret):
    with pytest.raises(MissingSecretError, match=r"secrets\.token_hex"):
        ArtifactSigner(secret)


# ----------------------------------------------------------------------------- metadata


def test_training_window_accepts_a_retrain_requests_window_unchanged():
    from streams.events import DataWindow

    start = datetime(2026, 1, 2, tzinfo=UTC)
    wire = DataWindow(
        start=start,
        end=start + timedelta(hours=1),
        offsets=[{"topic": "driftloop.outcomes", "partition": 1, "start": 10, "end": 900}],
    )
    window = TrainingWindow.model_validate(wire.model_dump())
    assert window.offsets[0].end == 900 and window.end - window.start == timedelta(hours=1)


@pytest.mark.parametrize(
    "window, message",
    [
        ({}, "timestamps or offset ranges"),
        ({"start": "2026-01-02T00:00:00Z"}, "both start and end"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end after"),
    ],
)
def test_training_window_says_what_is_missing(window, message):
    with pytest.raises(ValueError, match=message):
        TrainingWindow.model_validate(window)


def test_reference_must_be_json():
    with pytest.raises(ValueError, match="plain JSON"):
        VersionMetadata(reference={"bins": {1, 2}})


# ----------------------------------------------------------------------------- registry rules


def test_versions_only_grow_and_metadata_round_trips(registry):
    meta = VersionMetadata(
        training_window={"start": "2026-01-02T00:00:00Z", "end": "2026-01-02T01:00:00Z"},
        trigger={"requested_by": "policy", "alert_ids": ["al-1", "al-2"]},
        metrics={"accuracy": 0.91, "log_loss": 0.3},
        reference={"loudness_db": {"edges": [-40, -30, -20], "counts": [5, 9]}},
    )
    versions = [registry.register_version(MODEL, {"n": n}, meta).version for n in range(3)]
    assert versions == [1, 2, 3]
    info = registry.get_version(MODEL, 2)
    assert info.metadata == meta
    assert info.status == "candidate" and info.aliases == []
    artifact, loaded = registry.load(MODEL, "latest")
    assert artifact == {"n": 2} and loaded.version == 3


def test_parent_defaults_to_the_champion_at_publish_time(registry):
    registry.register_version(MODEL, {"v": 1}, alias="champion")
    second = registry.register_version(MODEL, {"v": 2})
    explicit = registry.register_version(MODEL, {"v": 3}, {"parent_version": 2})
    assert second.metadata.parent_version == 1
    assert explicit.metadata.parent_version == 2


def test_unknown_names_list_what_exists(registry):
    registry.register_version(MODEL, {"v": 1}, alias="champion")
    with pytest.raises(UnknownModelError, match="registered models: voice-intent"):
        registry.load("voice-search", "champion")
    with pytest.raises(UnknownAliasError, match="its aliases: champion -> 1"):
        registry.load(MODEL, "staging")
    with pytest.raises(UnknownVersionError, match="published versions: 1"):
        registry.load(MODEL, 7)
    with pytest.raises(InvalidNameError, match="letters, digits"):
        registry.register_version("voice intent", {"v": 1})
    with pytest.raises(InvalidNameError, match="highest version"):
        registry.set_alias(MODEL, "latest", 1)


def test_champion_moves_only_by_promote_and_rollback(registry):
    registry.register_version(MODEL, {"v": 1}, alias="champion")
    registry.register_version(MODEL, {"v": 2})
    with pytest.raises(InvalidTransitionError, match="promote"):
        registry.set_alias(MODEL, "champion", 2)
    with pytest.raises(InvalidTransitionError):
        registry.delete_alias(MODEL, "champion")
    assert registry.get_alias(MODEL, "champion") == 1


def test_promote_then_rollback_walks_the_champion_lineage(registry):
    for n in (1, 2, 3):
        registry.register_version(MODEL, {"v": n}, alias="challenger")
        transition = registry.promote(MODEL, reason=f"step {n}")
        assert (transition.version, transition.previous_version) == (n, n - 1 or None)
    assert registry.get_version(MODEL, 2).status == "archived"
    back = registry.rollback(MODEL)
    assert (back.action, back.version, back.champion) == ("rolled_back", 3, 2)
    assert registry.load(MODEL, "champion").artifact == {"v": 2}
    back = registry.rollback(MODEL)
    assert back.champion == 1
    with pytest.raises(InvalidTransitionError, match="first champion"):
        registry.rollback(MODEL)
    statuses = {v.version: v.status for v in registry.list_versions(MODEL)}
    assert statuses == {1: "champion", 2: "rolled_back", 3: "rolled_back"}


def test_rollback_with_a_challenger_drops_the_challenger_only(registry):
    registry.register_version(MODEL, {"v": 1}, alias="champion")
    registry.register_version(MODEL, {"v": 2}, alias="challenger")
    back = registry.rollback(MODEL)
    assert (back.version, back.champion, back.challenger) == (2, 1, None)
    assert registry.aliases(MODEL) == {"champion": 1}
    assert registry.get_version(MODEL, 2).status == "rolled_back"
    with pytest.raises(InvalidTransitionError, match="no challenger to promote"):
        registry.promote(MODEL)


def test_approvals_are_per_version_and_step(registry):
    registry.register_version(MODEL, {"v": 1}, alias="champion")
    registry.register_version(MODEL, {"v": 2}, alias="challenger")
    pending = registry.request_approval(MODEL, 2, "canary-5", reason="error rate flat")
    assert pending.state == "pending" and not registry.is_approved(MODEL, 2, "canary-5")
    approved = registry.approve(MODEL, 2, "canary-5", approved_by="ops", note="go")
    assert approved.reason == "error rate flat" and approved.requested_at == pending.requested_at
    assert registry.is_approved(MODEL, 2, "canary-5")
    assert not registry.is_approved(MODEL, 2, "promote")
    assert not registry.is_approved(MODEL, 1, "canary-5")
    # asking again does not take an approval back
    assert registry.request_approval(MODEL, 2, "canary-5").state == "approved"
    with pytest.raises(UnknownVersionError):
        registry.approve(MODEL, 9, approved_by="ops")


def test_tags_on_model_and_version(registry):
    registry.register_version(MODEL, {"v": 1}, tags={"framework": "river"})
    registry.set_tag(MODEL, "owner", "search-team")
    registry.set_tag(MODEL, "reviewed", "yes", version=1)
    assert registry.tags(MODEL) == {"owner": "search-team"}
    assert registry.get_version(MODEL, 1).tags == {"framework": "river", "reviewed": "yes"}
    assert registry.list_models()[0].tags == {"owner": "search-team"}


class CrashError(Exception):
    pass


def _crash_at(step):
    def hook(reached):
        if reached == step:
            raise CrashError(step)

    return hook


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_an_interrupted_publish_never_leaves_the_champion_on_a_broken_version(step):
    client = InMemoryRedis()
    ModelRegistry(client, SECRET, "unit:").register_version(MODEL, {"v": 1}, alias="champion")
    dying = ModelRegistry(client, SECRET, "unit:", on_step=_crash_at(step))
    with pytest.raises(CrashError):
        dying.register_version(MODEL, {"v": 2}, alias="champion")

    registry = ModelRegistry(client, SECRET, "unit:")
    published = step in ("after_pointer", "after_alias")
    artifact, _ = registry.load(MODEL, "champion")
    assert artifact == ({"v": 2} if step == "after_alias" else {"v": 1})
    assert [v.version for v in registry.list_versions(MODEL)] == ([1, 2] if published else [1])
    if step in ("after_blob", "before_pointer"):
        assert registry.incomplete_versions(MODEL) == [2]
        with pytest.raises(IncompleteVersionError, match="never finished"):
            registry.load(MODEL, 2)
        with pytest.raises(IncompleteVersionError):
            registry.promote(MODEL, 2)
        assert registry.purge_incomplete(MODEL) == [2]
    assert registry.incomplete_versions(MODEL) == []
    retry = registry.register_version(MODEL, {"v": 3}, alias="champion")
    assert retry.version == 3
    assert registry.load(MODEL, "champion").artifact == {"v": 3}


def test_read_only_registry_lists_but_refuses_to_load_or_publish():
    client = InMemoryRedis()
    ModelRegistry(client, SECRET).register_version(MODEL, {"v": 1}, alias="champion")
    read_only = ModelRegistry(client, None)
    assert read_only.list_models()[0].champion == 1
    with pytest.raises(MissingSecretError, match="DRIFTLOOP_REGISTRY_SECRET"):
        read_only.load(MODEL)
    with pytest.raises(MissingSecretError):
        read_only.register_version(MODEL, {"v": 2})


def test_a_crashed_first_publish_is_listed_with_no_versions_and_found_incomplete():
    client = InMemoryRedis()
    dying = ModelRegistry(client, SECRET, "unit:", on_step=_crash_at("before_pointer"))
    with pytest.raises(CrashError):
        dying.register_version(MODEL, {"v": 1}, alias="champion")
    registry = ModelRegistry(client, SECRET, "unit:")
    summary = registry.list_models()[0]
    assert (summary.name, summary.versions, summary.champion) == (MODEL, 0, None)
    assert registry.incomplete_versions(MODEL) == [1]
    with pytest.raises(UnknownAliasError, match=r"its aliases: \(none\)"):
        registry.load(MODEL, "champion")
