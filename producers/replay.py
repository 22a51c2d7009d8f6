"""Replaying historical traffic: rows of a file become predictions and feedback, in time order.

A :class:`Replay` reads a CSV, JSON Lines or Parquet file in chunks (never
whole: pandas ``chunksize`` for CSV, JSON Lines parsed a chunk of lines at a
time, pyarrow ``iter_batches`` for Parquet), maps each row to a
``driftloop.prediction.v1`` event with a :class:`ColumnMapping`, and, when the
row carries a label or an implicit signal (``redo_search``,
``switched_to_typing``, ``clicked``), to a ``driftloop.feedback.v1`` event at
the row's feedback time (a feedback-time column, else prediction time plus a
fixed delay).

Decisions, so that a replay is predictable:

Order
    Events come out in event-time order. Rows pass through a reorder buffer
    of ``reorder_rows`` rows (a heap): a row earlier than rows up to that
    many places before it in the file is put back in its place. A row later
    than that is *out of order*: it is still sent (nothing is lost), right
    away, with its own event time, and counted and listed in
    :attr:`ReplayStats.out_of_order` / ``late_rows``. Sort the file first when
    that count matters. Feedback waits in a second heap until the replay
    reaches its time; at equal times a prediction goes before feedback.
Bad rows
    A row whose time cannot be read, whose request id is missing, or whose
    values do not fit the contract is reported with its line (the file line
    for CSV and JSON Lines, counting the header; the row number for Parquet)
    and none of its events is sent. Its neighbours are unaffected.
Time range
    ``start``/``end`` select rows by prediction time, ``start <= t < end``.
    The feedback of a selected row is sent even when it falls after ``end``,
    so a replayed range is self-consistent (every label has its prediction).
Event ids
    Deterministic by default: ``replay-<file key>-<line>-p`` (prediction) and
    ``...-f`` (feedback), the file key hashing the file's name, size and
    first MiB. Replaying the same file twice yields the same ids, which the
    workers deduplicate. ``fresh_ids=True`` makes new ids, to replay the same
    traffic again on purpose.
Times
    Strings are read as ISO 8601 (without an offset they are taken as UTC),
    numbers as seconds since the Unix epoch.

:class:`Pacer` spaces the events out against the wall clock (``speed``
compresses event time, ``rate`` caps events per second); :meth:`Replay.run`
puts reading, ordering and pacing together and hands each event to a
``send`` function (a :class:`~producers.publisher.Publisher`'s ``send``).
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

import pandas as pd

from producers.exceptions import ProducersError
from streams.events import CloudEvent, FeedbackEvent, PredictionEvent, new_event_id
from streams.exceptions import EventValidationError

__all__ = [
    "ColumnMapping",
    "Pacer",
    "Replay",
    "ReplayError",
    "ReplayItem",
    "ReplayStats",
    "detect_replay_format",
    "parse_speed",
]

ReplayFormat = Literal["csv", "jsonl", "parquet"]
SOURCE = "urn:driftloop:replay"
SHOWN_LATE_ROWS = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIGNALS = ("redo_search", "switched_to_typing", "clicked")
_FIELD_COLUMNS = frozenset(
    {"time", "request_id", "model", "model_version", "latency_ms", "label", "feedback_time"}
    | {"prediction", "prediction.label", "score", "prediction.score", *_SIGNALS}
)
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class ReplayError(ProducersError):
    """The replay cannot start or go on (bad mapping, missing column, unreadable file)."""


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class ColumnMapping:
    """Which column of the file holds which field of the events.

    Every field names a column. Left unset, a field takes the column of its
    own name when the file has one (``time``, ``request_id``, ``model``,
    ``model_version``, ``latency_ms``, ``label``, ``redo_search``,
    ``switched_to_typing``, ``clicked``, ``feedback_time``; ``prediction`` or
    ``prediction.label``; ``score`` or ``prediction.score``); ``features``
    then are the ``features.*`` columns, or if there are none every column no
    other field uses, and ``segment`` the ``segment.*`` columns. ``features``
    and ``segment`` are a list of columns (the name is the column's, without
    a ``features.``/``segment.`` prefix) or a mapping name -> column.

    Examples
    --------
    >>> mapping = ColumnMapping.from_dict(
    ...     {"time": "ts", "request_id": "req", "features": ["loudness_db"],
    ...      "prediction_label": "intent", "label": "true_intent"})
    >>> mapping.time, mapping.features
    ('ts', {'loudness_db': 'loudness_db'})
    >>> ColumnMapping.from_dict({"tme": "ts"})
    Traceback (most recent call last):
    ...
    producers.replay.ReplayError: unknown key 'tme' in the column mapping; valid keys: clicked, \
features, feedback_time, label, latency_ms, model, model_version, prediction_label, \
prediction_score, redo_search, request_id, segment, switched_to_typing, time
    """

    time: str | None = None
    request_id: str | None = None
    model: str | None = None
    model_version: str | None = None
    features: dict[str, str] | None = None
    prediction_label: str | None = None
    prediction_score: str | None = None
    latency_ms: str | None = None
    segment: dict[str, str] | None = None
    label: str | None = None
    redo_search: str | None = None
    switched_to_typing: str | None = None
    clicked: str | None = None
    feedback_time: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ColumnMapping:
        """Build a mapping from a dict (what a YAML or JSON mapping file holds)."""
        valid = sorted(f.name for f in fields(cls))
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in valid:
                raise ReplayError(
                    f"unknown key {key!r} in the column mapping; valid keys: {', '.join(valid)}"
                )
            if key in ("features", "segment"):
                values[key] = _named_columns(key, value)
            elif value is not None:
                if not isinstance(value, str) or not value:
                    raise ReplayError(
                        f"{key} in the column mapping must be a column name, got {value!r}"
                    )
                values[key] = value
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path) -> ColumnMapping:
        """Read a mapping from a YAML (``.yaml``/``.yml``) or JSON file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ReplayError(f"cannot read the column mapping {path}: {exc.strerror}") from None
        import yaml

        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ReplayError(f"the column mapping {path} is not valid: {exc}") from None
        if not isinstance(raw, Mapping):
            raise ReplayError(
                f"the column mapping {path} must be an object of field: column, "
                f"got {type(raw).__name__}"
            )
        return cls.from_dict(raw)

    def with_overrides(self, **columns: str | None) -> ColumnMapping:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        given = {k: v for k, v in columns.items() if v is not None}
        return ColumnMapping.from_dict({**self._as_dict(), **given})

    def _as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


def _named_columns(key: str, value: object) -> dict[str, str]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return {v.removeprefix(f"{key}."): v for v in value}
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        return dict(value)
    raise ReplayError(
        f"{key} in the column mapping must be a list of columns or a mapping name: column, "
        f"got {value!r}"
    )


@dataclass(frozen=True)
class _Plan:
    """A mapping resolved against the file's columns: every name here exists."""

    time: str
    request_id: str
    model: str | None
    model_version: str | None
    features: dict[str, str]
    prediction_label: str | None
    prediction_score: str | None
    latency_ms: str
    segment: dict[str, str]
    label: str | None
    signals: dict[str, str]
    feedback_time: str | None

    def text_columns(self) -> list[str]:
        """Columns read as text whatever they look like (ids, labels, versions)."""
        names = [self.request_id, self.model, self.model_version, self.prediction_label]
        names += [self.label, *self.segment.values()]
        return [n for n in names if n is not None]


def _resolve(
    mapping: ColumnMapping,
    columns: Sequence[str],
    *,
    model: str | None,
    model_version: str | None,
) -> _Plan:
    present = set(columns)
    listing = ", ".join(columns) if len(columns) <= 40 else ", ".join(columns[:40]) + ", ..."

    def pick(name: str, *defaults: str, required: bool = False) -> str | None:
        explicit = getattr(mapping, name)
        if explicit is not None:
            if explicit not in present:
                raise ReplayError(
                    f"{name} is mapped to column {explicit!r}, which the file does not have; "
                    f"its columns: {listing}"
                )
            return explicit
        found = next((d for d in defaults if d in present), None)
        if found is None and required:
            raise ReplayError(
                f"no column for {name}: the file has no {defaults[0]!r} column; map one "
                f"(--{name.replace('_', '-')}-col or the mapping file); its columns: {listing}"
            )
        return found

    time_col = pick("time", "time", required=True)
    request_col = pick("request_id", "request_id", required=True)
    latency_col = pick("latency_ms", "latency_ms", required=True)
    model_col = None if model else pick("model", "model")
    version_col = None if model_version else pick("model_version", "model_version")
    if model is None and model_col is None:
        raise ReplayError(f"no model: pass --model NAME, or map model to a column ({listing})")
    if model_version is None and version_col is None:
        raise ReplayError(
            f"no model version: pass --model-version V, or map model_version to a column "
            f"({listing})"
        )
    plan_fields = {
        "prediction_label": pick("prediction_label", "prediction", "prediction.label"),
        "prediction_score": pick("prediction_score", "score", "prediction.score"),
        "label": pick("label", "label"),
        "feedback_time": pick("feedback_time", "feedback_time"),
    }
    signals = {s: c for s in _SIGNALS if (c := pick(s, s)) is not None}
    for group in ("features", "segment"):
        for column in (getattr(mapping, group) or {}).values():
            if column not in present:
                raise ReplayError(
                    f"{group} maps to column {column!r}, which the file does not have; "
                    f"its columns: {listing}"
                )
    segment = mapping.segment or {
        c.removeprefix("segment."): c for c in columns if c.startswith("segment.")
    }
    # a column named like a field is never a feature, even when a constant replaces it
    used = {
        time_col,
        request_col,
        latency_col,
        model_col,
        version_col,
        *plan_fields.values(),
        *signals.values(),
        *segment.values(),
        *_FIELD_COLUMNS,
    }
    features = mapping.features
    if features is None:
        features = {c.removeprefix("features."): c for c in columns if c.startswith("features.")}
        if not features:
            features = {c: c for c in columns if c not in used}
    assert time_col is not None and request_col is not None and latency_col is not None
    return _Plan(
        time=time_col,
        request_id=request_col,
        model=model_col,
        model_version=version_col,
        features=features,
        latency_ms=latency_col,
        segment=segment,
        signals=signals,
        **plan_fields,
    )


# --------------------------------------------------------------------------- reading


def detect_replay_format(path: str | Path) -> ReplayFormat:
    """The input format from the file name (``.gz`` is looked through).

    Examples
    --------
    >>> [detect_replay_format(p) for p in ("a.csv", "b.csv.gz", "c.jsonl", "d.parquet")]
    ['csv', 'csv', 'jsonl', 'parquet']
    >>> detect_replay_format("traffic.xlsx")
    Traceback (most recent call last):
    ...
    producers.replay.ReplayError: cannot tell the format of traffic.xlsx from its name; \
pass --format csv, jsonl or parquet
    """
    name = str(path).lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ReplayError(
        f"cannot tell the format of {path} from its name; pass --format csv, jsonl or parquet"
    )


@dataclass
class _Chunk:
    frame: pd.DataFrame
    lines: list[int]
    errors: list[tuple[int, str]] = field(default_factory=list)


def _csv_chunks(path: Path, chunk_rows: int, text_columns: Sequence[str]) -> Iterator[_Chunk]:
    line = 2  # the header is line 1
    try:
        reader = pd.read_csv(
            path,
            chunksize=chunk_rows,
            dtype=dict.fromkeys(text_columns, str),
            skip_blank_lines=False,  # keeps row numbers equal to file lines
            sep="\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ",",
        )
        with reader:
            for frame in reader:
                yield _Chunk(frame, list(range(line, line + len(frame))))
                line += len(frame)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path} is not readable as CSV near line {line}: {exc}") from None


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    with _open_text(path) as stream:
        numbered = enumerate(stream, start=1)
        while True:
            records: list[dict[str, Any]] = []
            lines: list[int] = []
            errors: list[tuple[int, str]] = []
            for number, text in itertools.islice(numbered, chunk_rows):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except ValueError as exc:
                    errors.append((number, f"not valid JSON: {exc}"))
                    continue
                if not isinstance(obj, dict):
                    errors.append((number, f"expected a JSON object, got {type(obj).__name__}"))
                    continue
                records.append(obj)
                lines.append(number)
            if not records and not errors:
                return
            # nested objects ({"features": {...}}) become dotted columns
            frame = pd.json_normalize(records) if records else pd.DataFrame()
            yield _Chunk(frame, lines, errors)


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ReplayError(
            "reading Parquet needs the pyarrow package, which is not installed: "
            "`pip install pyarrow`, or convert the file to CSV or JSON Lines"
        ) from None
    row = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        yield _Chunk(frame, list(range(row, row + len(frame))))
        row += len(frame)


def _columns_of(path: Path, fmt: ReplayFormat) -> list[str]:
    """The file's columns, read from its head only."""
    if fmt == "csv":
        return list(next(iter(_csv_chunks(path, 1, ()))).frame.columns) if _nonempty(path) else []
    if fmt == "parquet":
        chunk = next(iter(_parquet_chunks(path, 1)), None)
        return list(chunk.frame.columns) if chunk else []
    seen: dict[str, None] = {}
    for chunk in itertools.islice(_jsonl_chunks(path, 1000), 1):
        seen.update(dict.fromkeys(chunk.frame.columns))
    return list(seen)


def _nonempty(path: Path) -> bool:
    return path.stat().st_size > 0


# --------------------------------------------------------------------------- values


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _text(value: object) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number(name: str, value: object) -> float | None:
    if _missing(value):
        return None
    if isinstance(value, bool | int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        raise ValueError(f"{name}: cannot read {value!r} as a number") from None


def _flag(name: str, value: object) -> bool | None:
    if _missing(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{name}: cannot read {value!r} as true/false")


def _feature(value: object) -> float | str | None:
    if _missing(value):
        return None
    if isinstance(value, bool | int | float):
        return float(value)
    return str(value)


def _times_ns(series: pd.Series) -> tuple[list[int | None], list[object]]:
    """Nanoseconds since the epoch per value (``None`` when unreadable), and the raw values."""
    raw = series.tolist()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        parsed = pd.to_datetime(series, unit="s", utc=True, errors="coerce")
    else:
        parsed = pd.to_datetime(series.astype(object), utc=True, errors="coerce", format="ISO8601")
    parsed = parsed.dt.as_unit("ns")
    valid = parsed.notna().tolist()
    values = parsed.astype("int64").tolist() if all(valid) else None
    if values is None:
        filled = parsed.fillna(pd.Timestamp(0, tz="UTC")).astype("int64").tolist()
        values = [v if ok else None for v, ok in zip(filled, valid, strict=True)]
    return values, raw


def _to_datetime(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _file_key(path: Path) -> str:
    digest = hashlib.sha256()
    digest.update(path.name.encode())
    digest.update(str(path.stat().st_size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:12]


# --------------------------------------------------------------------------- replay


class _Row(NamedTuple):
    """A good row: its prediction and, when it carries a label or signal, its feedback."""

    line: int
    at: int  # prediction time, ns since the epoch
    prediction: PredictionEvent
    feedback_at: int
    feedback: FeedbackEvent | None


@dataclass(frozen=True)
class ReplayItem:
    """One output of a replay: an event to send, or a row that was refused and why.

    Examples
    --------
    >>> item = ReplayItem(7, error="request_id: missing (column 'rid')")
    >>> f"line {item.line}: {item.error}" if item.event is None else "send"
    "line 7: request_id: missing (column 'rid')"
    """

    line: int
    event: CloudEvent | None = None
    error: str | None = None


@dataclass
class ReplayStats:
    """What a replay did so far (read it while :meth:`Replay.items` runs, or after).

    Examples
    --------
    >>> stats = ReplayStats(predictions=10, feedback=4, rejected=1)
    >>> stats.events, stats.interrupted
    (14, False)
    """

    rows_read: int = 0
    predictions: int = 0
    feedback: int = 0
    rejected: int = 0
    skipped: int = 0  # outside start/end
    out_of_order: int = 0
    max_lateness_s: float = 0.0
    late_rows: list[int] = field(default_factory=list)  # the first SHOWN_LATE_ROWS lines
    sent: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None
    interrupted: bool = False

    @property
    def events(self) -> int:
        """Prediction and feedback events produced."""
        return self.predictions + self.feedback


class Replay:
    """Turn a file of historical traffic into events, in event-time order.

    Parameters
    ----------
    path
        CSV, JSON Lines or Parquet file (``.gz`` for the text formats).
    mapping
        Which column holds which field (see :class:`ColumnMapping`).
    fmt
        ``"csv"``, ``"jsonl"``, ``"parquet"`` or ``"auto"`` (from the name).
    model, model_version
        Constants for every row, instead of columns.
    feedback_delay
        Feedback time = prediction time + this, for rows without a feedback time.
    start, end
        Replay only rows with ``start <= prediction time < end`` (naive = UTC).
    chunk_rows
        Rows read at a time.
    reorder_rows
        Size of the reorder buffer (see the module docstring, "Order").
    fresh_ids
        New event ids instead of the deterministic ones.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "traffic.csv").write_text(
    ...     "time,request_id,loudness_db,prediction,latency_ms,label\\n"
    ...     "2026-01-01T00:00:02Z,r2,-20.5,music,31,music\\n"
    ...     "2026-01-01T00:00:01Z,r1,-25.0,news,40,\\n"
    ...     "yesterday,r3,-21.0,news,35,news\\n")
    >>> replay = Replay(folder / "traffic.csv", model="voice-intent", model_version="3",
    ...                 feedback_delay=timedelta(seconds=5))
    >>> for item in replay.items():
    ...     if item.event is None:
    ...         print(f"line {item.line}: {item.error}")
    ...     else:
    ...         print(item.event.time.strftime("%S"), item.event.type, item.event.data.request_id)
    line 4: time: cannot read 'yesterday' as a date and time (ISO 8601, or seconds since the epoch)
    01 driftloop.prediction.v1 r1
    02 driftloop.prediction.v1 r2
    07 driftloop.feedback.v1 r2
    >>> replay.stats.predictions, replay.stats.feedback, replay.stats.rejected
    (2, 1, 1)
    """

    def __init__(
        self,
        path: str | Path,
        mapping: ColumnMapping | None = None,
        *,
        fmt: ReplayFormat | Literal["auto"] = "auto",
        model: str | None = None,
        model_version: str | None = None,
        feedback_delay: timedelta = timedelta(0),
        start: datetime | None = None,
        end: datetime | None = None,
        chunk_rows: int = 20_000,
        reorder_rows: int = 10_000,
        fresh_ids: bool = False,
        source: str = SOURCE,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ReplayError(f"no such file: {self.path}")
        self.fmt: ReplayFormat = detect_replay_format(self.path) if fmt == "auto" else fmt
        if chunk_rows < 1 or reorder_rows < 0:
            raise ReplayError("chunk_rows must be at least 1 and reorder_rows at least 0")
        if feedback_delay < timedelta(0):
            raise ReplayError("the feedback delay cannot be negative")
        if start is not None and end is not None and _to_ns(end) <= _to_ns(start):
            raise ReplayError(f"the time range is empty: --to {end} is not after --from {start}")
        self.mapping = mapping or ColumnMapping()
        self.model = model
        self.model_version = model_version
        self.feedback_delay_ns = int(feedback_delay.total_seconds() * 1e9)
        self.start_ns = _to_ns(start) if start is not None else None
        self.end_ns = _to_ns(end) if end is not None else None
        self.chunk_rows = chunk_rows
        self.reorder_rows = reorder_rows
        self.source = source
        self.stats = ReplayStats()
        self._id_prefix = None if fresh_ids else f"replay-{_file_key(self.path)}"
        self._fresh = itertools.count()
        self._fresh_prefix = (
            f"replay-{hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:12]}"
        )
        self._plan = _resolve(
            self.mapping,
            _columns_of(self.path, self.fmt),
            model=model,
            model_version=model_version,
        )

    # ------------------------------------------------------------------ reading

    def _chunks(self) -> Iterator[_Chunk]:
        if self.fmt == "csv":
            return _csv_chunks(self.path, self.chunk_rows, self._plan.text_columns())
        if self.fmt == "jsonl":
            return _jsonl_chunks(self.path, self.chunk_rows)
        return _parquet_chunks(self.path, self.chunk_rows)

    def _event_id(self, line: int, suffix: str) -> str:
        if self._id_prefix is None:
            return f"{new_event_id()}-{suffix}"
        return f"{self._id_prefix}-{line}-{suffix}"

    def _rows(self, chunk: _Chunk) -> Iterator[_Row | ReplayItem]:
        """The rows of a chunk in file order: a :class:`_Row`, or a refused row's item."""
        frame, plan = chunk.frame, self._plan
        for line, error in chunk.errors:
            yield ReplayItem(line, error=error)
        if frame.empty:
            return
        times, raw_times = _times_ns(frame[plan.time])
        if plan.feedback_time is not None:
            feedback_times, raw_feedback = _times_ns(frame[plan.feedback_time])
        else:
            feedback_times, raw_feedback = [None] * len(frame), [None] * len(frame)

        # Columns are converted whole, once per chunk: a per-cell call costs more than pandas
        def column(name: str | None) -> list[Any]:
            if name is None or name not in frame.columns:  # JSON Lines: absent from this chunk
                return [None] * len(frame)
            return frame[name].tolist()

        def texts(name: str | None) -> list[str | None]:
            return [(v.strip() or None) if isinstance(v, str) else _text(v) for v in column(name)]

        def values(name: str) -> list[float | str | None]:
            series = frame.get(name)
            if series is not None and pd.api.types.is_float_dtype(series.dtype):
                return [None if v != v else v for v in series.tolist()]
            return [_feature(v) for v in column(name)]

        request_ids = texts(plan.request_id)
        models = texts(plan.model)
        versions = texts(plan.model_version)
        labels = texts(plan.prediction_label)
        scores = column(plan.prediction_score)
        latencies = column(plan.latency_ms)
        truths = texts(plan.label)
        features = {name: values(c) for name, c in plan.features.items()}
        segments = {name: texts(c) for name, c in plan.segment.items()}
        signals = {name: column(c) for name, c in plan.signals.items()}

        for i, line in enumerate(chunk.lines):
            at = times[i]
            if at is None:
                yield ReplayItem(line, error=_bad_time("time", raw_times[i]))
                continue
            if (self.start_ns is not None and at < self.start_ns) or (
                self.end_ns is not None and at >= self.end_ns
            ):
                self.stats.skipped += 1
                continue
            try:
                request_id = request_ids[i]
                if request_id is None:
                    raise ValueError(f"request_id: missing (column {plan.request_id!r})")
                model = self.model or models[i]
                latency = _number("latency_ms", latencies[i])
                if latency is None:
                    raise ValueError(f"latency_ms: missing (column {plan.latency_ms!r})")
                data: dict[str, Any] = {
                    "request_id": request_id,
                    "model": model,
                    "model_version": self.model_version or versions[i],
                    "features": {k: v[i] for k, v in features.items()},
                    "prediction": {
                        "label": labels[i],
                        "score": _number("prediction_score", scores[i]),
                    },
                    "latency_ms": latency,
                }
                segment = {k: v[i] for k, v in segments.items() if v[i] is not None}
                if segment:
                    data["segment"] = segment
                prediction = PredictionEvent.new(
                    data, id=self._event_id(line, "p"), time=_to_datetime(at), source=self.source
                )
                feedback_data: dict[str, Any] = {"request_id": request_id, "model": model}
                truth = truths[i]
                if truth is not None:
                    feedback_data["label"] = truth
                for name, values in signals.items():
                    flag = _flag(name, values[i])
                    if flag is not None:
                        feedback_data[name] = flag
                if len(feedback_data) == 2:  # no label, no signal: no feedback
                    yield _Row(line, at, prediction, 0, None)
                    continue
                feedback_at = feedback_times[i]
                if feedback_at is None:
                    if _text(raw_feedback[i]) is not None:
                        raise ValueError(_bad_time("feedback_time", raw_feedback[i]))
                    feedback_at = at + self.feedback_delay_ns
                elif feedback_at < at:
                    raise ValueError(
                        f"feedback_time: {raw_feedback[i]!r} is before the prediction time "
                        f"{raw_times[i]!r}"
                    )
                feedback = FeedbackEvent.new(
                    feedback_data,
                    id=self._event_id(line, "f"),
                    time=_to_datetime(feedback_at),
                    source=self.source,
                )
            except EventValidationError as exc:
                problems = "; ".join(
                    f"{e.path.removeprefix('data.')}: {e.message}" for e in exc.errors
                )
                yield ReplayItem(line, error=problems)
                continue
            except ValueError as exc:
                yield ReplayItem(line, error=str(exc))
                continue
            yield _Row(line, at, prediction, feedback_at, feedback)

    def items(self) -> Iterator[ReplayItem]:
        """Every event in event-time order, and every refused row as soon as it is read.

        Lazy: the file is read a chunk at a time as items are taken, so memory
        holds one chunk, the reorder buffer and the feedback not yet due.
        """
        stats = self.stats
        pending: list[tuple[int, int, _Row]] = []  # reorder buffer, by prediction time
        due: list[tuple[int, int, int, FeedbackEvent]] = []  # feedback, by its time
        sequence = itertools.count()
        released_ns: int | None = None

        def emitted(line: int, event: CloudEvent) -> ReplayItem:
            if isinstance(event, FeedbackEvent):
                stats.feedback += 1
            else:
                stats.predictions += 1
            if stats.first_time is None:
                stats.first_time = event.time
            if stats.last_time is None or event.time > stats.last_time:
                stats.last_time = event.time
            return ReplayItem(line, event=event)

        def release() -> Iterator[ReplayItem]:
            nonlocal released_ns
            _, _, row = heapq.heappop(pending)
            if released_ns is not None and row.at < released_ns:
                stats.out_of_order += 1
                stats.max_lateness_s = max(stats.max_lateness_s, (released_ns - row.at) / 1e9)
                if len(stats.late_rows) < SHOWN_LATE_ROWS:
                    stats.late_rows.append(row.line)
            else:
                released_ns = row.at
            # feedback due before this prediction goes first; at equal times, the prediction
            while due and due[0][0] < row.at:
                _, _, line, feedback = heapq.heappop(due)
                yield emitted(line, feedback)
            yield emitted(row.line, row.prediction)
            if row.feedback is not None:
                heapq.heappush(due, (row.feedback_at, next(sequence), row.line, row.feedback))

        for chunk in self._chunks():
            stats.rows_read += len(chunk.lines) + len(chunk.errors)
            for row in self._rows(chunk):
                if isinstance(row, ReplayItem):
                    stats.rejected += 1
                    yield row
                    continue
                heapq.heappush(pending, (row.at, next(sequence), row))
                if len(pending) > self.reorder_rows:
                    yield from release()
        while pending:
            yield from release()
        while due:
            _, _, line, feedback = heapq.heappop(due)
            yield emitted(line, feedback)

    # ------------------------------------------------------------------ running

    def run(
        self,
        send: Callable[[CloudEvent], object],
        *,
        pacer: Pacer | None = None,
        stop: threading.Event | None = None,
        on_reject: Callable[[ReplayItem], object] | None = None,
        on_progress: Callable[[ReplayStats], object] | None = None,
        progress_every: int = 1000,
    ) -> ReplayStats:
        """Send every event through ``send``, paced; stop early when ``stop`` is set.

        Examples
        --------
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "t.jsonl"
        >>> _ = path.write_text("\\n".join(json.dumps(
        ...     {"time": f"2026-01-01T00:00:{s:02d}Z", "request_id": f"r{s}", "x": s,
        ...      "latency_ms": 5, "clicked": s % 2 == 0}) for s in range(4)))
        >>> sent = []
        >>> stats = Replay(path, model="m", model_version="1").run(sent.append)
        >>> [(e.data.request_id, e.type.split(".")[1]) for e in sent]
        ... # doctest: +NORMALIZE_WHITESPACE
        [('r0', 'prediction'), ('r0', 'feedback'), ('r1', 'prediction'), ('r1', 'feedback'),
         ('r2', 'prediction'), ('r2', 'feedback'), ('r3', 'prediction'), ('r3', 'feedback')]
        >>> stats.sent, stats.interrupted
        (8, False)
        """
        for item in self.items():
            if stop is not None and stop.is_set():
                self.stats.interrupted = True
                break
            if item.event is None:
                if on_reject is not None:
                    on_reject(item)
                continue
            if pacer is not None:
                pacer.wait(item.event.time)
                if stop is not None and stop.is_set():
                    self.stats.interrupted = True
                    break
            send(item.event)
            self.stats.sent += 1
            if on_progress is not None and self.stats.sent % progress_every == 0:
                on_progress(self.stats)
        if on_progress is not None:
            on_progress(self.stats)
        return self.stats


def _bad_time(name: str, raw: object) -> str:
    return (
        f"{name}: cannot read {raw!r} as a date and time (ISO 8601, or seconds since the epoch)"
        if not _missing(raw)
        else f"{name}: missing"
    )


# --------------------------------------------------------------------------- pacing


class Pacer:
    """Space events out in wall-clock time: event time compressed by ``speed``, at most ``rate``/s.

    The first event goes at once; an event ``dt`` of event time after it goes
    ``dt / speed`` seconds of wall time after it (``speed=None``: as fast as
    the sender takes them). ``rate`` caps events per second whatever the speed.

    Parameters
    ----------
    speed
        Event seconds per wall second (60: a minute of traffic per second);
        ``None`` for no pacing by event time.
    rate
        At most this many events per wall second; ``None`` for no cap.
    clock, sleep
        The wall clock and how to wait (a ``threading.Event.wait`` makes the
        wait end early on Ctrl-C).

    Examples
    --------
    With a fake clock, 10 s of events at speed 10 take 1 s:

    >>> now = [0.0]
    >>> pacer = Pacer(speed=10, clock=lambda: now[0],
    ...               sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> for second in (0, 5, 10):
    ...     _ = pacer.wait(datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC))
    ...     print(f"event at {second:2d} s sent at {now[0]:.1f} s")
    event at  0 s sent at 0.0 s
    event at  5 s sent at 0.5 s
    event at 10 s sent at 1.0 s
    """

    def __init__(
        self,
        speed: float | None = None,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ReplayError(f"speed must be positive or max, got {speed}")
        if rate is not None and not rate > 0:
            raise ReplayError(f"rate must be a positive number of events per second, got {rate}")
        self.speed = speed
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[float, datetime] | None = None
        self._rate_origin: float | None = None
        self._sent = 0

    def wait(self, event_time: datetime) -> float:
        """Wait until the event at ``event_time`` is due; returns the seconds waited."""
        now = self._clock()
        due = now
        if self.speed is not None:
            if self._origin is None:
                self._origin = (now, event_time)
            wall0, event0 = self._origin
            due = max(due, wall0 + (event_time - event0).total_seconds() / self.speed)
        if self.rate is not None:
            if self._rate_origin is None:
                self._rate_origin = now
            due = max(due, self._rate_origin + self._sent / self.rate)
        self._sent += 1
        delay = due - now
        if delay > 0.0005:  # sleeping for less costs more than it paces
            self._sleep(delay)
            return delay
        return 0.0


def parse_speed(text: str) -> float | None:
    """``"max"`` -> ``None`` (no pacing), a positive number -> that factor.

    Examples
    --------
    >>> parse_speed("60"), parse_speed("max"), parse_speed("0.5")
    (60.0, None, 0.5)
    """
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ReplayError(f"speed must be a positive number or 'max', got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ReplayError(f"speed must be a positive number or 'max', got {text!r}")
    return value
