"""Error analysis of a candidate against the champion, and whether it clears the bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from online_models.models.evaluation import Evaluation, Tally
from online_models.models.exceptions import ComparisonError

__all__ = ["Comparison", "ComparisonBar", "SegmentDelta", "compare"]


@dataclass(frozen=True)
class ComparisonBar:
    """What a candidate must show before it may replace the champion.

    Parameters
    ----------
    min_improvement
        Overall accuracy gain over the champion the candidate needs, in
        accuracy points (0.01 = one percentage point); 0.0 accepts a tie.
    min_examples
        Rows the evaluation needs overall; a segment with fewer rows is
        reported but not judged (too few to tell noise from regression).
    max_segment_regression
        Largest accuracy loss allowed in any judged segment, in accuracy points.
    """

    min_improvement: float = 0.0
    min_examples: int = 200
    max_segment_regression: float = 0.02

    def __post_init__(self) -> None:
        if self.min_examples < 1:
            raise ValueError(f"min_examples must be at least 1, got {self.min_examples}")
        if self.max_segment_regression < 0:
            raise ValueError("max_segment_regression must be >= 0 (a loss it tolerates)")


@dataclass(frozen=True)
class SegmentDelta:
    """Champion and candidate on one slice, and the candidate's gain (negative: a loss)."""

    segment: str
    champion: Tally
    candidate: Tally
    judged: bool

    @property
    def accuracy_delta(self) -> float:
        """Candidate accuracy minus champion accuracy (accuracy points)."""
        return (self.candidate.accuracy or 0.0) - (self.champion.accuracy or 0.0)

    @property
    def null_rate_delta(self) -> float:
        """Candidate null rate minus champion null rate."""
        return (self.candidate.null_rate or 0.0) - (self.champion.null_rate or 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: both tallies, the deltas, and whether the segment was judged."""
        return {
            "segment": self.segment,
            "champion": self.champion.to_dict(),
            "candidate": self.candidate.to_dict(),
            "accuracy_delta": self.accuracy_delta,
            "null_rate_delta": self.null_rate_delta,
            "judged": self.judged,
        }


@dataclass(frozen=True)
class Comparison:
    """The verdict of :func:`compare`: pass or fail, why, and the per-segment deltas."""

    passed: bool
    reasons: tuple[str, ...]
    overall: SegmentDelta
    segments: tuple[SegmentDelta, ...]

    @property
    def better(self) -> list[str]:
        """Judged segments where the candidate is more accurate, best gain first."""
        gains = [d for d in self.segments if d.judged and d.accuracy_delta > 0]
        return [d.segment for d in sorted(gains, key=lambda d: -d.accuracy_delta)]

    @property
    def worse(self) -> list[str]:
        """Judged segments where the candidate is less accurate, worst loss first."""
        losses = [d for d in self.segments if d.judged and d.accuracy_delta < 0]
        return [d.segment for d in sorted(losses, key=lambda d: d.accuracy_delta)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able verdict (for the model version's metadata and the model event)."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "overall": self.overall.to_dict(),
            "segments": [delta.to_dict() for delta in self.segments],
        }


def compare(
    champion: Evaluation | None, candidate: Evaluation, bar: ComparisonBar | None = None
) -> Comparison:
    """Where the candidate is better or worse than the champion, and whether it clears ``bar``.

    Both evaluations must come from the same rows. Without a champion (the
    first version of a model) the candidate is judged on ``min_examples``
    alone.

    Examples
    --------
    >>> from online_models.models.evaluation import Evaluation, Tally
    >>> champion = Evaluation(Tally(1000, 800, 0), {"device=speaker": Tally(300, 210, 0),
    ...                                             "device=ios": Tally(700, 590, 0)})
    >>> candidate = Evaluation(Tally(1000, 850, 0), {"device=speaker": Tally(300, 270, 0),
    ...                                              "device=ios": Tally(700, 580, 0)})
    >>> verdict = compare(champion, candidate, ComparisonBar(min_improvement=0.02))
    >>> verdict.passed, round(verdict.overall.accuracy_delta, 3), verdict.better, verdict.worse
    (True, 0.05, ['device=speaker'], ['device=ios'])
    >>> strict = compare(champion, candidate, ComparisonBar(max_segment_regression=0.01))
    >>> strict.passed, strict.reasons
    (False, ('segment device=ios loses 1.43 accuracy points (at most 1.00 allowed)',))
    """
    bar = bar or ComparisonBar()
    baseline = champion or Evaluation(Tally(candidate.overall.count, 0, 0))
    if baseline.overall.count != candidate.overall.count:
        raise ComparisonError(
            f"the champion was evaluated on {baseline.overall.count} rows and the candidate on "
            f"{candidate.overall.count}; evaluate both on the same rows"
        )
    reasons: list[str] = []
    count = candidate.overall.count
    if count < bar.min_examples:
        reasons.append(f"only {count} evaluation rows (at least {bar.min_examples} needed)")
    overall = SegmentDelta("overall", baseline.overall, candidate.overall, judged=True)
    if champion is not None and overall.accuracy_delta < bar.min_improvement:
        reasons.append(
            f"overall accuracy gain {100 * overall.accuracy_delta:.2f} points is below the "
            f"required {100 * bar.min_improvement:.2f}"
        )
    deltas = []
    for name in sorted(set(baseline.segments) | set(candidate.segments)):
        old, new = baseline.segments.get(name, Tally()), candidate.segments.get(name, Tally())
        judged = champion is not None and min(old.count, new.count) >= bar.min_examples
        delta = SegmentDelta(name, old, new, judged=judged)
        deltas.append(delta)
        if judged and -delta.accuracy_delta > bar.max_segment_regression:
            reasons.append(
                f"segment {name} loses {-100 * delta.accuracy_delta:.2f} accuracy points "
                f"(at most {100 * bar.max_segment_regression:.2f} allowed)"
            )
    return Comparison(not reasons, tuple(reasons), overall, tuple(deltas))
