"""Voice-search scenarios with real audio features, a real champion, the router and the broker.

Needs espeak-ng and sox (``make deps``) and the ``audio`` extra; without them
these tests fail, they do not skip. Clips and their features are cached in the
shared caches (``~/.cache/driftloop/voice`` and ``voice-features``), so only
the first run pays for synthesis and featurising (~1,100 clips, 10–30 ms each).
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from pydantic import SecretStr

from online_models.registry import ModelRegistry, VersionMetadata
from producers.publisher import Publisher
from producers.router import RouterService
from producers.router.testing import RouterThread
from producers.voice.champion import measure_champion, train_champion
from producers.voice.scenario import get_scenario
from producers.voice.traffic import ClipFeatures, VoiceTraffic, run_voice_traffic
from producers.voice.users import SimulatedUsers
from streams.reader import EventReader
from streams.settings import Settings

VOICES = ("en-us", "en-gb")
SECRET = "voice traffic integration secret."
MODEL = "voice_intent"


@pytest.fixture(scope="module")
def source() -> ClipFeatures:
    """Real features of every clip the scenarios below draw, warmed once."""
    features = ClipFeatures()
    for name in ("sudden-mic", "sudden-vocab"):
        features.warm(VoiceTraffic(name, features.features, rate=1, voices=VOICES).clip_keys())
    return features


@pytest.fixture(scope="module")
def champion(source: ClipFeatures):
    return train_champion(source.features, requests=6_000, voices=VOICES)


def test_a_quiet_mic_drops_loudness_20_db_and_warm_traffic_is_fast(source):
    traffic = VoiceTraffic("sudden-mic", source.features, rate=5, seed=2, voices=VOICES)
    requests = list(traffic.requests(duration_s=600.0))
    phases = {"clean-mic": [], "quiet-mic": []}
    for request in requests:
        phases[request.phase].append(request.features)

    def mean(phase: str, feature: str) -> float:
        return sum(f[feature] for f in phases[phase]) / len(phases[phase])

    drop = mean("quiet-mic", "loudness_db") - mean("clean-mic", "loudness_db")
    rms_drop = mean("quiet-mic", "rms_dbfs") - mean("clean-mic", "rms_dbfs")
    assert drop == pytest.approx(-20.0, abs=1.0), drop
    assert rms_drop == pytest.approx(-20.0, abs=1.0), rms_drop
    for edge in ("leading_silence_s", "trailing_silence_s", "clip_duration_s"):
        assert abs(mean("quiet-mic", edge) - mean("clean-mic", edge)) < 0.1, edge

    # after the cache is warm a request is a few look-ups: far above 100 requests/s
    computed = source.computed
    started = time.perf_counter()
    count = sum(1 for _ in VoiceTraffic("sudden-vocab", source.features, rate=5, seed=3,
                                        voices=VOICES).requests(count=20_000))  # fmt: skip
    per_second = count / (time.perf_counter() - started)
    assert source.computed == computed  # nothing featurised twice
    assert per_second >= 100, per_second
    print(f"loudness drop {drop:.2f} dB, rms drop {rms_drop:.2f} dB; {per_second:,.0f} requests/s")


def test_the_champion_errs_more_after_a_quiet_mic_or_a_vocabulary_burst(source, champion):
    reports = {
        name: measure_champion(
            champion, source.features, scenario=name, rate=5, duration_s=420, seed=7, voices=VOICES
        )
        for name in ("sudden-mic", "sudden-vocab")
    }
    mic, vocab = reports["sudden-mic"].phases, reports["sudden-vocab"].phases
    before, quiet = mic["clean-mic"], mic["quiet-mic"]
    base, burst = vocab["base-vocabulary"], vocab["new-vocabulary-burst"]
    assert before.accuracy > 0.6, before.accuracy  # chance is 1/6
    assert quiet.error_rate > before.error_rate + 0.25, (before.error_rate, quiet.error_rate)
    assert burst.error_rate > base.error_rate + 0.2, (base.error_rate, burst.error_rate)
    assert quiet.redo_rate > before.redo_rate + 0.1 and burst.redo_rate > base.redo_rate + 0.1
    for name, report in reports.items():
        print(name, "\n" + report.table())


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def test_traffic_through_the_router_and_feedback_on_the_broker(
    topics: Settings, redis_client, source, champion
):
    client, namespace = redis_client
    settings = topics.model_copy(
        update={"registry_secret": SecretStr(SECRET), "registry_namespace": namespace}
    )
    registry = ModelRegistry(client, SECRET, namespace)
    registry.register_version(
        MODEL, champion, VersionMetadata(), alias="champion", tags={"pipeline": MODEL}
    )
    router = RouterThread(RouterService.from_settings(settings, models=[MODEL])).start()
    scenario = get_scenario("sudden-mic").shifted(3.0)
    try:
        with Publisher(settings, source="urn:test:voice-users") as publisher:
            report = run_voice_traffic(
                scenario,
                lambda body: _post(router.url + "/predict", body),
                lambda data: publisher.publish("feedback", data),
                rate=40.0,
                duration_s=6.0,
                seed=11,
                features=source.features,
                users=SimulatedUsers(delay_s=(0.1, 1.0)),
                voices=VOICES,
                run_id="it-voice",
            )
    finally:
        router.stop()
    assert report.max_lag_s < 0.5, report.max_lag_s  # the driver kept up with 40 requests/s
    assert 150 <= report.requests <= 330 and report.feedback_published == report.requests

    found: dict[str, list] = {"predictions": [], "feedback": []}
    with EventReader(settings, ["predictions", "feedback"]) as reader:
        for item in reader.items(until_idle_s=2.0, max_wait_s=30.0):
            assert item.error is None, item.error.reason
            kind = "feedback" if item.event.type == "driftloop.feedback.v1" else "predictions"
            found[kind].append(item.event)
    predictions = {e.data.request_id: e for e in found["predictions"]}
    feedback = {e.data.request_id: e for e in found["feedback"]}
    assert len(predictions) == len(feedback) == report.requests
    assert set(predictions) == set(feedback)
    # the same seed and run id regenerate the requests: the wire carried their features exactly
    sent = VoiceTraffic(scenario, source.features, rate=40.0, seed=11, voices=VOICES,
                        run_id="it-voice").requests(duration_s=6.0)  # fmt: skip
    loudness: dict[str, list[float]] = {"clean-mic": [], "quiet-mic": []}
    for request in sent:
        assert predictions[request.request_id].data.features == pytest.approx(request.features)
        assert feedback[request.request_id].data.label == request.true_intent
        loudness[request.phase].append(predictions[request.request_id].data.features["loudness_db"])
    means = {phase: sum(values) / len(values) for phase, values in loudness.items()}
    assert means["quiet-mic"] - means["clean-mic"] == pytest.approx(-20.0, abs=2.0), means
    redo = sum(bool(f.data.redo_search) for f in feedback.values())
    assert redo == sum(t.redo for t in report.phases.values())
