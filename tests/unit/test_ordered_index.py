"""OrderedIndex against an OrderedDict, and what the garbage collector sees of it."""

from __future__ import annotations

import gc
from collections import OrderedDict
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.dedup import RecentIds
from streams.join import PendingEntry
from streams.ordered_index import OrderedIndex

KEYS = st.sampled_from("abcdefgh")
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.lists(KEYS, max_size=6)),
        st.tuples(st.just("pop"), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_it_keeps_the_order_of_an_ordered_dict_with_move_to_end(operations) -> None:
    index: OrderedIndex[int] = OrderedIndex()
    model: OrderedDict[str, int] = OrderedDict()
    values = count(1_000)  # a value object per put, as the index needs
    for operation, argument in operations:
        if operation == "put":
            batch = [next(values) for _ in argument]
            index.put_many(argument, batch)
            for key, value in zip(argument, batch, strict=True):
                model[key] = value
                model.move_to_end(key)
        else:
            for _ in range(min(argument, len(model))):
                assert index.pop_oldest() == model.popitem(last=False)
        assert list(index.items()) == list(model.items())
        assert index.oldest() == next(iter(model.items()), None)
        assert len(index) == len(model)
        assert all(index.get(key) == value for key, value in model.items())


def test_a_key_put_again_and_again_does_not_grow_the_queue_without_bound() -> None:
    index: OrderedIndex[int] = OrderedIndex()
    for value in range(100_000):
        index.put("same", value)
    assert len(index) == 1 and index.get("same") == 99_999
    assert index._queued <= 2 * len(index) + 1_024
    assert index.pop_oldest() == ("same", 99_999)
    assert index.oldest() is None


def test_a_full_index_of_pending_predictions_is_left_out_of_the_collectors_passes() -> None:
    index: OrderedIndex[PendingEntry] = OrderedIndex()
    for batch in range(50):
        keys = [f"req-{batch}-{i}" for i in range(200)]
        entries = [
            PendingEntry(key, "m", "1", {"locale": "en"}, None, {"x": 1.0}, "a", i)
            for i, key in enumerate(keys)
        ]
        index.put_many(keys, entries)
    gc.collect()
    assert not gc.is_tracked(index._values)
    # the queue's tuples: the collector stops tracking them once it has seen them
    assert not any(
        gc.is_tracked(keys) or gc.is_tracked(values) for keys, values, _ in index._batches
    )


def test_recent_ids_forget_the_oldest_and_remember_a_repeat_as_the_newest() -> None:
    ids = RecentIds(capacity=3)
    assert ids.seen_many(["a", "b", "c"]) == [False, False, False]
    assert ids.seen("a")  # now the newest: b goes first
    assert ids.seen_many(["d"]) == [False]
    assert not ids.seen("b")  # forgotten, remembered again (c goes)
    assert [key for key, _ in ids._ids.items()] == ["a", "d", "b"]
    assert RecentIds(capacity=0).seen_many(["a", "a"]) == [False, False]
