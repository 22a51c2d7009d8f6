"""Where drift references live: Redis, next to the model registry, one per model version.

A reference is a :class:`~online_models.drift.ReferenceProfile` as JSON under
``<registry_namespace>reference:<model>:<version>``. It is written by
``driftloop reference set MODEL FILE`` (the user's own reference data) or by
the retrain worker (the new version's training data), and read by the
worker's drift detectors when they first see traffic of that version and again
when it is promoted. Without one, the detectors take the first
``drift_reference_first_n`` events of the version as its reference.
"""

from __future__ import annotations

import json
from typing import Any

from online_models.drift import ReferenceProfile

__all__ = ["ReferenceStore"]


class ReferenceStore:
    """Drift references in Redis, by model and version.

    Parameters
    ----------
    client
        A ``redis.Redis`` (or anything with ``get``/``set``/``scan_iter``).
    namespace
        The registry's key prefix (``Settings.registry_namespace``).

    Examples
    --------
    >>> from online_models.registry.testing import InMemoryRedis
    >>> store = ReferenceStore(InMemoryRedis(), "dl:")
    >>> profile = ReferenceProfile.from_rows(
    ...     [{"loudness_db": -20.0 + i % 7, "mic": "usb"} for i in range(200)],
    ...     model="voice", model_version="2", source="explicit")
    >>> store.put(profile)
    'dl:reference:voice:2'
    >>> store.get("voice", "2").numeric["loudness_db"].count, store.get("voice", "3")
    (200, None)
    """

    def __init__(self, client: Any, namespace: str) -> None:
        self._client = client
        self._namespace = namespace

    def key(self, model: str, version: str) -> str:
        """The Redis key of a version's reference."""
        return f"{self._namespace}reference:{model}:{version}"

    def put(self, profile: ReferenceProfile) -> str:
        """Store (or replace) the reference of ``profile.model`` / ``profile.model_version``."""
        key = self.key(profile.model, str(profile.model_version))
        self._client.set(key, json.dumps(profile.to_dict(), separators=(",", ":")))
        return key

    def get(self, model: str, version: str) -> ReferenceProfile | None:
        """The stored reference of that version, or ``None``."""
        raw = self.get_raw(model, version)
        return None if raw is None else self.parse(raw)

    def get_raw(self, model: str, version: str) -> bytes | None:
        """The stored JSON, as bytes (to tell whether it changed without parsing it)."""
        raw = self._client.get(self.key(model, str(version)))
        return raw.encode() if isinstance(raw, str) else raw

    @staticmethod
    def parse(raw: bytes) -> ReferenceProfile:
        """A profile from the stored JSON."""
        return ReferenceProfile.from_dict(json.loads(raw))
