"""Reading events to publish from JSON Lines or CSV, line by line, bad lines kept apart.

A line is either a whole CloudEvent (it has ``specversion``) or just the
event's ``data``; in the second form the optional keys ``id``, ``time`` and
``source`` next to the data fields fill the envelope. In CSV, dotted column
names nest: ``features.loudness_db``, ``prediction.label``, ``segment.locale``;
an empty ``features.*`` or ``prediction.*`` cell is null (a missing value, a
null return), any other empty cell leaves its field out. Files ending in
``.gz`` are decompressed on the fly.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import ValidationError

from streams.events import (
    CloudEvent,
    event_class,
    new_event_id,
    parse_event,
    validation_errors,
)
from streams.exceptions import ContractError, EventValidationError, FieldError

__all__ = ["SourceLine", "detect_format", "open_input", "read_events", "text_reader"]

Format = Literal["jsonl", "csv"]
ENVELOPE_KEYS = ("id", "time", "source")
# CSV cells under these column prefixes are numbers when they look like numbers
_NUMERIC_PREFIXES = ("features.", "host.")
_NUMERIC_COLUMNS = frozenset({"latency_ms", "prediction.score", "score"})
_NULLABLE_PREFIXES = ("features.", "prediction.")


@dataclass(frozen=True)
class SourceLine:
    """One input line: the valid event, or why it was refused."""

    line: int
    event: CloudEvent | None = None
    error: str | None = None


def detect_format(path: str) -> Format:
    """Guess the input format from the file name (stdin, ``-``, is JSON Lines).

    Examples
    --------
    >>> detect_format("traffic.csv"), detect_format("traffic.jsonl"), detect_format("-")
    ('csv', 'jsonl', 'jsonl')
    """
    return "csv" if path.lower().removesuffix(".gz").endswith(".csv") else "jsonl"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed (numbers must be finite)")


def _number_or_text(cell: str) -> float | str:
    try:
        value = float(cell)
    except ValueError:
        return cell
    return value if value == value and value not in (float("inf"), float("-inf")) else cell


def _nest(row: Mapping[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None:
            continue
        column = column.strip()
        value: Any = cell
        if cell == "":
            # an empty feature is a missing value, an empty prediction.label a null
            # return; elsewhere an empty cell leaves the field out
            if not column.startswith(_NULLABLE_PREFIXES):
                continue
            value = None
        elif column.startswith(_NUMERIC_PREFIXES) or column in _NUMERIC_COLUMNS:
            value = _number_or_text(cell)
        target = out
        *parents, leaf = column.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"column {column!r} nests under a column that has a value")
        target[leaf] = value
    return out


def _to_event(kind: str, obj: object) -> CloudEvent:
    if not isinstance(obj, dict):
        raise EventValidationError(
            [FieldError("", f"expected a JSON object, got {type(obj).__name__}")]
        )
    cls = event_class(kind)
    if "specversion" in obj:
        event = parse_event(obj)
        if not isinstance(event, cls):
            raise EventValidationError(
                [FieldError("type", f"is {event.type}, but this command publishes {cls.type_name}")]
            )
        return event
    data = dict(obj)
    envelope = {k: data.pop(k) for k in ENVELOPE_KEYS if k in data}
    candidate = {
        "specversion": "1.0",
        "type": cls.type_name,
        "id": new_event_id(),
        "time": datetime.now(UTC),
        "source": "urn:driftloop:cli",
        **envelope,
        "data": data,
    }
    try:
        return cls.model_validate(candidate)
    except ValidationError as exc:
        # the user wrote bare data, so name fields as they wrote them
        raise EventValidationError(
            [
                FieldError("" if e.path == "data" else e.path.removeprefix("data."), e.message)
                for e in validation_errors(exc)
            ]
        ) from None


def _jsonl(stream: IO[str]) -> Iterator[tuple[int, object | None, str | None]]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text.strip(), parse_constant=_refuse_constant), None
        except json.JSONDecodeError as exc:
            yield number, None, f"not valid JSON: {exc.msg} (column {exc.colno})"
        except (ValueError, RecursionError) as exc:
            yield number, None, f"not valid JSON: {exc or 'nested too deeply'}"


def _csv(stream: IO[str]) -> Iterator[tuple[int, object | None, str | None]]:
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:
        return
    for row in reader:
        number = reader.line_num
        if None in row:
            yield (
                number,
                None,
                f"has {len(reader.fieldnames) + len(row[None])} cells but the "
                f"header has {len(reader.fieldnames)} columns",
            )
            continue
        try:
            yield number, _nest(row), None
        except ValueError as exc:
            yield number, None, str(exc)


def read_events(kind: str, stream: IO[str], fmt: Format = "jsonl") -> Iterator[SourceLine]:
    """Validate every line of ``stream`` as an event of ``kind``; yields one result per line.

    Examples
    --------
    >>> text = '''{"request_id": "r1", "model": "voice", "label": "weather"}
    ... {"request_id": "r2", "model": "voice", "clicked": "maybe"}
    ... {"request_id": "r3", "model": "voice", "label": "news"'''
    >>> for item in read_events("feedback", io.StringIO(text)):
    ...     print(item.line, item.event.data.label if item.event else item.error)
    1 weather
    2 clicked: Input should be a valid boolean, unable to interpret input (got 'maybe')
    3 not valid JSON: Expecting ',' delimiter (column 55)
    """
    rows = _csv(stream) if fmt == "csv" else _jsonl(stream)
    for number, obj, problem in rows:
        if problem is not None:
            yield SourceLine(number, error=problem)
            continue
        try:
            yield SourceLine(number, event=_to_event(kind, obj))
        except ContractError as exc:
            yield SourceLine(number, error=str(exc))


def open_input(path: str) -> IO[str]:
    """Open a file (or ``-`` for stdin) as UTF-8 text; undecodable bytes become U+FFFD."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    return text_reader(Path(path).open("rb"), gzipped=path.endswith(".gz"))


def text_reader(binary: IO[bytes], *, gzipped: bool = False) -> IO[str]:
    """UTF-8 text over a binary stream (gunzipped if asked); bad bytes become U+FFFD."""
    raw: IO[bytes] = gzip.GzipFile(fileobj=binary) if gzipped else binary
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
