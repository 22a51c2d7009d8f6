"""The dead-letter contract: the refused record as it was, and why, in headers.

Following Kafka Connect's ``__connect.errors.*`` convention, a dead letter keeps
the original key and value bytes untouched and names the reason in record
headers, so the record can be inspected with any Kafka tool and replayed after
a fix.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HEADER_PREFIX", "DeadLetter"]

HEADER_PREFIX = "driftloop.error."


class DeadLetter(BaseModel):
    """Why a record was refused, and where it came from (the headers of a dead letter).

    Examples
    --------
    >>> dl = DeadLetter(stage="decode", error_class="RecordDecodeError",
    ...                 message="value is not valid JSON", original_topic="driftloop.predictions",
    ...                 original_partition=2, original_offset=41)
    >>> headers = dl.to_headers()
    >>> headers[0]
    ('driftloop.error.stage', b'decode')
    >>> DeadLetter.from_headers(headers) == dl
    True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str = Field(description="Where it was refused: publish, decode, validate, join, ...")
    error_class: str = Field(description="Class of the error, e.g. EventValidationError.")
    message: str = Field(description="What was wrong, for a person.")
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    original_timestamp_ms: int | None = None

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka record headers, ``driftloop.error.<field>`` = UTF-8 value."""
        return [
            (HEADER_PREFIX + name, str(value).encode())
            for name, value in self.model_dump().items()
            if value is not None
        ]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]]) -> DeadLetter:
        """Read a dead letter's headers back (other headers are ignored)."""
        fields = {
            name.removeprefix(HEADER_PREFIX): value.decode("utf-8", "replace")
            for name, value in headers
            if name.startswith(HEADER_PREFIX)
        }
        return cls.model_validate(fields)
