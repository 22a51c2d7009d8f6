"""Errors raised by the dashboard. All derive from :class:`DashboardError`."""

from __future__ import annotations

from streams.exceptions import StreamsError

__all__ = ["DashboardConfigError", "DashboardError", "UnknownChartError"]


class DashboardError(StreamsError):
    """Base of every error raised by ``streams.dashboard``."""


class DashboardConfigError(DashboardError, ValueError):
    """A dashboard setting out of range (a bound below its minimum, a bad time span)."""


class UnknownChartError(DashboardError, KeyError):
    """A chart name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown chart"
