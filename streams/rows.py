"""Prediction events as validated plain dicts: the worker's fast path.

Predictions are nearly all of the traffic a worker reads. Validating a batch
of them into :class:`~streams.events.PredictionEvent` models costs about three
times as much as validating the same JSON into plain dicts with the same rules
(pydantic-core does both; building a model object per event and per nested
object is the difference). :data:`PREDICTION_ROWS` checks a whole record
against TypedDicts that mirror the models field by field, and returns dicts.

It is only ever a shortcut: anything it does not accept (an extension
attribute, any invalid field) goes through the models, which say what is
wrong. A test checks that the two agree on valid events and on the bad-record
corpus, so the models stay the one definition of the contract.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import AwareDatetime, ConfigDict, Field, FiniteFloat, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

from streams.events import (
    FeatureName,
    FeatureValue,
    ModelName,
    ModelVersion,
    NonEmptyStr,
    RequestId,
    Segment,
)

__all__ = ["PREDICTION_ROWS", "PredictionRow", "prediction_row"]

# Without the models' coerce_numbers_to_str: a number where a string belongs (a numeric
# label or version) takes the slow path, where Python's float formatting ("0.0") decides
# its text; pydantic-core's JSON parser would spell it differently ("0").
_DATA = ConfigDict(extra="forbid")
_Finite = FiniteFloat
_NonNegative = Annotated[FiniteFloat, Field(ge=0)]
_Route = Literal["champion", "challenger", "shadow"]


class _Output(TypedDict):
    __pydantic_config__ = _DATA  # type: ignore[misc]
    label: NotRequired[str | None]
    score: NotRequired[_Finite | None]


class _Host(TypedDict):
    __pydantic_config__ = _DATA  # type: ignore[misc]
    name: NotRequired[str | None]
    cpu_percent: NotRequired[Annotated[FiniteFloat, Field(ge=0, le=100 * 1024)] | None]
    memory_mb: NotRequired[_NonNegative | None]


class _PredictionData(TypedDict):
    __pydantic_config__ = _DATA  # type: ignore[misc]
    request_id: RequestId
    model: ModelName
    model_version: ModelVersion
    features: dict[FeatureName, FeatureValue]
    prediction: _Output
    latency_ms: _NonNegative
    segment: NotRequired[Segment | None]
    route: NotRequired[_Route | None]
    host: NotRequired[_Host | None]
    error: NotRequired[Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None]


class PredictionRow(TypedDict):
    """One valid ``driftloop.prediction.v1`` event as a dict (``time`` parsed, ``data`` a dict).

    Without extension attributes: an event that has any takes the slow path.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    specversion: Literal["1.0"]
    id: NonEmptyStr
    source: NonEmptyStr
    type: Literal["driftloop.prediction.v1"]
    time: AwareDatetime
    datacontenttype: NotRequired[Literal["application/json"]]
    dataschema: NotRequired[str | None]
    subject: NotRequired[str | None]
    data: _PredictionData


PREDICTION_ROWS: TypeAdapter[list[PredictionRow]] = TypeAdapter(list[PredictionRow])
"""Validates a JSON array of prediction events into :class:`PredictionRow` dicts."""


def prediction_row(event: Any) -> dict[str, Any]:
    """The row of a :class:`~streams.events.PredictionEvent` model (what the slow path gives).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from streams.events import PredictionEvent
    >>> event = PredictionEvent.new(
    ...     {"request_id": "r1", "model": "m", "model_version": 2, "features": {"x": 1},
    ...      "prediction": {"label": "a"}, "latency_ms": 5}, id="e1",
    ...     time=datetime(2026, 1, 1, tzinfo=UTC))
    >>> row = prediction_row(event)
    >>> row["id"], row["data"]["model_version"], row["data"]["features"], row["time"].year
    ('e1', '2', {'x': 1.0}, 2026)
    """
    row: dict[str, Any] = event.model_dump()
    return row
