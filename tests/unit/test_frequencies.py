"""Frequencies are exact under the cap, overflow deterministically into __other__, merge."""

from __future__ import annotations

import json
import pickle
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.stats import OTHER, Frequencies

few_categories = st.lists(st.sampled_from(["en", "fr", "de", "es", "it"]), max_size=80)
many_categories = st.lists(st.text("abcdef", min_size=1, max_size=2), max_size=80)


def test_exact_counts_on_every_prefix_under_the_cap() -> None:
    rng = random.Random(8)
    stream = rng.choices([f"cat-{i}" for i in range(20)], k=500)
    frequencies, position = Frequencies(max_categories=20), 0
    while position < len(stream):
        size = rng.randint(1, 30)
        frequencies.add_many(stream[position : position + size])
        position = min(position + size, len(stream))
        expected = Counter(stream[:position])
        assert dict(frequencies.top()) == expected
        assert frequencies.other_count == 0 and frequencies.count == position
        for category, count in expected.items():
            assert frequencies.share(category) == count / position


def test_beyond_the_cap_new_categories_go_to_other() -> None:
    frequencies = Frequencies(max_categories=2)
    frequencies.add_many(["a", "b"])
    frequencies.add_many(["c", "c", "a", "d"])
    assert frequencies.top() == [("a", 2), ("b", 1)]
    assert frequencies.other_count == 3 and frequencies.count == 6
    assert frequencies.share(OTHER) == 0.5 and frequencies.share("c") == 0.0


def test_a_batch_with_more_new_categories_than_free_names_names_its_most_frequent() -> None:
    frequencies = Frequencies(max_categories=3)
    frequencies.add("z")
    frequencies.add_many(["y", "b", "b", "a", "c", "c"])  # two free names: b and c (2 each)
    assert frequencies.top() == [("b", 2), ("c", 2), ("z", 1)]
    assert frequencies.other_count == 2  # a and y, once each, were left without a name


@given(many_categories, st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_order_inside_a_batch_does_not_matter(batch: list[str], rng: random.Random) -> None:
    shuffled = batch[:]
    rng.shuffle(shuffled)
    first, second = Frequencies(max_categories=3), Frequencies(max_categories=3)
    first.add_many(batch)
    second.add_many(shuffled)
    assert first.to_state() == second.to_state()


def test_merge_keeps_the_most_frequent_ties_by_name() -> None:
    left, right = Frequencies(max_categories=2), Frequencies(max_categories=2)
    left.add_many(["a", "a", "b"])
    right.add_many(["c", "c", "b", "d", "d"])  # right names c and d; b goes to its other
    left.merge(right)
    # a 2, b 1 (+1 in right's other), c 2, d 2: keep the two most frequent, ties by name
    assert left.top() == [("a", 2), ("c", 2)]
    assert left.other_count == 4 and left.count == 8


@given(many_categories, many_categories)
@settings(max_examples=60, deadline=None)
def test_merge_is_commutative_and_counts_everything(first: list[str], second: list[str]) -> None:
    a1, b1, a2, b2 = (Frequencies(max_categories=4) for _ in range(4))
    a1.add_many(first)
    b1.add_many(second)
    a2.add_many(first)
    b2.add_many(second)
    a1.merge(b1)
    b2.merge(a2)
    assert a1.to_state() == b2.to_state()
    assert a1.count == len(first) + len(second)
    assert sum(count for _, count in a1.top()) + a1.other_count == a1.count
    assert len(a1.top()) <= 4


@given(st.lists(st.tuples(st.sampled_from(["en", "fr", "de", "es", "it"]), st.integers(0, 3))))
@settings(max_examples=60, deadline=None)
def test_merge_of_partitions_equals_the_whole_under_the_cap(
    tagged: list[tuple[str, int]],
) -> None:
    partitions = [Frequencies(max_categories=5) for _ in range(4)]
    for category, part in tagged:
        partitions[part].add(category)
    merged = Frequencies(max_categories=5)
    for partial in partitions:
        merged.merge(partial)
    whole = Frequencies(max_categories=5)
    whole.add_many(category for category, _ in tagged)
    expected = sorted(Counter(c for c, _ in tagged).items(), key=lambda item: (-item[1], item[0]))
    assert merged.top() == whole.top() == expected
    assert merged.other_count == 0


def test_top_k_and_literal_other() -> None:
    frequencies = Frequencies()
    frequencies.add_many(["b", "a", "b", OTHER, "c"])
    assert frequencies.top(2) == [("b", 2), ("a", 1)]
    assert frequencies.other_count == 1  # a category literally named __other__ is the bucket


def test_zero_cap_counts_everything_as_other() -> None:
    frequencies = Frequencies(max_categories=0)
    frequencies.add_many(["a", "b"])
    assert frequencies.top() == [] and frequencies.share(OTHER) == 1.0


def test_empty_reports_none_and_refuses_mismatched_merge() -> None:
    frequencies = Frequencies()
    frequencies.add_many([])
    assert frequencies.count == 0 and frequencies.top() == []
    assert frequencies.share("a") is None and frequencies.share(OTHER) is None
    with pytest.raises(ValueError, match="same max_categories"):
        frequencies.merge(Frequencies(max_categories=3))


def test_state_survives_json_and_pickle_exactly() -> None:
    frequencies = Frequencies(max_categories=3)
    frequencies.add_many(random.Random(1).choices("abcdefg", k=200))
    state = frequencies.to_state()
    through_json = Frequencies.from_state(json.loads(json.dumps(state)))
    through_pickle = pickle.loads(pickle.dumps(frequencies))
    assert through_json.to_state() == state == through_pickle.to_state()
    assert through_json.count == 200
    extra = Frequencies(max_categories=3)
    extra.add_many(["g", "g", "g"])
    through_json.merge(extra)
    frequencies.merge(extra)
    assert through_json.to_state() == frequencies.to_state()
