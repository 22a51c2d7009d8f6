"""Simulated voice-search users: what they do after the answer, and when.

A user who gets the right answer usually clicks a result; one who gets a
wrong answer (or none: a null return) usually says the query again or gives up
on voice and types it. :class:`SimulatedUsers` draws one of those actions for
each answer, from the probabilities of a :class:`Choices` for right and one for
wrong answers, with a delay, and :meth:`Reaction.feedback` turns it into the
``data`` of a ``driftloop.feedback.v1`` event. The true intent travels as the
feedback's ``label`` (for a share ``label_share`` of the requests), which is
what the system joins back to the prediction as ground truth.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Choices", "Reaction", "SimulatedUsers"]


@dataclass(frozen=True)
class Choices:
    """Probabilities of what a user does after one kind of answer; they act at most once.

    The rest, ``1 - click - redo - switch``, is doing nothing at all.

    Parameters
    ----------
    click
        Clicks a result (the answer was useful).
    redo
        Says the query again (``redo_search``).
    switch
        Gives up on voice and types the query (``switched_to_typing``).

    Examples
    --------
    >>> Choices(click=0.8, redo=0.1, switch=0.05).nothing
    0.05
    >>> Choices(click=0.8, redo=0.3, switch=0.0)
    Traceback (most recent call last):
    ...
    ValueError: click + redo + switch must be at most 1, got 1.1
    """

    click: float
    redo: float
    switch: float

    def __post_init__(self) -> None:
        for name in ("click", "redo", "switch"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        total = self.click + self.redo + self.switch
        if total > 1.0 + 1e-9:
            raise ValueError(f"click + redo + switch must be at most 1, got {round(total, 6)}")

    @property
    def nothing(self) -> float:
        """The probability that the user does none of the three."""
        return round(max(0.0, 1.0 - self.click - self.redo - self.switch), 12)


class Reaction(NamedTuple):
    """What one user did after one answer, and how many seconds later."""

    clicked: bool
    redo_search: bool
    switched_to_typing: bool
    label: str | None
    delay_s: float

    def feedback(self, request_id: str, model: str) -> dict[str, Any]:
        """The ``data`` of the ``driftloop.feedback.v1`` event that reports this reaction.

        ``label`` is present only when the user's true intent is known.
        """
        data: dict[str, Any] = {
            "request_id": request_id,
            "model": model,
            "redo_search": self.redo_search,
            "switched_to_typing": self.switched_to_typing,
            "clicked": self.clicked,
        }
        if self.label is not None:
            data["label"] = self.label
        return data


@dataclass(frozen=True)
class SimulatedUsers:
    """Users who confirm right answers and redo or type after wrong ones.

    Parameters
    ----------
    when_right
        What users do after the right intent.
    when_wrong
        What users do after a wrong intent or a null return.
    label_share
        Share of requests whose true intent comes back as the feedback's
        ``label`` (0–1); the others carry only the behavioural signals.
    delay_s
        The reaction comes uniformly between these many seconds after the answer.

    Examples
    --------
    >>> import random
    >>> users = SimulatedUsers()
    >>> rng = random.Random(7)
    >>> wrong = [users.react("weather", "music", rng) for _ in range(2_000)]
    >>> right = [users.react("weather", "weather", rng) for _ in range(2_000)]
    >>> def redo_rate(reactions):
    ...     return sum(r.redo_search for r in reactions) / len(reactions)
    >>> round(redo_rate(right), 2), round(redo_rate(wrong), 2)
    (0.03, 0.61)
    >>> wrong[0].feedback("r-1", "voice_intent")["label"]
    'weather'
    """

    when_right: Choices = field(default_factory=lambda: Choices(click=0.85, redo=0.03, switch=0.01))
    when_wrong: Choices = field(default_factory=lambda: Choices(click=0.05, redo=0.60, switch=0.25))
    label_share: float = 1.0
    delay_s: tuple[float, float] = (1.0, 8.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_share <= 1.0:
            raise ValueError(f"label_share must be in [0, 1], got {self.label_share}")
        low, high = self.delay_s
        if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high):
            raise ValueError(
                f"delay_s must be (low, high) seconds with 0 <= low <= high, got {self.delay_s}"
            )

    def react(self, truth: str, answer: str | None, rng: random.Random) -> Reaction:
        """What a user who meant ``truth`` does after the answer ``answer`` (``None``: no answer).

        Exactly three draws from ``rng`` per call, so a seeded generator gives
        the same reactions to the same answers.
        """
        choices = self.when_right if answer is not None and answer == truth else self.when_wrong
        draw = rng.random()
        clicked = draw < choices.click
        redo = not clicked and draw < choices.click + choices.redo
        switched = not (clicked or redo) and draw < choices.click + choices.redo + choices.switch
        labelled = rng.random() < self.label_share
        delay = rng.uniform(*self.delay_s)
        return Reaction(clicked, redo, switched, truth if labelled else None, delay)
