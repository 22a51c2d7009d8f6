"""The voice-intent champion: trained on pre-drift traffic, measured before and after each drift.

:func:`train_champion` trains the registered ``voice_intent`` pipeline
(:func:`online_models.models.train`) on the audio features of a scenario's
pre-drift traffic — clean clips of the ``base`` vocabulary — drawn with a seed
of its own. :func:`measure_champion` plays a scenario against the model in
process (no broker, no router) with :func:`~producers.voice.traffic.run_voice_traffic`
and returns its per-phase :class:`~producers.voice.traffic.TrafficReport`:
accuracy, the users' redo and typing rates, and the level and silence feature
means — the before/after figures the demo shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from online_models.models import OnlineClassifier, train
from producers.voice.scenario import Phase, Scenario, get_scenario
from producers.voice.synth import DEFAULT_VOICES
from producers.voice.traffic import FeatureSource, TrafficReport, VoiceTraffic, run_voice_traffic
from producers.voice.users import SimulatedUsers

__all__ = ["CHAMPION_PARAMS", "measure_champion", "train_champion"]

CHAMPION_PARAMS: Mapping[str, Any] = {"estimator": "knn"}
"""Over the pipeline's defaults: the 5 nearest of the last 1 000 examples vote. An intent
is several clusters of audio features (voices, speeds, vocabularies), which a linear head
cannot separate. Measured in process, warm-started as the demo does (v1 on 5 000 clean rows,
v2 on 662 quiet-microphone rows, v3 on 857 rows of the gradual act's final mix), accuracy on
1 000 others: v2 on quiet microphones 0.844 (softmax, learning rate 0.02: 0.604); v3 on the
final mix 0.905 (softmax 0.446, even from 12 800 rows 0.49). A prediction takes about
0.09 ms in process (softmax 0.06 ms)."""


def train_champion(
    features: FeatureSource,
    *,
    scenario: Scenario | str = "sudden-mic",
    requests: int = 10_000,
    seed: int = 1_000,
    params: Mapping[str, Any] | None = None,
    voices: Sequence[str] = DEFAULT_VOICES,
) -> OnlineClassifier:
    """A ``voice_intent`` model trained on ``requests`` of a scenario's pre-drift traffic.

    Parameters
    ----------
    features
        The features of a clip (usually :meth:`ClipFeatures.features`).
    scenario
        Whose first phase's mix (the pre-drift traffic) to train on.
    requests
        Training rows, in event-time order (one pass).
    seed
        Seed of the training traffic; keep it apart from the seeds the
        scenario is run with, so training and served requests are drawn apart.
    params
        Pipeline parameters over :data:`CHAMPION_PARAMS`.
    voices
        espeak-ng voices of the training traffic.

    Examples
    --------
    With stand-in features in which the intent shows through (real ones come
    from :class:`~producers.voice.traffic.ClipFeatures`):

    >>> from producers.voice.intents import INTENT_NAMES
    >>> def features(key):
    ...     return {"mfcc_mean_1": float(INTENT_NAMES.index(key.intent)),
    ...             "loudness_db": -40.0 if key.perturbation == "quiet_mic" else -20.0}
    >>> model = train_champion(features, requests=2_000, seed=3)
    >>> model.learned, model.params["estimator"]
    (2000, 'knn')
    """
    chosen = get_scenario(scenario) if isinstance(scenario, str) else scenario
    pre_drift = Scenario(
        f"{chosen.name}-pre-drift",
        f"the pre-drift traffic of {chosen.name}",
        (Phase(chosen.phases[0].name, 0.0, chosen.pre_drift),),
    )
    traffic = VoiceTraffic(pre_drift, features, rate=10.0, seed=seed, voices=voices)
    rows = [(request.features, request.true_intent) for request in traffic.requests(count=requests)]
    return train("voice_intent", rows, {**CHAMPION_PARAMS, **(params or {})})


def measure_champion(
    model: OnlineClassifier,
    features: FeatureSource,
    *,
    scenario: Scenario | str,
    rate: float = 10.0,
    duration_s: float | None = None,
    seed: int = 0,
    users: SimulatedUsers | None = None,
    voices: Sequence[str] = DEFAULT_VOICES,
) -> TrafficReport:
    """How ``model`` and its users fare in each phase of ``scenario``, played in process.

    Parameters
    ----------
    model
        The model answering (its ``predict_one`` stands in for the router).
    features
        The features of a clip.
    scenario
        The scenario to play.
    rate
        Requests per second of event time.
    duration_s
        Seconds of event time; default: until 300 s after the last phase starts.
    seed
        Seed of the traffic and the users.
    users
        How users react (default :class:`~producers.voice.users.SimulatedUsers`).
    voices
        espeak-ng voices of the traffic.

    Examples
    --------
    A stand-in feature source in which a quiet microphone hides the intent (chance is 1/6):

    >>> from producers.voice.intents import INTENT_NAMES
    >>> def features(key):
    ...     quiet = key.perturbation == "quiet_mic"
    ...     heard = {f"band_{i}": 0.0 if quiet else float(i == key.intent) for i in INTENT_NAMES}
    ...     return {**heard, "loudness_db": -40.0 if quiet else -20.0}
    >>> model = train_champion(features, requests=3_000, seed=3)
    >>> report = measure_champion(model, features, scenario="sudden-mic", seed=4)
    >>> before, after = report.phases["clean-mic"], report.phases["quiet-mic"]
    >>> round(before.accuracy, 2), round(after.accuracy, 2)
    (1.0, 0.16)
    >>> round(before.redo_rate, 2), round(after.redo_rate, 2)
    (0.03, 0.51)
    >>> before.feature_mean("loudness_db"), after.feature_mean("loudness_db")
    (-20.0, -40.0)
    """
    chosen = get_scenario(scenario) if isinstance(scenario, str) else scenario
    if duration_s is None:
        duration_s = chosen.phases[-1].start_s + 300.0

    def send_request(body: dict[str, Any]) -> dict[str, Any]:
        return {"label": model.predict_one(body["features"]).label}

    return run_voice_traffic(
        chosen,
        send_request,
        lambda data: None,
        rate=rate,
        duration_s=duration_s,
        seed=seed,
        features=features,
        users=users,
        model=model.name,
        voices=voices,
        realtime=False,
    )
