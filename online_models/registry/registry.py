"""The model registry in Redis: names, growing versions, aliases, tags, signed artifacts.

Key layout, under the namespace prefix ``ns`` (default ``driftloop:``), for a
model ``m``::

    ns registry:models            SET    names of models (added before their first version)
    ns registry:m:counter         STRING last version number handed out (INCR)
    ns registry:m:blob:<v>        STRING the artifact bytes
    ns registry:m:record:<v>      STRING VersionRecord JSON (sha256, signature, metadata)
    ns registry:m:versions        ZSET   published versions: the version pointer
    ns registry:m:aliases         HASH   alias -> version (champion, challenger, ...)
    ns registry:m:status          HASH   version -> candidate | archived | rolled_back
    ns registry:m:replaced        HASH   champion version -> the champion it replaced
    ns registry:m:tags            HASH   model tags
    ns registry:m:tags:<v>        HASH   version tags
    ns registry:m:approvals       HASH   "<v>:<step>" -> Approval JSON

Crash safety comes from the order of plain single-key writes, not from
transactions: Debian's Redis 7.0 with AOF silently drops MULTI/EXEC and Lua
writes when it replays the AOF after a crash (redis#14541), so neither is used.
A publish writes the blob, then the record, then the version pointer, then the
alias. A process that dies at any point leaves either nothing visible or a
complete version; a version without a pointer is invisible to listings and
aliases and reported as incomplete. Version numbers come from INCR, so they
only grow, even when a publish is abandoned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from online_models.registry.artifact import ArtifactSigner, SignedArtifact, serialize
from online_models.registry.exceptions import (
    ArtifactRefusedError,
    IncompleteVersionError,
    InvalidNameError,
    InvalidTransitionError,
    MissingSecretError,
    RegistryError,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
)
from online_models.registry.transition import Approval, Transition
from online_models.registry.version import VersionInfo, VersionMetadata, VersionRecord

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PUBLISH_STEPS",
    "LoadedVersion",
    "ModelRegistry",
    "ModelSummary",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
LATEST = "latest"

#: The points of :meth:`ModelRegistry.register_version` at which ``on_step`` is called,
#: in order (a crash-injection hook uses them to stop the process there).
PUBLISH_STEPS: tuple[str, ...] = (
    "after_version",
    "after_blob",
    "before_pointer",
    "after_pointer",
    "after_alias",
)

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_STEP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class LoadedVersion(NamedTuple):
    """A loaded artifact and what the registry knows about it: ``artifact, info = load(...)``."""

    artifact: Any
    info: VersionInfo


class ModelSummary(BaseModel):
    """One registered model at a glance: how many versions, which serve, its tags.

    Examples
    --------
    >>> ModelSummary(name="voice-intent", versions=3, latest=3, champion=2).champion
    2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    versions: int
    latest: int | None = None
    champion: int | None = None
    challenger: int | None = None
    aliases: dict[str, int] = {}
    tags: dict[str, str] = {}


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


class ModelRegistry:
    """Registered models, their versions, aliases, tags and approvals, kept in Redis.

    Parameters
    ----------
    client
        A ``redis.Redis`` (or the in-memory double in
        :mod:`online_models.registry.testing`), with ``decode_responses`` off:
        artifacts are bytes.
    secret
        The HMAC key artifacts are signed and checked with
        (``DRIFTLOOP_REGISTRY_SECRET``), at least 16 bytes. ``None`` gives a
        read-only registry: listing, metadata, aliases and approvals work,
        publishing and loading artifacts raise :class:`MissingSecretError`.
    namespace
        Prefix of every key.
    on_step
        Called with each name in :data:`PUBLISH_STEPS` as a publish passes it
        (a crash-injection hook for tests); ``None`` in production.
    clock
        Current time, timezone-aware (for reproducible ``created_at`` in tests).

    Examples
    --------
    >>> import random
    >>> from online_models.registry.testing import InMemoryRedis
    >>> rng = random.Random(0)
    >>> registry = ModelRegistry(InMemoryRedis(), secret=b"an example secret, 32 bytes long")
    >>> first = registry.register_version(
    ...     "voice-intent", {"bias": rng.random()}, VersionMetadata(metrics={"accuracy": 0.90})
    ... )
    >>> registry.promote("voice-intent", first.version).action
    'promoted'
    >>> second = registry.register_version(
    ...     "voice-intent", {"bias": rng.random()}, VersionMetadata(metrics={"accuracy": 0.93}),
    ...     alias="challenger",
    ... )
    >>> second.version, second.status, second.metadata.parent_version
    (2, 'challenger', 1)
    >>> promoted = registry.promote("voice-intent")
    >>> promoted.version, promoted.previous_version, promoted.challenger
    (2, 1, None)
    >>> artifact, info = registry.load("voice-intent", "champion")
    >>> round(artifact["bias"], 4), info.version
    (0.758, 2)
    >>> registry.rollback("voice-intent").champion
    1
    >>> [(v.version, v.status) for v in registry.list_versions("voice-intent")]
    [(1, 'champion'), (2, 'rolled_back')]
    """

    def __init__(
        self,
        client: Any,
        secret: bytes | str | None,
        namespace: str = "driftloop:",
        *,
        on_step: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        pool = getattr(client, "connection_pool", None)
        if pool is not None and getattr(pool, "connection_kwargs", {}).get("decode_responses"):
            raise RegistryError(
                "the Redis client decodes responses to str, but artifacts are bytes: "
                "create it with decode_responses=False (the default)"
            )
        self._client = client
        self._signer = ArtifactSigner(secret) if secret is not None else None
        self._prefix = f"{namespace}registry:"
        self._on_step = on_step
        self._clock = clock or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------------ keys

    def _key(self, model: str, *parts: object) -> str:
        return ":".join([f"{self._prefix}{model}", *(str(p) for p in parts)])

    @property
    def _models_key(self) -> str:
        return f"{self._prefix}models"

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)

    def _require_signer(self, action: str) -> ArtifactSigner:
        if self._signer is None:
            raise MissingSecretError(
                f"cannot {action} without the registry secret: set DRIFTLOOP_REGISTRY_SECRET "
                "to the secret the artifacts are signed with"
            )
        return self._signer

    # ------------------------------------------------------------------ names

    @staticmethod
    def _check_model(model: str) -> str:
        if not isinstance(model, str) or not _MODEL_NAME.match(model):
            raise InvalidNameError(
                f"model name {model!r} is not allowed: use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 128 characters"
            )
        return model

    @staticmethod
    def _check_alias(alias: str) -> str:
        if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == LATEST:
            raise InvalidNameError(
                f"alias {alias!r} is not allowed: use lower-case letters, digits, '_' and '-', "
                f"starting with a letter, at most 64 characters, and not {LATEST!r} (it means "
                "the highest version)"
            )
        return alias

    @staticmethod
    def _check_step(step: str) -> str:
        if not isinstance(step, str) or not _STEP.match(step):
            raise InvalidNameError(
                f"approval step {step!r} is not allowed: use lower-case letters, digits, '.', "
                "'_' and '-', at most 64 characters (e.g. 'canary-5', 'promote')"
            )
        return step

    # ------------------------------------------------------------------ reading

    def list_models(self) -> list[ModelSummary]:
        """Every model that was ever published to (even if only incompletely), by name."""
        names = sorted(_text(n) or "" for n in self._client.smembers(self._models_key))
        return [self._summary(name) for name in names]

    def _summary(self, model: str) -> ModelSummary:
        versions = self._published(model)
        aliases = self.aliases(model)
        return ModelSummary(
            name=model,
            versions=len(versions),
            latest=versions[-1] if versions else None,
            champion=aliases.get(CHAMPION),
            challenger=aliases.get(CHALLENGER),
            aliases=aliases,
            tags=self.tags(model),
        )

    def _published(self, model: str) -> list[int]:
        members = self._client.zrange(self._key(model, "versions"), 0, -1)
        return [int(_text(v) or 0) for v in members]

    def _is_published(self, model: str, version: int) -> bool:
        return self._client.zscore(self._key(model, "versions"), str(version)) is not None

    def _known_model(self, model: str) -> None:
        self._check_model(model)
        if self._client.get(self._key(model, "counter")) is None:
            known = sorted(_text(n) or "" for n in self._client.smembers(self._models_key))
            raise UnknownModelError(
                f"no model named {model!r} in the registry; registered models: "
                f"{', '.join(known) if known else '(none yet)'}"
            )

    def aliases(self, model: str) -> dict[str, int]:
        """The model's aliases and the versions they point at."""
        raw = self._client.hgetall(self._key(self._check_model(model), "aliases"))
        return dict(sorted((_text(k) or "", int(_text(v) or 0)) for k, v in raw.items()))

    def get_alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, ``None`` when it is not set."""
        value = self._client.hget(self._key(self._check_model(model), "aliases"), alias)
        return int(_text(value) or 0) if value is not None else None

    def tags(self, model: str, version: int | None = None) -> dict[str, str]:
        """Tags of the model, or of one of its versions."""
        self._check_model(model)
        key = self._key(model, "tags") if version is None else self._key(model, "tags", version)
        return dict(sorted((_text(k) or "", _text(v) or "") for k, v in
                           self._client.hgetall(key).items()))  # fmt: skip

    def resolve(self, model: str, ref: int | str = CHAMPION) -> int:
        """The published version that ``ref`` names: a number, ``"latest"`` or an alias.

        Raises :class:`UnknownModelError`, :class:`UnknownAliasError`,
        :class:`UnknownVersionError` or, for a version whose publication never
        finished, :class:`IncompleteVersionError`.
        """
        self._known_model(model)
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            version = int(ref)
        elif ref == LATEST:
            published = self._published(model)
            if not published:
                raise UnknownVersionError(f"model {model!r} has no published version yet")
            return published[-1]
        else:
            found = self.get_alias(model, ref)
            if found is None:
                have = self.aliases(model)
                listed = ", ".join(f"{a} -> {v}" for a, v in have.items()) or "(none)"
                raise UnknownAliasError(
                    f"model {model!r} has no alias {ref!r}; its aliases: {listed}; or give a "
                    f"version number or {LATEST!r}"
                )
            version = found
        if self._is_published(model, version):
            return version
        counter = int(_text(self._client.get(self._key(model, "counter"))) or 0)
        if 1 <= version <= counter and self._client.exists(
            self._key(model, "blob", version), self._key(model, "record", version)
        ):
            raise IncompleteVersionError(
                f"version {version} of {model!r} was never finished: its publisher stopped "
                "after writing the artifact and before the version pointer, so it cannot be "
                "loaded or aliased; publish again (a new version number is used)"
            )
        published = self._published(model)
        raise UnknownVersionError(
            f"model {model!r} has no version {version}; published versions: "
            f"{', '.join(map(str, published)) if published else '(none)'}"
        )

    def _record(self, model: str, version: int) -> VersionRecord:
        raw = self._client.get(self._key(model, "record", version))
        if raw is None:
            raise RegistryError(
                f"version {version} of {model!r} is published but its record is missing: "
                "the registry keys were edited or deleted by hand; publish the model again"
            )
        try:
            return VersionRecord.model_validate_json(raw)
        except ValidationError as exc:
            raise RegistryError(
                f"the record of {model!r} version {version} is not valid ({exc.error_count()} "
                "errors): it was edited by hand or written by another program; publish again"
            ) from None

    def _info(self, record: VersionRecord) -> VersionInfo:
        model, version = record.model, record.version
        aliases = [a for a, v in self.aliases(model).items() if v == version]
        if CHAMPION in aliases:
            status = CHAMPION
        elif CHALLENGER in aliases:
            status = CHALLENGER
        else:
            status = _text(self._client.hget(self._key(model, "status"), str(version)))
            status = status or "candidate"
        return VersionInfo(
            **record.model_dump(),
            status=status,
            aliases=aliases,
            tags=self.tags(model, version),
        )

    def get_version(self, model: str, ref: int | str = CHAMPION) -> VersionInfo:
        """Metadata, status, aliases and tags of one published version (no artifact read)."""
        version = self.resolve(model, ref)
        return self._info(self._record(model, version))

    def list_versions(self, model: str) -> list[VersionInfo]:
        """Every published version of ``model``, oldest first."""
        self._known_model(model)
        return [self._info(self._record(model, v)) for v in self._published(model)]

    def incomplete_versions(self, model: str) -> list[int]:
        """Versions whose publication started (blob or record written) but never finished."""
        self._known_model(model)
        counter = int(_text(self._client.get(self._key(model, "counter"))) or 0)
        published = set(self._published(model))
        return [
            v
            for v in range(1, counter + 1)
            if v not in published
            and self._client.exists(self._key(model, "blob", v), self._key(model, "record", v))
        ]

    def _sealed(self, model: str, version: int) -> tuple[SignedArtifact, VersionRecord]:
        record = self._record(model, version)
        payload = self._client.get(self._key(model, "blob", version))
        if payload is None:
            raise ArtifactRefusedError(
                f"artifact of {model!r} version {version} is missing from Redis (its key was "
                "deleted); publish the model again"
            )
        sealed = SignedArtifact(payload, record.artifact_format, record.sha256, record.signature)
        return sealed, record

    def verify(self, model: str, ref: int | str = CHAMPION) -> VersionInfo:
        """Check a version's artifact bytes and signature without deserialising them."""
        signer = self._require_signer("verify an artifact")
        version = self.resolve(model, ref)
        sealed, record = self._sealed(model, version)
        signer.verify(sealed, model=model, version=version)
        return self._info(record)

    def load(self, model: str, ref: int | str = CHAMPION) -> LoadedVersion:
        """The artifact of a version (by number, ``"latest"`` or alias) and its info.

        The HMAC signature is checked before anything is unpickled; a missing,
        wrong or stale signature raises :class:`ArtifactRefusedError`.
        """
        signer = self._require_signer("load an artifact")
        version = self.resolve(model, ref)
        sealed, record = self._sealed(model, version)
        artifact = signer.open(sealed, model=model, version=version)
        return LoadedVersion(artifact, self._info(record))

    # ------------------------------------------------------------------ publishing

    def register_version(
        self,
        model: str,
        artifact: object,
        metadata: VersionMetadata | Mapping[str, Any] | None = None,
        *,
        alias: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> VersionInfo:
        """Publish a new version of ``model`` and return it.

        ``artifact`` is pickled, or stored as it is when it is ``bytes``. Writes,
        in this order: version number (INCR), artifact, record, version pointer,
        then ``alias`` if given (``"champion"`` goes through :meth:`promote`).
        An empty ``parent_version`` becomes the current champion.
        """
        signer = self._require_signer("publish an artifact")
        self._check_model(model)
        if alias is not None:
            self._check_alias(alias)
        meta = (
            metadata
            if isinstance(metadata, VersionMetadata)
            else VersionMetadata.model_validate(dict(metadata or {}))
        )
        payload, artifact_format = serialize(artifact)  # before INCR: a bad object burns no number
        if meta.parent_version is None:
            champion = self.get_alias(model, CHAMPION)
            if champion is not None:
                meta = meta.model_copy(update={"parent_version": champion})

        # listed from its first attempt on, so leftovers of a crashed first publish can be found
        self._client.sadd(self._models_key, model)
        version = int(self._client.incr(self._key(model, "counter")))
        self._step("after_version")
        sealed = signer.seal_payload(payload, artifact_format, model=model, version=version)
        self._client.set(self._key(model, "blob", version), sealed.payload)
        self._step("after_blob")
        record = VersionRecord(
            model=model,
            version=version,
            created_at=self._clock(),
            metadata=meta,
            artifact_format=sealed.format,
            sha256=sealed.sha256,
            signature=sealed.signature,
            size_bytes=len(sealed.payload),
        )
        self._client.set(self._key(model, "record", version), record.model_dump_json())
        if tags:
            self._client.hset(self._key(model, "tags", version), mapping=dict(tags))
        self._step("before_pointer")
        self._client.zadd(self._key(model, "versions"), {str(version): version})
        self._step("after_pointer")
        if alias == CHAMPION:
            self.promote(model, version)
        elif alias is not None:
            self.set_alias(model, alias, version)
        self._step("after_alias")
        return self._info(record)

    def purge_incomplete(self, model: str) -> list[int]:
        """Delete the leftovers of unfinished publications and return their versions.

        Run it only when no publish of ``model`` is in flight: a publisher that
        is still between its blob and its pointer would lose its blob.
        """
        leftovers = self.incomplete_versions(model)
        for version in leftovers:
            self._client.delete(
                self._key(model, "blob", version),
                self._key(model, "record", version),
                self._key(model, "tags", version),
            )
        return leftovers

    # ------------------------------------------------------------------ aliases

    def _loadable(self, model: str, version: int) -> int:
        version = self.resolve(model, int(version))
        if not self._client.exists(self._key(model, "blob", version)):
            raise ArtifactRefusedError(
                f"artifact of {model!r} version {version} is missing from Redis, so no alias "
                "may point at it; publish the model again"
            )
        return version

    def set_alias(self, model: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at a published version; return the version it pointed at before.

        The ``champion`` alias moves only through :meth:`promote` and
        :meth:`rollback`, which keep the lineage a rollback needs.
        """
        self._check_alias(alias)
        if alias == CHAMPION:
            raise InvalidTransitionError(
                "the champion alias is moved by promote() and rollback() only (they record "
                "what to roll back to); use `driftloop models promote MODEL VERSION`"
            )
        version = self._loadable(model, version)
        before = self.get_alias(model, alias)
        self._client.hset(self._key(model, "aliases"), alias, str(version))
        return before

    def delete_alias(self, model: str, alias: str) -> int | None:
        """Remove ``alias`` (not ``champion``); return the version it pointed at."""
        self._check_alias(alias)
        if alias == CHAMPION:
            raise InvalidTransitionError(
                "the champion alias cannot be removed: roll back or promote another version"
            )
        before = self.get_alias(model, alias)
        self._client.hdel(self._key(model, "aliases"), alias)
        return before

    def promote(
        self, model: str, version: int | None = None, *, reason: str | None = None
    ) -> Transition:
        """Make ``version`` (default: the challenger) the champion.

        The replaced champion is marked ``archived`` and remembered, so that
        :meth:`rollback` can bring it back. The alias switch is the last write.
        """
        self._known_model(model)
        if version is None:
            version = self.get_alias(model, CHALLENGER)
            if version is None:
                raise InvalidTransitionError(
                    f"model {model!r} has no challenger to promote; name the version, e.g. "
                    f"`driftloop models promote {model} 3`"
                )
        version = self._loadable(model, version)
        previous = self.get_alias(model, CHAMPION)
        if previous == version:
            raise InvalidTransitionError(f"version {version} of {model!r} is already champion")
        if previous is not None:
            # written while the alias still points at the old champion, which it overrides
            self._client.hset(self._key(model, "replaced"), str(version), str(previous))
            self._client.hset(self._key(model, "status"), str(previous), "archived")
        else:
            self._client.hdel(self._key(model, "replaced"), str(version))
        self._client.hset(self._key(model, "aliases"), CHAMPION, str(version))
        if self.get_alias(model, CHALLENGER) == version:
            self._client.hdel(self._key(model, "aliases"), CHALLENGER)
        return Transition(
            model=model,
            action="promoted",
            version=version,
            previous_version=previous,
            champion=version,
            challenger=self.get_alias(model, CHALLENGER),
            reason=reason,
        )

    def rollback(
        self,
        model: str,
        *,
        target: Literal["auto", "challenger", "champion"] = "auto",
        reason: str | None = None,
    ) -> Transition:
        """Undo the last step of a rollout.

        With a challenger (``target="auto"`` or ``"challenger"``): mark it
        ``rolled_back`` and remove its alias; the champion keeps serving.
        Otherwise (or ``target="champion"``): mark the champion ``rolled_back``
        and point the alias back at the champion it replaced. The returned
        transition's ``version`` is the version rolled back.
        """
        self._known_model(model)
        champion = self.get_alias(model, CHAMPION)
        challenger = self.get_alias(model, CHALLENGER)
        if target == "challenger" or (target == "auto" and challenger is not None):
            if challenger is None:
                raise InvalidTransitionError(f"model {model!r} has no challenger to roll back")
            self._client.hset(self._key(model, "status"), str(challenger), "rolled_back")
            self._client.hdel(self._key(model, "aliases"), CHALLENGER)
            return Transition(
                model=model,
                action="rolled_back",
                version=challenger,
                champion=champion,
                challenger=None,
                reason=reason,
            )
        if champion is None:
            raise InvalidTransitionError(
                f"model {model!r} has no champion or challenger to roll back"
            )
        previous_raw = _text(self._client.hget(self._key(model, "replaced"), str(champion)))
        if previous_raw is None:
            raise InvalidTransitionError(
                f"version {champion} is the first champion of {model!r}: there is no earlier "
                "champion to roll back to; promote another version instead"
            )
        previous = self._loadable(model, int(previous_raw))
        # the old champion is marked first: until the alias moves, the alias overrides it
        self._client.hset(self._key(model, "status"), str(champion), "rolled_back")
        self._client.hset(self._key(model, "aliases"), CHAMPION, str(previous))
        return Transition(
            model=model,
            action="rolled_back",
            version=champion,
            previous_version=previous,
            champion=previous,
            challenger=challenger,
            reason=reason,
        )

    # ------------------------------------------------------------------ tags

    def set_tag(self, model: str, key: str, value: str, version: int | None = None) -> None:
        """Set a tag on the model, or on one published version."""
        if not key or len(key) > 128:
            raise InvalidNameError(f"tag key {key!r} must be 1 to 128 characters")
        if version is None:
            self._known_model(model)
            self._client.hset(self._key(model, "tags"), key, str(value))
        else:
            version = self.resolve(model, int(version))
            self._client.hset(self._key(model, "tags", version), key, str(value))

    def delete_tag(self, model: str, key: str, version: int | None = None) -> None:
        """Remove a tag from the model, or from one version."""
        self._check_model(model)
        target = self._key(model, "tags") if version is None else self._key(model, "tags", version)
        self._client.hdel(target, key)

    # ------------------------------------------------------------------ approvals

    def _approval(self, model: str, version: int, step: str) -> Approval | None:
        raw = self._client.hget(self._key(model, "approvals"), f"{version}:{step}")
        return Approval.model_validate_json(raw) if raw is not None else None

    def request_approval(
        self, model: str, version: int, step: str, *, reason: str | None = None
    ) -> Approval:
        """Ask for a person's go-ahead before ``step`` of ``version``'s rollout.

        Asking again for a step already approved keeps the approval.
        """
        self._check_step(step)
        version = self.resolve(model, int(version))
        existing = self._approval(model, version, step)
        if existing is not None and existing.state == "approved":
            return existing
        approval = Approval(
            model=model,
            version=version,
            step=step,
            state="pending",
            requested_at=self._clock(),
            reason=reason,
        )
        self._client.hset(
            self._key(model, "approvals"), f"{version}:{step}", approval.model_dump_json()
        )
        return approval

    def approve(
        self,
        model: str,
        version: int,
        step: str = "promote",
        *,
        approved_by: str,
        note: str | None = None,
    ) -> Approval:
        """Record that ``approved_by`` approved ``step`` for ``version`` (requested or not)."""
        self._check_step(step)
        if not approved_by:
            raise InvalidNameError("say who approves: approved_by must not be empty")
        version = self.resolve(model, int(version))
        existing = self._approval(model, version, step)
        approval = Approval(
            model=model,
            version=version,
            step=step,
            state="approved",
            requested_at=existing.requested_at if existing else None,
            reason=existing.reason if existing else None,
            approved_at=self._clock(),
            approved_by=approved_by,
            note=note,
        )
        self._client.hset(
            self._key(model, "approvals"), f"{version}:{step}", approval.model_dump_json()
        )
        return approval

    def is_approved(self, model: str, version: int, step: str = "promote") -> bool:
        """Whether ``step`` of ``version`` was approved."""
        self._check_model(model)
        approval = self._approval(model, int(version), self._check_step(step))
        return approval is not None and approval.state == "approved"

    def approvals(self, model: str, version: int | None = None) -> list[Approval]:
        """Approval requests and approvals of the model (or of one version), by version, step."""
        self._check_model(model)
        found = [
            Approval.model_validate_json(raw)
            for raw in self._client.hgetall(self._key(model, "approvals")).values()
        ]
        if version is not None:
            found = [a for a in found if a.version == version]
        return sorted(found, key=lambda a: (a.version, a.step))
