"""Errors raised by the routing policy and rollout gates. All derive from :class:`RoutingError`."""

from __future__ import annotations

__all__ = [
    "ApprovalError",
    "InvalidPolicyError",
    "InvalidTransitionError",
    "NoChampionError",
    "RoutingError",
]


class RoutingError(Exception):
    """Base of every error raised by :mod:`online_models.routing`."""


class InvalidPolicyError(RoutingError, ValueError):
    """A policy state that cannot be (bad fraction, ramp steps, phase, or stored fields)."""


class InvalidTransitionError(RoutingError):
    """A rollout step that does not follow from the current phase (e.g. a canary without shadow)."""


class ApprovalError(RoutingError):
    """An approval for a step that is not the one awaiting approval."""


class NoChampionError(RoutingError):
    """A request to route, or a rollout to start, for a model with no champion."""
