"""The demo's acts: a second drift played on top of the first one's traffic."""

from __future__ import annotations

from driftloop.voice_demo import VoiceRows, compressed, on_top_of
from producers.voice import get_scenario
from producers.voice.intents import get_vocabulary

NEW_PHRASES = {p for phrases in get_vocabulary("new").phrases.values() for p in phrases}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def features(key) -> dict[str, float]:
    return {
        "loudness_db": -40.0 if key.perturbation == "quiet_mic" else -20.0,
        "speed": float(key.speed),
        "new_words": float(key.phrase in NEW_PHRASES),
    }


def test_the_second_act_ramps_on_top_of_the_first_and_keeps_its_microphone() -> None:
    mic = compressed(get_scenario("sudden-mic"), drift_at_s=30.0)
    gradual = on_top_of(
        compressed(get_scenario("gradual"), drift_at_s=30.0, ramp_s=60.0), mic.phases[-1].mix
    )
    clock = Clock()
    rows = VoiceRows(mic, features, seed=3, clock=clock)
    before = rows.take(200)
    rows.drift = 1.0
    act_one = rows.take(200)
    clock.now = 100.0
    rows.next_act(gradual)
    start = rows.take(400)
    clock.now = 130.0  # half-way through the 60 s ramp
    half = rows.take(400)
    clock.now = 200.0
    end = rows.take(400)

    def mean(batch, name):
        return sum(row.features[name] for row, _ in batch) / len(batch)

    assert mean(before, "loudness_db") == -20.0 and mean(act_one, "loudness_db") == -40.0
    # the microphone stays quiet through the second act
    assert {row.features["loudness_db"] for row, _ in start + half + end} == {-40.0}
    # vocabulary and speed move gradually: nothing at the start, some half-way, most at the end
    shares = [mean(batch, "new_words") for batch in (start, half, end)]
    assert shares[0] == 0.0 and 0.15 < shares[1] < 0.45 and 0.5 < shares[2] < 0.7, shares
    assert mean(start, "speed") < mean(half, "speed") < mean(end, "speed")
    assert [round(d, 2) for d in (start[0][1], half[0][1], end[0][1])] == [0.0, 0.5, 1.0]
