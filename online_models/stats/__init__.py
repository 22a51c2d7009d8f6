"""Mergeable, serialisable summaries of streams: the building blocks of window metrics.

Each summary counts values one at a time (``add``) or a batch at a time
(``add_many``), combines with the summary of a disjoint stream (``merge``), and
turns into a plain JSON-able dict and back exactly (``to_state`` /
``from_state``), so per-partition partials can live in changelog-backed tables
and be merged later.
"""

from online_models.stats.frequencies import OTHER, Frequencies
from online_models.stats.moments import Moments
from online_models.stats.quantile_sketch import QuantileSketch

__all__ = ["OTHER", "Frequencies", "Moments", "QuantileSketch"]
