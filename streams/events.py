"""The event schemas: the wire contract of driftloop, in one place.

Every record value on a driftloop topic is a CloudEvents 1.0 structured-mode
JSON object (or a JSON array of them, the batched content mode). The envelope
is :class:`CloudEvent`; each event type is a subclass that fixes ``type`` (which
carries the schema version, e.g. ``driftloop.prediction.v1``) and the shape of
``data``. JSON Schema files and the AsyncAPI document are generated from these
classes (``driftloop schemas export``), never written by hand.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeInt,
    PlainValidator,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from streams.exceptions import EventValidationError, FieldError, UnknownEventTypeError

__all__ = [
    "EVENT_CLASSES",
    "AlertData",
    "AlertEvent",
    "CloudEvent",
    "DataWindow",
    "EvidenceWindow",
    "FeedbackData",
    "FeedbackEvent",
    "HostMetrics",
    "MetricsData",
    "MetricsEvent",
    "ModelEventData",
    "ModelEventEvent",
    "OffsetRange",
    "OutcomeData",
    "OutcomeEvent",
    "PredictionData",
    "PredictionEvent",
    "PredictionOutput",
    "RetrainRequestData",
    "RetrainRequestEvent",
    "event_class",
    "new_event_id",
    "parse_event",
    "validation_errors",
]

SPEC_VERSION = "1.0"
DEFAULT_SOURCE = "urn:driftloop"

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=512)]
RequestId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    Field(description="Unique id of one prediction request; feedback joins on it."),
]
ModelName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
    Field(description="Registered model name: letters, digits, '.', '_', '-' (max 128)."),
]
ModelVersion = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    Field(description="Version of the model that answered (numbers are accepted)."),
]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _feature_value(value: object) -> float | str | None:
    """A feature is a finite number, a string or null; booleans count as 0/1."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, float | int):
        raise ValueError("should be a finite number, a string or null")
    raise ValueError(
        f"should be a number, a string or null (got {type(value).__name__} {_short_repr(value)})"
    )


def _detail_value(value: object) -> float | str | bool | None:
    """A model-event detail is a finite number, a string, a boolean or null."""
    if value is None or isinstance(value, str | bool):
        return value
    return _feature_value(value)


_SCALAR_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}
# A union of pydantic-core types rather than a Python validator: features are the bulk of
# every prediction, and this validates them in Rust, ~4x faster. Same rule as
# _feature_value: finite numbers (booleans as 0/1) become floats, strings stay strings.
FeatureValue = Annotated[
    FiniteFloat | Annotated[str, Strict()] | None, WithJsonSchema(_SCALAR_SCHEMA)
]
DetailValue = Annotated[
    float | str | bool | None,
    PlainValidator(_detail_value),
    WithJsonSchema({"anyOf": [*_SCALAR_SCHEMA["anyOf"], {"type": "boolean"}]}),
]
Segment = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=128)],
    ],
    Field(description="Slice of traffic, e.g. {'locale': 'en-GB', 'device': 'android'}."),
]
NonNegativeFloat = Annotated[FiniteFloat, Field(ge=0)]

_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def _fresh_id_prefix() -> str:
    return uuid.uuid4().hex[:20]


_id_prefix = _fresh_id_prefix()
_id_counter = itertools.count()


def _reseed_ids_after_fork() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = _fresh_id_prefix(), itertools.count()


os.register_at_fork(after_in_child=_reseed_ids_after_fork)


def new_event_id() -> str:
    """A unique event id: a random per-process prefix and a counter.

    ``uuid4()`` per event costs tens of microseconds where ``os.urandom`` is
    slow; 80 random bits per process (renewed after ``fork``) keep ids unique.

    Examples
    --------
    >>> a, b = new_event_id(), new_event_id()
    >>> a != b and a[:20] == b[:20]
    True
    """
    return f"{_id_prefix}-{next(_id_counter):x}"


class _Data(BaseModel):
    """Base of every ``data`` payload: unknown fields are refused (they are typos)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


# --------------------------------------------------------------------------- envelope


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode.

    Subclasses fix ``type`` and ``data``. Extension attributes are allowed when
    their names follow the CloudEvents rule (lower-case letters and digits, at
    most 20); anything else at the top level is refused, so a misspelt
    attribute is caught before it is published.

    Examples
    --------
    >>> ev = FeedbackEvent.new(
    ...     {"request_id": "r-1", "model": "voice-intent", "redo_search": True},
    ...     id="ev-1", time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    >>> ev.type, ev.data.redo_search
    ('driftloop.feedback.v1', True)
    >>> ev.key  # the record key: feedback is keyed by request_id
    'r-1'
    """

    model_config = ConfigDict(extra="allow")

    kind: ClassVar[str] = ""
    type_name: ClassVar[str] = ""
    key_field: ClassVar[str] = ""

    specversion: Literal["1.0"] = Field(description="CloudEvents version.")
    id: NonEmptyStr = Field(description="Unique event id; consumers deduplicate on it.")
    source: NonEmptyStr = Field(description="URI-reference of the producer.")
    type: str = Field(description="Event type with schema version, e.g. driftloop.prediction.v1.")
    time: AwareDatetime = Field(description="Event time, RFC 3339 with a UTC offset.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    subject: str | None = None
    data: Any

    @model_validator(mode="after")
    def _check_extensions(self) -> Self:
        for name in self.model_extra or {}:
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"unknown attribute {name!r}: CloudEvents extension names are "
                    "1-20 lower-case letters or digits"
                )
        return self

    @classmethod
    def new(
        cls,
        data: Mapping[str, Any] | BaseModel,
        *,
        id: str | None = None,
        time: datetime | None = None,
        source: str = DEFAULT_SOURCE,
        **extensions: Any,
    ) -> Self:
        """Build and validate an event of this type; ``id`` and ``time`` default to new/now.

        Raises :class:`~streams.exceptions.EventValidationError` naming every bad field.
        """
        payload = data.model_dump() if isinstance(data, BaseModel) else dict(data)
        try:
            return cls.model_validate(
                {
                    "specversion": SPEC_VERSION,
                    "id": id or new_event_id(),
                    "source": source,
                    "type": cls.type_name,
                    "time": time or datetime.now(UTC),
                    "data": payload,
                    **extensions,
                }
            )
        except ValidationError as exc:
            raise EventValidationError(validation_errors(exc)) from None

    @property
    def key(self) -> str:
        """The record key this event is sent with (the topic's key field)."""
        return str(getattr(self.data, self.key_field))


# --------------------------------------------------------------------------- prediction


class PredictionOutput(_Data):
    """What the model answered: a label (``None`` when it returned nothing) and a score."""

    label: str | None = Field(default=None, description="Predicted label; null = null return.")
    score: FiniteFloat | None = Field(default=None, description="Confidence of the label.")


class HostMetrics(_Data):
    """Resource use of the host that served the request."""

    name: str | None = None
    cpu_percent: Annotated[FiniteFloat, Field(ge=0, le=100 * 1024)] | None = None
    memory_mb: NonNegativeFloat | None = None


class PredictionData(_Data):
    """``data`` of ``driftloop.prediction.v1``: one request, its features and the answer."""

    request_id: RequestId
    model: ModelName
    model_version: ModelVersion
    features: dict[FeatureName, FeatureValue] = Field(
        description="Input features: name -> number, string or null (null = missing)."
    )
    prediction: PredictionOutput
    latency_ms: NonNegativeFloat = Field(description="Time to answer, in milliseconds.")
    segment: Segment | None = None
    route: Literal["champion", "challenger", "shadow"] | None = Field(
        default=None, description="Which rollout route answered the request."
    )
    host: HostMetrics | None = None
    error: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="Set when the request failed (exception class or message); "
        "counted in the error rate.",
    )


class PredictionEvent(CloudEvent):
    """A model answered a request (topic ``predictions``, keyed by ``request_id``)."""

    kind: ClassVar[str] = "prediction"
    type_name: ClassVar[str] = "driftloop.prediction.v1"
    key_field: ClassVar[str] = "request_id"
    type: Literal["driftloop.prediction.v1"]
    data: PredictionData


# --------------------------------------------------------------------------- feedback


class FeedbackData(_Data):
    """``data`` of ``driftloop.feedback.v1``: what the user did after the answer.

    At least one of ``label``, ``redo_search``, ``switched_to_typing`` and
    ``clicked`` must be given.
    """

    request_id: RequestId
    model: ModelName
    label: str | None = Field(default=None, description="Ground-truth label, when known.")
    redo_search: bool | None = Field(default=None, description="The user searched again.")
    switched_to_typing: bool | None = Field(
        default=None, description="The user gave up on voice and typed the query."
    )
    clicked: bool | None = Field(default=None, description="The user clicked a result.")

    @model_validator(mode="after")
    def _some_signal(self) -> Self:
        if all(
            v is None for v in (self.label, self.redo_search, self.switched_to_typing, self.clicked)
        ):
            raise ValueError(
                "feedback carries no signal: give at least one of label, redo_search, "
                "switched_to_typing, clicked"
            )
        return self


class FeedbackEvent(CloudEvent):
    """A user reacted to an answer (topic ``feedback``, keyed by ``request_id``)."""

    kind: ClassVar[str] = "feedback"
    type_name: ClassVar[str] = "driftloop.feedback.v1"
    key_field: ClassVar[str] = "request_id"
    type: Literal["driftloop.feedback.v1"]
    data: FeedbackData


# --------------------------------------------------------------------------- outcome


class OutcomeData(_Data):
    """``data`` of ``driftloop.outcome.v1``: a prediction joined with its feedback.

    This is the labelled traffic the retrain worker trains on, so it carries the
    features as they were served.
    """

    request_id: RequestId
    model: ModelName
    model_version: ModelVersion
    segment: Segment | None = None
    route: Literal["champion", "challenger", "shadow"] | None = None
    features: dict[FeatureName, FeatureValue]
    predicted_label: str | None
    label: str | None = None
    correct: bool | None = Field(default=None, description="predicted == label, when labelled.")
    redo_search: bool | None = None
    switched_to_typing: bool | None = None
    clicked: bool | None = None
    prediction_time: AwareDatetime
    label_delay_ms: NonNegativeFloat = Field(
        description="Event time of the feedback minus event time of the prediction."
    )


class OutcomeEvent(CloudEvent):
    """A prediction met its feedback (topic ``outcomes``, keyed by ``request_id``)."""

    kind: ClassVar[str] = "outcome"
    type_name: ClassVar[str] = "driftloop.outcome.v1"
    key_field: ClassVar[str] = "request_id"
    type: Literal["driftloop.outcome.v1"]
    data: OutcomeData


# --------------------------------------------------------------------------- metrics


class MetricsData(_Data):
    """``data`` of ``driftloop.metrics.v1``: one closed window of one model/version/segment.

    ``metrics`` maps a metric name to its value, e.g. ``latency_p99_ms``,
    ``null_rate``, ``feature.loudness_db.mean``; ``None`` means not measurable
    in this window (e.g. no labels arrived).
    """

    model: ModelName
    model_version: ModelVersion
    segment: Segment | None = None
    window_start: AwareDatetime
    window_end: AwareDatetime
    count: NonNegativeInt = Field(description="Events in the window.")
    metrics: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=200)], FiniteFloat | None
    ]

    @model_validator(mode="after")
    def _window_order(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class MetricsEvent(CloudEvent):
    """Metrics of a closed window (topic ``metrics``, keyed by ``model``)."""

    kind: ClassVar[str] = "metrics"
    type_name: ClassVar[str] = "driftloop.metrics.v1"
    key_field: ClassVar[str] = "model"
    type: Literal["driftloop.metrics.v1"]
    data: MetricsData


# --------------------------------------------------------------------------- alert


class EvidenceWindow(_Data):
    """The stretch of traffic that made a detector fire."""

    start: AwareDatetime
    end: AwareDatetime
    events: NonNegativeInt


class AlertData(_Data):
    """``data`` of ``driftloop.alert.v1``: something changed and someone may need to act."""

    alert_id: NonEmptyStr = Field(
        description="Stable id of the alert group; firing and resolved share it."
    )
    model: ModelName
    model_version: ModelVersion
    signal: NonEmptyStr = Field(description="Feature or metric name, e.g. loudness_db, error_rate.")
    kind: Literal["data_drift", "concept_drift", "input_metric", "output_metric", "software_metric"]
    pattern: Literal["sudden", "gradual"] | None = Field(
        default=None, description="For drift: how the change arrived."
    )
    severity: Literal["info", "warning", "critical"]
    status: Literal["firing", "resolved"]
    detector: NonEmptyStr = Field(
        description="Detector or rule that fired, e.g. adwin, ks, static."
    )
    statistic: FiniteFloat
    threshold: FiniteFloat
    detected_at: AwareDatetime = Field(description="Event time of detection.")
    evidence: EvidenceWindow
    segment: Segment | None = None
    summary: str | None = Field(default=None, description="One line a person can act on.")


class AlertEvent(CloudEvent):
    """An alert fired or resolved (topic ``alerts``, keyed by ``model``)."""

    kind: ClassVar[str] = "alert"
    type_name: ClassVar[str] = "driftloop.alert.v1"
    key_field: ClassVar[str] = "model"
    type: Literal["driftloop.alert.v1"]
    data: AlertData


# --------------------------------------------------------------------------- retrain request


class OffsetRange(_Data):
    """Records ``[start, end)`` of one partition of one topic."""

    topic: NonEmptyStr
    partition: NonNegativeInt
    start: NonNegativeInt
    end: NonNegativeInt

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError("end offset is before start offset")
        return self


class DataWindow(_Data):
    """The traffic to train on: an event-time range, and the offsets it maps to when known."""

    start: AwareDatetime
    end: AwareDatetime
    offsets: list[OffsetRange] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("window end must be after its start")
        return self


class RetrainRequestData(_Data):
    """``data`` of ``driftloop.retrain-request.v1``: train a new version of a model."""

    request_id: NonEmptyStr = Field(description="Id of this request; a duplicate is a no-op.")
    model: ModelName
    reason: NonEmptyStr
    alert_ids: list[NonEmptyStr] = Field(default_factory=list)
    window: DataWindow
    requested_by: Literal["policy", "manual"]


class RetrainRequestEvent(CloudEvent):
    """Ask the retrain worker for a new version (topic ``retrain-requests``, keyed by ``model``)."""

    kind: ClassVar[str] = "retrain-request"
    type_name: ClassVar[str] = "driftloop.retrain-request.v1"
    key_field: ClassVar[str] = "model"
    type: Literal["driftloop.retrain-request.v1"]
    data: RetrainRequestData


# --------------------------------------------------------------------------- model event

ModelAction = Literal[
    "retrain_started",
    "retrain_failed",
    "retrain_abandoned",
    "published",
    "rejected",
    "shadow_started",
    "canary_started",
    "ramp_step",
    "approval_required",
    "approved",
    "promoted",
    "rolled_back",
]


TrafficShare = Annotated[FiniteFloat, Field(ge=0, le=1)]


class ModelEventData(_Data):
    """``data`` of ``driftloop.model-event.v1``: a decision about a model version."""

    model: ModelName
    version: Annotated[int, Field(ge=1)]
    action: ModelAction
    reason: str | None = None
    retrain_request_id: str | None = None
    traffic: dict[Literal["champion", "challenger"], TrafficShare] | None = Field(
        default=None, description="Share of traffic each route answers after this step."
    )
    details: dict[str, DetailValue] = Field(default_factory=dict)


class ModelEventEvent(CloudEvent):
    """The registry or router changed something (topic ``model-events``, keyed by ``model``)."""

    kind: ClassVar[str] = "model-event"
    type_name: ClassVar[str] = "driftloop.model-event.v1"
    key_field: ClassVar[str] = "model"
    type: Literal["driftloop.model-event.v1"]
    data: ModelEventData


# --------------------------------------------------------------------------- registry

EVENT_CLASSES: dict[str, type[CloudEvent]] = {
    cls.type_name: cls
    for cls in (
        PredictionEvent,
        FeedbackEvent,
        OutcomeEvent,
        MetricsEvent,
        AlertEvent,
        RetrainRequestEvent,
        ModelEventEvent,
    )
}
"""Every event type driftloop reads or writes, by its CloudEvents ``type``."""

_BY_KIND: dict[str, type[CloudEvent]] = {cls.kind: cls for cls in EVENT_CLASSES.values()}


def event_class(kind_or_type: str) -> type[CloudEvent]:
    """The event class for a kind (``"prediction"``) or a full type (``"driftloop.prediction.v1"``).

    Examples
    --------
    >>> event_class("feedback").type_name
    'driftloop.feedback.v1'
    >>> event_class("predictoin")
    Traceback (most recent call last):
    ...
    streams.exceptions.UnknownEventTypeError: unknown event kind 'predictoin'; known: alert, \
feedback, metrics, model-event, outcome, prediction, retrain-request
    """
    if kind_or_type in EVENT_CLASSES:
        return EVENT_CLASSES[kind_or_type]
    if kind_or_type in _BY_KIND:
        return _BY_KIND[kind_or_type]
    raise UnknownEventTypeError(
        f"unknown event kind {kind_or_type!r}; known: {', '.join(sorted(_BY_KIND))}"
    )


def _describe_unknown_type(type_value: object) -> str:
    if not isinstance(type_value, str):
        return f"type must be a string, got {type(type_value).__name__}"
    match = re.match(r"^(driftloop\.[a-z-]+)\.v(\d+)$", type_value)
    if match and any(t.startswith(match.group(1) + ".v") for t in EVENT_CLASSES):
        known = next(t for t in EVENT_CLASSES if t.startswith(match.group(1) + ".v"))
        return f"unsupported schema version {type_value!r}: this driftloop reads {known}"
    return f"unknown event type {type_value!r}; known: {', '.join(sorted(EVENT_CLASSES))}"


def _format_location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _short_repr(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_FEATURE_UNION_MEMBERS = frozenset({"float", "str"})


def validation_errors(exc: ValidationError) -> list[FieldError]:
    """Turn a pydantic error into one :class:`FieldError` per bad field, with a dotted path."""
    errors = []
    reported: set[tuple[int | str, ...]] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        if len(loc) >= 3 and loc[-3] == "features" and loc[-1] in _FEATURE_UNION_MEMBERS:
            # one message per bad feature, not one per member of the FeatureValue union
            loc = loc[:-1]
            if loc in reported:
                continue
            reported.add(loc)
            try:
                _feature_value(err.get("input"))
            except ValueError as problem:
                errors.append(FieldError(_format_location(loc), str(problem)))
                continue
        message = err["msg"].removeprefix("Value error, ")
        if (
            err["type"] not in ("missing", "extra_forbidden")
            and "input" in err
            and not isinstance(err["input"], Mapping | list)
        ):
            message += f" (got {_short_repr(err['input'])})"
        if err["type"] == "extra_forbidden":
            message = "unknown field (not in the schema; check the spelling)"
        errors.append(FieldError(_format_location(loc), message))
    return errors


def parse_event(obj: object) -> CloudEvent:
    """Validate a decoded JSON value as a driftloop event and return the typed event.

    Raises :class:`~streams.exceptions.EventValidationError` naming every bad
    field, or :class:`~streams.exceptions.UnknownEventTypeError`.

    Examples
    --------
    >>> ok = {"specversion": "1.0", "id": "e1", "source": "urn:x", "time": "2026-01-01T00:00:00Z",
    ...       "type": "driftloop.feedback.v1",
    ...       "data": {"request_id": "r1", "model": "m", "label": "weather"}}
    >>> parse_event(ok).data.label
    'weather'
    >>> bad = dict(ok, data={"model": "m", "clicked": "maybe"})
    >>> try:
    ...     parse_event(bad)
    ... except EventValidationError as e:
    ...     for problem in e.errors: print(problem)
    data.request_id: Field required
    data.clicked: Input should be a valid boolean, unable to interpret input (got 'maybe')
    """
    if not isinstance(obj, Mapping):
        raise EventValidationError(
            [FieldError("", f"an event must be a JSON object, got {type(obj).__name__}")]
        )
    if "type" not in obj:
        raise EventValidationError([FieldError("type", "Field required")])
    cls = EVENT_CLASSES.get(obj["type"]) if isinstance(obj["type"], str) else None
    if cls is None:
        raise UnknownEventTypeError(_describe_unknown_type(obj["type"]))
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise EventValidationError(validation_errors(exc)) from None
