"""Voice-search scenarios, simulated users and the traffic driver, with stand-in clip features.

No espeak-ng, torch or broker here: the features of a clip come from a
function of its :class:`ClipKey`, so what is tested is the sampling, the
timing and the users. The real audio features are in
``tests/integration/test_voice_traffic.py``.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from producers.exceptions import ProducersError
from producers.router.service import PredictRequest
from producers.voice.intents import INTENT_NAMES, UnknownVocabularyError, get_vocabulary
from producers.voice.perturbation import UnknownPerturbationError
from producers.voice.scenario import (
    PRE_DRIFT,
    SCENARIOS,
    Mix,
    Phase,
    Scenario,
    UnknownScenarioError,
    get_scenario,
)
from producers.voice.traffic import ClipKey, TrafficError, VoiceTraffic, run_voice_traffic
from producers.voice.users import Choices, SimulatedUsers
from streams.events import FeedbackData

START = datetime(2026, 3, 1, tzinfo=UTC)
NEW_PHRASES = {u.phrase for u in get_vocabulary("new")}


def fake_features(key: ClipKey) -> dict[str, float]:
    """Features that say which clip was drawn (quiet mic: 20 dB down; new phrase; speed)."""
    return {
        "loudness_db": -43.0 if key.perturbation == "quiet_mic" else -23.0,
        "new_phrase": float(key.phrase in NEW_PHRASES),
        "speed": float(key.speed),
        "fast": float(key.perturbation == "fast_speech"),
    }


def traffic(scenario: str | Scenario, seed: int = 0, rate: float = 10.0) -> VoiceTraffic:
    return VoiceTraffic(scenario, fake_features, rate=rate, seed=seed, start=START)


# --------------------------------------------------------------------------- scenarios


def test_every_scenario_starts_from_the_pre_drift_mix_and_is_found_by_name():
    assert sorted(SCENARIOS) == ["gradual", "sudden-mic", "sudden-vocab"]
    for name in SCENARIOS:
        scenario = get_scenario(name)
        assert scenario.pre_drift == PRE_DRIFT and scenario.drift_at_s == 120.0
        assert scenario.mix_at(119.999) == PRE_DRIFT
    with pytest.raises(UnknownScenarioError, match="known: gradual, sudden-mic, sudden-vocab"):
        get_scenario("sudden_mic")
    assert isinstance(UnknownScenarioError("x"), ProducersError)


def test_a_sudden_change_is_a_step_and_a_gradual_one_a_linear_ramp():
    mic = get_scenario("sudden-mic")
    assert mic.mix_at(120.0).perturbations == {"quiet_mic": 1.0}
    assert not mic.is_ramping(120.0)

    gradual = get_scenario("gradual")
    shares = [gradual.mix_at(120.0 + f * 1800.0).vocabularies.get("new", 0.0) for f in (0, 0.25)]
    assert shares == [0.0, pytest.approx(0.15)]
    assert gradual.mix_at(120.0 + 900.0).speeds == pytest.approx({140: 0.4, 180: 0.6})
    assert gradual.is_ramping(1000.0) and not gradual.is_ramping(1920.0)
    assert gradual.mix_at(1920.0) == gradual.mix_at(10_000.0) == gradual.phases[-1].mix
    assert gradual.phase_at(1919.9).name == "drifting" and gradual.phase_at(1920).name == "drifted"

    moved = get_scenario("sudden-vocab").shifted(30.0)
    assert [p.start_s for p in moved.phases] == [0.0, 30.0, 630.0]


def test_bad_mixes_and_phases_say_what_is_wrong():
    with pytest.raises(UnknownVocabularyError, match="known: base, new"):
        Mix(vocabularies={"slang": 1.0})
    with pytest.raises(UnknownPerturbationError, match="known: clean"):
        Mix(perturbations={"muffled": 1.0})
    with pytest.raises(ValueError, match="sum to 0"):
        Mix(speeds={140: 0.0})
    with pytest.raises(ValueError, match="80–450"):
        Mix(speeds={500: 1.0})
    with pytest.raises(ValueError, match="must increase"):
        Scenario("x", "", (Phase("a", 0, PRE_DRIFT), Phase("b", 0, PRE_DRIFT)))
    with pytest.raises(ValueError, match="first phase must start at 0"):
        Scenario("x", "", (Phase("a", 5, PRE_DRIFT),))


# --------------------------------------------------------------------------- traffic


def test_the_same_seed_gives_the_same_requests_and_another_seed_others():
    first = list(traffic("gradual", seed=5).requests(duration_s=400.0))
    again = list(traffic("gradual", seed=5).requests(duration_s=400.0))
    other = list(traffic("gradual", seed=6).requests(duration_s=400.0))
    assert first == again
    assert [r.true_intent for r in first[:50]] != [r.true_intent for r in other[:50]]
    assert len({r.request_id for r in first}) == len(first)
    times = [r.event_time for r in first]
    assert times == sorted(times) and times[0] >= START


def test_arrivals_follow_the_rate_and_intents_are_uniform():
    requests = list(traffic("sudden-mic", rate=20.0).requests(duration_s=600.0))
    assert 11_500 <= len(requests) <= 12_500  # Poisson: 12 000 ± 4.5 sd
    counts = Counter(r.true_intent for r in requests)
    assert set(counts) == set(INTENT_NAMES)
    assert max(counts.values()) / min(counts.values()) < 1.15
    assert list(traffic("sudden-mic").requests(count=7)) == list(
        traffic("sudden-mic").requests(duration_s=1e9, count=7)
    )


def test_the_mic_drop_shows_in_loudness_from_the_drift_point_on():
    requests = list(traffic("sudden-mic").requests(duration_s=300.0))
    for request in requests:
        after = (request.event_time - START).total_seconds() >= 120.0
        assert request.phase == ("quiet-mic" if after else "clean-mic")
        assert request.features["loudness_db"] == (-43.0 if after else -23.0)


def test_the_vocabulary_burst_is_70_percent_new_phrases_then_ends():
    requests = list(traffic("sudden-vocab").requests(duration_s=900.0))
    by_phase: dict[str, list[float]] = {}
    for request in requests:
        by_phase.setdefault(request.phase, []).append(request.features["new_phrase"])
    share = {phase: sum(v) / len(v) for phase, v in by_phase.items()}
    assert share["base-vocabulary"] == 0.0 and share["burst-over"] == 0.0
    assert share["new-vocabulary-burst"] == pytest.approx(0.7, abs=0.03)


def test_gradual_drift_speeds_users_up_and_brings_in_new_words_over_the_ramp():
    requests = list(traffic("gradual", rate=3.0).requests(duration_s=2400.0))

    def share(feature: str, start_s: float, end_s: float) -> float:
        window = [
            r.features[feature]
            for r in requests
            if start_s <= (r.event_time - START).total_seconds() < end_s
        ]
        return sum(window) / len(window)

    windows = [(0, 120), (420, 720), (870, 1170), (1320, 1620), (1920, 2400)]
    new = [share("new_phrase", start, end) for start, end in windows]
    assert new[0] == 0.0 and new == sorted(new) and new[-1] == pytest.approx(0.6, abs=0.05)
    fast = [share("fast", start, end) for start, end in (windows[0], windows[2], windows[4])]
    assert fast[0] == 0.0 < fast[1] < fast[2]
    assert share("speed", 0, 120) < share("speed", 1920, 2400)


def test_traffic_refuses_bad_arguments_and_warms_every_clip_it_can_draw():
    with pytest.raises(TrafficError, match="rate must be a positive"):
        VoiceTraffic("gradual", fake_features, rate=0)
    with pytest.raises(TrafficError, match="timezone-aware"):
        VoiceTraffic("gradual", fake_features, rate=1, start=datetime(2026, 1, 1))
    keys = traffic("sudden-mic").clip_keys()
    assert len(keys) == len(set(keys)) == len(get_vocabulary("base")) * 4 * 2 * 2
    assert {k.perturbation for k in keys} == {"clean", "quiet_mic"}
    vocab_keys = traffic("sudden-vocab").clip_keys()
    assert {k.phrase for k in vocab_keys} >= NEW_PHRASES
    assert {k.speed for k in traffic("gradual").clip_keys()} == {140, 180}


# --------------------------------------------------------------------------- users


def test_wrong_answers_make_users_redo_or_type_and_right_ones_click():
    users = SimulatedUsers()
    rng = random.Random(11)
    right = [users.react("news", "news", rng) for _ in range(5_000)]
    wrong = [users.react("news", "music", rng) for _ in range(5_000)]
    nothing = [users.react("news", None, rng) for _ in range(5_000)]

    def rate(reactions: list, field: str) -> float:
        return sum(getattr(r, field) for r in reactions) / len(reactions)

    assert rate(right, "redo_search") == pytest.approx(0.03, abs=0.01)
    assert rate(wrong, "redo_search") == pytest.approx(0.60, abs=0.02)
    assert rate(nothing, "redo_search") == pytest.approx(0.60, abs=0.02)  # a null return is wrong
    assert rate(wrong, "switched_to_typing") == pytest.approx(0.25, abs=0.02)
    assert rate(right, "clicked") == pytest.approx(0.85, abs=0.02)
    for reaction in right + wrong:
        assert reaction.clicked + reaction.redo_search + reaction.switched_to_typing <= 1
        assert 1.0 <= reaction.delay_s <= 8.0 and reaction.label == "news"
        FeedbackData.model_validate(reaction.feedback("r-1", "voice_intent"))


def test_label_share_and_probabilities_are_checked_and_respected():
    users = SimulatedUsers(label_share=0.25)
    rng = random.Random(2)
    labelled = sum(users.react("timer", "timer", rng).label is not None for _ in range(4_000))
    assert labelled / 4_000 == pytest.approx(0.25, abs=0.02)
    unlabelled = users.react("timer", "timer", random.Random(0))._replace(label=None)
    assert "label" not in unlabelled.feedback("r", "m")
    with pytest.raises(ValueError, match="at most 1"):
        Choices(click=0.5, redo=0.5, switch=0.1)
    with pytest.raises(ValueError, match="delay_s"):
        SimulatedUsers(delay_s=(5.0, 1.0))


# --------------------------------------------------------------------------- driver


class FakeClock:
    """A wall clock that only moves when the driver sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds
        self.slept += seconds


def test_the_driver_sends_router_bodies_and_publishes_feedback_after_the_users_delay():
    clock = FakeClock()
    sent: dict[str, float] = {}
    published: list[tuple[float, dict]] = []

    def send_request(body: dict) -> dict:
        PredictRequest.model_validate(body)  # what the router's /predict accepts
        assert set(body) == {"request_id", "model", "features"}
        sent[body["request_id"]] = clock.now
        return {"request_id": body["request_id"], "label": "weather", "route": "champion"}

    def publish_feedback(data: dict) -> None:
        FeedbackData.model_validate(data)
        published.append((clock.now, data))

    report = run_voice_traffic(
        "sudden-mic",
        send_request,
        publish_feedback,
        rate=10.0,
        duration_s=60.0,
        seed=4,
        features=fake_features,
        realtime=True,
        clock=clock,
        sleep=clock.sleep,
    )
    assert report.requests == len(sent) == len(published) == report.feedback_published
    assert 500 <= report.requests <= 700
    assert report.max_lag_s == 0.0  # the fake sender costs no time
    assert 60.0 <= clock.slept <= 68.0  # the requests' minute, then the last users' delays
    for at, data in published:
        assert 1.0 <= at - sent[data["request_id"]] <= 8.0 + 1e-6
    assert [at for at, _ in published] == sorted(at for at, _ in published)
    tally = report.phases["clean-mic"]
    assert tally.accuracy == pytest.approx(
        sum(d["label"] == "weather" for _, d in published) / len(published)
    )


def test_redo_and_typing_rates_rise_when_the_answers_go_wrong_after_the_drift():
    truth: dict[str, str] = {}
    for request in traffic("sudden-mic").requests(duration_s=600.0):
        truth[request.request_id] = request.true_intent

    def send_request(body: dict) -> dict:
        quiet = body["features"]["loudness_db"] < -30
        real = truth[body["request_id"].replace("run-a", "voice-sudden-mic-0")]
        wrong = next(i for i in INTENT_NAMES if i != real)
        return {"label": wrong if quiet else real}

    published: list[dict] = []
    report = run_voice_traffic(
        "sudden-mic",
        send_request,
        published.append,
        rate=10.0,
        duration_s=600.0,
        seed=0,
        features=fake_features,
        run_id="run-a",
        realtime=False,
    )
    before, after = report.phases["clean-mic"], report.phases["quiet-mic"]
    assert (before.accuracy, after.accuracy) == (1.0, 0.0)
    assert before.redo_rate < 0.06 and after.redo_rate > 0.5
    assert before.switch_rate < 0.03 and after.switch_rate > 0.2
    assert before.click_rate > 0.8 and after.click_rate < 0.1
    assert before.feature_mean("loudness_db") - after.feature_mean("loudness_db") == 20.0
    assert all(d["request_id"].startswith("run-a-") for d in published)

    again: list[dict] = []
    run_voice_traffic(
        "sudden-mic",
        send_request,
        again.append,
        rate=10.0,
        duration_s=600.0,
        seed=0,
        features=fake_features,
        run_id="run-a",
        realtime=False,
    )
    assert again == published  # deterministic with a seed
