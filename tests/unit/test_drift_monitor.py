"""The drift stage's core: prediction and outcome rows in, detections out, within the budget."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from online_models.drift import ReferenceProfile
from streams.alerting.detection import Detection
from streams.drift import DriftMonitor, DriftMonitorError

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
STEP = timedelta(milliseconds=100)  # one event every 100 ms: event i is at T0 + i * STEP


def index_of(time: datetime) -> int:
    return round((time - T0) / STEP)


def predictions(
    rng: np.random.Generator,
    start: int,
    count: int,
    *,
    features: int = 3,
    mean: np.ndarray | float = 0.0,
    sd: np.ndarray | float = 1.0,
    model: str = "m",
    version: str = "1",
) -> list[dict]:
    """``count`` prediction rows from event ``start``: ``f0..`` normal, a device, score and label.

    ``mean`` and ``sd`` are scalars or ``(count, features)`` arrays (ramps, steps).
    """
    values = rng.normal(0.0, 1.0, (count, features)) * sd + mean
    scores = rng.beta(8.0, 2.0, count)
    labels = rng.choice(["weather", "music", "call"], count, p=[0.5, 0.3, 0.2])
    devices = rng.choice(["ios", "android", "web"], count, p=[0.4, 0.4, 0.2])
    names = [f"f{j}" for j in range(features)]
    return [
        {
            "id": f"{model}-{version}-{start + i}",
            "time": T0 + (start + i) * STEP,
            "data": {
                "model": model,
                "model_version": version,
                "features": {**dict(zip(names, values[i].tolist(), strict=True)), "device": device},
                "prediction": {"label": str(label), "score": float(score)},
                "latency_ms": 5.0,
                "segment": None,
                "route": "champion",
            },
        }
        for i, (score, label, device) in enumerate(zip(scores, labels, devices, strict=True))
    ]


def outcomes(
    rng: np.random.Generator,
    start: int,
    count: int,
    *,
    error: float = 0.1,
    redo: float = 0.05,
    labelled: float = 0.7,
    model: str = "m",
    version: str = "1",
) -> list[dict]:
    """Outcome rows: ``labelled`` of them carry ``correct``, every one a redo bit."""
    wrong = rng.random(count) < error
    has_label = rng.random(count) < labelled
    redone = rng.random(count) < redo
    return [
        {
            "time": T0 + (start + i) * STEP,
            "data": {
                "model": model,
                "model_version": version,
                "segment": None,
                "route": "champion",
                "correct": bool(not wrong[i]) if has_label[i] else None,
                "redo_search": bool(redone[i]),
                "switched_to_typing": None,
                "clicked": None,
            },
        }
        for i in range(count)
    ]


def small_monitor(**params: object) -> DriftMonitor:
    settings = {"partitions": 1, "reference_first_n": 2_000, "window_events": 500, "seed": 0}
    settings.update(params)
    return DriftMonitor(**settings)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- data drift


def test_abrupt_mean_shift_gives_one_sudden_detection_on_that_signal() -> None:
    rng = np.random.default_rng(1)
    monitor = small_monitor()
    assert monitor.observe_predictions(predictions(rng, 0, 6_000)) == []
    shift = np.array([0.0, 1.0, 0.0])  # f1 rises by 1 sd at event 6 000
    found = monitor.observe_predictions(predictions(rng, 6_000, 6_000, mean=shift))
    assert [(d.kind, d.signal) for d in found] == [("data_drift", "f1")]  # repeats held back
    detection = found[0]
    assert detection.detector == "cusum" and detection.pattern == "sudden"
    assert detection.severity == "warning"
    assert 0 < index_of(detection.detected_at) - 6_000 < 300
    assert abs(index_of(detection.evidence_start) - 6_000) < 100  # estimated change point
    assert detection.evidence_end == detection.detected_at
    assert "f1 mean rose by" in detection.summary and "(sudden)" in detection.summary


def test_repeat_is_reported_again_after_a_quiet_cooldown() -> None:
    rng = np.random.default_rng(2)
    monitor = small_monitor(cooldown_events=2_000)
    monitor.observe_predictions(predictions(rng, 0, 4_000))
    up = np.array([1.0, 0.0, 0.0])
    first = monitor.observe_predictions(predictions(rng, 4_000, 2_000, mean=up))
    quiet = monitor.observe_predictions(predictions(rng, 6_000, 3_000))  # back to normal
    again = monitor.observe_predictions(predictions(rng, 9_000, 2_000, mean=up))
    assert [d.signal for d in first] == ["f0"]
    assert quiet == []
    assert [d.signal for d in again] == ["f0"]


def test_a_slow_ramp_is_called_gradual() -> None:
    # Measured on seeds 0-19: the first detection of this ramp is called gradual on 16
    # (by the CUSUM's slow average or the KS statistics' trend), sudden on 4 (0, 3, 6, 11:
    # the KS window fired before its statistics had a visible trend). Seed 1 is gradual.
    rng = np.random.default_rng(1)
    monitor = small_monitor(reference_first_n=5_000, window_events=1_000)
    monitor.observe_predictions(predictions(rng, 0, 10_000))
    ramp = np.zeros((20_000, 3))
    ramp[:, 2] = np.linspace(0.0, 1.0, 20_000)  # f2 rises by 1 sd over 20 000 events
    found = monitor.observe_predictions(predictions(rng, 10_000, 20_000, mean=ramp))
    assert [d.signal for d in found] == ["f2"]
    assert found[0].pattern == "gradual"
    assert "(gradual)" in found[0].summary


def _shifted_f1(seed: int, mean_f1: np.ndarray, *, round_trip_at: int | None = None) -> list:
    """6 000 clean events, then f1 at ``mean_f1`` (optionally through a checkpoint on the way)."""
    rng = np.random.default_rng(seed)
    monitor = small_monitor()
    monitor.observe_predictions(predictions(rng, 0, 6_000))
    mean = np.zeros((len(mean_f1), 3))
    mean[:, 1] = mean_f1
    rows = predictions(rng, 6_000, len(mean_f1), mean=mean)
    if round_trip_at is None:
        return monitor.observe_predictions(rows)
    found = monitor.observe_predictions(rows[:round_trip_at])
    learned = monitor.learned_references()
    monitor = DriftMonitor.from_parts(
        json.loads(json.dumps(monitor.state_parts())), learned=learned
    )
    return found + monitor.observe_predictions(rows[round_trip_at:])


# Measured (seeds 0-19, f1 moving at event 6 000, 6 000 events after): steps of 0.5, 1 and
# 3 sd are labelled sudden at the alarm and never relabelled (0 of 60); ramps to 2 sd over
# 500, 1 500 and 3 000 events are labelled sudden at the alarm (59 of 60) and gradual about
# 2 000 events later (60 of 60).
@pytest.mark.parametrize("seed", range(3))
def test_a_fast_ramp_called_sudden_at_the_alarm_is_found_gradual_later(seed: int) -> None:
    ramp = np.clip(np.arange(6_000) / 1_500, 0.0, 1.0) * 2.0
    found = [d for d in _shifted_f1(seed, ramp) if d.signal == "f1"]
    assert [d.pattern for d in found] == ["sudden", "gradual"], [d.summary for d in found]
    first, second = found
    assert first.detector == second.detector == "cusum"
    assert 1_500 <= index_of(second.detected_at) - index_of(first.detected_at) <= 2_100
    assert second.evidence_start == first.evidence_start
    assert "gradual, decided 2,000 events after the alarm" in second.summary


@pytest.mark.parametrize("seed", range(3))
def test_a_step_is_not_relabelled(seed: int) -> None:
    found = _shifted_f1(seed, np.full(6_000, 1.0))
    assert [(d.signal, d.pattern) for d in found] == [("f1", "sudden")]


def test_a_pending_relabelling_survives_a_checkpoint() -> None:
    ramp = np.clip(np.arange(6_000) / 1_500, 0.0, 1.0) * 2.0
    found = [d for d in _shifted_f1(0, ramp, round_trip_at=1_000) if d.signal == "f1"]
    assert [d.pattern for d in found] == ["sudden", "gradual"]


def test_a_wider_spread_with_the_same_mean_is_caught_by_the_ks_window() -> None:
    rng = np.random.default_rng(4)
    monitor = small_monitor()
    monitor.observe_predictions(predictions(rng, 0, 6_000))
    wider = np.array([1.0, 1.0, 1.6])
    found = monitor.observe_predictions(predictions(rng, 6_000, 3_000, sd=wider))
    assert [(d.signal, d.detector) for d in found] == [("f2", "ks")]
    detection = found[0]
    assert detection.evidence_events == 500
    assert detection.statistic > detection.threshold
    assert detection.detected_at - detection.evidence_start == 499 * STEP  # the window
    assert "f2 distribution changed: ks" in detection.summary


def test_a_categorical_feature_and_the_label_are_compared_by_window() -> None:
    rng = np.random.default_rng(5)
    monitor = small_monitor()
    monitor.observe_predictions(predictions(rng, 0, 6_000))
    rows = predictions(rng, 6_000, 2_000)
    for row in rows:  # every request now comes from the web
        row["data"]["features"]["device"] = "web"
    found = monitor.observe_predictions(rows)
    assert [(d.signal, d.detector) for d in found] == [("device", "chi_square")]


# --------------------------------------------------------------------------- concept drift


def test_error_rate_rise_is_critical_sudden_concept_drift() -> None:
    rng = np.random.default_rng(6)
    monitor = small_monitor(reference_first_n=5_000)
    assert monitor.observe_outcomes(outcomes(rng, 0, 10_000)) == []
    found = monitor.observe_outcomes(outcomes(rng, 10_000, 5_000, error=0.3))
    assert [(d.kind, d.signal, d.severity) for d in found] == [
        ("concept_drift", "error_rate", "critical")
    ]
    detection = found[0]
    assert detection.detector == "bernoulli_cusum" and detection.pattern == "sudden"
    assert 0 < index_of(detection.detected_at) - 10_000 < 400  # 70 % of outcomes are labelled
    before, after = map(float, re.findall(r"([\d.]+)%", detection.summary))
    assert 8 < before < 12 and 20 < after < 40  # from ~10 % to ~30 %


def test_a_redo_rise_is_a_warning() -> None:
    rng = np.random.default_rng(7)
    monitor = small_monitor(reference_first_n=5_000)
    monitor.observe_outcomes(outcomes(rng, 0, 8_000))
    found = monitor.observe_outcomes(outcomes(rng, 8_000, 5_000, redo=0.15))
    assert [(d.signal, d.severity) for d in found] == [("redo_rate", "warning")]


# --------------------------------------------------------------------------- false alarms


@pytest.fixture(scope="module")
def stationary() -> tuple[list[dict], list[dict]]:
    """200 000 prediction events with 10 features (+ device, score, label) and their outcomes."""
    rng = np.random.default_rng(0)
    rows = [
        row
        for start in range(0, 200_000, 20_000)
        for row in predictions(rng, start, 20_000, features=10)
    ]
    return rows, outcomes(rng, 0, 200_000)


def run(monitor: DriftMonitor, rows: list[dict], outcome_rows: list[dict]) -> list[Detection]:
    found = []
    for start in range(0, len(rows), 10_000):
        found += monitor.observe_predictions(rows[start : start + 10_000])
        found += monitor.observe_outcomes(outcome_rows[start : start + 10_000])
    return found


def test_stationary_traffic_raises_nothing_at_the_default_budget(stationary: tuple) -> None:
    # The budget allows 0.2 false alarms on these 200 000 events, 0.1 after the margin of 2.
    # Measured (scripts not kept): the numeric CUSUM raised 4 false alarms in 10 million
    # stationary events (11 normal signals, references from 5 000 events; nominal 1.7), the
    # outcome CUSUM 0 in 7.8 million outcomes (nominal 1.3), the window comparisons 0.5x
    # their nominal rate at a 50x looser budget. About 0.1 false alarms are expected here,
    # so a random seed passes with probability ~0.9; seed 0 passes. The stricter budget
    # below cannot fail by chance.
    rows, outcome_rows = stationary
    monitor = DriftMonitor(partitions=1, events_per_false_alarm=1e6, seed=0)
    assert run(monitor, rows, outcome_rows) == []


def test_stationary_traffic_raises_nothing_at_a_strict_budget(stationary: tuple) -> None:
    rows, outcome_rows = stationary
    monitor = DriftMonitor(partitions=1, events_per_false_alarm=1e9, seed=3)
    assert run(monitor, rows, outcome_rows) == []


def test_the_budget_is_split_across_partitions() -> None:
    one = DriftMonitor(partitions=1)
    four = DriftMonitor(partitions=4)
    rng = np.random.default_rng(8)
    rows = predictions(rng, 0, 5_001)
    one.observe_predictions(rows)
    four.observe_predictions(rows)
    (h1,) = set(one._predictions[("m", "1")]._cusum.thresholds)
    (h4,) = set(four._predictions[("m", "1")]._cusum.thresholds)
    # four times the run length costs log(4) / theta (theta = 2k = 0.5) more threshold
    assert h4 - h1 == pytest.approx(np.log(4) / 0.5, rel=0.02)


# --------------------------------------------------------------------------- references


def test_promotion_reanchors_on_the_new_champion_traffic() -> None:
    rng = np.random.default_rng(9)
    canary = predictions(rng, 0, 3_000, version="2")  # a slice where f0 sits at 0
    full = predictions(rng, 3_000, 4_000, version="2", mean=np.array([1.5, 0.0, 0.0]))
    shifted = predictions(rng, 7_000, 2_000, version="2", mean=np.array([1.5, 0.0, -1.0]))

    unanchored = small_monitor()
    unanchored.observe_predictions(canary)
    assert "f0" in {d.signal for d in unanchored.observe_predictions(full)}

    monitor = small_monitor()
    monitor.observe_predictions(canary)
    monitor.on_promoted("m", "2")
    monitor.on_promoted("m", "2")  # replayed model event: no second re-anchoring
    assert monitor.observe_predictions(full) == []  # first 2 000: new reference, then normal
    assert monitor.reference("m", "2").rows == 2_000
    assert [d.signal for d in monitor.observe_predictions(shifted)] == ["f2"]


def test_a_given_reference_beats_first_n_and_applies_at_once() -> None:
    rng = np.random.default_rng(10)
    training = [row["data"]["features"] for row in predictions(rng, 0, 3_000)]
    profile = ReferenceProfile.from_rows(training, model="m", model_version="1", source="explicit")
    monitor = small_monitor(reference_first_n=5_000)
    monitor.set_reference("m", "1", profile)
    found = monitor.observe_predictions(predictions(rng, 0, 1_000, mean=np.array([0.0, -1.0, 0.0])))
    assert [d.signal for d in found] == ["f1"]  # no warm-up
    assert index_of(found[0].detected_at) < 300
    monitor.on_promoted("m", "1")
    assert monitor.reference("m", "1") is profile  # kept on promotion


# --------------------------------------------------------------------------- state and groups


def _round_trip_traffic(rng: np.random.Generator) -> tuple[list, list, tuple[list, list]]:
    """Clean predictions (to mid-window) and outcomes, then drifted ones of both."""
    before = predictions(rng, 0, 3_250)  # stops mid-window, after the warm-up
    before_outcomes = outcomes(rng, 0, 6_000)
    after = predictions(rng, 3_250, 4_000, mean=np.array([0.0, 0.8, 0.0]), sd=[1.0, 1.0, 1.7])
    after_outcomes = outcomes(rng, 6_000, 4_000, error=0.3, redo=0.12)
    return before, before_outcomes, (after, after_outcomes)


def _assert_same_later_detections(
    monitor: DriftMonitor, copy: DriftMonitor, after: tuple[list, list]
) -> None:
    """The restored copy finds exactly what the original finds on the drifted traffic."""
    rows, outcome_rows = after
    expected = monitor.observe_predictions(rows) + monitor.observe_outcomes(outcome_rows)
    got = copy.observe_predictions(rows) + copy.observe_outcomes(outcome_rows)
    assert {d.kind for d in expected} == {"data_drift", "concept_drift"}
    assert got == expected


def test_state_round_trip_gives_identical_later_detections() -> None:
    rng = np.random.default_rng(11)
    before, before_outcomes, after = _round_trip_traffic(rng)

    monitor = small_monitor(reference_first_n=5_000)
    monitor.observe_predictions(before[:3_000])  # warm-up still running
    monitor = DriftMonitor.from_state(json.loads(json.dumps(monitor.to_state())))
    monitor.observe_predictions(before[3_000:])
    monitor.observe_outcomes(before_outcomes)
    state = json.loads(json.dumps(monitor.to_state()))
    copy = DriftMonitor.from_state(state)
    _assert_same_later_detections(monitor, copy, after)


def test_state_parts_round_trip_gives_identical_later_detections() -> None:
    rng = np.random.default_rng(12)
    before, before_outcomes, after = _round_trip_traffic(rng)
    monitor = small_monitor()
    monitor.on_promoted("m", "1")
    monitor.observe_predictions(before)
    monitor.observe_outcomes(before_outcomes)
    parts = json.loads(json.dumps(monitor.state_parts()))
    learned = {
        key: type(profile).from_dict(json.loads(json.dumps(profile.to_dict())))
        for key, profile in monitor.learned_references().items()
    }
    assert set(learned) == {("m", "1")}
    copy = DriftMonitor.from_parts(parts, learned=learned)
    assert copy.champion("m") == "1"
    _assert_same_later_detections(monitor, copy, after)


def test_a_group_whose_learned_reference_is_missing_learns_one_again() -> None:
    rng = np.random.default_rng(13)
    monitor = small_monitor()
    monitor.observe_predictions(predictions(rng, 0, 2_500))
    assert monitor.reference("m", "1") is not None
    copy = DriftMonitor.from_parts(json.loads(json.dumps(monitor.state_parts())))
    assert copy.reference("m", "1") is None  # warming up again, not comparing with nothing
    # shifted traffic from here on is its new reference: nothing fires
    assert copy.observe_predictions(predictions(rng, 2_500, 3_000, mean=2.0)) == []
    assert copy.reference("m", "1") is not None


def test_state_of_another_format_is_refused() -> None:
    with pytest.raises(DriftMonitorError, match="start the monitor afresh"):
        DriftMonitor.from_state({"format": 99})
    with pytest.raises(DriftMonitorError, match="start the monitor afresh"):
        DriftMonitor.from_parts({'["monitor"]': {"format": 99}})


def test_models_and_versions_in_one_batch_are_kept_apart() -> None:
    rng = np.random.default_rng(12)

    def mixed(start: int, count: int, b_mean: float) -> list[dict]:
        a1 = predictions(rng, start, count, model="a", version="1")
        a2 = predictions(rng, start, count, model="a", version="2", mean=3.0)
        b1 = predictions(rng, start, count, model="b", version="1", mean=b_mean)
        return [row for trio in zip(a1, a2, b1, strict=True) for row in trio]

    monitor = small_monitor()
    assert monitor.observe_predictions(mixed(0, 3_000, b_mean=-5.0)) == []
    found = monitor.observe_predictions(mixed(3_000, 2_000, b_mean=-4.0))
    assert {(d.model, d.model_version) for d in found} == {("b", "1")}
    assert {d.signal for d in found} == {"f0", "f1", "f2"}
    assert [index_of(d.detected_at) for d in found] == sorted(
        index_of(d.detected_at) for d in found
    )  # in row order


def test_bad_settings_say_what_to_fix() -> None:
    with pytest.raises(DriftMonitorError, match="partition count"):
        DriftMonitor(partitions=0)
    with pytest.raises(DriftMonitorError, match="events_per_false_alarm"):
        DriftMonitor(events_per_false_alarm=1)


# --------------------------------------------------------------------------- detectors by name


@pytest.mark.parametrize("name", ["adwin", "page_hinkley"])
def test_a_river_numeric_detector_finds_an_abrupt_shift_on_that_signal(name: str) -> None:
    rng = np.random.default_rng(1)
    monitor = small_monitor(numeric_detector=name)
    assert monitor.observe_predictions(predictions(rng, 0, 6_000)) == []
    shift = np.array([0.0, 1.0, 0.0])  # f1 rises by 1 sd at event 6 000
    found = monitor.observe_predictions(predictions(rng, 6_000, 2_000, mean=shift))
    assert [(d.signal, d.detector) for d in found] == [("f1", name)]
    detection = found[0]
    # measured on seeds 0-4: adwin fires 31-63 events after the step, page_hinkley 50-79
    assert 0 < index_of(detection.detected_at) - 6_000 < 150
    assert detection.pattern == "sudden" and "f1 mean rose" in detection.summary
    assert index_of(detection.evidence_start) <= index_of(detection.detected_at)
    assert (
        detection.evidence_events
        == index_of(detection.detected_at) - index_of(detection.evidence_start) + 1
    )


def test_page_hinkley_on_standardised_values_still_raises_false_alarms() -> None:
    # delta = shift / 2 on standardised values, threshold river's 50: not calibrated to the
    # budget. Measured on seeds 100-102: 1-2 false alarms in 20 000 stationary events (4
    # signals); river's delta 0.005 gave 10-12. adwin gave none. The budget is ours only.
    found = {}
    for name in ("adwin", "page_hinkley"):
        rng = np.random.default_rng(101)
        monitor = small_monitor(numeric_detector=name)
        found[name] = monitor.observe_predictions(predictions(rng, 0, 22_000))
    assert found["adwin"] == []
    assert 1 <= len(found["page_hinkley"]) <= 4
    assert all(d.statistic > d.threshold == 50.0 for d in found["page_hinkley"])


@pytest.mark.parametrize("name", ["hddm_w", "adwin"])
def test_a_river_concept_detector_finds_an_error_rate_jump(name: str) -> None:
    rng = np.random.default_rng(6)
    monitor = small_monitor(reference_first_n=5_000, concept_detector=name)
    assert monitor.observe_outcomes(outcomes(rng, 0, 10_000)) == []
    found = monitor.observe_outcomes(outcomes(rng, 10_000, 3_000, error=0.4))
    assert [(d.signal, d.detector, d.severity) for d in found] == [("error_rate", name, "critical")]
    # measured on seeds 0-3: hddm_w 33-84 events after the jump, adwin 67-169
    assert 0 < index_of(found[0].detected_at) - 10_000 < 400
    assert found[0].summary.startswith("error_rate rose from")


def test_ddm_warns_that_it_never_forgets(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="streams.drift"):
        small_monitor(concept_detector="ddm")
        small_monitor()
    assert [r.message.split(":")[0] for r in caplog.records] == [
        "concept_detector 'ddm' never forgets"
    ]


def test_kswin_sees_a_systematic_sample_of_at_most_1000_values_per_second() -> None:
    rng = np.random.default_rng(3)
    monitor = small_monitor(numeric_detector="kswin")
    rows = predictions(rng, 0, 4_000)
    for index, row in enumerate(rows):  # 10 000 events per second of event time
        row["time"] = T0 + index * timedelta(microseconds=100)
    monitor.observe_predictions(rows)
    group = monitor._predictions[("m", "1")]
    assert group._river is not None
    # 2 000 events after the reference, every 10th one
    assert [d.detector.n for d in group._river.detectors] == [200] * 4


def test_unknown_or_unfit_detector_names_say_which_are_valid() -> None:
    from online_models.drift.registry import UnknownDetectorError

    with pytest.raises(UnknownDetectorError, match="valid names: adwin, bernoulli_cusum"):
        DriftMonitor(numeric_detector="adwn")
    with pytest.raises(UnknownDetectorError, match="valid names:"):
        DriftMonitor(concept_detector="hddm")
    with pytest.raises(DriftMonitorError, match="choose one of: cusum, adwin, kswin, page_hinkley"):
        DriftMonitor(numeric_detector="ddm")
    with pytest.raises(DriftMonitorError, match="choose one of: bernoulli_cusum, adwin, ddm"):
        DriftMonitor(concept_detector="cusum")


def test_settings_choose_the_detectors() -> None:
    from streams.settings import Settings

    settings = Settings(
        _env_file=None,
        drift_numeric_detector="adwin",
        drift_concept_detector="hddm_w",
        drift_reassess_after=600,
    )
    monitor = DriftMonitor.from_settings(settings, partitions=2)
    chosen = monitor.settings
    assert (chosen["numeric_detector"], chosen["concept_detector"]) == ("adwin", "hddm_w")
    assert chosen["reassess_after"] == 600


def test_state_round_trip_keeps_river_detectors() -> None:
    rng = np.random.default_rng(11)
    monitor = small_monitor(
        reference_first_n=3_000, numeric_detector="page_hinkley", concept_detector="adwin"
    )
    monitor.observe_predictions(predictions(rng, 0, 4_000))
    monitor.observe_outcomes(outcomes(rng, 0, 4_000))
    copy = DriftMonitor.from_state(json.loads(json.dumps(monitor.to_state())))
    after = predictions(rng, 4_000, 1_500, mean=np.array([0.0, -1.0, 0.0]))
    after_outcomes = outcomes(rng, 4_000, 2_000, error=0.4)
    expected = monitor.observe_predictions(after) + monitor.observe_outcomes(after_outcomes)
    got = copy.observe_predictions(after) + copy.observe_outcomes(after_outcomes)
    assert {(d.kind, d.detector) for d in expected} == {
        ("data_drift", "page_hinkley"),
        ("concept_drift", "adwin"),
    }
    assert got == expected
