"""Errors raised by the publishing side. All derive from :class:`ProducersError`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeliveryError", "DeliveryFailure", "ProducersError", "PublishError"]


class ProducersError(Exception):
    """Base of every error raised by ``producers``."""


class PublishError(ProducersError):
    """An event could not be handed to Kafka (too large, unknown topic, broker down)."""


@dataclass(frozen=True)
class DeliveryFailure:
    """A record the broker did not acknowledge, and the events it carried."""

    topic: str
    partition: int
    event_ids: tuple[str, ...]
    error: str


class DeliveryError(ProducersError):
    """Some records were not acknowledged by the broker; ``failures`` lists them."""

    def __init__(self, failures: list[DeliveryFailure]) -> None:
        self.failures = failures
        events = sum(len(f.event_ids) for f in failures)
        first = failures[0].error if failures else "unknown error"
        super().__init__(
            f"{events} events in {len(failures)} records were not delivered (first error: {first})"
        )
