"""Reference profiles: from rows, files and first events; exact through JSON; chosen by rule."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.drift.reference import (
    LABEL_SIGNAL,
    SCORE_SIGNAL,
    CategoricalReference,
    NumericReference,
    ReferenceBook,
    ReferenceBuilder,
    ReferenceFileError,
    ReferenceProfile,
    ReferenceProfileError,
    _decode_sorted,
    _encode_sorted,
)
from online_models.stats import OTHER


def _training_frame(rows: int = 8_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(rows)],
            "duration_s": rng.gamma(4.0, 0.8, rows),
            "words": rng.poisson(3, rows),
            "clipped": rng.random(rows) < 0.05,
            "locale": rng.choice(["en", "fr", "de"], rows, p=[0.6, 0.3, 0.1]),
            "confidence": rng.random(rows),
            "intent": rng.choice(["weather", "music", "call"], rows),
        }
    )


def test_a_batch_becomes_numeric_and_categorical_references_with_bounded_samples() -> None:
    frame = _training_frame()
    profile = ReferenceProfile.from_rows(
        frame,
        model="asr",
        model_version="7",
        ignore=["request_id"],
        score_column="confidence",
        label_column="intent",
        sample_size=1_000,
    )
    assert sorted(profile.numeric) == ["clipped", "duration_s", "prediction.score", "words"]
    assert sorted(profile.categorical) == ["locale", LABEL_SIGNAL]
    assert profile.rows == 8_000 and profile.source == "training"
    duration = profile.numeric["duration_s"]
    assert duration.count == 8_000 and duration.sample.size == 1_000
    # the sample is drawn from the data, and its deciles are the bin edges
    assert np.isin(duration.sample, frame["duration_s"].astype(np.float32)).all()
    assert np.allclose(duration.bin_shares(), 0.1, atol=0.002)
    assert profile.numeric[SCORE_SIGNAL].sample.max() <= 1.0
    locale = profile.categorical["locale"]
    assert locale.categories == ("en", "fr", "de", OTHER)
    assert locale.counts().tolist() == [*frame["locale"].value_counts().tolist(), 0]


def test_rows_as_dicts_and_as_a_frame_give_the_same_profile() -> None:
    frame = _training_frame(rows=500).drop(columns=["request_id"])
    rows = frame.to_dict(orient="records")
    from_frame = ReferenceProfile.from_rows(frame, model="asr", model_version="1", seed=3)
    from_dicts = ReferenceProfile.from_rows(rows, model="asr", model_version="1", seed=3)
    assert from_frame == from_dicts


def test_sampling_is_seeded_per_column_and_missing_values_are_counted_apart() -> None:
    values = [1.0, None, float("nan"), float("inf"), *np.arange(10_000.0)]
    first = NumericReference.from_values(values, sample_size=100, seed=1)
    again = NumericReference.from_values(values, sample_size=100, seed=1)
    other = NumericReference.from_values(values, sample_size=100, seed=2)
    assert first == again and first != other
    assert first.missing == 3 and first.count == 10_001
    rows = [{"a": float(i), "b": float(i)} for i in range(1_000)]
    profile = ReferenceProfile.from_rows(rows, model="m", model_version="1", sample_size=50)
    # same values, different columns: each column draws its own sample
    assert not np.array_equal(profile.numeric["a"].sample, profile.numeric["b"].sample)


def test_a_mixed_column_is_categorical_and_an_empty_one_is_left_out() -> None:
    rows = [{"code": 42, "device": "ios", "empty": None}, {"code": "x1", "device": "web"}]
    profile = ReferenceProfile.from_rows(rows, model="m", model_version="1")
    assert sorted(profile.categorical) == ["code", "device"]
    assert profile.categorical["code"].categories == ("42", "x1", OTHER)
    assert "empty" not in profile.signals
    with pytest.raises(ReferenceProfileError, match="at least one non-null feature"):
        ReferenceProfile.from_rows([{"empty": None}], model="m", model_version="1")


def test_ignoring_a_column_that_does_not_exist_names_the_columns() -> None:
    with pytest.raises(ReferenceProfileError, match=r"not found: \['id'\].*\['x'\]"):
        ReferenceProfile.from_rows([{"x": 1.0}], model="m", model_version="1", ignore=["id"])


def test_json_round_trip_is_exact_stable_and_small() -> None:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({f"feature_{i}": rng.normal(i, i + 1, 50_000) for i in range(20)})
    profile = ReferenceProfile.from_rows(frame, model="asr", model_version="2")
    text = json.dumps(profile.to_dict())
    again = ReferenceProfile.from_dict(json.loads(text))
    assert again == profile
    assert json.dumps(again.to_dict()) == text
    # 20 features x 5 000 values: measured 285 kB
    assert len(text.encode()) < 400_000


def test_a_reference_of_another_format_is_refused_with_what_to_do() -> None:
    state = ReferenceProfile.from_rows([{"x": 1.0}], model="m", model_version="1").to_dict()
    state["format"] = 99
    with pytest.raises(ReferenceProfileError, match="rebuild the reference"):
        ReferenceProfile.from_dict(state)


float32_values = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(st.lists(float32_values, min_size=1, max_size=300))
@settings(max_examples=50, deadline=None)
def test_sample_packing_is_exact_for_any_float32_values(values: list[float]) -> None:
    sample = np.sort(np.asarray(values, dtype=np.float64))
    unpacked = _decode_sorted(_encode_sorted(sample))
    assert np.array_equal(unpacked, sample)
    assert np.array_equal(np.signbit(unpacked), np.signbit(sample))


def test_files_in_csv_and_json_lines_give_the_same_profile(tmp_path: Path) -> None:
    frame = _training_frame(rows=300)
    frame.to_csv(tmp_path / "reference.csv", index=False)
    frame.to_json(tmp_path / "reference.jsonl", orient="records", lines=True)
    from_csv = ReferenceProfile.from_file(
        tmp_path / "reference.csv", model="asr", model_version="1", ignore=["request_id"]
    )
    from_jsonl = ReferenceProfile.from_file(
        tmp_path / "reference.jsonl", model="asr", model_version="1", ignore=["request_id"]
    )
    assert from_csv.source == "explicit"
    assert from_csv.signals == sorted(set(frame.columns) - {"request_id"})
    assert from_csv.numeric["duration_s"] == from_jsonl.numeric["duration_s"]
    assert from_csv.categorical == from_jsonl.categorical


def test_parquet_is_read_when_a_reader_is_installed_and_explained_when_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reference.parquet"
    has_reader = any(importlib.util.find_spec(name) for name in ("pyarrow", "fastparquet"))
    if has_reader:
        _training_frame(rows=200).to_parquet(path)
        profile = ReferenceProfile.from_file(path, model="m", model_version="1")
        assert profile.numeric["duration_s"].count == 200
    else:
        path.write_bytes(b"PAR1")
        with pytest.raises(ReferenceFileError, match="Install pyarrow"):
            ReferenceProfile.from_file(path, model="m", model_version="1")


def test_unreadable_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ReferenceFileError, match=r"unknown suffix '\.xlsx'; use one of .*'\.csv'"):
        ReferenceProfile.from_file(tmp_path / "ref.xlsx", model="m", model_version="1")
    with pytest.raises(ReferenceFileError, match="not found"):
        ReferenceProfile.from_file(tmp_path / "absent.csv", model="m", model_version="1")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ReferenceFileError, match="cannot parse"):
        ReferenceProfile.from_file(tmp_path / "bad.jsonl", model="m", model_version="1")


def test_first_n_builder_samples_uniformly_and_freezes_at_n() -> None:
    builder = ReferenceBuilder("asr", "3", first_n=10_000, sample_size=1_000, seed=4)
    accepted = [builder.add({"position": float(i)}) for i in range(12_000)]
    assert accepted.count(True) == 10_000 and builder.frozen and builder.events == 10_000
    sample = builder.profile().numeric["position"].sample
    assert sample.size == 1_000 and sample.max() < 10_000  # nothing after the freeze
    # a uniform draw of 1 000 of 0..9 999: each decile holds 100 +- ~9.5 (sd)
    per_decile = np.bincount((sample // 1_000).astype(int), minlength=10)
    assert per_decile.min() > 60 and per_decile.max() < 140


def test_first_n_builder_keeps_kinds_score_label_and_missing_values() -> None:
    builder = ReferenceBuilder("asr", "3", first_n=4)
    builder.add({"snr_db": 20.0, "device": "ios"}, score=0.9, label="weather")
    builder.add({"snr_db": None, "device": None}, score=0.4, label="music")
    builder.add({"snr_db": "loud", "device": 3}, label="weather")
    builder.add({"snr_db": 18.0, "device": "web"})
    profile = builder.profile()
    assert profile.numeric["snr_db"].sample.tolist() == [18.0, 20.0]
    assert profile.numeric["snr_db"].missing == 2  # null, and a string in a numeric feature
    assert profile.categorical["device"].counts().tolist() == [1, 1, 1, 0]
    assert profile.categorical["device"].missing == 1
    assert profile.numeric[SCORE_SIGNAL].count == 2
    assert profile.categorical[LABEL_SIGNAL].categories == ("weather", "music", OTHER)


def _rows(mean: float, size: int = 600, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{"snr_db": float(value)} for value in rng.normal(mean, 1.0, size)]


def test_book_prefers_explicit_then_training_then_first_n(tmp_path: Path) -> None:
    book = ReferenceBook("asr", first_n=100)
    book.on_promoted("1")
    for row in _rows(10.0, size=99):
        book.observe("1", row)
    assert book.current is None  # first-N not complete yet
    book.observe("1", {"snr_db": 10.0})
    assert book.current is not None and book.current.source == "first_n"
    book.set_from_training("1", _rows(20.0))
    assert book.current.source == "training"
    pd.DataFrame(_rows(30.0)).to_csv(tmp_path / "explicit.csv", index=False)
    book.set_from_file(tmp_path / "explicit.csv")
    assert book.current.source == "explicit" and book.current.model_version == "1"
    assert abs(float(np.median(book.current.numeric["snr_db"].sample)) - 30.0) < 0.2


def test_book_re_anchors_on_the_promoted_version() -> None:
    book = ReferenceBook("asr", first_n=50)
    book.on_promoted("1")
    book.set_from_training("1", _rows(10.0))
    for row in _rows(15.0, size=80, seed=1):  # version 2 served in shadow
        book.observe("2", row)
    assert book.current.model_version == "1"
    book.on_promoted("2")
    assert book.current.model_version == "2" and book.current.source == "first_n"
    assert book.current.rows == 50
    book.on_promoted("3")  # nothing known about 3 yet
    assert book.current is None
    assert book.profile_for("1") is not None


def test_book_does_not_build_first_n_for_a_version_with_a_better_reference() -> None:
    book = ReferenceBook("asr", first_n=10)
    book.set_from_training("1", _rows(10.0))
    for row in _rows(99.0, size=20):
        book.observe("1", row)
    book.on_promoted("1")
    assert book.current.source == "training"
    book.forget("1")
    assert book.current is None


def test_book_errors_say_what_to_do(tmp_path: Path) -> None:
    book = ReferenceBook("asr")
    with pytest.raises(ReferenceProfileError, match="pass the model_version"):
        book.set_from_file(tmp_path / "reference.csv")
    other = ReferenceProfile.from_rows(_rows(1.0), model="other", model_version="1")
    with pytest.raises(ReferenceProfileError, match="'other' given to the book of 'asr'"):
        book.set(other)


def test_categorical_window_counts_put_unnamed_categories_in_other() -> None:
    reference = CategoricalReference.from_values(["en"] * 5 + ["fr"] * 3 + ["de"], top_k=2)
    counts = reference.count_window(["en", "fr", "de", "zz", None, float("nan"), "en"])
    assert reference.categories == ("en", "fr", OTHER)
    assert counts.tolist() == [2, 1, 2]
