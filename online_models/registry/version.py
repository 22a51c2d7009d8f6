"""What the registry knows about one model version: lineage, evaluation, reference, status.

:class:`VersionMetadata` is what a publisher hands in; :class:`VersionRecord` is
what is written to Redis once, next to the artifact, and never changed;
:class:`VersionInfo` adds what can change later (status, aliases, tags) as read
back from the registry. The field names of :class:`TrainingWindow` and
:class:`Trigger` follow the retrain request on the wire (``DataWindow``,
``alert_ids``, ``requested_by``), so a request's window validates as a
training window unchanged.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from online_models.registry.artifact import ArtifactFormat

__all__ = [
    "STATUSES",
    "OffsetSpan",
    "TrainingWindow",
    "Trigger",
    "VersionInfo",
    "VersionMetadata",
    "VersionRecord",
    "VersionStatus",
]

VersionStatus = Literal["candidate", "challenger", "champion", "rolled_back", "archived"]

#: Every status, in the order a version usually goes through them.
STATUSES: tuple[str, ...] = ("candidate", "challenger", "champion", "rolled_back", "archived")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OffsetSpan(_Frozen):
    """Records ``[start, end)`` of one partition of one topic."""

    topic: str = Field(min_length=1)
    partition: NonNegativeInt
    start: NonNegativeInt
    end: NonNegativeInt

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"offset range ends ({self.end}) before it starts ({self.start})")
        return self


class TrainingWindow(_Frozen):
    """The traffic a version was trained on: an event-time range, offset ranges, or both.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> window = TrainingWindow(
    ...     start=datetime(2026, 1, 2, tzinfo=UTC),
    ...     end=datetime(2026, 1, 3, tzinfo=UTC),
    ...     offsets=[{"topic": "driftloop.outcomes", "partition": 0, "start": 0, "end": 5000}],
    ... )
    >>> window.offsets[0].end - window.offsets[0].start, window.end - window.start
    (5000, datetime.timedelta(days=1))
    """

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    offsets: list[OffsetSpan] | None = None

    @model_validator(mode="after")
    def _described(self) -> Self:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end of the training window, or neither")
        if self.start is None and not self.offsets:
            raise ValueError("a training window needs start/end timestamps or offset ranges")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("the training window must end after it starts")
        return self


class Trigger(_Frozen):
    """Why a version was trained: alerts that fired (``policy``) or a person (``manual``).

    Examples
    --------
    >>> Trigger(requested_by="policy", alert_ids=["al-7"]).alert_ids
    ['al-7']
    >>> Trigger().requested_by
    'manual'
    """

    requested_by: Literal["policy", "manual"] = "manual"
    alert_ids: list[str] = Field(default_factory=list)
    retrain_request_id: str | None = None

    @model_validator(mode="after")
    def _policy_has_alerts(self) -> Self:
        if self.requested_by == "policy" and not self.alert_ids:
            raise ValueError("a retrain requested by the policy names the alert ids behind it")
        return self


class VersionMetadata(_Frozen):
    """What a publisher says about a new version.

    ``parent_version`` left empty is filled in by the registry with the champion
    of the moment (the version this one was meant to replace). ``reference`` is
    the reference distribution the drift detectors compare traffic to: any JSON
    object, opaque to the registry.

    Examples
    --------
    >>> meta = VersionMetadata(metrics={"accuracy": 0.91}, reference={"loudness_db": [-30, -20]})
    >>> meta.trigger.requested_by, meta.metrics["accuracy"], meta.parent_version
    ('manual', 0.91, None)
    """

    training_window: TrainingWindow | None = None
    trigger: Trigger = Field(default_factory=Trigger)
    metrics: dict[str, FiniteFloat] = Field(default_factory=dict)
    parent_version: PositiveInt | None = None
    reference: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None

    @field_validator("reference")
    @classmethod
    def _json_able(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the reference distribution must be plain JSON: {exc}") from None
        return value


class VersionRecord(_Frozen):
    """The immutable record of a published version, stored next to its artifact."""

    model: str
    version: PositiveInt
    created_at: datetime
    metadata: VersionMetadata
    artifact_format: ArtifactFormat
    sha256: str
    signature: str = ""  # a record without one is refused at load time, never unpickled
    size_bytes: NonNegativeInt


class VersionInfo(VersionRecord):
    """A version as read from the registry: its record plus status, aliases and tags.

    ``status`` is ``champion`` or ``challenger`` while that alias points at the
    version (the alias is the truth), else the stored ``candidate``,
    ``archived`` or ``rolled_back``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> info = VersionInfo(
    ...     model="voice-intent", version=2, created_at=datetime(2026, 1, 2, tzinfo=UTC),
    ...     metadata=VersionMetadata(parent_version=1), artifact_format="pickle",
    ...     sha256="00" * 32, signature="11" * 32, size_bytes=120, status="challenger",
    ...     aliases=["challenger"],
    ... )
    >>> info.status, info.metadata.parent_version
    ('challenger', 1)
    """

    status: VersionStatus
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
