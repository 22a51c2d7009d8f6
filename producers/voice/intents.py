"""The voice-search intents and the phrases users say for them.

Two vocabularies of the same six intents (the ones
:mod:`producers.simulator` answers with):

``base``
    What the model is trained on: ordinary phrasings, 10–12 per intent.
``new``
    Phrases built around words and names that ``base`` does not contain (new
    slang, new product and place names, new ways of asking). Labelled with the same
    intents, so ground truth exists, but a model trained on ``base`` has not
    heard them: this is the concept drift the demo switches on.

Vocabularies are looked up by name (:func:`get_vocabulary`); an unknown name
raises :class:`UnknownVocabularyError` listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from producers.exceptions import ProducersError

__all__ = [
    "INTENT_NAMES",
    "VOCABULARIES",
    "UnknownVocabularyError",
    "Utterance",
    "Vocabulary",
    "get_vocabulary",
    "register_vocabulary",
]

INTENT_NAMES = ("weather", "music", "news", "navigation", "timer", "shopping")


class UnknownVocabularyError(ProducersError, KeyError):
    """A vocabulary name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown vocabulary"


@dataclass(frozen=True)
class Utterance:
    """One thing a user says, and the intent it means."""

    intent: str
    phrase: str


@dataclass(frozen=True)
class Vocabulary:
    """A named set of phrases per intent.

    Parameters
    ----------
    name
        How configuration refers to it (``"base"``, ``"new"``).
    phrases
        Intent name -> the phrases that mean it.

    Examples
    --------
    >>> base = get_vocabulary("base")
    >>> len(base.utterances()), base.intents == INTENT_NAMES
    (66, True)
    >>> next(iter(base)).intent
    'weather'
    """

    name: str
    phrases: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        for intent, phrases in self.phrases.items():
            if not phrases:
                raise ValueError(f"vocabulary {self.name!r}: intent {intent!r} has no phrases")
            blank = [p for p in phrases if not p.strip()]
            if blank:
                raise ValueError(f"vocabulary {self.name!r}: intent {intent!r} has a blank phrase")

    @property
    def intents(self) -> tuple[str, ...]:
        """The intent names, in catalogue order."""
        return tuple(self.phrases)

    def utterances(self) -> list[Utterance]:
        """Every (intent, phrase) pair, intent by intent in catalogue order."""
        return list(self)

    def __iter__(self) -> Iterator[Utterance]:
        for intent, phrases in self.phrases.items():
            for phrase in phrases:
                yield Utterance(intent, phrase)

    def __len__(self) -> int:
        return sum(len(p) for p in self.phrases.values())


_VOCABULARIES: dict[str, Vocabulary] = {}
VOCABULARIES: Mapping[str, Vocabulary] = MappingProxyType(_VOCABULARIES)


def register_vocabulary(vocabulary: Vocabulary) -> Vocabulary:
    """Make a vocabulary available by its name (replacing one of the same name)."""
    _VOCABULARIES[vocabulary.name] = vocabulary
    return vocabulary


def get_vocabulary(name: str) -> Vocabulary:
    """The vocabulary registered as ``name``.

    Examples
    --------
    >>> get_vocabulary("new").phrases["music"][0]
    'blast the latest hyperpop mixtape'
    >>> get_vocabulary("slang")
    Traceback (most recent call last):
    ...
    producers.voice.intents.UnknownVocabularyError: unknown vocabulary 'slang'; known: base, new
    """
    try:
        return _VOCABULARIES[name]
    except KeyError:
        raise UnknownVocabularyError(
            f"unknown vocabulary {name!r}; known: {', '.join(sorted(_VOCABULARIES))}"
        ) from None


register_vocabulary(
    Vocabulary(
        "base",
        {
            "weather": (
                "what is the weather like today",
                "will it rain tomorrow",
                "how hot is it outside",
                "do I need an umbrella this afternoon",
                "what is the forecast for the weekend",
                "is it going to snow tonight",
                "how windy is it right now",
                "what is the temperature in London",
                "will it be sunny on Saturday",
                "weather forecast for Manchester",
                "how cold will it get tonight",
            ),
            "music": (
                "play some jazz",
                "play my workout playlist",
                "skip this song",
                "turn the music up",
                "play the latest album by Adele",
                "shuffle my favourite songs",
                "pause the music",
                "play relaxing piano music",
                "who sings this song",
                "play the radio",
                "put on some rock music",
            ),
            "news": (
                "what is in the news today",
                "read me the headlines",
                "latest sports news",
                "what happened in the world today",
                "give me the business news",
                "any news about the election",
                "play the morning news briefing",
                "what are the top stories",
                "technology news please",
                "what is the latest on the stock market",
                "read the local news",
            ),
            "navigation": (
                "navigate to the nearest petrol station",
                "how do I get to the airport",
                "directions to the train station",
                "how long will it take to drive home",
                "find a route avoiding motorways",
                "take me to work",
                "where is the nearest hospital",
                "how far is it to Edinburgh",
                "is there traffic on the way to the office",
                "show me walking directions to the park",
                "find parking near the city centre",
            ),
            "timer": (
                "set a timer for ten minutes",
                "start a five minute timer",
                "how much time is left on my timer",
                "cancel the timer",
                "set an alarm for seven in the morning",
                "remind me in twenty minutes",
                "set a timer for the pasta",
                "stop the alarm",
                "wake me up at six thirty",
                "pause my timer",
                "set a countdown for one hour",
            ),
            "shopping": (
                "add milk to my shopping list",
                "order more coffee",
                "what is on my shopping list",
                "buy a new phone charger",
                "where is my parcel",
                "reorder washing up liquid",
                "how much does a kettle cost",
                "add eggs and bread to the list",
                "track my order",
                "find cheap running shoes",
                "remove butter from my shopping list",
            ),
        },
    )
)

register_vocabulary(
    Vocabulary(
        "new",
        {
            "weather": (
                "is it scorchio out there",
                "gonna be proper chucking it down later",
                "heatwave vibes this week or nah",
                "pollen count for hay fever sufferers",
                "UV index at Glastonbury",
                "is the drizzle clearing by brunch",
                "storm Babet update",
                "frost on the allotment overnight",
            ),
            "music": (
                "blast the latest hyperpop mixtape",
                "queue up some lo-fi beats to study to",
                "bangers only",
                "drop the Eurovision winner",
                "vibe check playlist",
                "spin that viral TikTok tune",
                "put on the drum and bass banger",
                "ambient synthwave for coding",
            ),
            "news": (
                "what's the tea on the summit",
                "doomscroll the headlines for me",
                "catch me up on the crypto crash",
                "any updates on the AI regulation bill",
                "what's trending on socials",
                "brief me on the ceasefire talks",
                "quick rundown of the budget",
                "who won the by-election",
            ),
            "navigation": (
                "get me to the Elizabeth line",
                "e-scooter route to the stadium",
                "nearest EV charging point",
                "fastest way to the pop-up market",
                "bike lane directions to Shoreditch",
                "how do I get to the Sphere",
                "ULEZ free route into town",
                "where's the closest park and ride",
            ),
            "timer": (
                "airfryer timer for twelve minutes",
                "pomodoro please",
                "ping me when the sourdough has proved",
                "nap alarm for twenty",
                "countdown till the kick-off",
                "timer for my plank",
                "snooze for nine",
                "ring when the laundry's done",
            ),
            "shopping": (
                "stock up on oat milk",
                "cop the new trainers drop",
                "grab some matcha",
                "reorder the vape pods",
                "subscribe and save on nappies",
                "add kombucha to the basket",
                "buy a Stanley cup",
                "book a click and collect slot",
            ),
        },
    )
)
