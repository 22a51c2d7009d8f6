"""Who answers each request during a rollout, and when the rollout may go on — pure and Kafka-free.

:class:`RoutingPolicy` is the immutable, JSON-serialisable rollout state of a
model (shadow → canary → ramp → promote, blue/green switch, rollback, manual
approval) and routes a key to a :class:`Route` by a stable hash
(:func:`bucket`). :class:`RolloutGate` compares the challenger's
:class:`ArmWindow` with the champion's and passes, fails (rolls back) or waits.
"""

from online_models.routing.bucket import bucket
from online_models.routing.exceptions import (
    ApprovalError,
    InvalidPolicyError,
    InvalidTransitionError,
    NoChampionError,
    RoutingError,
)
from online_models.routing.gate import (
    ArmWindow,
    GateCheck,
    GateResult,
    RolloutGate,
    worse_rate_p_value,
)
from online_models.routing.policy import PHASES, Route, RoutingPolicy

__all__ = [
    "PHASES",
    "ApprovalError",
    "ArmWindow",
    "GateCheck",
    "GateResult",
    "InvalidPolicyError",
    "InvalidTransitionError",
    "NoChampionError",
    "RolloutGate",
    "Route",
    "RoutingError",
    "RoutingPolicy",
    "bucket",
    "worse_rate_p_value",
]
