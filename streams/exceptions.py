"""Errors raised by the Kafka side of driftloop. All derive from :class:`StreamsError`."""

from __future__ import annotations

__all__ = [
    "ContractError",
    "EventValidationError",
    "FieldError",
    "RecordDecodeError",
    "StreamsError",
    "UnknownEventTypeError",
    "UnknownTopicError",
]

from dataclasses import dataclass


class StreamsError(Exception):
    """Base of every error raised by ``streams``."""


class ContractError(StreamsError):
    """Something does not follow the wire contract."""


class UnknownTopicError(ContractError, KeyError):
    """A topic name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown topic"


class UnknownEventTypeError(ContractError):
    """An event ``type`` that no schema knows (not a driftloop type, or an unknown version)."""


class RecordDecodeError(ContractError):
    """A record value that is not JSON, not UTF-8, empty, or not an object/array of objects."""


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: where it is (dotted path) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class EventValidationError(ContractError):
    """An event that does not match its schema; ``errors`` lists every bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors) or "invalid event")
