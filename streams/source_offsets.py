"""Which records of a source partition the monitor may apply: no offset is ever jumped over.

After a rebalance, faust-streaming 0.15 can hand an agent records from the
consumer's old position before its seek to the committed offset takes effect
(a fetch that was in flight during the rebalance). Say offsets 0..3 were
committed (the next to read is 4) and records 6 and 7 arrive first: faust
marks 5 as a gap it may commit past, so 4 and 5 would never be counted. The
monitor asks :class:`SourceOffsets` about every source record before it
applies it; on a jump it seeks the partition back to the expected offset and
drops the records ahead of it until that offset arrives.

A real gap (the expected records were deleted by retention) is accepted: the
caller checks the partition's earliest offset before it rewinds.

Between a revocation and the seek that follows the next assignment, faust
also hands over records of the old fetch position. A revoked partition is
therefore :meth:`~SourceOffsets.block`-ed (its records are dropped, not
applied) until :meth:`~SourceOffsets.start` gives the offset faust sought to:
the committed one, or the earliest when nothing was committed. The same goes
for partitions new to the worker: after :meth:`~SourceOffsets.block_all` (a
rebalance began) only started partitions are taken.

Kafka-free: the agent passes offsets in and acts on the answers.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable

__all__ = ["OffsetVerdict", "SourceOffsets"]


class OffsetVerdict(enum.Enum):
    """What to do with one record."""

    TAKE = "take"
    """Apply it (a record read again, below the expected offset, is taken too: the
    windows skip it by offset and the dedup memory by event id)."""
    DROP = "drop"
    """Ahead of a rewind in progress: it will be read again after the offset sought."""
    REWIND = "rewind"
    """Ahead of the expected offset: seek back to :meth:`SourceOffsets.expected`, or
    call :meth:`SourceOffsets.accept_gap` when those records no longer exist."""


class SourceOffsets:
    """The next offset expected on each source partition, and any rewind in progress.

    Examples
    --------
    Offsets 0..3 were committed; after a rebalance 6 arrives before 4:

    >>> offsets = SourceOffsets()
    >>> offsets.check("p0", 6, committed=4)
    <OffsetVerdict.REWIND: 'rewind'>
    >>> offsets.rewinding("p0", 4)  # the caller sought back to 4
    >>> offsets.check("p0", 7, committed=4)  # still from the old position
    <OffsetVerdict.DROP: 'drop'>
    >>> [offsets.check("p0", n, committed=4).value for n in (4, 5, 6)]
    ['take', 'take', 'take']
    >>> offsets.expected("p0")
    7
    """

    def __init__(self) -> None:
        self._next: dict[Hashable, int] = {}
        self._target: dict[Hashable, int] = {}
        self._sought_at: dict[Hashable, float] = {}  # when each rewind last sought
        self._blocked: set[Hashable] = set()
        self._started: set[Hashable] | None = None  # after block_all: partitions started since
        self.rewinds = 0
        """How many times a partition was sought back (for the logs and tests)."""

    def expected(self, tp: Hashable) -> int | None:
        """The next offset of ``tp`` to apply (``None`` before its first record)."""
        return self._target.get(tp, self._next.get(tp))

    def check(self, tp: Hashable, offset: int, *, committed: int | None) -> OffsetVerdict:
        """The verdict on the record at ``offset``; a taken record moves the expected offset.

        ``committed`` is the partition's committed offset (the next to read),
        used for its first record after an assignment; ``None`` when unknown.
        """
        if tp in self._blocked or (self._started is not None and tp not in self._started):
            return OffsetVerdict.DROP
        target = self._target.get(tp)
        if target is not None:
            if offset > target:
                return OffsetVerdict.DROP
            if offset == target:
                del self._target[tp]
                self._sought_at.pop(tp, None)
            self._take(tp, offset)
            return OffsetVerdict.TAKE
        expected = self._next.get(tp, committed)
        if expected is not None and offset > expected:
            self._next[tp] = expected
            return OffsetVerdict.REWIND
        self._take(tp, offset)
        return OffsetVerdict.TAKE

    def settled(self, tp: Hashable) -> int | None:
        """The next offset of ``tp`` to apply, unless it is blocked, rewinding or unknown.

        >>> offsets = SourceOffsets()
        >>> offsets.check("p0", 0, committed=None).value, offsets.settled("p0")
        ('take', 1)
        >>> offsets.check("p0", 5, committed=None).value, offsets.settled("p0")
        ('rewind', 1)
        >>> offsets.rewinding("p0", 1)
        >>> offsets.settled("p0") is None
        True
        """
        if tp in self._blocked or tp in self._target:
            return None
        if self._started is not None and tp not in self._started:
            return None
        return self._next.get(tp)

    def rewinding(self, tp: Hashable, offset: int, *, now: float = 0.0) -> None:
        """The caller sought ``tp`` back to ``offset`` at ``now``: drop what is ahead of it
        until it comes."""
        self._target[tp] = offset
        self._sought_at[tp] = now
        self.rewinds += 1

    def overdue(self, now: float, after_s: float) -> list[tuple[Hashable, int]]:
        """Rewinds whose offset has not come ``after_s`` after their seek: seek them again.

        A seek can be undone: records of the same stale fetch that faust hands
        over after it move faust's read position up again, and it then drops
        the records sought as already read. Their clocks restart at ``now``.

        >>> offsets = SourceOffsets()
        >>> offsets.check("p0", 9, committed=4).value
        'rewind'
        >>> offsets.rewinding("p0", 4, now=100.0)
        >>> offsets.overdue(101.0, after_s=2.0), offsets.overdue(102.5, after_s=2.0)
        ([], [('p0', 4)])
        >>> offsets.overdue(103.0, after_s=2.0)  # sought again at 102.5
        []
        """
        late = [
            (tp, target)
            for tp, target in self._target.items()
            if now - self._sought_at.get(tp, now) >= after_s
        ]
        for tp, _ in late:
            self._sought_at[tp] = now
        return late

    def accept_gap(self, tp: Hashable, offset: int) -> None:
        """The records before ``offset`` are gone: take ``offset`` as the next one."""
        self._target.pop(tp, None)
        self._sought_at.pop(tp, None)
        self._take(tp, offset)

    def block(self, tp: Hashable) -> None:
        """``tp`` was revoked: drop its records until :meth:`start` (after the next seek).

        >>> offsets = SourceOffsets()
        >>> offsets.check("p0", 4, committed=None).value
        'take'
        >>> offsets.block("p0")
        >>> offsets.check("p0", 5, committed=None).value  # fetched before the rebalance
        'drop'
        >>> offsets.start("p0", 3)  # assigned again; faust sought to the committed offset 3
        >>> [offsets.check("p0", n, committed=None).value for n in (5, 3)]
        ['rewind', 'take']
        """
        self.forget(tp)
        self._blocked.add(tp)

    def block_all(self) -> None:
        """A rebalance began: drop the records of every partition until it is :meth:`start`-ed.

        >>> offsets = SourceOffsets()
        >>> offsets.block_all()
        >>> offsets.check("p9", 0, committed=None).value  # newly assigned, not sought yet
        'drop'
        >>> offsets.start("p9", 0)
        >>> offsets.check("p9", 0, committed=None).value
        'take'
        """
        for tp in {*self._next, *self._target}:
            self.block(tp)
        self._started = set()

    def start(self, tp: Hashable, offset: int | None) -> None:
        """``tp`` was assigned and sought to ``offset`` (``None``: unknown): expect it next."""
        self.forget(tp)
        self._blocked.discard(tp)
        if self._started is not None:
            self._started.add(tp)
        if offset is not None:
            self._next[tp] = offset

    def forget(self, tp: Hashable) -> None:
        """``tp`` was revoked: start again from its committed offset if it comes back."""
        self._next.pop(tp, None)
        self._target.pop(tp, None)
        self._sought_at.pop(tp, None)

    def _take(self, tp: Hashable, offset: int) -> None:
        if offset + 1 > self._next.get(tp, -1):
            self._next[tp] = offset + 1
