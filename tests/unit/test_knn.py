"""WindowKNNClassifier against a brute-force oracle, its window, and its odd inputs."""

from __future__ import annotations

import math
import pickle
import random
from collections import Counter

import pytest

from online_models.models.knn import WindowKNNClassifier


def _oracle(window, x, k, weighted):
    """Brute force over (features, label) pairs: plain Python, no numpy."""
    names = {name for features, _ in window for name in features}

    def distance(features):
        return math.sqrt(sum((features.get(n, 0.0) - x.get(n, 0.0)) ** 2 for n in names))

    ranked = sorted(window, key=lambda pair: distance(pair[0]))[:k]
    votes: Counter[str] = Counter()
    exact = [pair for pair in ranked if distance(pair[0]) < 1e-12]
    for features, label in exact if weighted and exact else ranked:
        votes[label] += 1.0 / distance(features) if weighted and not exact else 1.0
    total = sum(votes.values())
    return {label: votes[label] / total for label in votes}


@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_the_vote_shares_equal_a_brute_force_count_over_the_last_window(seed, weighted):
    rng = random.Random(seed)
    model = WindowKNNClassifier(n_neighbors=7, window_size=60, weighted=weighted)
    seen = []
    for _ in range(150):
        label = rng.choice("abc")
        x = {f"f{i}": rng.gauss("abc".index(label) * 0.5, 1.0) for i in range(4)}
        model.learn_one(x, label)
        seen.append((x, label))
    for _ in range(40):
        query = {f"f{i}": rng.gauss(0.5, 1.0) for i in range(4)}
        got = model.predict_proba_one(query)
        want = _oracle(seen[-60:], query, 7, weighted)
        assert set(got) == set("abc")  # every label learned is a key
        for label in got:
            assert got[label] == pytest.approx(want.get(label, 0.0), abs=1e-9)


def test_old_examples_leave_the_window_so_a_new_concept_takes_over():
    rng = random.Random(3)
    model = WindowKNNClassifier(n_neighbors=5, window_size=100)
    for _ in range(500):
        value = rng.uniform(-1, 1)
        model.learn_one({"v": value}, "pos" if value > 0 else "neg")
    assert model.predict_one({"v": 0.5}) == "pos"
    for _ in range(100):  # the concept flips; exactly one window of it
        value = rng.uniform(-1, 1)
        model.learn_one({"v": value}, "neg" if value > 0 else "pos")
    assert model.n_examples == 100
    assert model.predict_one({"v": 0.5}) == "neg"
    assert model.predict_proba_one({"v": 0.5})["pos"] == 0.0


def test_a_feature_seen_later_adds_a_column_and_missing_or_odd_values_count_as_zero():
    model = WindowKNNClassifier(n_neighbors=1, window_size=10)
    model.learn_one({"a": 1.0}, "first")
    model.learn_one({"a": 1.0, "b": 5.0}, "second")  # b is 0.0 for the first example
    assert model.predict_one({"a": 1.0}) == "first"
    assert model.predict_one({"a": 1.0, "b": 4.0}) == "second"
    for odd in (math.nan, math.inf, None, "loud", True):
        assert model.predict_one({"a": 1.0, "b": odd}) == "first"
    model.learn_one({"a": math.nan, "c": "text"}, "third")  # no column for a string
    assert model.predict_one({"a": 0.0}) == "third"


def test_an_exact_match_decides_a_weighted_vote():
    model = WindowKNNClassifier(n_neighbors=3, window_size=10)
    model.learn_one({"a": 0.0}, "exact")
    model.learn_one({"a": 0.1}, "near")
    model.learn_one({"a": 0.11}, "near")
    assert model.predict_proba_one({"a": 0.0}) == {"exact": 1.0, "near": 0.0}
    plain = WindowKNNClassifier(n_neighbors=3, window_size=10, weighted=False)
    for x, y in (({"a": 0.0}, "exact"), ({"a": 0.1}, "near"), ({"a": 0.11}, "near")):
        plain.learn_one(x, y)
    assert plain.predict_one({"a": 0.0}) == "near"


def test_a_pickled_model_answers_bit_for_bit_the_same():
    rng = random.Random(11)
    model = WindowKNNClassifier(n_neighbors=5, window_size=200)
    for _ in range(300):
        label = rng.choice("xyz")
        model.learn_one({"p": rng.gauss(0, 1), "q": rng.gauss(0, 1)}, label)
    copy = pickle.loads(pickle.dumps(model))
    for _ in range(50):
        query = {"p": rng.gauss(0, 1), "q": rng.gauss(0, 1)}
        assert copy.predict_proba_one(query) == model.predict_proba_one(query)


def test_an_empty_model_predicts_nothing_and_bad_sizes_are_refused():
    assert WindowKNNClassifier().predict_proba_one({"a": 1.0}) == {}
    assert WindowKNNClassifier().predict_one({"a": 1.0}) is None
    with pytest.raises(ValueError, match="n_neighbors"):
        WindowKNNClassifier(n_neighbors=0)
    with pytest.raises(ValueError, match="window_size"):
        WindowKNNClassifier(window_size=0)
