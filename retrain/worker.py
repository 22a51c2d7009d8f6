"""The retrain worker: a retrain request in, a challenger (or a reasoned refusal) out.

:class:`RetrainJob` serves one :class:`~streams.events.RetrainRequestData` in
five timed stages:

``fetch``
    the labelled outcomes of the window (a ``fetch`` callable; in production
    :meth:`retrain.training_data.OutcomeReader.read`), split by event time into
    training rows and the most recent ``holdout_fraction`` as holdout;
``train``
    a candidate of the model's pipeline (the ``pipeline`` and ``params`` tags
    of the champion, else of the latest version, else the configuration);
``evaluate``
    candidate and champion on the same holdout, overall and per segment, and
    :func:`~online_models.models.compare` against the configured bar;
``publish``
    the candidate into the registry with its lineage and evaluation, aliased
    ``challenger`` only when it passed, then a model event ``published`` or
    ``rejected``;
``reference``
    the distribution of the training rows (features only, the holdout left
    out) stored as the new version's drift reference, a
    :class:`~online_models.drift.ReferenceProfile` of source ``"training"``
    in :class:`~streams.references.ReferenceStore`, where the stream worker's
    detectors read it when they first see the version and when it is promoted.
    A reference a user set explicitly for that version is never replaced.

Every decision is a ``driftloop.model-event.v1`` (``retrain_started``,
``published``, ``rejected``, ``retrain_abandoned`` with the reason,
``retrain_failed``), with the event id ``<request id>:<action>`` so that a
redone request repeats ids instead of inventing new ones.

Requests already handled are remembered in Redis (:class:`HandledRequests`):
a duplicate is a no-op. A request whose worker died before it was remembered
is served again on redelivery: if a complete version of it is in the registry
the job finishes that one (sets the alias, stores its reference from the
window read again if it was not stored, sends the event); an unfinished
publication stays incomplete and invisible and a new version is trained
(versions only grow).

:class:`RetrainWorker` is the thin Kafka shell: a consumer group on
``retrain-requests``, one request at a time, offsets committed after each.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from online_models.drift import ReferenceProfile, ReferenceProfileError
from online_models.models import (
    Comparison,
    ComparisonBar,
    Evaluation,
    ModelError,
    OnlineClassifier,
    compare,
    evaluate,
    model_spec,
    train,
)
from online_models.registry import (
    CHALLENGER,
    CHAMPION,
    PUBLISH_STEPS,
    ModelRegistry,
    RegistryError,
    TrainingWindow,
    Trigger,
    VersionInfo,
    VersionMetadata,
)
from retrain.training_data import (
    OutcomeRow,
    RetrainError,
    TrainingDataError,
    TrainingSet,
    WindowError,
    holdout_split,
)
from streams.codec import decode_record
from streams.events import ModelEventData, ModelEventEvent, RetrainRequestData, RetrainRequestEvent
from streams.references import ReferenceStore
from streams.settings import Settings

__all__ = [
    "RETRAINER_STEPS",
    "HandledRequests",
    "RetrainConfig",
    "RetrainJob",
    "RetrainResult",
    "RetrainWorker",
    "StageTiming",
    "training_reference",
    "version_metrics",
]

#: Points at which the job calls ``on_step``: the registry's publish steps, then
#: ``before_event`` (version and alias written, event not sent) and ``after_event``
#: (event sent, request not yet remembered as handled).
RETRAINER_STEPS: tuple[str, ...] = (*PUBLISH_STEPS, "before_event", "after_event")

Action = Literal["published", "rejected", "retrain_abandoned", "retrain_failed", "duplicate"]
SOURCE = "urn:driftloop:retrainer"


@dataclass(frozen=True)
class RetrainConfig:
    """How the retrain worker trains, evaluates and judges.

    Parameters
    ----------
    min_examples
        Labelled outcomes a window needs; fewer and the request is abandoned.
        The default, 1 000, leaves a holdout of 200 at ``holdout_fraction``
        0.2: the ``min_examples`` of the default bar, below which no candidate
        can pass.
    holdout_fraction
        Share of the window, the most recent by event time, kept for evaluation.
    bar
        What the candidate must show against the champion on the holdout.
    pipelines
        Model name -> pipeline name, over the version tags.
    default_pipeline
        Pipeline of a model that has no version (and no entry in ``pipelines``).
    segments
        Segment dimensions of the error analysis; ``None`` = every dimension
        the rows carry.
    warm_start
        Train the candidate from a copy of the champion (when it is of the same
        pipeline) instead of from scratch: an online learner keeps what it knew
        and learns the window on top, which helps when the window is short or
        only part of the traffic has changed (a gradual drift). Evaluated on
        the same holdout, against the same bar.
    """

    min_examples: int = 1000
    holdout_fraction: float = 0.2
    bar: ComparisonBar = field(default_factory=ComparisonBar)
    pipelines: Mapping[str, str] = field(default_factory=dict)
    default_pipeline: str = "tabular"
    segments: tuple[str, ...] | None = None
    warm_start: bool = False

    def __post_init__(self) -> None:
        if self.min_examples < 2:
            raise ValueError(f"min_examples must be at least 2, got {self.min_examples}")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(
                f"holdout_fraction must be between 0 and 1 (exclusive), got {self.holdout_fraction}"
            )
        for name in (self.default_pipeline, *self.pipelines.values()):
            model_spec(name)  # an unknown name raises, listing the valid ones


@dataclass(frozen=True)
class StageTiming:
    """How long one stage took, and what it did, in one line.

    Examples
    --------
    >>> print(StageTiming("train", 1.2345, "voice_intent on 16000 rows"))
    train       1.23 s  voice_intent on 16000 rows
    """

    stage: str
    seconds: float
    note: str = ""

    def __str__(self) -> str:
        return f"{self.stage:<8} {self.seconds:7.2f} s  {self.note}".rstrip()


@dataclass(frozen=True)
class RetrainResult:
    """What became of one request: the action taken, the version, why, and the stage times."""

    request_id: str
    model: str
    action: Action
    version: int | None = None
    reason: str | None = None
    timings: tuple[StageTiming, ...] = ()
    comparison: Comparison | None = None
    resumed: bool = False

    @property
    def seconds(self) -> dict[str, float]:
        """Stage name -> seconds."""
        return {t.stage: t.seconds for t in self.timings}


class HandledRequests:
    """Retrain request ids already served (finished or abandoned), kept in a Redis hash.

    Parameters
    ----------
    client
        A ``redis.Redis`` or the in-memory double of :mod:`online_models.registry.testing`.
    namespace
        Key prefix (the registry's namespace); the hash is ``<namespace>retrainer:handled``.

    Examples
    --------
    >>> from online_models.registry.testing import InMemoryRedis
    >>> handled = HandledRequests(InMemoryRedis(), "test:")
    >>> handled.get("rr-1") is None
    True
    >>> handled.mark(RetrainResult("rr-1", "m", "published", version=3))
    >>> handled.get("rr-1")["version"]
    3
    """

    def __init__(self, client: Any, namespace: str = "driftloop:") -> None:
        self._client = client
        self.namespace = namespace
        self.key = f"{namespace}retrainer:handled"

    @property
    def client(self) -> Any:
        """The Redis client (the registry's: drift references are stored next to it)."""
        return self._client

    def get(self, request_id: str) -> dict[str, Any] | None:
        """What was decided for ``request_id``, or ``None`` if it was never finished."""
        raw = self._client.hget(self.key, request_id)
        return json.loads(raw) if raw is not None else None

    def mark(self, result: RetrainResult) -> None:
        """Remember that ``result.request_id`` is done."""
        record = {
            "action": result.action,
            "model": result.model,
            "version": result.version,
            "reason": result.reason,
            "at": datetime.now(UTC).isoformat(),
        }
        self._client.hset(self.key, result.request_id, json.dumps(record))


def version_metrics(comparison: Comparison) -> dict[str, float]:
    """Flat metrics of a comparison for a version's metadata: candidate and champion, by slice.

    Examples
    --------
    >>> from online_models.models import Evaluation, Tally
    >>> verdict = compare(
    ...     Evaluation(Tally(300, 240, 0), {"device=ios": Tally(300, 240, 0)}),
    ...     Evaluation(Tally(300, 270, 3), {"device=ios": Tally(300, 270, 3)}))
    >>> metrics = version_metrics(verdict)
    >>> metrics["candidate.accuracy"], metrics["champion.accuracy[device=ios]"]
    (0.9, 0.8)
    """
    metrics: dict[str, float] = {}
    for delta in (comparison.overall, *comparison.segments):
        suffix = "" if delta.segment == "overall" else f"[{delta.segment}]"
        for role, tally in (("candidate", delta.candidate), ("champion", delta.champion)):
            for name in ("accuracy", "error_rate", "null_rate"):
                value = getattr(tally, name)
                if value is not None:
                    metrics[f"{role}.{name}{suffix}"] = float(value)
            metrics[f"{role}.count{suffix}"] = float(tally.count)
    return metrics


def training_reference(model: str, version: int, rows: Sequence[OutcomeRow]) -> ReferenceProfile:
    """The drift reference of ``version`` of ``model``: the features of the rows it learned from.

    Every feature becomes a signal (numeric or categorical, by its values);
    labels, segments and times are not features and are left out.

    Raises
    ------
    ReferenceProfileError
        When no feature of the rows holds a usable value.

    Examples
    --------
    >>> from online_models.models.datasets import tabular_rows
    >>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
    >>> rows = [OutcomeRow(r.features, r.label, r.segment, t0) for r in tabular_rows(800, seed=3)]
    >>> profile = training_reference("churn", 4, rows)
    >>> profile.model_version, profile.source, profile.rows, profile.signals
    ('4', 'training', 800, ['monthly_spend', 'plan', 'region', 'support_calls', 'tenure_months'])
    """
    return ReferenceProfile.from_rows(
        [row.features for row in rows], model=model, model_version=str(version), source="training"
    )


def _ignore_step(_step: str) -> None:
    return None


class RetrainJob:
    """Serves retrain requests: fetch, train, evaluate, publish; each decision a model event.

    Parameters
    ----------
    registry
        Where the champion is read and the candidate published.
    fetch
        The training set of a request (in production
        ``lambda r: OutcomeReader(settings).read(r.model, r.window)``).
        It raises :class:`~retrain.training_data.WindowError` for a window
        that cannot be served.
    emit
        Sends one model event and returns once the broker has it.
    handled
        The memory of requests already served.
    references
        Where each registered version's training reference is stored; by
        default a :class:`~streams.references.ReferenceStore` on the Redis and
        namespace of ``handled`` (the registry's, where the stream worker
        looks for references).
    config
        Minimum examples, holdout share, bar, pipelines.
    on_step
        Called with each name of :data:`RETRAINER_STEPS` as a publication
        passes it (a crash-injection hook for tests). Build the registry with
        the same hook to get its publish steps too.
    echo
        Where the one-line stage reports go.

    Examples
    --------
    >>> from datetime import timedelta
    >>> from online_models.models.datasets import tabular_rows
    >>> from online_models.registry.testing import InMemoryRedis
    >>> from retrain.training_data import OutcomeRow
    >>> t0 = datetime(2026, 3, 1, tzinfo=UTC)
    >>> rows = tuple(OutcomeRow(r.features, r.label, r.segment, t0 + timedelta(seconds=i))
    ...              for i, r in enumerate(tabular_rows(1_500, seed=4)))
    >>> redis_double = InMemoryRedis()
    >>> sent = []
    >>> job = RetrainJob(
    ...     ModelRegistry(redis_double, b"a doctest secret of 32 bytes...."),
    ...     fetch=lambda request: TrainingSet(request.model, rows),
    ...     emit=sent.append, handled=HandledRequests(redis_double), echo=lambda line: None)
    >>> request = RetrainRequestData(
    ...     request_id="rr-1", model="churn", reason="manual", requested_by="manual",
    ...     window={"start": t0, "end": t0 + timedelta(hours=1)})
    >>> result = job.handle(request)
    >>> result.action, result.version, [e.data.action for e in sent]
    ('published', 1, ['retrain_started', 'published'])
    >>> job.references.get("churn", "1").rows  # the 80 % it trained on, its drift reference
    1200
    >>> job.handle(request).action  # the same request again is a no-op
    'duplicate'
    """

    def __init__(
        self,
        registry: ModelRegistry,
        fetch: Callable[[RetrainRequestData], TrainingSet],
        emit: Callable[[ModelEventEvent], None],
        handled: HandledRequests,
        config: RetrainConfig | None = None,
        *,
        references: ReferenceStore | None = None,
        on_step: Callable[[str], None] | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.registry = registry
        self.fetch = fetch
        self.emit = emit
        self.handled = handled
        self.references = (
            references
            if references is not None
            else ReferenceStore(handled.client, handled.namespace)
        )
        self.config = config or RetrainConfig()
        self.on_step = on_step or _ignore_step
        self.echo = echo

    # ------------------------------------------------------------------ the request

    def handle(self, request: RetrainRequestData) -> RetrainResult:
        """Serve one request (or recognise it as done) and return what became of it."""
        done = self.handled.get(request.request_id)
        if done is not None:
            self.echo(
                f"{request.request_id}: already handled ({done['action']}"
                f"{' version ' + str(done['version']) if done.get('version') else ''}); skipped"
            )
            return RetrainResult(
                request.request_id,
                request.model,
                "duplicate",
                version=done.get("version"),
                reason=f"already handled: {done['action']}",
            )
        resumed = self._resume(request)
        if resumed is not None:
            return resumed
        self.echo(f"{request.request_id}: retrain {request.model} ({request.reason})")
        base = self._base_version(request.model)
        self._emit(request, "retrain_started", base, reason=request.reason)
        timings: list[StageTiming] = []
        try:
            with self._stage("fetch", timings) as notes:
                training_set = self.fetch(request)
                notes.append(training_set.describe())
        except WindowError as exc:
            return self._finish(request, "retrain_abandoned", base, str(exc), timings)
        problem = self._too_few(request, training_set)
        if problem is not None:
            return self._finish(request, "retrain_abandoned", base, problem, timings)
        train_rows, holdout = holdout_split(training_set.rows, self.config.holdout_fraction)
        try:
            pipeline, params = self._pipeline(request.model)
            champion, champion_version = self._champion(request.model)
            with self._stage("train", timings) as notes:
                start_from = self._warm_start(champion, pipeline)
                if start_from is None:
                    candidate = train(pipeline, train_rows, params)
                    notes.append(f"{pipeline} on {len(train_rows)} rows")
                else:
                    candidate = start_from
                    began = time.perf_counter()
                    candidate.learn_many(train_rows)
                    candidate.training_seconds = time.perf_counter() - began
                    notes.append(
                        f"{pipeline} on {len(train_rows)} rows, warm-started from the champion "
                        f"v{champion_version}"
                    )
            with self._stage("evaluate", timings) as notes:
                segments = self.config.segments
                candidate_eval = evaluate(candidate, holdout, segments)
                champion_eval = evaluate(champion, holdout, segments) if champion else None
                verdict = compare(champion_eval, candidate_eval, self.config.bar)
                notes.append(_verdict_line(verdict, champion_version, len(holdout)))
            metadata = self._metadata(
                request, training_set, verdict, candidate_eval, champion_version, len(train_rows),
                timings,
            )  # fmt: skip
        except (ModelError, RegistryError, RetrainError) as exc:
            return self._finish(request, "retrain_failed", base, str(exc), timings)
        except ValidationError as exc:
            problems = "; ".join(e["msg"] for e in exc.errors(include_url=False))
            reason = f"the request cannot be recorded as a version's lineage: {problems}"
            return self._finish(request, "retrain_failed", base, reason, timings)
        tags = {
            "pipeline": pipeline,
            "params": json.dumps(candidate.params, sort_keys=True, default=str),
            "verdict": "passed" if verdict.passed else "rejected",
            "retrain_request_id": request.request_id,
            "evaluation": json.dumps(verdict.to_dict(), sort_keys=True),
        }
        with self._stage("publish", timings) as notes:
            info = self.registry.register_version(
                request.model,
                candidate,
                metadata,
                alias=CHALLENGER if verdict.passed else None,
                tags=tags,
            )
            notes.append(
                f"version {info.version} "
                + ("as challenger" if verdict.passed else "kept as candidate (rejected)")
            )
        with self._stage("reference", timings) as notes:
            notes.append(self._store_reference(request.model, info.version, train_rows))
        return self._announce(request, info, verdict, timings, resumed=False)

    @staticmethod
    def _metadata(
        request: RetrainRequestData,
        training_set: TrainingSet,
        verdict: Comparison,
        candidate_eval: Evaluation,
        champion_version: int | None,
        training_rows: int,
        timings: Sequence[StageTiming],
    ) -> VersionMetadata:
        """Lineage and evaluation of the candidate, as the registry keeps them."""
        window = TrainingWindow(
            start=request.window.start,
            end=request.window.end,
            offsets=[span.model_dump() for span in training_set.spans] or None,
        )
        metadata = VersionMetadata(
            training_window=window,
            trigger=Trigger(
                requested_by=request.requested_by,
                alert_ids=list(request.alert_ids),
                retrain_request_id=request.request_id,
            ),
            metrics={
                **version_metrics(verdict),
                "training_rows": float(training_rows),
                "holdout_rows": float(candidate_eval.overall.count),
                **{f"seconds.{t.stage}": round(t.seconds, 4) for t in timings},
            },
            parent_version=champion_version,
            description=_description(request, verdict),
        )
        return metadata

    def _announce(
        self,
        request: RetrainRequestData,
        info: VersionInfo,
        verdict: Comparison | None,
        timings: Sequence[StageTiming],
        *,
        resumed: bool,
    ) -> RetrainResult:
        passed = info.tags.get("verdict") == "passed"
        action: Action = "published" if passed else "rejected"
        reason = info.metadata.description
        details: dict[str, float | str | bool | None] = {
            "pipeline": info.tags.get("pipeline"),
            "parent_version": info.metadata.parent_version,
            "resumed": resumed,
        }
        metrics = info.metadata.metrics
        for name in ("training_rows", "holdout_rows", "candidate.accuracy", "champion.accuracy"):
            if name in metrics:
                details[name] = metrics[name]
        if verdict is not None:
            details["accuracy_delta"] = round(verdict.overall.accuracy_delta, 6)
            details["better_segments"] = ", ".join(verdict.better) or None
            details["worse_segments"] = ", ".join(verdict.worse) or None
            details["reasons"] = "; ".join(verdict.reasons) or None
        for timing in timings:
            details[f"{timing.stage}_s"] = round(timing.seconds, 4)
        self.on_step("before_event")
        self._emit(request, action, info.version, reason=reason, details=details)
        self.on_step("after_event")
        return self._remember(
            RetrainResult(
                request.request_id,
                request.model,
                action,
                version=info.version,
                reason=reason,
                timings=tuple(timings),
                comparison=verdict,
                resumed=resumed,
            )
        )

    # ------------------------------------------------------------------ pieces

    def _resume(self, request: RetrainRequestData) -> RetrainResult | None:
        """Finish a request whose version was published before the worker died."""
        try:
            versions = self.registry.list_versions(request.model)
        except RegistryError:
            return None  # no such model yet: nothing was published
        done = [v for v in versions if v.metadata.trigger.retrain_request_id == request.request_id]
        if not done:
            return None
        info = done[-1]
        if self.references.get_raw(request.model, str(info.version)) is None:
            self.echo(f"  reference: {self._restore_reference(request, info.version)}")
        if info.tags.get("verdict") == "passed":
            challenger = self.registry.get_alias(request.model, CHALLENGER)
            champion = self.registry.get_alias(request.model, CHAMPION)
            if info.version not in (challenger, champion) and (
                challenger is None or challenger < info.version
            ):
                self.registry.set_alias(request.model, CHALLENGER, info.version)
            info = self.registry.get_version(request.model, info.version)
        self.echo(
            f"{request.request_id}: version {info.version} of {request.model} was published "
            "before the worker stopped; finishing it"
        )
        return self._announce(request, info, None, (), resumed=True)

    def _store_reference(self, model: str, version: int, rows: Sequence[OutcomeRow]) -> str:
        """Store the training reference of a version just registered; say what was done."""
        existing = self.references.get(model, str(version))
        if existing is not None and existing.source == "explicit":
            return f"kept the explicit reference of version {version}"
        try:
            profile = training_reference(model, version, rows)
        except ReferenceProfileError as exc:
            # the version stays usable: its detectors fall back to its first events
            return f"no training reference for version {version}: {exc}"
        self.references.put(profile)
        return (
            f"{profile.rows} training rows, {len(profile.signals)} features "
            f"as the drift reference of version {version}"
        )

    def _restore_reference(self, request: RetrainRequestData, version: int) -> str:
        """Rebuild the reference of a version whose worker died before storing it."""
        try:
            training_set = self.fetch(request)
        except WindowError as exc:
            return f"no training reference for version {version}: window not readable ({exc})"
        train_rows, _ = holdout_split(training_set.rows, self.config.holdout_fraction)
        return self._store_reference(request.model, version, train_rows)

    def _source_version(self, model: str) -> int | None:
        """The version a retrain starts from: the champion, else the latest, else none."""
        champion = self.registry.get_alias(model, CHAMPION)
        if champion is not None:
            return champion
        try:
            return self.registry.resolve(model, "latest")
        except RegistryError:
            return None

    def _base_version(self, model: str) -> int:
        """The version the events of a retrain name before it has one: its source, else 1."""
        return self._source_version(model) or 1

    def _too_few(self, request: RetrainRequestData, training_set: TrainingSet) -> str | None:
        labelled = len(training_set.rows)
        window = f"{request.window.start.isoformat()} .. {request.window.end.isoformat()}"
        if training_set.outcomes == 0:
            return (
                f"no outcomes of model {request.model} in the window {window} "
                f"({training_set.describe()}); check the model name and the window, or wait "
                "for traffic and feedback"
            )
        if labelled < self.config.min_examples:
            return (
                f"only {labelled} labelled outcomes of {request.model} in the window {window} "
                f"(at least {self.config.min_examples} needed; "
                f"{training_set.counts.get('unlabelled', 0)} more have no label): widen the "
                "window or lower --min-examples"
            )
        return None

    def _pipeline(self, model: str) -> tuple[str, dict[str, Any]]:
        source = self._source_version(model)
        tags = self.registry.tags(model, source) if source is not None else {}
        name = self.config.pipelines.get(model) or tags.get("pipeline")
        name = name or self.config.default_pipeline
        params: dict[str, Any] = {}
        if tags.get("pipeline") == name and tags.get("params"):
            try:
                params = json.loads(tags["params"])
            except json.JSONDecodeError:
                raise RetrainError(
                    f"the params tag of {model!r} version {source} is not JSON: fix it with "
                    f"the registry's set_tag, or give the pipeline with --pipeline {model}=NAME"
                ) from None
        model_spec(name)
        return name, params

    def _warm_start(
        self, champion: OnlineClassifier | None, pipeline: str
    ) -> OnlineClassifier | None:
        """A copy of the champion to train on, or ``None`` to train from scratch."""
        if not self.config.warm_start or champion is None:
            return None
        if champion.name != pipeline:
            self.echo(
                f"  the champion is a {champion.name!r} model, not {pipeline!r}: "
                "training from scratch"
            )
            return None
        return copy.deepcopy(champion)

    def _champion(self, model: str) -> tuple[OnlineClassifier | None, int | None]:
        if self.registry.get_alias(model, CHAMPION) is None:
            return None, None
        artifact, info = self.registry.load(model, CHAMPION)
        if not isinstance(artifact, OnlineClassifier):
            raise RetrainError(
                f"the champion of {model!r} (version {info.version}) is a "
                f"{type(artifact).__name__}, not an OnlineClassifier, so it cannot be evaluated "
                "against the candidate; publish champions trained by driftloop"
            )
        return artifact, info.version

    @contextmanager
    def _stage(self, name: str, timings: list[StageTiming]) -> Iterator[list[str]]:
        notes: list[str] = []
        started = time.perf_counter()
        yield notes
        timing = StageTiming(name, time.perf_counter() - started, "; ".join(notes))
        timings.append(timing)
        self.echo(f"  {timing}")

    def _finish(
        self,
        request: RetrainRequestData,
        action: Action,
        version: int,
        reason: str,
        timings: list[StageTiming],
    ) -> RetrainResult:
        details = {f"{t.stage}_s": round(t.seconds, 4) for t in timings}
        self._emit(request, action, version, reason=reason, details=details)
        self.echo(f"  {action}: {reason}")
        return self._remember(
            RetrainResult(
                request.request_id,
                request.model,
                action,
                version=None,
                reason=reason,
                timings=tuple(timings),
            )
        )

    def _remember(self, result: RetrainResult) -> RetrainResult:
        self.handled.mark(result)
        if result.action in ("published", "rejected"):
            self.echo(f"  {result.action}: version {result.version} of {result.model}")
        return result

    def _emit(
        self,
        request: RetrainRequestData,
        action: str,
        version: int,
        *,
        reason: str | None = None,
        details: Mapping[str, float | str | bool | None] | None = None,
    ) -> None:
        data = ModelEventData(
            model=request.model,
            version=version,
            action=action,  # type: ignore[arg-type]  # checked by the model
            reason=reason,
            retrain_request_id=request.request_id,
            details=dict(details or {}),
        )
        self.emit(ModelEventEvent.new(data, id=f"{request.request_id}:{action}", source=SOURCE))


def _verdict_line(verdict: Comparison, champion_version: int | None, holdout: int) -> str:
    candidate = verdict.overall.candidate.accuracy or 0.0
    if champion_version is None:
        head = f"accuracy {candidate:.3f} on {holdout} holdout rows, no champion"
    else:
        champion = verdict.overall.champion.accuracy or 0.0
        head = (
            f"accuracy {candidate:.3f} vs champion v{champion_version} {champion:.3f} "
            f"on {holdout} holdout rows"
        )
    parts = [head, "passes the bar" if verdict.passed else "below the bar"]
    if verdict.better:
        parts.append(f"better on {', '.join(verdict.better)}")
    if verdict.worse:
        parts.append(f"worse on {', '.join(verdict.worse)}")
    return "; ".join(parts)


def _description(request: RetrainRequestData, verdict: Comparison) -> str:
    delta = 100 * verdict.overall.accuracy_delta
    if verdict.passed:
        return f"retrained for {request.reason!r}: passed the bar ({delta:+.2f} accuracy points)"
    return f"retrained for {request.reason!r}: rejected: {'; '.join(verdict.reasons)}"


# --------------------------------------------------------------------------- the Kafka shell


class RetrainWorker:
    """Consumes ``retrain-requests`` in the group ``<topic_prefix>retrainer`` and runs the job.

    One request at a time; its record's offset is committed once the request
    is handled, so a worker that dies mid-request gets it again after a restart.

    Parameters
    ----------
    settings
        Broker address and topic prefix.
    job
        What to do with each request.
    echo
        Where progress lines go.

    Examples
    --------
    With a broker and Redis (see ``make up``), the CLI does::

        worker = RetrainWorker(settings, job)
        worker.run(until_idle_s=10)     # or once=True, or stop=an Event set on Ctrl-C
    """

    def __init__(
        self, settings: Settings, job: RetrainJob, *, echo: Callable[[str], None] = print
    ) -> None:
        self.settings = settings
        self.job = job
        self.echo = echo
        self.topic = settings.topic("retrain-requests")
        self.group_id = f"{settings.topic_prefix}retrainer"

    def _consumer(self) -> KafkaConsumer:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id="driftloop-retrainer",
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=20,
                # a request may train for minutes; the group must not evict the worker meanwhile
                max_poll_interval_ms=30 * 60 * 1000,
                # a killed worker holds its partitions until its session expires; the
                # broker's minimum (group.min.session.timeout.ms, 6 s) makes a restart quick
                session_timeout_ms=6_000,
                heartbeat_interval_ms=1_000,
                bootstrap_timeout_ms=self.settings.connect_timeout_ms,
            )
        except KafkaTimeoutError:
            raise TrainingDataError(
                f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers}; start it with "
                "`make up` or set DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        if not consumer.partitions_for_topic(self.topic):
            consumer.close()
            raise TrainingDataError(
                f"topic {self.topic} does not exist; create it with `driftloop topics create`"
            )
        consumer.subscribe([self.topic])
        return consumer

    def run(
        self,
        *,
        once: bool = False,
        until_idle_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> list[RetrainResult]:
        """Handle requests until ``stop`` is set, or (``once``) none is left, or idle too long.

        Returns what became of each request handled.
        """
        stop = stop or threading.Event()
        consumer = self._consumer()
        results: list[RetrainResult] = []
        idle_since: float | None = None
        try:
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=300)
                for tp, records in batches.items():
                    for record in records:
                        if stop.is_set():
                            break  # not committed: served again after a restart
                        results += self._serve(record.value, tp, record.offset)
                        try:
                            consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
                        except (CommitFailedError, RebalanceInProgressError) as exc:
                            # the group is rebalancing: the request is done and remembered in
                            # Redis, so if it is delivered again it is a no-op
                            self.echo(f"offset not committed ({type(exc).__name__}): carrying on")
                if not consumer.assignment():
                    continue  # still joining the group
                if batches or idle_since is None:
                    idle_since = time.monotonic()
                if once and self._caught_up(consumer):
                    break
                if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                    break
        finally:
            consumer.close()
        return results

    @staticmethod
    def _caught_up(consumer: KafkaConsumer) -> bool:
        assigned = list(consumer.assignment())
        ends = consumer.end_offsets(assigned)
        return all(consumer.position(tp) >= ends[tp] for tp in assigned)

    def _serve(self, value: bytes | None, tp: TopicPartition, offset: int) -> list[RetrainResult]:
        decoded = decode_record(value)
        where = f"{tp.topic}[{tp.partition}]@{offset}"
        for error in decoded.errors:
            self.echo(f"skipped an invalid record part at {where}: {error.reason}")
        results = []
        for event in decoded.events:
            if not isinstance(event, RetrainRequestEvent):
                self.echo(f"skipped a {event.type} event at {where}: not a retrain request")
                continue
            results.append(self.job.handle(event.data))
        return results
