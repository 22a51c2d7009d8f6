"""Prediction events as columns: what the worker's hot path hands from stage to stage.

Predictions are nearly all of a worker's traffic. A :class:`PredictionFrame`
holds a batch of them as parallel lists (one entry per event), built once per
record straight from the decoded JSON, and concatenated cheaply across
records; numpy columns (event times, latencies, scores, feature values) are
computed on first use and shared by the windows, the drift detectors and the
feedback join, instead of each of them walking per-event dicts again.

:func:`decode_prediction_frame` decodes a record with msgspec into structs
that mirror :class:`~streams.events.PredictionEvent` field by field
(:data:`FAST_DECODER`): about twice as fast as pydantic-core. A record whose
events carry the same numeric features as the last one is decoded with a
decoder made for those names (:class:`_Schema`), whose features are a struct
of floats rather than a dict, read into the frame's matrix in one pass: the
usual traffic builds no per-event dict at all. Like :mod:`streams.rows` it is
only a shortcut: whatever it does not accept (an extension attribute, a number
where a string belongs, a bad field, a timestamp it reads differently) goes
through the models, which say what is wrong, and a test checks that the two
agree on valid events and on the bad-record corpus.

Kafka-free.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
import numpy as np

from streams.codec import DEFAULT_MAX_RECORD_BYTES, RecordError, decode_prediction_rows
from streams.events import CloudEvent

__all__ = [
    "FAST_DECODER",
    "DecodedFrame",
    "PredictionFrame",
    "decode_prediction_frame",
    "fast_frame",
]


def _text(low: int, high: int) -> Any:
    return Annotated[str, msgspec.Meta(min_length=low, max_length=high)]


_UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType
_NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class _Output(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    label: str | None = None
    score: float | None = None


class _Host(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str | None = None
    cpu_percent: Annotated[float, msgspec.Meta(ge=0, le=100 * 1024)] | None = None
    memory_mb: _NonNegative | None = None


_Features = TypeVar("_Features")
_AnyFeatures = dict[_text(1, 128), float | str | None]  # type: ignore[valid-type]


class _Data(msgspec.Struct, Generic[_Features], forbid_unknown_fields=True, gc=False):
    request_id: _text(1, 256)  # type: ignore[valid-type]
    # its pattern is checked once per distinct name of a record (decode_prediction_frame):
    # a regular expression per event was a fifth of the decoding time
    model: _text(1, 128)  # type: ignore[valid-type]
    model_version: _text(1, 64)  # type: ignore[valid-type]
    features: _Features
    prediction: _Output
    latency_ms: _NonNegative
    segment: dict[_text(1, 64), _text(0, 128)] | None = None  # type: ignore[valid-type]
    route: Literal["champion", "challenger", "shadow"] | None = None
    host: _Host | None = None
    error: _text(1, 1024) | None = None  # type: ignore[valid-type]


class _Event(msgspec.Struct, Generic[_Features], forbid_unknown_fields=True, gc=False):
    specversion: Literal["1.0"]
    id: _text(1, 512)  # type: ignore[valid-type]
    source: _text(1, 512)  # type: ignore[valid-type]
    type: Literal["driftloop.prediction.v1"]
    time: Annotated[datetime, msgspec.Meta(tz=True)]
    data: _Data[_Features]
    datacontenttype: Literal["application/json"] | _Unset = _UNSET
    dataschema: str | _Unset | None = _UNSET
    subject: str | _Unset | None = _UNSET


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # the contract's, as fullmatch

FAST_DECODER = msgspec.json.Decoder(list[_Event[_AnyFeatures]])
"""Decodes a JSON array of valid prediction events (no extension attributes) into structs."""


class _Schema:
    """A decoder for records whose events all carry exactly these numeric features.

    The features decode into a struct of floats rather than a dict (a third
    less decoding, and no dict to free), and :meth:`matrix` reads them out in
    one pass. Whatever differs (another name, one missing, a null, a string)
    fails validation and the record goes to :data:`FAST_DECODER`.
    """

    __slots__ = ("decoder", "names", "values")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names  # sorted
        features = msgspec.defstruct(
            "_NumericFeatures",
            # attribute names of our own: a feature may be called anything
            [(f"f{j}", float, msgspec.field(name=name)) for j, name in enumerate(names)],
            forbid_unknown_fields=True,
            gc=False,
        )
        self.decoder = msgspec.json.Decoder(list[_Event[features]])  # type: ignore[valid-type]
        self.values = attrgetter(*(f"f{j}" for j in range(len(names))))

    def matrix(self, features: Sequence[Any]) -> np.ndarray:
        """The ``(events, names)`` float64 matrix of decoded feature structs."""
        width = len(self.names)
        return np.fromiter(
            itertools.chain.from_iterable(map(self.values, features)),
            dtype=np.float64,
            count=len(features) * width,
        ).reshape(len(features), width)


class _Schemas:
    """The schema of the last record whose events all carried the same numeric features.

    Producers nearly always send one model's events with one set of features,
    so the next record is tried with that schema first; a record that does not
    fit costs a partial decode (it usually fails at its first event) and resets
    it. At most :attr:`LIMIT` decoders are kept.
    """

    LIMIT = 32

    def __init__(self) -> None:
        self.current: _Schema | None = None
        self._known: dict[tuple[str, ...], _Schema] = {}

    def use(self, names: tuple[str, ...] | None) -> None:
        if names is None:
            self.current = None
            return
        schema = self._known.get(names)
        if schema is None:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            schema = self._known[names] = _Schema(names)
        self.current = schema


_SCHEMAS = _Schemas()
_REFUSED = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)

_FLOATS = frozenset({float, type(None)})
_ABSENT = object()


class PredictionFrame:
    """Prediction events as parallel lists, with numpy columns computed once on demand.

    ``offsets[i]`` is the offset of the record event ``i`` came in (``-1``
    when there is none). Build one with :meth:`from_rows` (rows as
    :mod:`streams.rows` gives them, or ``model_dump()`` of events) or with
    :func:`decode_prediction_frame`; join several with :meth:`concat`.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from streams.events import PredictionEvent
    >>> rows = [PredictionEvent.new(
    ...     {"request_id": f"r{i}", "model": "m", "model_version": "1",
    ...      "features": {"x": float(i), "lang": "en"}, "prediction": {"label": "a"},
    ...      "latency_ms": 5.0 + i}, id=f"e{i}",
    ...     time=datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC)).model_dump() for i in range(3)]
    >>> frame = PredictionFrame.concat([PredictionFrame.from_rows(rows[:2], offset=7),
    ...                                 PredictionFrame.from_rows(rows[2:], offset=8)])
    >>> len(frame), frame.ids, frame.offsets
    (3, ['e0', 'e1', 'e2'], [7, 7, 8])
    >>> frame.time_ms.tolist()
    [1767225600000, 1767225601000, 1767225602000]
    >>> frame.feature_columns()["x"][0].tolist(), frame.feature_columns()["lang"][0].tolist()
    ([0.0, 1.0, 2.0], ['en', 'en', 'en'])
    >>> frame.take([2]).request_ids
    ['r2']
    """

    __slots__ = (
        "_cache",
        "_features",
        "errors",
        "hosts",
        "ids",
        "labels",
        "latency_ms",
        "models",
        "offsets",
        "request_ids",
        "routes",
        "scores",
        "segments",
        "times",
        "versions",
    )

    def __init__(
        self,
        *,
        ids: list[str],
        times: list[datetime],
        request_ids: list[str],
        models: list[str],
        versions: list[str],
        features: list[dict[str, Any]] | None,
        labels: list[str | None],
        scores: list[float | None],
        latency_ms: list[float],
        segments: list[dict[str, str] | None],
        routes: list[str | None],
        errors: list[str | None],
        hosts: list[Any],
        offsets: list[int],
        matrix: tuple[tuple[str, ...], np.ndarray] | None = None,
    ) -> None:
        self.ids = ids
        self.times = times
        self.request_ids = request_ids
        self.models = models
        self.versions = versions
        self._features = features  # None: made from the matrix when asked for
        self.labels = labels
        self.scores = scores
        self.latency_ms = latency_ms
        self.segments = segments
        self.routes = routes
        self.errors = errors
        self.hosts = hosts  # a host dict (or struct) per event, or None
        self.offsets = offsets
        self._cache: dict[str, Any] = {}
        if matrix is not None:
            self._use_matrix(*matrix)
        elif features is None:
            raise ValueError("a frame needs its features, as dicts or as a matrix")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def features(self) -> list[dict[str, Any]]:
        """Each event's features as a dict (made from the matrix on first use when the
        record was decoded straight into one)."""
        if self._features is None:
            names, matrix = self._cache["feature_matrix"]
            self._features = [dict(zip(names, row, strict=True)) for row in matrix.tolist()]
        return self._features

    def _use_matrix(self, names: tuple[str, ...], matrix: np.ndarray) -> None:
        self._cache["feature_matrix"] = (names, matrix)
        self._cache["feature_names"] = list(names)
        self._cache["feature_columns"] = {
            name: (matrix[:, j], None) for j, name in enumerate(names)
        }

    # ------------------------------------------------------------------ building

    @classmethod
    def empty(cls) -> PredictionFrame:
        """A frame of no events."""
        return cls.concat([])

    @classmethod
    def from_structs(
        cls, events: Sequence[_Event[Any]], offset: int = -1, schema: _Schema | None = None
    ) -> PredictionFrame:
        """A frame of events decoded by :data:`FAST_DECODER` (or ``schema``'s decoder)."""
        datas = [event.data for event in events]
        outputs = [data.prediction for data in datas]
        features = [data.features for data in datas]
        return cls(
            ids=[event.id for event in events],
            times=[event.time for event in events],
            request_ids=[data.request_id for data in datas],
            models=[data.model for data in datas],
            versions=[data.model_version for data in datas],
            features=None if schema is not None else features,
            labels=[output.label for output in outputs],
            scores=[output.score for output in outputs],
            latency_ms=[data.latency_ms for data in datas],
            segments=[data.segment for data in datas],
            routes=[data.route for data in datas],
            errors=[data.error for data in datas],
            hosts=[data.host for data in datas],
            offsets=[offset] * len(datas),
            matrix=None if schema is None else (schema.names, schema.matrix(features)),
        )

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], offset: int = -1) -> PredictionFrame:
        """A frame of prediction rows: dicts with ``time`` a datetime and ``data`` a dict.

        Only ``time`` and ``data``'s ``model``, ``model_version``, ``features``
        and ``prediction`` are required (what the drift detectors read).
        """
        datas = [row["data"] for row in rows]
        outputs = [data["prediction"] for data in datas]
        return cls(
            ids=[row.get("id") for row in rows],
            times=[row["time"] for row in rows],
            request_ids=[data.get("request_id") for data in datas],
            models=[data["model"] for data in datas],
            versions=[data["model_version"] for data in datas],
            features=[data["features"] for data in datas],
            labels=[output.get("label") for output in outputs],
            scores=[output.get("score") for output in outputs],
            latency_ms=[data.get("latency_ms") for data in datas],
            segments=[data.get("segment") for data in datas],
            routes=[data.get("route") for data in datas],
            errors=[data.get("error") for data in datas],
            hosts=[data.get("host") for data in datas],
            offsets=[offset] * len(datas),
        )

    @classmethod
    def from_records(
        cls, records: Iterable[tuple[int, Sequence[Mapping[str, Any]]]]
    ) -> PredictionFrame:
        """A frame of ``(offset, rows)`` pairs, in order."""
        return cls.concat([cls.from_rows(rows, offset) for offset, rows in records])

    @classmethod
    def concat(cls, frames: Sequence[PredictionFrame]) -> PredictionFrame:
        """One frame of the events of ``frames``, in order."""
        if len(frames) == 1:
            return frames[0]
        caches = [frame._cache for frame in frames]
        matrix = None
        if caches and all("feature_matrix" in cache for cache in caches):
            # the records' features have one shape: their matrices are joined, not read again
            names = caches[0]["feature_matrix"][0]
            if all(cache["feature_matrix"][0] == names for cache in caches):
                matrix = (names, np.concatenate([cache["feature_matrix"][1] for cache in caches]))
        lazy = matrix is not None and all(frame._features is None for frame in frames)
        lists: dict[str, list[Any]] = {
            name: [] for name in _LISTS if not lazy or name != "features"
        }
        for frame in frames:
            for name, values in lists.items():
                values.extend(getattr(frame, name))
        joined = cls(**lists, features=None, matrix=matrix) if lazy else cls(**lists, matrix=matrix)
        if caches and all("time_ms" in cache for cache in caches):
            # the worker reads each record's times already (for the join): not again
            joined._cache["time_ms"] = np.concatenate([cache["time_ms"] for cache in caches])
        return joined

    def take(self, indices: Iterable[int]) -> PredictionFrame:
        """A frame of the events at ``indices`` (in that order)."""
        chosen = list(indices)
        if self._features is None:  # only the matrix: its rows
            names, values = self._cache["feature_matrix"]
            return PredictionFrame(
                **{name: [getattr(self, name)[i] for i in chosen] for name in _LISTS[1:]},
                features=None,
                matrix=(names, values[chosen]),
            )
        return PredictionFrame(
            **{name: [getattr(self, name)[i] for i in chosen] for name in _LISTS}
        )

    # ------------------------------------------------------------------ columns

    def _cached(self, name: str, make: Any) -> Any:
        value = self._cache.get(name)
        if value is None:
            value = self._cache[name] = make()
        return value

    @property
    def time_ms(self) -> np.ndarray:
        """Event times in milliseconds since the epoch (int64)."""
        return self._cached(  # type: ignore[no-any-return]
            "time_ms",
            lambda: (np.array([t.timestamp() for t in self.times], dtype=np.float64) * 1000).astype(
                np.int64
            ),
        )

    def numbers(self, name: str) -> np.ndarray:
        """``latency_ms`` or ``scores`` as float64, NaN where missing."""
        return self._cached(  # type: ignore[no-any-return]
            name, lambda: np.asarray(getattr(self, name), dtype=np.float64)
        )

    def label_array(self) -> np.ndarray:
        """Labels as an object array (``None`` for a null return)."""

        def make() -> np.ndarray:
            labels = np.empty(len(self.labels), dtype=object)
            labels[:] = self.labels
            return labels

        return self._cached("label_array", make)  # type: ignore[no-any-return]

    def error_flags(self) -> np.ndarray:
        """Whether each event carried an ``error``."""
        return self._cached(  # type: ignore[no-any-return]
            "error_flags",
            lambda: np.fromiter(
                (e is not None for e in self.errors), dtype=bool, count=len(self.errors)
            ),
        )

    def host_numbers(self, name: str) -> np.ndarray:
        """``cpu_percent`` or ``memory_mb`` of the hosts, NaN where missing."""

        def make() -> np.ndarray:
            if not any(self.hosts):
                return np.full(len(self.hosts), np.nan)
            values = []
            for host in self.hosts:
                if host is None:
                    values.append(None)
                elif isinstance(host, Mapping):
                    values.append(host.get(name))
                else:
                    values.append(getattr(host, name))
            return np.asarray(values, dtype=np.float64)

        return self._cached("host." + name, make)  # type: ignore[no-any-return]

    def feature_names(self) -> list[str]:
        """Every feature name any event carries, sorted."""
        return self._cached(  # type: ignore[no-any-return]
            "feature_names", lambda: sorted(set().union(*self.features))
        )

    def feature_columns(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Each feature's values and presence mask (``None``: every event carries it).

        Values are float64 (NaN for null) when the column holds only numbers and
        nulls, an object array otherwise; an event that lacks the feature holds
        ``None`` there.
        """
        return self._cached("feature_columns", self._feature_columns)  # type: ignore[no-any-return]

    def feature_matrix(self) -> tuple[tuple[str, ...], np.ndarray] | None:
        """``(names, (events, names) float64 matrix)`` when every event carries the same
        features (two or more), all numbers; else ``None``.

        Examples
        --------
        >>> frame = PredictionFrame.from_rows([{"time": None, "data": {"model": "m",
        ...     "model_version": "1", "features": {"b": 2, "a": 1.5}, "prediction": {}}}])
        >>> frame.feature_matrix()
        (('a', 'b'), array([[1.5, 2. ]]))
        """
        self.feature_columns()
        return self._cache.get("feature_matrix")  # type: ignore[no-any-return]

    def _feature_columns(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        rows = self.features
        n = len(rows)
        columns: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        if not n:
            return columns
        first = sorted(rows[0])
        if len(first) > 1 and sum(map(len, rows)) == n * len(first):
            try:
                # the usual batch: every event carries the same features, all numbers: one
                # C pass (a missing name raises KeyError; with the lengths equal, no event
                # has a name the first one lacks)
                matrix = np.fromiter(
                    itertools.chain.from_iterable(map(itemgetter(*first), rows)),
                    dtype=np.float64,
                    count=n * len(first),
                ).reshape(n, len(first))
            except (KeyError, TypeError, ValueError):  # another name, a string or a null
                pass
            else:
                self._use_matrix(tuple(first), matrix)
                return self._cache["feature_columns"]  # type: ignore[no-any-return]
        names = self.feature_names()
        width = len(names)
        complete = sum(map(len, rows)) == n * width
        for name in names:
            present = None
            if complete:
                column = [row[name] for row in rows]
            else:
                column = [row.get(name, _ABSENT) for row in rows]
                present = np.fromiter(
                    (value is not _ABSENT for value in column), dtype=bool, count=n
                )
                if present.all():
                    present = None
                else:
                    column = [None if value is _ABSENT else value for value in column]
            if set(map(type, column)) <= _FLOATS:
                values = np.asarray(column, dtype=np.float64)
            else:
                values = np.empty(n, dtype=object)
                values[:] = column
            columns[name] = (values, present)
        return columns

    def numeric_matrix(self, names: Sequence[str]) -> np.ndarray:
        """``(events, len(names))`` float64 values of these features, NaN where missing or
        not a number."""
        n = len(self)
        matrix = np.full((n, len(names)), np.nan)
        columns = self.feature_columns()
        for j, name in enumerate(names):
            found = columns.get(name)
            if found is None:
                continue
            values, present = found
            if values.dtype != object:
                matrix[:, j] = values
            else:
                matrix[:, j] = [
                    v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                    for v in values
                ]
            if present is not None:
                matrix[~present, j] = np.nan
        return matrix

    def values_of(self, name: str) -> list[Any]:
        """A feature's value in each event (``None`` where absent)."""
        if self._features is None:  # only the matrix: its column, no dicts made
            found = self.feature_columns().get(name)
            return [None] * len(self) if found is None else found[0].tolist()
        return [row.get(name) for row in self.features]


_LISTS = (  # "features" first: take() skips it when the features are a matrix
    "features",
    "ids",
    "times",
    "request_ids",
    "models",
    "versions",
    "labels",
    "scores",
    "latency_ms",
    "segments",
    "routes",
    "errors",
    "hosts",
    "offsets",
)


class DecodedFrame:
    """The valid predictions of a record as a frame, and what was refused."""

    __slots__ = ("errors", "frame", "others")

    def __init__(
        self,
        frame: PredictionFrame,
        errors: list[RecordError] | None = None,
        others: list[CloudEvent] | None = None,
    ) -> None:
        self.frame = frame
        self.errors = errors or []
        self.others = others or []  # valid events of other types


def fast_frame(value: bytes, offset: int = -1) -> PredictionFrame | None:
    """The frame of a record of valid predictions only (no extension attributes), by
    :data:`FAST_DECODER`; ``None`` when it refuses the record (the models say why).

    A record whose events carry the same numeric features as the last such
    record is decoded straight into a matrix (:class:`_Schema`).
    """
    schema = _SCHEMAS.current
    frame = None
    if schema is not None:
        with contextlib.suppress(*_REFUSED):
            frame = PredictionFrame.from_structs(schema.decoder.decode(value), offset, schema)
    if frame is None:
        try:
            frame = PredictionFrame.from_structs(FAST_DECODER.decode(value), offset)
        except _REFUSED:
            return None
        found = frame.feature_matrix() if len(frame) else None
        _SCHEMAS.use(None if found is None else found[0])
    if not all(map(_MODEL_NAME.fullmatch, set(frame.models))):
        return None
    return frame


def decode_prediction_frame(
    value: bytes | None, offset: int = -1, *, max_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> DecodedFrame:
    """Decode a record of predictions into a frame; never raises.

    A batch of valid predictions goes through :data:`FAST_DECODER`; anything
    else through :func:`~streams.codec.decode_prediction_rows`, which says what
    is wrong.

    Examples
    --------
    >>> good = (b'{"specversion":"1.0","id":"e1","source":"urn:x","time":"2026-01-01T00:00:00Z",'
    ...         b'"type":"driftloop.prediction.v1","data":{"request_id":"r1","model":"m",'
    ...         b'"model_version":"1","features":{"x":1},"prediction":{"label":"a"},'
    ...         b'"latency_ms":3}}')
    >>> fast = decode_prediction_frame(b"[" + good + b"," + good.replace(b"e1", b"e2") + b"]", 5)
    >>> fast.frame.ids, fast.frame.offsets, fast.frame.features, fast.errors
    (['e1', 'e2'], [5, 5], [{'x': 1.0}, {'x': 1.0}], [])
    >>> slow = decode_prediction_frame(b"[" + good + b', {"type": "driftloop.prediction.v9"}]')
    >>> slow.frame.ids, [err.reason[:40] for err in slow.errors]
    (['e1'], ["event 1: unsupported schema version 'dri"])
    """
    if value and value[:1] == b"[" and len(value) <= max_bytes:
        frame = fast_frame(value, offset)
        if frame is not None:
            return DecodedFrame(frame)
    rows = decode_prediction_rows(value, max_bytes=max_bytes)
    return DecodedFrame(PredictionFrame.from_rows(rows.rows, offset), rows.errors, rows.others)
