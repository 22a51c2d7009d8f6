"""Counts of categories with a cap on how many are named, mergeable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = ["OTHER", "Frequencies"]

OTHER = "__other__"
"""The bucket that counts every category beyond the cap."""


class Frequencies:
    """How often each category occurred, naming at most ``max_categories`` of them.

    The count of every category that is not named goes to the :data:`OTHER`
    bucket (``"__other__"``), so named counts plus ``other_count`` always equal
    ``count``. The rules, deterministic whatever the order of arrival inside a
    batch:

    - **update** (:meth:`add`, :meth:`add_many`): a named category keeps
      counting; a new one is named while fewer than ``max_categories`` are;
      beyond the cap new categories are counted in ``__other__``. When one
      batch brings more new categories than there are free names, the most
      frequent in the batch get them (ties: the smaller name first).
    - **merge** (:meth:`merge`): named counts are summed; if that names more
      than ``max_categories``, the ``max_categories`` most frequent stay named
      (ties: the smaller name first) and the counts of the others move to
      ``__other__``. Merging is commutative.

    Everything is exact — merging partials equals counting everything at once —
    as long as no more than ``max_categories`` distinct categories were seen.
    Beyond that, ``count`` and the sum of the buckets stay exact, but which
    categories are named may depend on how the stream was split. A category
    literally called ``"__other__"`` is counted in the other bucket.

    Parameters
    ----------
    max_categories
        Most categories named (the rest go to ``__other__``).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> words = rng.choices(["en", "fr", "de", "es"], weights=[6, 2, 1.5, 0.5], k=1_000)
    >>> partition_a, partition_b = Frequencies(max_categories=3), Frequencies(max_categories=3)
    >>> partition_a.add_many(words[:500])
    >>> partition_b.add_many(words[500:])
    >>> partition_a.merge(partition_b)
    >>> partition_a.top()
    [('en', 606), ('fr', 189), ('de', 156)]
    >>> partition_a.other_count, partition_a.count, partition_a.share("fr")
    (49, 1000, 0.189)
    """

    __slots__ = ("_counts", "_max_categories", "_other", "_total")

    def __init__(self, max_categories: int = 20) -> None:
        if max_categories < 0:
            raise ValueError(f"max_categories must be at least 0, got {max_categories!r}")
        self._max_categories = max_categories
        self._counts: dict[str, int] = {}
        self._other = 0
        self._total = 0

    # ------------------------------------------------------------------ updates

    def add(self, category: str) -> None:
        """Count one occurrence of ``category``."""
        self.add_many((category,))

    def add_many(self, categories: Iterable[str]) -> None:
        """Count a batch of occurrences (one ``Counter`` pass over the batch)."""
        batch = Counter(categories)
        if not batch:
            return
        self._total += sum(batch.values())
        self._other += batch.pop(OTHER, 0)
        named = self._counts
        new: list[tuple[str, int]] = []
        for category, count in batch.items():
            if category in named:
                named[category] += count
            else:
                new.append((category, count))
        free = self._max_categories - len(named)
        if len(new) > free:
            new.sort(key=_by_count_then_name)
            self._other += sum(count for _, count in new[free:])
            new = new[:free]
        named.update(new)

    def merge(self, other: Frequencies) -> None:
        """Add the counts of another, disjoint stream (same ``max_categories``)."""
        if other._max_categories != self._max_categories:
            raise ValueError(
                "can only merge frequencies with the same max_categories: "
                f"{self._max_categories} vs {other._max_categories}"
            )
        named = self._counts
        for category, count in other._counts.items():
            named[category] = named.get(category, 0) + count
        self._other += other._other
        self._total += other._total
        if len(named) > self._max_categories:
            ranked = sorted(named.items(), key=_by_count_then_name)
            self._other += sum(count for _, count in ranked[self._max_categories :])
            self._counts = dict(ranked[: self._max_categories])

    # ------------------------------------------------------------------ results

    @property
    def count(self) -> int:
        """Occurrences counted, named or not."""
        return self._total

    @property
    def other_count(self) -> int:
        """Occurrences counted in ``__other__``."""
        return self._other

    @property
    def max_categories(self) -> int:
        """Most categories named."""
        return self._max_categories

    def top(self, k: int | None = None) -> list[tuple[str, int]]:
        """The ``k`` (default: all) most frequent named categories and their counts.

        Ordered by count, most frequent first, ties by name; ``__other__`` is
        not included (see :attr:`other_count`).
        """
        ranked = sorted(self._counts.items(), key=_by_count_then_name)
        return ranked if k is None else ranked[:k]

    def share(self, category: str) -> float | None:
        """Share of occurrences that were ``category`` (``"__other__"`` works too).

        ``None`` when nothing was counted; ``0.0`` for a category never seen.

        Examples
        --------
        >>> frequencies = Frequencies(max_categories=1)
        >>> frequencies.add_many(["a", "b", "a", "c"])
        >>> frequencies.share("a"), frequencies.share("__other__"), frequencies.share("z")
        (0.5, 0.5, 0.0)
        >>> print(Frequencies().share("a"))
        None
        """
        if self._total == 0:
            return None
        count = self._other if category == OTHER else self._counts.get(category, 0)
        return count / self._total

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_state` turns back into equal frequencies."""
        return {
            "max_categories": self._max_categories,
            "counts": dict(self._counts),
            "other": self._other,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Frequencies:
        """Rebuild frequencies from :meth:`to_state` output (after a JSON round trip too).

        Examples
        --------
        >>> import json
        >>> frequencies = Frequencies(max_categories=2)
        >>> frequencies.add_many(["x", "y", "z", "x"])
        >>> again = Frequencies.from_state(json.loads(json.dumps(frequencies.to_state())))
        >>> again.top(), again.other_count
        ([('x', 2), ('y', 1)], 1)
        """
        new = cls(int(state["max_categories"]))
        new._counts = {str(name): int(count) for name, count in state["counts"].items()}
        new._other = int(state["other"])
        new._total = sum(new._counts.values()) + new._other
        return new

    def __repr__(self) -> str:
        return f"Frequencies(count={self._total}, top={self.top(3)}, other={self._other})"


def _by_count_then_name(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
