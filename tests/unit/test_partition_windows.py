"""The per-partition windows: each record counted once, even when it is delivered again."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import OutcomeEvent, PredictionEvent
from streams.partition_windows import (
    OTHER_SEGMENT,
    PartitionWindows,
    WindowId,
    parse_segment,
    segment_key,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TOPIC = "p.predictions"


def prediction(i: int, seconds: float, segment: dict | None = None) -> PredictionEvent:
    return PredictionEvent.new(
        {
            "request_id": f"r{i}",
            "model": "m",
            "model_version": "1",
            "features": {"x": float(i)},
            "prediction": {"label": "a", "score": 0.5},
            "latency_ms": 10.0 + i,
            "segment": segment,
        },
        id=f"e{i}",
        time=T0 + timedelta(seconds=seconds),
    )


def records(n_events: int, per_record: int, seconds_per_event: float = 0.1):
    events = [prediction(i, i * seconds_per_event) for i in range(n_events)]
    return [
        (offset, events[offset * per_record : (offset + 1) * per_record])
        for offset in range((n_events + per_record - 1) // per_record)
    ]


def total_count(windows: PartitionWindows, size: int = 10) -> int:
    return sum(
        w.metrics.count for k, w in windows.windows.items() if WindowId.parse(k).size_s == size
    )


def test_each_record_counts_once_even_when_delivered_again():
    windows = PartitionWindows([10, 60], allowed_lateness_s=1000)
    recs = records(500, 50)
    for offset, events in recs:
        windows.apply("prediction", TOPIC, offset, events)
    assert total_count(windows, 10) == 500 and total_count(windows, 60) == 500
    for offset, events in recs[3:]:  # a worker restarted and re-read from offset 3
        windows.apply("prediction", TOPIC, offset, events)
    assert total_count(windows, 10) == 500 and total_count(windows, 60) == 500


@settings(max_examples=40, deadline=None)
@given(
    crash_after=st.integers(min_value=0, max_value=20),
    checkpointed=st.integers(min_value=0, max_value=20),
    commit_lag=st.integers(min_value=0, max_value=20),
    seed=st.integers(0, 10_000),
)
def test_recovery_from_a_checkpoint_then_replay_is_exact(
    crash_after, checkpointed, commit_lag, seed
):
    """Checkpoint at some point, crash later, recover, replay from the committed offset.

    faust commits acknowledged offsets some time after the checkpoint, so the
    committed offset may trail it: those records are replayed onto windows that
    already hold them.
    """
    checkpointed = min(checkpointed, crash_after)
    recs = records(21 * 37, 37, seconds_per_event=random.Random(seed).choice([0.05, 0.2, 1.0]))
    live = PartitionWindows([10], allowed_lateness_s=1e6)
    changelog: dict[str, dict] = {}
    committed = 0
    for offset, events in recs[: crash_after + 1]:
        live.apply("prediction", TOPIC, offset, events)
        if offset == checkpointed:
            changelog.update(json.loads(json.dumps(live.take_dirty())))  # as the table keeps it
            # acknowledged after the checkpoint, committed some records later
            committed = max(0, offset + 1 - commit_lag)
    # the worker dies; another recovers the changelog and re-reads from the committed offset
    recovered = PartitionWindows([10], allowed_lateness_s=1e6)
    for key, state in changelog.items():
        recovered.load(key, state)
    for offset, events in recs[committed:]:
        recovered.apply("prediction", TOPIC, offset, events)
    assert total_count(recovered) == 21 * 37


def test_windows_close_by_watermark_and_later_events_are_late():
    windows = PartitionWindows([10], allowed_lateness_s=5)
    windows.apply("prediction", TOPIC, 0, [prediction(0, 1.0), prediction(1, 2.0)])
    assert windows.closable() == []
    windows.apply("prediction", TOPIC, 1, [prediction(2, 16.0)])  # watermark 16 > 10 + 5
    (closed,) = windows.closable()
    assert WindowId.parse(closed).start_ms == int(T0.timestamp() * 1000)
    assert windows.close(closed).metrics.count == 2
    windows.apply("prediction", TOPIC, 2, [prediction(3, 3.0)])  # its window has closed
    assert windows.late_events == 1
    assert total_count(windows) == 1


def test_a_recovered_reported_window_skips_its_own_records_without_calling_them_late():
    # a worker reported the first window, checkpointed, and died before committing: its
    # successor recovers the window (reported) and reads the same records again
    first = PartitionWindows([10], allowed_lateness_s=1)
    first.apply("prediction", TOPIC, 0, [prediction(0, 1.0), prediction(1, 2.0)])
    first.apply("prediction", TOPIC, 1, [prediction(2, 3.0), prediction(3, 12.5)])
    (reported,) = first.closable()
    first.mark_reported(reported)
    successor = PartitionWindows([10], allowed_lateness_s=1)
    for key, state in first.take_dirty().items():
        successor.load(key, json.loads(json.dumps(state)))
    successor.apply("prediction", TOPIC, 0, [prediction(0, 1.0), prediction(1, 2.0)])
    successor.apply("prediction", TOPIC, 1, [prediction(2, 3.0), prediction(3, 12.5)])
    assert successor.late_events == 0
    # a record after the report is late, and only its own events count as such
    successor.apply("prediction", TOPIC, 2, [prediction(4, 4.0), prediction(5, 13.0)])
    assert successor.late_events == 1
    assert successor.windows[reported].metrics.count == 3


def test_a_batched_record_does_not_close_windows_on_its_own_events():
    windows = PartitionWindows([10], allowed_lateness_s=1)
    batch = [prediction(i, i * 0.5) for i in range(60)]  # 30 s of event time in one record
    windows.apply("prediction", TOPIC, 0, batch)
    assert windows.late_events == 0
    assert total_count(windows) == 60


def test_segments_beyond_the_cap_go_to_other():
    windows = PartitionWindows([10], max_segments=2, allowed_lateness_s=100)
    events = [prediction(i, 1.0, {"locale": f"l{i % 4}"}) for i in range(8)]
    windows.apply("prediction", TOPIC, 0, events)
    segments = sorted(WindowId.parse(k).segment for k in windows.windows)
    assert segments == [OTHER_SEGMENT, "locale=l0", "locale=l1"]
    other = next(w for k, w in windows.windows.items() if OTHER_SEGMENT in k)
    assert other.metrics.count == 4


def test_outcomes_and_predictions_keep_separate_offsets():
    windows = PartitionWindows([10], allowed_lateness_s=100)
    windows.apply("prediction", TOPIC, 5, [prediction(0, 1.0)])
    outcome = OutcomeEvent.new(
        {
            "request_id": "r0",
            "model": "m",
            "model_version": "1",
            "features": {"x": 0.0},
            "predicted_label": "a",
            "label": "a",
            "correct": True,
            "prediction_time": T0,
            "label_delay_ms": 500.0,
        },
        time=T0 + timedelta(seconds=1.5),
    )
    # offset 0 of the outcomes topic is not "already applied" because predictions reached 5
    windows.apply("outcome", "p.outcomes", 0, [outcome])
    (window,) = windows.windows.values()
    assert window.metrics.count == 1 and window.metrics.outcome_count == 1
    assert window.offsets == {TOPIC: 5, "p.outcomes": 0}


@pytest.mark.parametrize("segment", [None, {"locale": "en-GB"}, {"b": "2", "a": "1"}])
def test_segment_keys_round_trip(segment):
    key = segment_key(segment)
    assert parse_segment(key) == (segment or None)
    wid = WindowId("model.v2", "7", key, 60, 1_700_000_040_000)
    assert WindowId.parse(wid.key()) == wid


def test_a_batch_with_text_features_is_counted_per_category():
    # the batched path hands text columns over as numpy object arrays (a bug once made
    # "if strings:" raise on them, which crashed the worker's agent on the first such batch)
    from datetime import UTC, datetime, timedelta

    from streams.events import PredictionEvent

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        PredictionEvent.new(
            {"request_id": f"r{i}", "model": "m", "model_version": "1",
             "features": {"locale": ("en-GB", "de-DE")[i % 2], "x": float(i)},
             "prediction": {"label": "a"}, "latency_ms": 5.0},
            time=t0 + timedelta(seconds=i % 5),
        ).model_dump()
        for i in range(30)
    ]  # fmt: skip
    windows = PartitionWindows([10])
    assert windows.apply_many("prediction", "predictions", [(0, rows[:15]), (1, rows[15:])]) == 30
    [window] = windows.windows.values()
    metrics = window.metrics.metrics(10)
    assert metrics["feature.locale.freq.en-GB"] == 0.5
    assert metrics["feature.locale.missing_rate"] == 0.0


def test_outcomes_that_come_after_their_window_closed_for_predictions_still_count():
    from datetime import UTC, datetime, timedelta

    from streams.events import OutcomeEvent, PredictionEvent

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def prediction(second: int) -> dict:
        return PredictionEvent.new(
            {"request_id": f"r{second}", "model": "m", "model_version": "1",
             "features": {"x": 1.0}, "prediction": {"label": "a"}, "latency_ms": 5.0},
            time=t0 + timedelta(seconds=second),
        ).model_dump()  # fmt: skip

    def outcome(second: int) -> dict:
        return OutcomeEvent.new(
            {"request_id": f"r{second}", "model": "m", "model_version": "1",
             "features": {"x": 1.0}, "predicted_label": "a", "label": "a", "correct": True,
             "prediction_time": t0 + timedelta(seconds=second), "label_delay_ms": 500.0},
            time=t0 + timedelta(seconds=second),
        ).model_dump()  # fmt: skip

    windows = PartitionWindows([10], allowed_lateness_s=1, outcome_lateness_s=60)
    windows.apply_many("prediction", "p", [(0, [prediction(s) for s in range(10)])])
    windows.apply_many("prediction", "p", [(1, [prediction(30)])])  # predictions move on
    [first] = windows.closable()
    windows.mark_reported(first)
    # the outcomes of the first window come now, after it was reported: they still count
    assert windows.apply_many("outcome", "o", [(0, [outcome(s) for s in range(10)])]) == 10
    assert windows.windows[first].metrics.metrics(10)["accuracy"] == 1.0
    assert windows.late_events == 0
    assert first not in windows.removable()  # outcomes of later windows have not come yet
    # a prediction for a reported window is late, as before
    windows.apply_many("prediction", "p", [(2, [prediction(5)])])
    assert windows.late_events == 1
    # once outcomes moved past it too, it is forgotten
    windows.apply_many("outcome", "o", [(1, [outcome(30)])])
    assert first in windows.removable()
