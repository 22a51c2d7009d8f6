"""What "normal" looks like for one model version: the reference a window is compared with.

A :class:`ReferenceProfile` summarises, for one ``(model, model_version)``,
every signal a window of traffic is compared against:

- each **numeric** feature and the model score (:data:`SCORE_SIGNAL`) as a
  :class:`NumericReference`: a seeded uniform sample of bounded size (default
  5 000 values, sorted) and the inner edges of bins cut at its quantiles
  (default deciles), enough for a two-sample KS test and a population stability
  index;
- each **categorical** feature and the predicted label (:data:`LABEL_SIGNAL`)
  as a :class:`CategoricalReference`: the counts of the ``top_k`` most frequent
  categories and of the rest (``"__other__"``), enough for a chi-square test
  and a Jensen–Shannon distance.

A profile is built from a batch of rows (a model's training data,
:meth:`ReferenceProfile.from_rows`), from a user's file (CSV, Parquet, JSON
Lines, :meth:`ReferenceProfile.from_file`), or from the first ``N`` events a
version served (:class:`ReferenceBuilder`). It turns into a small, stable,
JSON-able dict and back exactly (:meth:`ReferenceProfile.to_dict`,
:meth:`ReferenceProfile.from_dict`): samples are stored as float32, delta-coded
and compressed, about 14 kB of JSON per 5 000-value feature (280 kB for 20).

Which profile applies to a model is decided by :class:`ReferenceBook`: the
champion version's explicit reference, else its training data, else its first
``N`` events; promoting a new version re-anchors on that version.

A column's kind is decided once per column: a column whose non-null values are
all numbers (booleans count as 0/1) is numeric, any other column is
categorical and its values are compared as strings. Nulls, NaN and infinities
are missing and counted apart (``missing``), never compared.
"""

from __future__ import annotations

import base64
import math
import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from online_models.drift.base import DriftError
from online_models.stats import OTHER, Frequencies

__all__ = [
    "LABEL_SIGNAL",
    "SCORE_SIGNAL",
    "CategoricalReference",
    "NumericReference",
    "ReferenceBook",
    "ReferenceBuilder",
    "ReferenceFileError",
    "ReferenceProfile",
    "ReferenceProfileError",
    "ReferenceSource",
]

FORMAT_VERSION = 1
SCORE_SIGNAL = "prediction.score"
"""Signal name of the model score in a profile (apart from feature names)."""
LABEL_SIGNAL = "prediction.label"
"""Signal name of the predicted label in a profile (apart from feature names)."""

ReferenceSource = Literal["explicit", "training", "first_n"]
SOURCE_PRIORITY: tuple[ReferenceSource, ...] = ("explicit", "training", "first_n")
"""Which reference of a version applies when it has several, first wins."""

DEFAULT_SAMPLE_SIZE = 5_000
DEFAULT_BINS = 10
DEFAULT_TOP_K = 20
DEFAULT_FIRST_N = 5_000

_FILE_READERS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


class ReferenceProfileError(DriftError, ValueError):
    """Any error about reference profiles and comparisons with them (a :class:`DriftError`)."""


class ReferenceFileError(ReferenceProfileError):
    """A reference file that cannot be read (unknown format, missing reader, bad columns)."""


# --------------------------------------------------------------------------- numeric


@dataclass(frozen=True, eq=False)
class NumericReference:
    """A bounded, seeded sample of a numeric signal and its quantile bin edges.

    Parameters
    ----------
    sample
        Sorted reference values (float64 holding float32-exact values, so a
        JSON round trip is exact).
    bin_edges
        Inner edges of the population-stability bins, increasing; a value ``x``
        falls in bin ``searchsorted(bin_edges, x, side="right")``, so there are
        ``len(bin_edges) + 1`` bins, the outer ones open-ended.
    count
        Non-missing values the sample was drawn from.
    missing
        Missing values seen (null, NaN, infinite).

    Examples
    --------
    >>> import numpy as np
    >>> values = np.random.default_rng(5).normal(10.0, 2.0, size=20_000)
    >>> reference = NumericReference.from_values(values, sample_size=1_000, seed=5)
    >>> reference.count, reference.sample.size, reference.bin_edges.size
    (20000, 1000, 9)
    >>> [round(float(share), 2) for share in reference.bin_shares()][:3]
    [0.1, 0.1, 0.1]
    """

    sample: np.ndarray
    bin_edges: np.ndarray
    count: int
    missing: int = 0

    @classmethod
    def from_values(
        cls,
        values: Iterable[float | None] | np.ndarray,
        *,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        bins: int = DEFAULT_BINS,
        seed: int = 0,
        missing: int = 0,
    ) -> NumericReference:
        """Sample ``sample_size`` of the finite ``values`` uniformly without replacement."""
        array = _as_float_array(values)
        finite = array[np.isfinite(array)]
        count = int(finite.size)
        missing += int(array.size) - count
        if count > sample_size:
            rng = np.random.default_rng(seed)
            finite = finite[rng.choice(count, size=sample_size, replace=False)]
        return cls.from_sample(finite, count=count, missing=missing, bins=bins)

    @classmethod
    def from_sample(
        cls, sample: np.ndarray, *, count: int, missing: int = 0, bins: int = DEFAULT_BINS
    ) -> NumericReference:
        """A reference from an already drawn sample: sorts it and cuts the bins."""
        if sample.size == 0:
            raise ReferenceProfileError(
                "a numeric reference needs at least one finite value; "
                "drop the column or pass data where it is present"
            )
        sorted_sample = np.sort(_float32_exact(sample))
        return cls(sorted_sample, _quantile_edges(sorted_sample, bins), int(count), int(missing))

    @cached_property
    def bin_counts(self) -> np.ndarray:
        """How many sample values fall in each bin."""
        return np.bincount(self.bin_of(self.sample), minlength=self.bin_edges.size + 1)

    @cached_property
    def distinct(self) -> np.ndarray:
        """The sample's distinct values, increasing."""
        return self._ranks[0]

    @cached_property
    def _ranks(self) -> tuple[np.ndarray, np.ndarray]:
        # the distinct values, and how many sample values lie below each (then the size)
        distinct, first = np.unique(self.sample, return_index=True)
        return distinct, np.append(first, self.sample.size)

    def ranks(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How many sample values are ``<=`` and ``<`` each of ``values`` (one search).

        Examples
        --------
        >>> reference = NumericReference.from_sample(np.array([1.0, 2.0, 2.0, 3.0]), count=4)
        >>> [r.tolist() for r in reference.ranks(np.array([0.5, 2.0, 2.5, 3.0]))]
        [[0, 3, 3, 4], [0, 1, 3, 3]]
        """
        distinct, below = self._ranks
        at = np.searchsorted(distinct, values, side="left")
        left = below[at]
        equal = distinct[np.minimum(at, distinct.size - 1)] == values
        return np.where(equal, below[np.minimum(at + 1, distinct.size)], left), left

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """Bin index of each value (``0 .. len(bin_edges)``)."""
        return np.searchsorted(self.bin_edges, values, side="right")

    def bin_shares(self) -> np.ndarray:
        """Share of the sample in each bin (sums to 1)."""
        return self.bin_counts / self.sample.size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; the sample is packed by :func:`_encode_sorted` (~14 kB per 5 000)."""
        return {
            "count": self.count,
            "missing": self.missing,
            "size": int(self.sample.size),
            "sample": _encode_sorted(self.sample),
            "bin_edges": [float(edge) for edge in self.bin_edges],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> NumericReference:
        """Rebuild a reference from :meth:`to_dict` output (after JSON too)."""
        sample = _decode_sorted(state["sample"])
        if sample.size != int(state["size"]):
            raise ReferenceProfileError(
                f"stored sample has {sample.size} values, expected {state['size']}: "
                "the stored reference is corrupt, set it again"
            )
        return cls(
            sample,
            np.asarray(state["bin_edges"], dtype=np.float64),
            int(state["count"]),
            int(state["missing"]),
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, NumericReference)
            and np.array_equal(self.sample, other.sample)
            and np.array_equal(self.bin_edges, other.bin_edges)
            and (self.count, self.missing) == (other.count, other.missing)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"NumericReference(count={self.count}, sample={self.sample.size}, "
            f"bins={self.bin_edges.size + 1}, missing={self.missing})"
        )


# --------------------------------------------------------------------------- categorical


@dataclass(frozen=True)
class CategoricalReference:
    """Category counts of a categorical signal: the ``top_k`` named, the rest in ``__other__``.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> locales = rng.choices(["en", "fr", "de", "es"], weights=[6, 2, 1, 1], k=5_000)
    >>> reference = CategoricalReference.from_values(locales, top_k=2)
    >>> reference.categories, [round(share, 2) for share in reference.shares()]
    (('en', 'fr', '__other__'), [0.6, 0.2, 0.2])
    """

    frequencies: Frequencies
    missing: int = 0

    @classmethod
    def from_values(
        cls, values: Iterable[object], *, top_k: int = DEFAULT_TOP_K
    ) -> CategoricalReference:
        """Count the non-missing ``values`` as strings."""
        frequencies, missing = Frequencies(max_categories=top_k), 0
        present = []
        for value in values:
            if _is_missing(value):
                missing += 1
            else:
                present.append(str(value))
        frequencies.add_many(present)
        if frequencies.count == 0:
            raise ReferenceProfileError(
                "a categorical reference needs at least one non-null value; "
                "drop the column or pass data where it is present"
            )
        return cls(frequencies, missing)

    @property
    def categories(self) -> tuple[str, ...]:
        """Named categories, most frequent first, then ``"__other__"``."""
        return (*(name for name, _ in self.frequencies.top()), OTHER)

    @property
    def count(self) -> int:
        """Non-missing values counted."""
        return self.frequencies.count

    def counts(self) -> np.ndarray:
        """Counts aligned with :attr:`categories` (``__other__`` last, maybe 0)."""
        named = [count for _, count in self.frequencies.top()]
        return np.asarray([*named, self.frequencies.other_count], dtype=np.int64)

    def shares(self) -> list[float]:
        """Shares aligned with :attr:`categories` (sum to 1)."""
        return [float(share) for share in self.counts() / self.count]

    def count_window(self, values: Iterable[object]) -> np.ndarray:
        """Counts of a window's non-missing values over :attr:`categories`.

        A category the reference did not name (unseen, or beyond its top-k)
        counts as ``__other__``.
        """
        index = {name: position for position, (name, _) in enumerate(self.frequencies.top())}
        other = len(index)
        positions = [index.get(str(value), other) for value in values if not _is_missing(value)]
        return np.bincount(np.asarray(positions, dtype=np.int64), minlength=other + 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the :class:`~online_models.stats.Frequencies` state)."""
        return {"missing": self.missing, "frequencies": self.frequencies.to_state()}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> CategoricalReference:
        """Rebuild a reference from :meth:`to_dict` output."""
        return cls(Frequencies.from_state(state["frequencies"]), int(state["missing"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalReference) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- profile


@dataclass
class ReferenceProfile:
    """The reference of every signal of one ``(model, model_version)``.

    Parameters
    ----------
    model, model_version
        Which model version this is the reference of.
    source
        ``"explicit"`` (a user's file), ``"training"`` (the version's training
        data) or ``"first_n"`` (its first events in production).
    rows
        Rows (events) the profile was built from.
    numeric, categorical
        Signal name to its reference; the score is :data:`SCORE_SIGNAL`, the
        predicted label :data:`LABEL_SIGNAL`.

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> rows = [{"duration_s": float(rng.gamma(4.0, 0.8)), "locale": str(rng.choice(["en", "fr"]))}
    ...         for _ in range(2_000)]
    >>> profile = ReferenceProfile.from_rows(rows, model="asr", model_version="3")
    >>> sorted(profile.numeric), sorted(profile.categorical), profile.rows
    (['duration_s'], ['locale'], 2000)
    >>> text = json.dumps(profile.to_dict())
    >>> ReferenceProfile.from_dict(json.loads(text)) == profile, len(text) < 12_000
    (True, True)
    """

    model: str
    model_version: str
    source: ReferenceSource
    rows: int
    numeric: dict[str, NumericReference] = field(default_factory=dict)
    categorical: dict[str, CategoricalReference] = field(default_factory=dict)

    @property
    def signals(self) -> list[str]:
        """Every signal with a reference, sorted."""
        return sorted([*self.numeric, *self.categorical])

    # ------------------------------------------------------------ builders

    @classmethod
    def from_rows(
        cls,
        rows: pd.DataFrame | Sequence[Mapping[str, object]],
        *,
        model: str,
        model_version: str,
        source: ReferenceSource = "training",
        ignore: Iterable[str] = (),
        score_column: str | None = None,
        label_column: str | None = None,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        bins: int = DEFAULT_BINS,
        top_k: int = DEFAULT_TOP_K,
        seed: int = 0,
    ) -> ReferenceProfile:
        """A profile of a batch of rows: a DataFrame, or feature dicts (one per row).

        Every column is a feature except those in ``ignore``; ``score_column``
        and ``label_column`` (if given) become :data:`SCORE_SIGNAL` and
        :data:`LABEL_SIGNAL`. Columns that are entirely missing are left out.
        """
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        ignored = set(ignore)
        unknown = ignored - set(frame.columns)
        if unknown:
            raise ReferenceProfileError(
                f"columns to ignore not found: {sorted(unknown)}; "
                f"the columns are {sorted(map(str, frame.columns))}"
            )
        renames = {score_column: SCORE_SIGNAL, label_column: LABEL_SIGNAL}
        profile = cls(model, str(model_version), source, len(frame))
        for column in frame.columns:
            if column in ignored:
                continue
            name = renames.get(str(column), str(column))
            values = frame[column]
            # one seed per column, stable whatever the column order
            column_seed = seed + zlib.crc32(name.encode())
            if name == LABEL_SIGNAL or not _is_numeric_column(values):
                if values.notna().any():
                    profile.categorical[name] = CategoricalReference.from_values(
                        values.tolist(), top_k=top_k
                    )
            else:
                array = _as_float_array(values)
                if np.isfinite(array).any():
                    profile.numeric[name] = NumericReference.from_values(
                        array, sample_size=sample_size, bins=bins, seed=column_seed
                    )
        if not profile.signals:
            raise ReferenceProfileError(
                "no column holds usable values: pass rows with at least one non-null feature"
            )
        return profile

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        model: str,
        model_version: str,
        source: ReferenceSource = "explicit",
        ignore: Iterable[str] = (),
        **options: Any,
    ) -> ReferenceProfile:
        """A profile of a CSV, Parquet or JSON Lines file (columns = feature names).

        The format follows the suffix: ``.csv``; ``.parquet``/``.pq`` (needs
        ``pyarrow`` or ``fastparquet``); ``.jsonl``/``.ndjson``/``.json`` (one
        JSON object per line). ``options`` go to :meth:`from_rows`.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> text = "id,loudness_db,device\\n1,-20.5,ios\\n2,-18.0,android\\n"
        >>> _ = (folder / "ref.csv").write_text(text)
        >>> profile = ReferenceProfile.from_file(folder / "ref.csv", model="asr", model_version="1",
        ...                                      ignore=["id"])
        >>> profile.signals, profile.source
        (['device', 'loudness_db'], 'explicit')
        """
        path = Path(path)
        kind = _FILE_READERS.get(path.suffix.lower())
        if kind is None:
            raise ReferenceFileError(
                f"cannot read {path.name!r}: unknown suffix {path.suffix!r}; "
                f"use one of {sorted(_FILE_READERS)}"
            )
        if not path.is_file():
            raise ReferenceFileError(f"reference file not found: {path}")
        try:
            if kind == "csv":
                frame = pd.read_csv(path)
            elif kind == "jsonl":
                frame = pd.read_json(path, lines=True)
            else:
                frame = pd.read_parquet(path)
        except ImportError as error:
            raise ReferenceFileError(
                f"cannot read Parquet file {path.name!r}: {error}. "
                "Install pyarrow (pip install pyarrow) or convert the file to CSV or JSON Lines"
            ) from error
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise ReferenceFileError(f"cannot parse {path} as {kind}: {error}") from error
        if frame.empty:
            raise ReferenceFileError(f"{path} holds no rows; pass a file with reference data")
        return cls.from_rows(
            frame, model=model, model_version=model_version, source=source, ignore=ignore, **options
        )

    # ------------------------------------------------------------ state

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, stable (signals sorted) and small; :meth:`from_dict` reverses it."""
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "source": self.source,
            "rows": self.rows,
            "numeric": {name: self.numeric[name].to_dict() for name in sorted(self.numeric)},
            "categorical": {
                name: self.categorical[name].to_dict() for name in sorted(self.categorical)
            },
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output."""
        if state.get("format") != FORMAT_VERSION:
            raise ReferenceProfileError(
                f"reference format {state.get('format')!r} is not supported "
                f"(this version reads {FORMAT_VERSION}); rebuild the reference"
            )
        return cls(
            model=str(state["model"]),
            model_version=str(state["model_version"]),
            source=state["source"],
            rows=int(state["rows"]),
            numeric={k: NumericReference.from_dict(v) for k, v in state["numeric"].items()},
            categorical={
                k: CategoricalReference.from_dict(v) for k, v in state["categorical"].items()
            },
        )


# --------------------------------------------------------------------------- first N events


class ReferenceBuilder:
    """The reference of a version from its first ``first_n`` events, then frozen.

    Numeric values are kept by reservoir sampling (Algorithm R, seeded), so the
    sample is uniform over the first ``first_n`` events whatever
    ``sample_size``; categories are counted. A signal's kind is decided by its
    first non-null value (a string makes it categorical). Once ``first_n``
    events were added, :meth:`add` refuses more and :attr:`frozen` is true.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> builder = ReferenceBuilder("asr", "4", first_n=1_000, sample_size=200, seed=1)
    >>> for _ in range(1_500):
    ...     _ = builder.add({"snr_db": rng.gauss(20, 4), "device": rng.choice(["ios", "web"])},
    ...                     score=rng.random(), label=rng.choice(["weather", "music"]))
    >>> builder.frozen, builder.events
    (True, 1000)
    >>> profile = builder.profile()
    >>> sorted(profile.numeric), profile.numeric["snr_db"].sample.size, profile.source
    (['prediction.score', 'snr_db'], 200, 'first_n')
    """

    def __init__(
        self,
        model: str,
        model_version: str,
        *,
        first_n: int = DEFAULT_FIRST_N,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        bins: int = DEFAULT_BINS,
        top_k: int = DEFAULT_TOP_K,
        seed: int = 0,
    ) -> None:
        if first_n < 1 or sample_size < 1:
            raise ReferenceProfileError(
                f"first_n and sample_size must be at least 1, got {first_n} and {sample_size}"
            )
        self.model, self.model_version = model, str(model_version)
        self._first_n, self._sample_size, self._bins = first_n, sample_size, bins
        self._top_k = top_k
        self._rng = random.Random(seed)
        self._events = 0
        self._reservoirs: dict[str, list[float]] = {}
        self._seen: dict[str, int] = {}
        self._missing: dict[str, int] = {}
        self._categories: dict[str, list[str]] = {}

    @property
    def events(self) -> int:
        """Events added so far (at most ``first_n``)."""
        return self._events

    @property
    def frozen(self) -> bool:
        """Whether ``first_n`` events were added."""
        return self._events >= self._first_n

    def add(
        self,
        features: Mapping[str, object],
        *,
        score: float | None = None,
        label: str | None = None,
    ) -> bool:
        """Add one event's features (and score, label); ``False`` once frozen."""
        if self.frozen:
            return False
        self._events += 1
        for name, value in features.items():
            self._add_value(name, value)
        if score is not None:
            self._add_value(SCORE_SIGNAL, score)
        if label is not None:
            self._add_value(LABEL_SIGNAL, str(label))
        return True

    def _add_value(self, name: str, value: object) -> None:
        if name in self._categories or (isinstance(value, str) and name not in self._reservoirs):
            if _is_missing(value):
                self._missing[name] = self._missing.get(name, 0) + 1
            else:
                self._categories.setdefault(name, []).append(str(value))
            return
        if _is_missing(value) or isinstance(value, str):
            # a string in a numeric signal is not a number: count it as missing
            self._missing[name] = self._missing.get(name, 0) + 1
            return
        reservoir = self._reservoirs.setdefault(name, [])
        seen = self._seen.get(name, 0)
        if seen < self._sample_size:
            reservoir.append(float(value))  # type: ignore[arg-type]
        else:
            slot = self._rng.randrange(seen + 1)
            if slot < self._sample_size:
                reservoir[slot] = float(value)  # type: ignore[arg-type]
        self._seen[name] = seen + 1

    def profile(self) -> ReferenceProfile:
        """The profile of the events added so far (source ``"first_n"``)."""
        if self._events == 0:
            raise ReferenceProfileError("no events were added: add events before building")
        profile = ReferenceProfile(self.model, self.model_version, "first_n", self._events)
        for name, reservoir in self._reservoirs.items():
            profile.numeric[name] = NumericReference.from_sample(
                np.asarray(reservoir),
                count=self._seen[name],
                missing=self._missing.get(name, 0),
                bins=self._bins,
            )
        for name, values in self._categories.items():
            reference = CategoricalReference.from_values(values, top_k=self._top_k)
            profile.categorical[name] = CategoricalReference(
                reference.frequencies, self._missing.get(name, 0)
            )
        return profile


# --------------------------------------------------------------------------- selection


class ReferenceBook:
    """Which reference applies to one model, by the rules explicit > training > first-N.

    Each version can have three references: an explicit one (a user's file),
    its training data, and its first ``first_n`` events in production (built
    by :meth:`observe` while the version has neither of the others). The
    reference that applies, :attr:`current`, is the best one of the
    **champion** version, the one named by the last :meth:`on_promoted`;
    promoting a version re-anchors on it. Until the first-N reference of a
    version is complete it does not apply, and :attr:`current` may be ``None``.

    Parameters
    ----------
    model
        Model name.
    first_n, sample_size, bins, top_k, seed
        How first-N and built references are made (see :class:`ReferenceBuilder`).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> book = ReferenceBook("asr", first_n=500, seed=0)
    >>> book.on_promoted("1")
    >>> for _ in range(600):
    ...     book.observe("1", {"snr_db": rng.gauss(20, 4)})
    >>> book.current.source, book.current.rows
    ('first_n', 500)
    >>> _ = book.set_from_training("2", [{"snr_db": rng.gauss(18, 4)} for _ in range(800)])
    >>> book.current.model_version
    '1'
    >>> book.on_promoted("2")
    >>> book.current.model_version, book.current.source
    ('2', 'training')
    """

    def __init__(
        self,
        model: str,
        *,
        first_n: int = DEFAULT_FIRST_N,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        bins: int = DEFAULT_BINS,
        top_k: int = DEFAULT_TOP_K,
        seed: int = 0,
    ) -> None:
        self.model = model
        self._first_n, self._sample_size, self._bins = first_n, sample_size, bins
        self._top_k, self._seed = top_k, seed
        self._champion: str | None = None
        self._profiles: dict[str, dict[ReferenceSource, ReferenceProfile]] = {}
        self._builders: dict[str, ReferenceBuilder] = {}

    @property
    def champion(self) -> str | None:
        """The version last promoted (``None`` before any promotion)."""
        return self._champion

    @property
    def current(self) -> ReferenceProfile | None:
        """The reference that applies now: the champion's best one, or ``None``."""
        return None if self._champion is None else self.profile_for(self._champion)

    def profile_for(self, model_version: str) -> ReferenceProfile | None:
        """The best reference of ``model_version`` (explicit > training > first-N)."""
        held = self._profiles.get(str(model_version), {})
        return next((held[source] for source in SOURCE_PRIORITY if source in held), None)

    def on_promoted(self, model_version: str) -> None:
        """Re-anchor on a newly promoted version."""
        self._champion = str(model_version)

    def set(self, profile: ReferenceProfile) -> ReferenceProfile:
        """Hold ``profile`` as its version's reference of its source (replacing any)."""
        if profile.model != self.model:
            raise ReferenceProfileError(
                f"profile of model {profile.model!r} given to the book of {self.model!r}"
            )
        self._profiles.setdefault(profile.model_version, {})[profile.source] = profile
        if profile.source != "first_n":
            self._builders.pop(profile.model_version, None)
        return profile

    def set_from_file(
        self, path: str | Path, model_version: str | None = None, *, ignore: Iterable[str] = ()
    ) -> ReferenceProfile:
        """Make a user's file the explicit reference of ``model_version`` (default: champion)."""
        version = self._version_or_champion(model_version)
        return self.set(
            ReferenceProfile.from_file(
                path, model=self.model, model_version=version, ignore=ignore, **self._options()
            )
        )

    def set_from_training(
        self,
        model_version: str,
        rows: pd.DataFrame | Sequence[Mapping[str, object]],
        **options: Any,
    ) -> ReferenceProfile:
        """Make a version's training rows its training reference."""
        return self.set(
            ReferenceProfile.from_rows(
                rows,
                model=self.model,
                model_version=str(model_version),
                source="training",
                **{**self._options(), **options},
            )
        )

    def observe(
        self,
        model_version: str,
        features: Mapping[str, object],
        *,
        score: float | None = None,
        label: str | None = None,
    ) -> None:
        """Feed one served event to the first-N reference of its version.

        Does nothing for a version that already has an explicit or training
        reference, or whose first-N reference is complete.
        """
        version = str(model_version)
        held = self._profiles.get(version, {})
        if held:
            return
        builder = self._builders.get(version)
        if builder is None:
            builder = self._builders[version] = ReferenceBuilder(
                self.model, version, first_n=self._first_n, **self._options()
            )
        builder.add(features, score=score, label=label)
        if builder.frozen:
            self.set(builder.profile())
            del self._builders[version]

    def forget(self, model_version: str) -> None:
        """Drop every reference and partial first-N reference of a retired version."""
        self._profiles.pop(str(model_version), None)
        self._builders.pop(str(model_version), None)

    def _options(self) -> dict[str, Any]:
        return {
            "sample_size": self._sample_size,
            "bins": self._bins,
            "top_k": self._top_k,
            "seed": self._seed,
        }

    def _version_or_champion(self, model_version: str | None) -> str:
        if model_version is not None:
            return str(model_version)
        if self._champion is None:
            raise ReferenceProfileError(
                f"model {self.model!r} has no promoted version yet: pass the model_version "
                "the reference belongs to"
            )
        return self._champion


# --------------------------------------------------------------------------- helpers


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and not math.isfinite(value)


def _is_numeric_column(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return True
    present = values.dropna()
    return bool(len(present)) and all(
        isinstance(value, bool | int | float | np.number) for value in present
    )


def _as_float_array(values: Iterable[object] | np.ndarray | pd.Series) -> np.ndarray:
    if isinstance(values, pd.Series):
        return values.astype("float64").to_numpy(na_value=np.nan)
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _float32_exact(values: np.ndarray) -> np.ndarray:
    narrowed = np.asarray(values, dtype=np.float64).astype(np.float32)
    if not np.isfinite(narrowed).all():
        raise ReferenceProfileError(
            "a numeric reference value is beyond the float32 range (±3.4e38); "
            "rescale the feature before monitoring it"
        )
    return narrowed.astype(np.float64)


def _quantile_edges(sorted_sample: np.ndarray, bins: int) -> np.ndarray:
    if bins < 2:
        return np.empty(0)
    edges = np.quantile(sorted_sample, np.linspace(0, 1, bins + 1)[1:-1])
    # a value equal to an edge goes right: an edge at the minimum would leave its bin empty
    return np.unique(edges[edges > sorted_sample[0]])


def _encode_sorted(sorted_sample: np.ndarray) -> str:
    """Pack sorted float32-exact values as base64 text, exactly and compactly.

    The float32 bit patterns are mapped to unsigned integers that sort like
    the values (negative: all bits flipped; positive: sign bit set), so a
    sorted sample becomes a non-decreasing integer sequence whose differences
    are small; their bytes are grouped by significance (all low bytes, then
    the next...) so that zlib sees long runs of zeros. About 40 % of the size
    of zlib on the raw float32 bytes.
    """
    bits = sorted_sample.astype("<f4").view("<u4")
    keys = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000)).astype("<u4")
    deltas = np.diff(keys, prepend=np.uint32(0)).astype("<u4")
    shuffled = deltas.view(np.uint8).reshape(-1, 4).T.tobytes()
    return base64.b64encode(zlib.compress(shuffled, 9)).decode("ascii")


def _decode_sorted(text: str) -> np.ndarray:
    """Unpack :func:`_encode_sorted` output into a float64 array."""
    shuffled = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.uint8)
    deltas = shuffled.reshape(4, -1).T.copy().view("<u4").ravel()
    keys = np.cumsum(deltas, dtype=np.uint32)
    bits = np.where(keys >> 31, keys & np.uint32(0x7FFFFFFF), ~keys).astype("<u4")
    return bits.view("<f4").astype(np.float64)
