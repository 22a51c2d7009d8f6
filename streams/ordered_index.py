"""An insertion-ordered map that Python's garbage collector does not walk.

A worker remembers one event id (dedup) and one pending prediction (the join)
per event for minutes to hours: a million entries each. Kept in an
``OrderedDict`` (always tracked by the collector), every full collection
walked all of them: 0.2 s per 500 000 events, a pause in the stream and about
3 % of a worker's time. A plain ``dict`` of strings, numbers and untracked
values (``msgspec.Struct(gc=False)``) is not tracked at all, but it cannot drop
its oldest key cheaply: ``next(iter(d))`` scans past every key deleted before.

:class:`OrderedIndex` is such a plain dict, in insertion order, beside a queue
of the batches put into it (tuples, which the collector stops tracking once it
has seen that they hold only untracked values). The front of the queue is the
oldest key; an entry of the queue whose key was put again later is skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["OrderedIndex"]

V = TypeVar("V")


class OrderedIndex(Generic[V]):
    """Keys in the order they were last put, oldest first, with their values.

    Values should be untracked by the collector (numbers, strings,
    ``msgspec.Struct(gc=False)``): one tracked value makes the dict tracked
    again. Each put needs a value object of its own (the queue tells a key's
    latest put from an earlier one by identity): not ``None`` for every key.
    Putting a key again moves it to the end.

    Examples
    --------
    >>> index = OrderedIndex()
    >>> index.put_many(["a", "b", "c"], [1, 2, 3])
    >>> index.put("a", 4)  # a moves to the end
    >>> list(index.items()), index.oldest()
    ([('b', 2), ('c', 3), ('a', 4)], ('b', 2))
    >>> index.pop_oldest(), index.pop_oldest(), len(index), "a" in index, index.get("b")
    (('b', 2), ('c', 3), 1, True, None)
    >>> import gc
    >>> gc.is_tracked(index._values)
    False
    """

    __slots__ = ("_batches", "_queued", "_values")

    def __init__(self) -> None:
        self._values: dict[str, V] = {}
        # [keys, values, position of the first entry not yet taken]
        self._batches: deque[list[object]] = deque()
        self._queued = 0  # entries in the batches from their positions on, stale ones included

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str) -> V | None:
        """The value of ``key``, or ``None``."""
        return self._values.get(key)

    def items(self) -> Iterator[tuple[str, V]]:
        """``(key, value)`` pairs, oldest first."""
        return iter(self._values.items())

    def keys_disjoint(self, keys: Sequence[str]) -> bool:
        """Whether none of ``keys`` is in the index."""
        return self._values.keys().isdisjoint(keys)

    def put(self, key: str, value: V) -> None:
        """Set ``key`` to ``value``, as the newest key."""
        self.put_many((key,), (value,))

    def put_many(self, keys: Sequence[str], values: Sequence[V]) -> None:
        """:meth:`put` each pair in turn (a key given twice keeps its last value, at the
        place of its last put)."""
        if not keys:
            return
        keys, values = tuple(keys), tuple(values)  # the objects the dict and queue share
        stored = self._values
        before = len(stored)
        stored.update(zip(keys, values, strict=True))
        if len(stored) - before != len(keys):
            # a key was there already (it stayed at its old place) or came twice: each key
            # of the batch goes to the end, at its last put, with its last value
            for key in keys:
                stored[key] = stored.pop(key)
        self._batches.append([keys, values, 0])
        self._queued += len(keys)
        if self._queued > 2 * len(stored) + 1_024:
            self._compact()

    def oldest(self) -> tuple[str, V] | None:
        """The oldest ``(key, value)``, or ``None`` when empty."""
        found = self._front()
        if found is None:
            return None
        batch, position = found
        return batch[0][position], batch[1][position]  # type: ignore[index]

    def pop_oldest(self) -> tuple[str, V]:
        """Remove the oldest key; its ``(key, value)``. ``KeyError`` when empty."""
        found = self._front()
        if found is None:
            raise KeyError("pop_oldest(): the index is empty")
        batch, position = found
        key, value = batch[0][position], batch[1][position]  # type: ignore[index]
        del self._values[key]
        batch[2] = position + 1
        self._queued -= 1
        return key, value

    def pop_oldest_below(self, bound: object) -> list[str]:
        """Remove the oldest keys while their values are below ``bound``; their keys.

        For values that increase in the order they are put (row numbers), this
        drops the keys put before the value ``bound``.

        Examples
        --------
        >>> index = OrderedIndex()
        >>> index.put_many(["a", "b", "c"], [10, 11, 12])
        >>> index.put("a", 13)
        >>> index.pop_oldest_below(13), list(index.items())
        (['b', 'c'], [('a', 13)])
        """
        popped = []
        stored = self._values
        while (found := self._front()) is not None:
            batch, position = found
            keys, values, _ = batch
            end = len(keys)  # type: ignore[arg-type]
            while position < end:
                key, value = keys[position], values[position]  # type: ignore[index]
                if not value < bound:  # type: ignore[operator]
                    batch[2] = position
                    self._queued -= position - found[1]
                    return popped
                if key in stored and stored[key] is value:
                    del stored[key]
                    popped.append(key)
                position += 1
            self._queued -= end - found[1]
            self._batches.popleft()
        return popped

    def _front(self) -> tuple[list[object], int] | None:
        """The batch and position of the oldest live entry; stale entries before it go."""
        stored = self._values
        batches = self._batches
        while batches:
            batch = batches[0]
            keys, values, position = batch
            while position < len(keys):  # type: ignore[arg-type]
                key = keys[position]  # type: ignore[index]
                if key in stored and stored[key] is values[position]:  # type: ignore[index]
                    batch[2] = position
                    return batch, position
                position += 1
                self._queued -= 1
            batches.popleft()
        return None

    def _compact(self) -> None:
        """One batch of the live entries (keys put again and again leave stale entries)."""
        stored = self._values
        self._batches = deque([[tuple(stored), tuple(stored.values()), 0]])
        self._queued = len(stored)
