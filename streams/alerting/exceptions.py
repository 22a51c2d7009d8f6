"""Errors raised by the alert policy. All derive from :class:`AlertingError`."""

from __future__ import annotations

from streams.exceptions import StreamsError

__all__ = ["AlertingError", "PolicyConfigError", "RuleSyntaxError", "UnknownMetricError"]


class AlertingError(StreamsError):
    """Base of every error raised by ``streams.alerting``."""


class RuleSyntaxError(AlertingError, ValueError):
    """A metric rule that does not parse; the message shows the grammar and an example."""


class UnknownMetricError(AlertingError, KeyError):
    """A rule names a metric the monitor does not publish; the message lists the names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown metric"


class PolicyConfigError(AlertingError, ValueError):
    """An alert-policy configuration file that cannot be read or does not validate."""
