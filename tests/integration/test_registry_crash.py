"""A publisher killed with SIGKILL at each step never leaves an alias on a broken model.

Each run publishes in a child process (``python -m online_models.registry.testing``)
against the real Redis, with ``DRIFTLOOP_REGISTRY_CRASH_AT`` naming the step at
which the child kills itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from online_models.registry import (
    PUBLISH_STEPS,
    ArtifactRefusedError,
    IncompleteVersionError,
    ModelRegistry,
)
from online_models.registry.testing import CRASH_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "crash-test secret, 32 bytes long"
MODEL = "voice-intent"


def publish(settings, namespace: str, crash_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "online_models.registry.testing", settings.redis_url, namespace,
         MODEL, SECRET],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def assert_every_alias_loads(registry: ModelRegistry) -> None:
    for alias, version in registry.aliases(MODEL).items():
        artifact, info = registry.load(MODEL, alias)
        assert info.version == version and isinstance(artifact, dict)


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_killed_publisher_leaves_the_champion_loadable(settings, redis_client, step):
    client, namespace = redis_client
    registry = ModelRegistry(client, SECRET, namespace)

    # only the publisher that dies needs a process of its own
    assert registry.register_version(MODEL, {"v": 1}, alias="champion").version == 1

    killed = publish(settings, namespace, crash_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout == ""  # it never reported a version

    champion_moved = step == "after_alias"
    visible = step in ("after_pointer", "after_alias")
    assert registry.get_alias(MODEL, "champion") == (2 if champion_moved else 1)
    assert_every_alias_loads(registry)
    assert [v.version for v in registry.list_versions(MODEL)] == ([1, 2] if visible else [1])
    if step in ("after_blob", "before_pointer"):
        assert registry.incomplete_versions(MODEL) == [2]
        with pytest.raises(IncompleteVersionError, match="never finished"):
            registry.load(MODEL, 2)
    else:
        assert registry.incomplete_versions(MODEL) == []

    retry = registry.register_version(MODEL, {"v": 3}, alias="champion")
    assert retry.version == 3  # the abandoned number is not reused
    assert registry.get_alias(MODEL, "champion") == 3
    assert_every_alias_loads(registry)


def test_flipped_byte_in_redis_is_refused(settings, redis_client):
    client, namespace = redis_client
    published = publish(settings, namespace, crash_at=None)
    assert (published.returncode, published.stdout.strip()) == (0, "1"), published.stderr
    assert ModelRegistry(client, SECRET, namespace).load(MODEL).info.version == 1
    key = f"{namespace}registry:{MODEL}:blob:1"
    blob = bytearray(client.get(key))
    blob[len(blob) // 2] ^= 0x01
    client.set(key, bytes(blob))
    with pytest.raises(ArtifactRefusedError, match="tampered with or corrupted"):
        ModelRegistry(client, SECRET, namespace).load(MODEL, "champion")
