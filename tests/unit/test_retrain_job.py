"""The retrain job without Kafka: in-memory registry, rows handed in, events collected."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from online_models.drift import ReferenceProfile
from online_models.models import ComparisonBar, train
from online_models.models.datasets import tabular_rows
from online_models.registry import (
    IncompleteVersionError,
    ModelRegistry,
    VersionMetadata,
)
from online_models.registry.testing import InMemoryRedis
from retrain.training_data import (
    OutcomeRow,
    TrainingSet,
    WindowError,
    holdout_split,
    select_rows,
)
from retrain.worker import (
    RETRAINER_STEPS,
    HandledRequests,
    RetrainConfig,
    RetrainJob,
)
from streams.events import ModelEventEvent, OffsetRange, OutcomeEvent, RetrainRequestData
from streams.references import ReferenceStore

SECRET = b"unit-test secret, 32 bytes long."
MODEL = "churn"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
SPANS = (OffsetRange(topic="t.outcomes", partition=0, start=10, end=2510),)


class Crash(BaseException):
    """Stands in for SIGKILL: nothing after the step runs, no except clause catches it."""


def rows_at(rows, start: datetime = T0) -> tuple[OutcomeRow, ...]:
    return tuple(
        OutcomeRow(dict(r.features), r.label, dict(r.segment), start + timedelta(seconds=i))
        for i, r in enumerate(rows)
    )


def request(request_id: str = "rr-1", **overrides) -> RetrainRequestData:
    fields = {
        "request_id": request_id,
        "model": MODEL,
        "reason": "concept drift on error_rate",
        "alert_ids": ["al-7"],
        "requested_by": "policy",
        "window": {"start": T0, "end": T0 + timedelta(hours=1)},
    }
    return RetrainRequestData(**{**fields, **overrides})


class Harness:
    """A job on an in-memory Redis, with the training set to hand out and the events it sent."""

    def __init__(self, training_set: TrainingSet | None = None, **config) -> None:
        self.redis = InMemoryRedis()
        self.registry = ModelRegistry(self.redis, SECRET, "t:")
        self.training_set = training_set
        self.events: list[ModelEventEvent] = []
        self.lines: list[str] = []
        self.config = RetrainConfig(**config)

    def fetch(self, req: RetrainRequestData) -> TrainingSet:
        if self.training_set is None:
            raise WindowError("offsets 0..5 of t.outcomes[0] are not all on the broker")
        return self.training_set

    def job(self, crash_at: str | None = None) -> RetrainJob:
        def on_step(step: str) -> None:
            if step == crash_at:
                raise Crash(step)

        return RetrainJob(
            ModelRegistry(self.redis, SECRET, "t:", on_step=on_step),
            fetch=self.fetch,
            emit=self.events.append,
            handled=HandledRequests(self.redis, "t:"),
            config=self.config,
            on_step=on_step,
            echo=self.lines.append,
        )

    def actions(self) -> list[str]:
        return [e.data.action for e in self.events]

    def reference(self, version: int) -> ReferenceProfile | None:
        """The drift reference stored for ``version``, where the stream worker reads it."""
        return ReferenceStore(self.redis, "t:").get(MODEL, str(version))


@pytest.fixture(scope="module")
def old_champion():
    """A model of the old concept: drifted traffic is where a retrained one beats it."""
    return train("tabular", tabular_rows(2_000, seed=11, drift=0.0))


@pytest.fixture(scope="module")
def drifted() -> TrainingSet:
    return TrainingSet(MODEL, rows_at(tabular_rows(2_500, seed=12, drift=1.0)), SPANS)


def with_champion(harness: Harness, champion, tags=None) -> Harness:
    harness.registry.register_version(
        MODEL,
        champion,
        VersionMetadata(description="first"),
        alias="champion",
        tags=tags or {"pipeline": "tabular", "params": json.dumps({"learning_rate": 0.01})},
    )
    return harness


def test_a_better_candidate_becomes_challenger_with_its_lineage(old_champion, drifted):
    # ~170 holdout rows per region: judge segments from 100 rows on
    harness = with_champion(Harness(drifted, bar=ComparisonBar(min_examples=100)), old_champion)
    result = harness.job().handle(request())

    assert (result.action, result.version) == ("published", 2)
    assert harness.registry.aliases(MODEL) == {"champion": 1, "challenger": 2}
    assert harness.actions() == ["retrain_started", "published"]
    assert [e.id for e in harness.events] == ["rr-1:retrain_started", "rr-1:published"]
    stages = ["fetch", "train", "evaluate", "publish", "reference"]
    assert [t.stage for t in result.timings] == stages
    assert all(t.seconds > 0 for t in result.timings)

    info = harness.registry.get_version(MODEL, 2)
    meta = info.metadata
    assert meta.parent_version == 1
    assert meta.trigger.retrain_request_id == "rr-1" and meta.trigger.alert_ids == ["al-7"]
    assert [(s.partition, s.start, s.end) for s in meta.training_window.offsets] == [(0, 10, 2510)]
    assert meta.metrics["training_rows"] == 2000 and meta.metrics["holdout_rows"] == 500
    gain = meta.metrics["candidate.accuracy"] - meta.metrics["champion.accuracy"]
    assert gain > 0.05  # the old model misreads the flipped spend effect
    # per-segment error analysis, for both models, is in the metadata and the tags
    assert {"candidate.accuracy[region=eu]", "champion.accuracy[region=eu]"} <= set(meta.metrics)
    assert info.tags["pipeline"] == "tabular" and info.tags["verdict"] == "passed"
    assert json.loads(info.tags["params"])["learning_rate"] == 0.01
    evaluation = json.loads(info.tags["evaluation"])
    assert evaluation["passed"] and len(evaluation["segments"]) == 3

    published = harness.events[-1].data
    assert published.version == 2 and published.retrain_request_id == "rr-1"
    assert published.details["accuracy_delta"] == pytest.approx(gain)
    assert published.details["better_segments"]  # names the regions it wins on
    assert {f"{stage}_s" for stage in stages} <= set(published.details)
    # the published artifact is the candidate: it loads and answers
    loaded, _ = harness.registry.load(MODEL, "challenger")
    assert loaded.predict_one(drifted.rows[0].features).label in ("churn", "stay")
    stage_lines = [
        line
        for line in harness.lines
        if re.match(r"^\s*(fetch|train|evaluate|publish|reference) +\d+\.\d\d s", line)
    ]
    assert len(stage_lines) == 5, harness.lines


def test_the_training_rows_become_the_versions_drift_reference(old_champion, drifted):
    harness = with_champion(Harness(drifted), old_champion)
    result = harness.job().handle(request())

    profile = harness.reference(result.version)
    assert profile is not None, "no drift reference stored for the published version"
    assert (profile.model, profile.model_version, profile.source) == (MODEL, "2", "training")
    assert (
        profile.rows
        == 2_000
        == harness.registry.get_version(MODEL, 2).metadata.metrics["training_rows"]
    )
    assert profile.signals == sorted(drifted.rows[0].features)
    # exactly the rows it learned from: the most recent 20 % (the holdout) is not in it
    learned = [row.features for row in drifted.rows[:2_000]]
    assert profile == ReferenceProfile.from_rows(learned, model=MODEL, model_version="2")
    assert profile != ReferenceProfile.from_rows(
        [row.features for row in drifted.rows], model=MODEL, model_version="2"
    )
    assert harness.reference(1) is None  # the champion's own reference is not invented
    assert "2000 training rows, 5 features as the drift reference of version 2" in "\n".join(
        harness.lines
    )


def test_a_rejected_candidate_gets_its_reference_too(old_champion, drifted):
    harness = with_champion(Harness(drifted, bar=ComparisonBar(min_improvement=0.5)), old_champion)
    result = harness.job().handle(request())
    assert result.action == "rejected"
    assert harness.reference(result.version).source == "training"  # it may be promoted by hand


def test_an_explicit_reference_of_the_version_is_kept(old_champion, drifted):
    harness = with_champion(Harness(drifted), old_champion)
    explicit = ReferenceProfile.from_rows(
        [{"tenure_months": float(i % 40)} for i in range(300)],
        model=MODEL,
        model_version="2",
        source="explicit",
    )
    ReferenceStore(harness.redis, "t:").put(explicit)
    harness.job().handle(request())
    assert harness.reference(2) == explicit
    assert any("kept the explicit reference of version 2" in line for line in harness.lines)


def test_rows_without_a_usable_feature_publish_without_a_reference(old_champion):
    rows = tuple(row._replace(features={"x": None}) for row in rows_at(tabular_rows(1_500, seed=5)))
    harness = with_champion(Harness(TrainingSet(MODEL, rows, SPANS)), old_champion)
    harness.job().handle(request())
    assert harness.registry.get_version(MODEL, 2).tags["verdict"] in ("passed", "rejected")
    assert harness.reference(2) is None
    assert any("no training reference for version 2" in line for line in harness.lines)


def test_a_candidate_below_the_bar_is_kept_but_not_challenger(old_champion, drifted):
    harness = with_champion(Harness(drifted, bar=ComparisonBar(min_improvement=0.5)), old_champion)
    result = harness.job().handle(request())

    assert result.action == "rejected"
    assert harness.registry.aliases(MODEL) == {"champion": 1}
    assert harness.registry.get_version(MODEL, result.version).tags["verdict"] == "rejected"
    rejected = harness.events[-1]
    assert (rejected.id, rejected.data.action) == ("rr-1:rejected", "rejected")
    assert "below the required 50.00" in rejected.data.details["reasons"]
    assert "rejected" in rejected.data.reason


def test_too_few_labelled_examples_abandon_the_request_with_the_reason(old_champion):
    few = TrainingSet(MODEL, rows_at(tabular_rows(120, seed=3)), SPANS, {"unlabelled": 900})
    harness = with_champion(Harness(few, min_examples=200), old_champion)
    result = harness.job().handle(request())

    assert result.action == "retrain_abandoned"
    assert harness.actions() == ["retrain_started", "retrain_abandoned"]
    abandoned = harness.events[-1].data
    assert abandoned.version == 1  # the champion the retrain started from
    assert "only 120 labelled outcomes" in abandoned.reason
    assert (
        "at least 200 needed" in abandoned.reason and "900 more have no label" in abandoned.reason
    )
    assert [v.version for v in harness.registry.list_versions(MODEL)] == [1]  # nothing published


def test_an_empty_window_says_so():
    harness = Harness(TrainingSet(MODEL, (), SPANS, {"other_model": 40}))
    result = harness.job().handle(request())
    assert result.action == "retrain_abandoned"
    assert "no outcomes of model churn in the window" in result.reason
    assert "40 of other models" in result.reason


def test_a_window_that_cannot_be_read_is_abandoned_with_what_to_fix():
    harness = Harness(training_set=None)
    result = harness.job().handle(request())
    assert result.action == "retrain_abandoned"
    assert harness.events[-1].data.reason.startswith("offsets 0..5 of t.outcomes[0]")


def test_a_duplicate_request_is_a_no_op(old_champion, drifted):
    harness = with_champion(Harness(drifted), old_champion)
    job = harness.job()
    assert job.handle(request()).action == "published"
    sent = len(harness.events)

    again = job.handle(request())
    assert (again.action, again.version) == ("duplicate", 2)
    assert len(harness.events) == sent
    assert [v.version for v in harness.registry.list_versions(MODEL)] == [1, 2]
    # and a new worker (same Redis) remembers it too
    assert harness.job().handle(request()).action == "duplicate"


def test_the_first_version_of_a_model_uses_the_default_pipeline(drifted):
    harness = Harness(drifted)
    result = harness.job().handle(request(requested_by="manual", alert_ids=[]))
    assert (result.action, result.version) == ("published", 1)
    info = harness.registry.get_version(MODEL, 1)
    assert info.tags["pipeline"] == "tabular" and info.metadata.parent_version is None
    assert harness.events[0].data.version == 1  # named before the version exists


def test_configured_pipeline_wins_over_the_default(drifted):
    harness = Harness(drifted, pipelines={MODEL: "voice_intent"})
    result = harness.job().handle(request())
    assert harness.registry.get_version(MODEL, result.version).tags["pipeline"] == "voice_intent"


def test_a_champion_that_is_not_a_driftloop_model_fails_the_request(drifted):
    harness = Harness(drifted)
    harness.registry.register_version(MODEL, {"weights": [1, 2]}, alias="champion")
    result = harness.job().handle(request())
    assert result.action == "retrain_failed"
    assert "is a dict, not an OnlineClassifier" in harness.events[-1].data.reason


@pytest.mark.parametrize("step", ["before_event", "after_alias", "after_pointer"])
def test_a_version_published_before_a_crash_is_finished_not_redone(old_champion, drifted, step):
    harness = with_champion(Harness(drifted), old_champion)
    with pytest.raises(Crash):
        harness.job(crash_at=step).handle(request())
    assert harness.actions() == ["retrain_started"]

    result = harness.job().handle(request())
    assert (result.action, result.version, result.resumed) == ("published", 2, True)
    assert [v.version for v in harness.registry.list_versions(MODEL)] == [1, 2]
    assert harness.registry.aliases(MODEL) == {"champion": 1, "challenger": 2}
    assert harness.events[-1].id == "rr-1:published"
    assert harness.events[-1].data.details["resumed"] is True
    # a worker killed before it stored the reference: the next one stores it from the window
    profile = harness.reference(2)
    assert (profile.source, profile.rows) == ("training", 2_000)


@pytest.mark.parametrize("step", ["after_version", "after_blob", "before_pointer"])
def test_an_unfinished_publication_stays_invisible_and_the_request_is_redone(
    old_champion, drifted, step
):
    harness = with_champion(Harness(drifted), old_champion)
    with pytest.raises(Crash):
        harness.job(crash_at=step).handle(request())

    result = harness.job().handle(request())
    assert (result.action, result.version, result.resumed) == ("published", 3, False)
    assert [v.version for v in harness.registry.list_versions(MODEL)] == [1, 3]
    assert harness.registry.aliases(MODEL) == {"champion": 1, "challenger": 3}
    if step != "after_version":
        assert harness.registry.incomplete_versions(MODEL) == [2]
        with pytest.raises(IncompleteVersionError):
            harness.registry.load(MODEL, 2)
    # the retry repeats the start event's id: consumers that dedup on ids see it once
    assert [e.id for e in harness.events] == ["rr-1:retrain_started"] * 2 + ["rr-1:published"]


def test_after_event_crash_repeats_the_event_under_the_same_id(old_champion, drifted):
    harness = with_champion(Harness(drifted), old_champion)
    with pytest.raises(Crash):
        harness.job(crash_at="after_event").handle(request())
    harness.job().handle(request())
    ids = [e.id for e in harness.events if e.data.action == "published"]
    assert ids == ["rr-1:published", "rr-1:published"]
    assert [v.version for v in harness.registry.list_versions(MODEL)] == [1, 2]


def test_every_step_is_reached_by_a_publication(old_champion, drifted):
    harness = with_champion(Harness(drifted), old_champion)
    reached: list[str] = []
    job = harness.job()
    job.on_step = reached.append
    job.registry = ModelRegistry(harness.redis, SECRET, "t:", on_step=reached.append)
    job.handle(request())
    assert reached == list(RETRAINER_STEPS)


def test_holdout_is_the_most_recent_slice_by_event_time():
    events = [
        OutcomeEvent.new(
            {
                "request_id": f"r{i}",
                "model": MODEL,
                "model_version": "1",
                "features": {"x": float(i)},
                "predicted_label": "a",
                "label": "a" if i % 2 else "b",
                "prediction_time": T0,
                "label_delay_ms": 0.0,
            },
            time=T0 + timedelta(seconds=(i * 7919) % 100),  # shuffled event times
        )
        for i in range(100)
    ]
    rows, counts = select_rows(events, MODEL, T0, T0 + timedelta(hours=1))
    train_rows, holdout = holdout_split(rows, 0.2)
    assert (len(train_rows), len(holdout), counts["labelled"]) == (80, 20, 100)
    assert max(r.time for r in train_rows) < min(r.time for r in holdout)


def test_holdout_fraction_out_of_range_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        holdout_split([1, 2, 3], 1.0)


def test_an_unknown_pipeline_in_the_configuration_lists_the_valid_ones():
    with pytest.raises(KeyError, match="registered models are: tabular, voice_intent"):
        RetrainConfig(pipelines={MODEL: "xgboost"})


def test_a_policy_request_without_alert_ids_fails_with_the_reason(drifted):
    harness = Harness(drifted)
    result = harness.job().handle(request(alert_ids=[]))
    assert result.action == "retrain_failed"
    assert "names the alert ids behind it" in harness.events[-1].data.reason
    assert harness.job().handle(request(alert_ids=[])).action == "duplicate"  # not a poison pill


def test_warm_start_learns_the_window_on_top_of_a_copy_of_the_champion(old_champion):
    """A short window of half-drifted traffic: the warm-started candidate knows the old half
    from its parent; the champion itself is left untouched."""
    rows = tabular_rows(300, seed=21, drift=0.0) + tabular_rows(300, seed=22, drift=1.0)
    window = TrainingSet(MODEL, rows_at(rows), SPANS)
    learned_before = old_champion.learned
    results = {}
    for warm in (False, True):
        harness = with_champion(
            Harness(window, min_examples=100, bar=ComparisonBar(min_examples=50), warm_start=warm),
            old_champion,
        )
        result = harness.job().handle(request())
        meta = harness.registry.get_version(MODEL, 2).metadata
        results[warm] = (meta.metrics["training_rows"], harness.lines)
        candidate, _ = harness.registry.load(MODEL, 2)
        expected = meta.metrics["training_rows"] + (learned_before if warm else 0)
        assert candidate.learned == expected, (warm, candidate.learned, result.action)
    assert old_champion.learned == learned_before
    assert any("warm-started from the champion v1" in line for line in results[True][1])
    assert not any("warm-started" in line for line in results[False][1])
