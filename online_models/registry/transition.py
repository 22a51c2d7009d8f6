"""What a promotion, rollback or approval changed: enough to announce it as a model event."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

__all__ = ["Approval", "Transition"]


class Transition(BaseModel):
    """One change of a model's aliases, as returned by ``promote`` and ``rollback``.

    ``action`` uses the words of the ``driftloop.model-event.v1`` contract, so the
    caller can publish ``ModelEventData(model=t.model, version=t.version,
    action=t.action, reason=t.reason)`` as it is. ``champion`` and
    ``challenger`` are the aliases after the change.

    Examples
    --------
    >>> t = Transition(model="voice-intent", action="promoted", version=3,
    ...                previous_version=2, champion=3, challenger=None)
    >>> f"{t.model} v{t.version} {t.action}, replacing v{t.previous_version}"
    'voice-intent v3 promoted, replacing v2'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    action: Literal["promoted", "rolled_back"]
    version: PositiveInt
    previous_version: PositiveInt | None = None
    champion: PositiveInt | None = None
    challenger: PositiveInt | None = None
    reason: str | None = None


class Approval(BaseModel):
    """A person's go-ahead for one rollout step of one version (or the request for it).

    A rollout controller asks with ``request_approval`` (state ``pending``) and
    waits until ``is_approved`` is true; ``approve`` records who said yes.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> a = Approval(model="voice-intent", version=3, step="promote", state="approved",
    ...              approved_by="ops", approved_at=datetime(2026, 1, 2, tzinfo=UTC))
    >>> a.state, a.approved_by
    ('approved', 'ops')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    version: PositiveInt
    step: str
    state: Literal["pending", "approved"]
    requested_at: datetime | None = None
    reason: str | None = None
    approved_at: datetime | None = None
    approved_by: str | None = None
    note: str | None = None
