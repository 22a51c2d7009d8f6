"""Remembering recently seen event ids, in bounded memory."""

from __future__ import annotations

from streams.ordered_index import OrderedIndex

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
        # id -> the number of its last sighting (the index needs a value object per put)
        self._ids: OrderedIndex[int] = OrderedIndex()
        self._sightings = 0

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` was seen recently; otherwise remember it and return False."""
        return self.seen_many([event_id])[0]

    def seen_many(self, event_ids: list[str]) -> list[bool]:
        """:meth:`seen` of each id in turn, with one set operation for a batch of new ids.

        Examples
        --------
        >>> ids = RecentIds(capacity=3)
        >>> ids.seen_many(["a", "b"]), ids.seen_many(["c", "a", "c"]), ids.seen_many(["d", "e"])
        ([False, False], [False, True, True], [False, False])
        >>> sorted(key for key, _ in ids._ids.items())
        ['c', 'd', 'e']
        """
        if not self.capacity:
            return [False] * len(event_ids)
        known = self._ids
        first = self._sightings
        self._sightings += len(event_ids)
        if known.keys_disjoint(event_ids) and len(set(event_ids)) == len(event_ids):
            repeats = [False] * len(event_ids)
        else:
            repeats, fresh = [], set()
            for event_id in event_ids:
                repeats.append(event_id in known or event_id in fresh)
                fresh.add(event_id)
        # a repeat is remembered again as the newest
        known.put_many(event_ids, range(first, first + len(event_ids)))
        for _ in range(len(known) - self.capacity):
            known.pop_oldest()
        return repeats

    def __contains__(self, event_id: object) -> bool:
        """Whether ``event_id`` is remembered (without remembering it)."""
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
