"""The streaming monitor: a faust app that turns predictions and outcomes into window metrics.

Two stages:

1. **monitor** (one instance per source partition of ``predictions``,
   ``feedback`` and ``outcomes``, which are co-partitioned by ``request_id``):
   take a batch of records, decode each once, send what cannot be decoded or
   validated to ``dead-letters``, drop events seen already (bounded memory),
   add predictions and outcomes to the partition's open windows
   (:class:`~streams.partition_windows.PartitionWindows`, one vectorised update
   per window per batch), and join feedback to its prediction
   (:class:`~streams.join.PendingPredictions`), sending an ``outcome`` per
   match. About once a second per partition the changed windows are written
   to a changelog-backed table and only then are the records acknowledged
   (faust flushes everything sent before it commits their offsets), so a
   worker that dies is replaced by one that recovers the state and re-reads
   only unacknowledged records, which the windows recognise by offset and
   skip. The predictions waiting for feedback are not copied to a changelog:
   the ``predictions`` topic is their log (as Kafka Streams reuses a source
   topic), and a table keeps, per partition, the offset from which they are
   read again after a take-over.
   Closed windows (and, after ``idle_close_s`` without traffic, open ones)
   are sent as *partials* to the internal ``metrics-partials`` topic.
2. **merge**: per window, keep the latest partial of every source partition,
   merge them, and publish one ``driftloop.metrics.v1`` event per
   (model, version, segment, window) to ``metrics``; the same numbers feed the
   Prometheus gauges on ``/metrics``. A partial that arrives again replaces
   the previous one from the same partition, so it is never counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import hashlib
import inspect
import json
import logging
import signal
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import faust.streams
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.exceptions import NotReady
from faust.types import TP, EventT, StreamT
from mode.utils.times import want_seconds

from online_models.drift import ReferenceProfile
from online_models.window import PanedRollingWindow
from online_models.window_metrics import WindowMetrics
from streams.admin import InternalTopic
from streams.alert_stage import (
    AlertStage,
    AlertStageStateError,
    StageOutput,
    detection_from_json,
    detection_to_json,
)
from streams.alerting import AlertPolicyConfig, Detection
from streams.codec import RecordError, decode_record, encode_event
from streams.dead_letters import DeadLetter
from streams.dedup import RecentIds
from streams.drift import DriftMonitor, DriftMonitorError
from streams.events import (
    AlertEvent,
    CloudEvent,
    FeedbackEvent,
    MetricsEvent,
    ModelEventData,
    ModelEventEvent,
    OutcomeEvent,
    PredictionEvent,
    RetrainRequestEvent,
)
from streams.exceptions import ContractError
from streams.frames import PredictionFrame, decode_prediction_frame
from streams.join import PendingPredictions
from streams.partition_windows import PartitionWindows, WindowId, parse_segment
from streams.references import ReferenceStore
from streams.settings import Settings
from streams.source_offsets import OffsetVerdict, SourceOffsets
from streams.telemetry import Telemetry
from streams.transport import use_fetch_settings

__all__ = ["MonitorApp", "create_app"]

log = logging.getLogger("driftloop.worker")

ALERT_STAGE_CHECKPOINT_S = 1.0
"""How often, at most, an alert stage is written to its changelog while events arrive."""

MAX_STATE_BYTES = 900_000
"""Largest drift state part written to a changelog: a broker takes records of 1 MiB by default."""

REWIND_RETRY_S = 2.0
"""A source partition sought back whose offset has not come this long after is sought again."""

STALL_S = 5.0
"""A source partition whose next offset has not come for this long, though the consumer
fetched past it, is read again from that offset (``MonitorApp._unstall``)."""

APPLY_QUIET_S = 0.2
"""Events of a partition that got no records for this long are applied without waiting
for ``apply_min_events`` or the next checkpoint (``MonitorApp._checkpoint_quiet``)."""

JOIN_RECOVERY_TIMEOUT_S = 20.0
"""Longest a worker spends reading again the predictions waiting for feedback of a partition
it took over (at the network's pace: an hour of traffic takes seconds)."""

_EXPECTED: dict[str, type[CloudEvent]] = {
    "predictions": PredictionEvent,
    "feedback": FeedbackEvent,
    "outcomes": OutcomeEvent,
}


@dataclass
class _StageSlot:
    """An alert stage, the last event of its topic, and whether it changed since written."""

    name: str
    stage: AlertStage
    restored: bool = False
    event: EventT | None = None
    saved_at: float = 0.0
    dirty: bool = False


@contextlib.contextmanager
def _as_current(event: EventT) -> Iterator[None]:
    """Make ``event`` faust's current event, so table writes go to its partition.

    faust writes a table change to the changelog partition of the event being
    processed; a timer has none. This is how a quiet partition is still
    checkpointed (a private faust context variable: pinned faust version).
    """
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


def _released(
    before: list[tuple[FeedbackEvent, EventT, float]],
    after: list[tuple[FeedbackEvent, EventT, float]],
) -> list[EventT]:
    """The feedback records none of whose events is held any more."""
    kept = {id(event) for _, event, _ in after}
    return list({id(event): event for _, event, _ in before if id(event) not in kept}.values())


Records = list[tuple[int, list[dict[str, Any]]]]
"""Decoded events of a partition, record by record: (offset, events of the record)."""


@dataclass
class _Unapplied:
    """Events a partition decoded but has not yet added to its windows and detectors."""

    predictions: list[PredictionFrame] = field(default_factory=list)
    outcomes: Records = field(default_factory=list)
    events: int = 0

    def add(self, predictions: list[PredictionFrame], outcomes: Records) -> None:
        self.predictions += predictions
        self.outcomes += outcomes
        self.events += sum(map(len, predictions)) + sum(len(rows) for _, rows in outcomes)


class MonitorApp:
    """The faust app of ``driftloop worker`` and the state its agents share in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.telemetry = Telemetry()
        datadir = settings.state_dir.absolute() / "worker"
        datadir.mkdir(parents=True, exist_ok=True)
        app = faust.App(
            settings.worker_app_id,
            broker=f"kafka://{settings.kafka_bootstrap_servers.replace(',', ';')}",
            store="memory://",
            # faust keeps a small data folder per app; not in the working directory
            datadir=str(datadir / "{conf.name}-data"),
            autodiscover=False,
            # one-partition internal topics would stall on faust's leader topic otherwise
            topic_disable_leader=True,
            topic_partitions=4,
            topic_replication_factor=settings.replication_factor,
            web_enabled=True,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_in_thread=False,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=20.0,
            consumer_max_fetch_size=8 * 1024 * 1024,
            producer_max_request_size=4 * 1024 * 1024,
            table_standby_replicas=0,
            # On a rebalance, don't wait for unacknowledged events: this app holds events
            # unacknowledged until their checkpoint, and replays are idempotent anyway.
            stream_wait_empty=False,
        )
        use_fetch_settings(
            app, min_bytes=settings.fetch_min_bytes, max_wait_ms=settings.fetch_max_wait_ms
        )
        app.transport.on_sought = self._on_sought  # type: ignore[attr-defined]
        self.app = app
        self.topic_names = {
            name: settings.topic(name) for name in ("predictions", "outcomes", "metrics")
        }
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        # predictions, feedback and outcomes are co-partitioned (keyed by request_id): one
        # agent sees a request's prediction, its feedback and their outcome in one partition
        self.source = app.topic(
            settings.topic("predictions"),
            settings.topic("feedback"),
            self.topic_names["outcomes"],
            **raw,
        )
        self.dead_letters = app.topic(settings.topic("dead-letters"), **raw)
        self.metrics_topic = app.topic(self.topic_names["metrics"], **raw)
        self.partials = app.topic(
            settings.topic("metrics-partials"), partitions=4, internal=True, **raw
        )
        self.outcomes_topic = app.topic(settings.topic("outcomes"), **raw)
        # drift detections of every partition, keyed by model, for the alert stage (one partition:
        # the alert policy of a model must see all of them)
        self.detections_topic = app.topic(
            settings.topic("detections"), partitions=1, internal=True, **raw
        )
        self.alerts_topic = app.topic(settings.topic("alerts"), **raw)
        self.retrain_topic = app.topic(settings.topic("retrain-requests"), **raw)
        # Where the predictions waiting for feedback start in each partition of the predictions
        # topic (the oldest offset still within the join's TTL): a worker that takes a partition
        # over reads them again from there. A key is "<partition>", a value an offset.
        self.join_from_table = app.Table("join-from", default=None, partitions=4)
        # Window states of every source partition; a key is "<partition>#<window id>".
        self.windows_table = app.Table("windows", default=None, partitions=4)
        # Latest partial of every source partition, per window.
        self.merged_table = app.Table("merged", default=None, partitions=4)
        # Drift detectors of every source partition, in parts (DriftMonitor.state_parts); a key
        # is "<partition>#<part name>", learned references apart (written when learned)
        self.drift_table = app.Table("drift", default=None, partitions=4, value_type=bytes)

        self.partitions: dict[int, PartitionWindows] = {}
        self.pending: dict[int, list[EventT]] = defaultdict(list)
        # decoded events not yet added to the windows and detectors (see _apply)
        self.unapplied: dict[int, _Unapplied] = defaultdict(_Unapplied)
        self.last_checkpoint: dict[int, float] = defaultdict(float)
        # reported windows that late outcomes changed: key -> when to report them again
        self.rereport_due: dict[int, dict[str, float]] = defaultdict(dict)
        self.checkpointing: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.last_seen: dict[int, float] = {}
        self.processing: set[int] = set()  # partitions whose records the agent is handling
        # the last event of each partition: what a timer's table writes are made under
        self.last_event: dict[int, EventT] = {}
        self.idle_published: set[int] = set()
        self.dedup: dict[int, RecentIds] = {}
        self.to_publish: set[str] = set()
        self.published_digest: dict[str, str] = {}
        # merged windows by partition of the partials topic: key -> window end (for clean-up)
        self.merged_keys: dict[int, dict[str, int]] = defaultdict(dict)
        # the merged table holds one entry per (window, worker partition): "<window>#<partition>",
        # so a partial rewrites one partition's state, not all of them; window -> partitions
        self.merged_sources: dict[str, set[str]] = defaultdict(set)
        self.last_rescan = 0.0
        self.merged_watermark_ms = 0
        # latest merged smallest windows per (model, version, segment), for the rolling values
        self.rolling_panes: dict[tuple[str, str, str], dict[int, WindowMetrics]] = defaultdict(dict)
        # join state, per partition of predictions/feedback
        self.joins: dict[int, PendingPredictions] = {}
        # offset of a predictions record -> newest event time (ms) in it, for records with
        # predictions still in the join; and the offset after the last one seen
        self.join_records: dict[int, dict[int, int]] = {}
        self.join_read_to: dict[int, int] = {}
        self.held_feedback: dict[int, list[tuple[FeedbackEvent, EventT, float]]] = defaultdict(list)
        self.monitor_stream: StreamT | None = None
        self.source_offsets = SourceOffsets()  # no record of a source partition jumped over
        self.source_topics = frozenset(
            settings.topic(name) for name in ("predictions", "feedback", "outcomes")
        )
        # source partition -> (next offset expected, since when): to notice a stalled one
        self.source_progress: dict[TP, tuple[int | None, float]] = {}
        self.rebalances = 0  # partitions revoked so far (a new generation of the group)

        app.agent(self.source, name="monitor")(self._monitor)
        app.timer(1.0, name="held-feedback")(self._unless_stopping(self._release_held_feedback))
        app.timer(1.0, name="rewinds")(self._unless_stopping(self._retry_rewinds))
        app.agent(self.partials, name="merge")(self._merge)
        policy = (
            AlertPolicyConfig.from_yaml(settings.alert_policy_file)
            if settings.alert_policy_file
            else AlertPolicyConfig()
        )
        # two stages, each with its own grouping: drift detections, and metric-rule transitions
        self.policy = policy
        # both are checkpointed to one changelog: their topics have one partition each, so
        # one worker at a time runs each stage, and it resumes what the last one wrote
        self.alert_stage_table = app.Table(
            "alert-stage", default=None, partitions=1, value_type=bytes
        )
        self.stages = {
            name: _StageSlot(name, AlertStage(policy)) for name in ("detections", "metrics")
        }
        self.drift_monitors: dict[int, DriftMonitor] = {}
        self.drift_saved_at: dict[int, float] = {}
        self.drift_dirty: set[int] = set()
        self.drift_references_written: dict[int, dict[tuple[str, str], ReferenceProfile]] = (
            defaultdict(dict)
        )
        self.drift_oversized: set[str] = set()
        app.agent(self.detections_topic, name="drift-alerts")(self._drift_alert_agent)
        app.agent(self.metrics_topic, name="metric-alerts")(self._metric_alert_agent)
        app.timer(1.0, name="alert-timers")(self._unless_stopping(self._alert_timers))
        # references stored in Redis ('driftloop reference set', the retrain worker), and
        # promotions, which re-anchor the detectors on the new champion
        self.references = ReferenceStore(
            redis.Redis.from_url(settings.redis_url, socket_timeout=2), settings.registry_namespace
        )
        self.reference_digests: dict[tuple[str, str], str | None] = {}
        # what each partition's detectors were given: (model, version) -> digest
        self.reference_applied: dict[int, dict[tuple[str, str], str | None]] = defaultdict(dict)
        self.reference_warned = False
        self.model_events_topic = app.topic(settings.topic("model-events"), **raw)
        app.agent(self.model_events_topic, name="promotions")(self._promotion_agent)
        app.timer(settings.reference_refresh_s, name="references")(self._refresh_references)
        app.timer(1.0, name="idle-windows")(self._unless_stopping(self._publish_idle_windows))
        app.timer(APPLY_QUIET_S / 2, name="quiet-checkpoints")(
            self._unless_stopping(self._checkpoint_quiet)
        )
        app.timer(0.5, name="publish-metrics")(self._unless_stopping(self._publish_metrics))
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_rebalance_complete.connect(self._on_rebalance_complete)
        app.task(self._on_start)
        # faust calls a page function as (view, request)
        app.page("/metrics")(self._metrics_page())
        app.page("/healthz")(self._health_page())

    def _unless_stopping(self, timer: Callable[[], Awaitable[None]]) -> Callable[[], Any]:
        """``timer``, except that a send refused because the worker is stopping ends it quietly.

        faust stops the producer while timers may still be running; what they
        did not send is sent again by the next worker (nothing was acknowledged).
        """

        @functools.wraps(timer)
        async def run() -> None:
            try:
                await timer()
            except NotReady:
                if not self.app.should_stop:
                    raise
                log.info("%s: the producer stopped; left to the next start", timer.__name__)

        return run

    # ------------------------------------------------------------------ stage 1

    def _partition(self, partition: int) -> PartitionWindows:
        windows = self.partitions.get(partition)
        if windows is None:
            s = self.settings
            windows = self.partitions[partition] = PartitionWindows(
                s.window_sizes_s,
                allowed_lateness_s=s.allowed_lateness_s,
                outcome_lateness_s=s.outcome_lateness_s,
                max_segments=s.max_segments,
                max_categories=s.max_categories,
            )
            prefix = f"{partition}#"
            for key, state in list(self.windows_table.items()):
                if key.startswith(prefix) and state is not None:
                    windows.load(key[len(prefix) :], state)
            self.dedup[partition] = RecentIds(s.dedup_capacity)
            # a window recovered as reported may have lost its final partial: the last owner
            # could die after the changelog write and before the send. Send it again (the
            # merge keeps the highest revision per partition, so a repeat changes nothing).
            now = time.monotonic()
            due = self.rereport_due[partition]
            for key, window in windows.windows.items():
                if window.reported:
                    due[key] = now
            if windows.windows:
                reported = sum(w.reported for w in windows.windows.values())
                log.info("partition %s: recovered %s open windows (%s reported)", partition,
                         len(windows.windows), reported)  # fmt: skip
        return windows

    async def _on_start(self) -> None:
        """``kill -USR1 <pid>`` makes the worker log what each of its tasks is waiting on."""
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self._log_state)

    def _log_state(self) -> None:
        """Log the asyncio tasks and the consumer's view of its partitions (SIGUSR1)."""
        _log_tasks()
        try:
            self._log_consumer()
        except Exception as exc:  # private attributes of faust and aiokafka: best effort
            log.warning("SIGUSR1: the consumer's state could not be read: %r", exc)

    def _log_consumer(self) -> None:
        consumer = self.app.consumer
        lines = [
            f"flow_active={getattr(consumer, 'flow_active', None)} "
            f"flow_control={self.app.flow_control.is_active()} "
            f"in_recovery={self.app.in_recovery}",
            f"active={sorted(map(tuple, getattr(consumer, '_active_partitions', None) or ()))}",
            f"paused={sorted(map(tuple, getattr(consumer, '_paused_partitions', ())))}",
            f"buffered={sorted(map(tuple, getattr(consumer, '_buffered_partitions', ())))}",
            f"read_offset={ {tuple(k): v for k, v in consumer._read_offset.items()} }",
        ]
        inner = getattr(getattr(consumer, "_thread", None), "_consumer", None)
        subscription = getattr(inner, "_subscription", None)
        assignment = getattr(subscription, "subscription", None)
        assignment = getattr(assignment, "assignment", None)
        if assignment is not None:
            for tp, state in sorted(assignment._tp_state.items()):
                lines.append(
                    f"aiokafka {tuple(tp)}: paused={state.paused} "
                    f"valid={state.has_valid_position} awaiting_reset={state.awaiting_reset} "
                    f"position={state._position if state.has_valid_position else None}"
                )
        log.warning("SIGUSR1: consumer\n%s", "\n".join(lines))

    async def _on_rebalance_complete(self, sender: Any, **kwargs: Any) -> None:
        """Take up the windows of newly assigned partitions, even those with nothing to read.

        A partition whose records were all read and acknowledged by its last
        owner brings no record to this worker, so nothing would load its open
        windows (recovered into the table) and they would never be reported.
        Loaded here, the idle timer reports them after ``idle_close_s`` unless
        records come first.
        """
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # no consumer (tests without a broker)
            return
        predictions = self.settings.topic("predictions")
        now = time.monotonic()
        for tp in assigned:
            if tp.topic != predictions or tp.partition in self.partitions:
                continue
            windows = self._partition(tp.partition)
            if windows.windows:
                self.last_seen.setdefault(tp.partition, now)

    async def _on_sought(self, offsets: Mapping[Any, int | None]) -> None:
        """faust sought the assigned partitions to their committed offsets: expect those.

        Where nothing was committed the consumer starts at the earliest offset.
        aiokafka seeks only to committed offsets above 0, and leaves the other
        partitions where their fetches got to, past the records dropped while
        the rebalance went on: those are sought here.
        """
        mine = {TP(tp.topic, tp.partition): offset for tp, offset in offsets.items()
                if tp.topic in self.source_topics}  # fmt: skip
        unknown = [tp for tp, offset in mine.items() if offset is None or offset < 0]
        earliest: Mapping[TP, int] = {}
        if unknown:
            try:
                earliest = await self.app.consumer.earliest_offsets(*unknown)
            except Exception as exc:  # then the first record to come sets the expectation
                log.warning("earliest offsets of %s: %s", unknown, exc)
        for tp, offset in mine.items():
            start = offset if offset is not None and offset >= 0 else earliest.get(tp)
            self.source_offsets.start(tp, start)
            log.info("%s[%s]: reading from offset %s", tp.topic, tp.partition, start)
            if start is not None and not offset:
                try:
                    await self.app.consumer.seek_wait({tp: start})  # see _seek_back
                except Exception as exc:  # MonitorApp._unstall reads them again if need be
                    log.warning("%s[%s]: could not seek to %s: %s", tp.topic, tp.partition,
                                start, exc)  # fmt: skip

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        # until faust has sought the partitions it assigns next, their records may come from
        # fetches made before (see streams.source_offsets): none is applied meanwhile
        self.source_offsets.block_all()
        self.rebalances += 1  # and a batch taken before is not applied (_process_now)
        for tp in revoked:
            for name in list(self.stages):
                if tp.topic == self.settings.topic(name):
                    # an alert stage goes where its topic's partition goes
                    self.stages[name] = _StageSlot(name, AlertStage(self.policy))
            if tp.topic not in self.source_topics:
                continue  # the partition-keyed state below is that of the source topics
            # another worker owns it now; if it comes back, reload from the changelog
            for state in (
                self.partitions,
                self.pending,
                self.unapplied,
                self.dedup,
                self.joins,
                self.join_records,
                self.join_read_to,
                self.held_feedback,
                self.drift_monitors,
                self.drift_saved_at,
                self.drift_references_written,
                self.reference_applied,
                self.rereport_due,
            ):
                state.pop(tp.partition, None)
            self.last_seen.pop(tp.partition, None)
            self.last_event.pop(tp.partition, None)
            self.idle_published.discard(tp.partition)
            self.drift_dirty.discard(tp.partition)

    async def _dead_letter(self, event: EventT, stage: str, error: RecordError | Exception) -> None:
        message = event.message
        exc = error.error if isinstance(error, RecordError) else error
        reason = error.reason if isinstance(error, RecordError) else str(error)
        letter = DeadLetter(
            stage=stage,
            error_class=type(exc).__name__,
            message=reason,
            original_topic=message.topic,
            original_partition=message.partition,
            original_offset=message.offset,
            original_timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        )
        headers = (
            list((message.headers or {}).items())
            if isinstance(message.headers, dict)
            else list(message.headers or [])
        )
        future = await self.dead_letters.send(
            key=message.key, value=message.value or b"", headers=headers + letter.to_headers()
        )
        await future  # delivered before the original is acknowledged
        self.telemetry.dead_letters.labels(stage=stage, error=type(exc).__name__).inc()

    async def _monitor(self, stream: StreamT) -> None:
        """Stage 1: predictions, feedback and outcomes of a partition, a batch of records at once.

        A prediction is decoded once and feeds both the windows and the join.
        Records are taken in batches (up to ``take_max_records`` or whatever
        came within ``take_within_s``) so that each window gets one vectorised
        update per batch instead of one per record.
        """
        self.monitor_stream = stream
        settings = self.settings
        async for batch in stream.noack_take(settings.take_max_records, settings.take_within_s):
            epoch = self.rebalances
            by_partition: dict[int, list[EventT]] = defaultdict(list)
            for event in batch:
                if await self._in_order(event):
                    by_partition[event.message.partition].append(event)
            for partition, events in by_partition.items():
                await self._process(stream, partition, events, epoch)

    async def _in_order(self, event: EventT) -> bool:
        """Whether to apply this record now; on a jump past the expected offset, seek back.

        See :mod:`streams.source_offsets`: after a rebalance faust can deliver
        records from the consumer's old position before the committed one, and
        would commit past the records in between.
        """
        message = event.message
        tp = message.tp
        consumer = self.app.consumer
        if not self._owns(tp):
            # fetched before a rebalance took its partition away: faust still hands out
            # what it had buffered, and applying it here would write state (windows,
            # partials) that the partition's new owner is recovering meanwhile
            self._let_go(event)
            return False
        committed = getattr(consumer, "_committed_offset", {}).get(tp)
        verdict = self.source_offsets.check(tp, message.offset, committed=committed)
        if verdict is OffsetVerdict.TAKE:
            return True
        if verdict is OffsetVerdict.REWIND:
            target = self.source_offsets.expected(tp)
            assert target is not None  # a rewind has an expected offset
            earliest = (await consumer.earliest_offsets(tp)).get(tp)
            if earliest is not None and earliest > target:
                log.warning("%s[%s]: offsets %s..%s are gone (retention); going on from %s",
                            tp.topic, tp.partition, target, earliest - 1, earliest)  # fmt: skip
                target = earliest
            if message.offset == target:
                self.source_offsets.accept_gap(tp, target)
                return True
            log.warning("%s[%s]: offset %s arrived before %s (a fetch from before the "
                        "rebalance); reading again from %s",
                        tp.topic, tp.partition, message.offset, target, target)  # fmt: skip
            await self._rewind(tp, target, time.monotonic())
        self._let_go(event)
        return False

    def _let_go(self, event: EventT) -> None:
        """Neither apply nor acknowledge this record: it is read again after a seek.

        faust must not wait for it (a rebalance waits for every unacknowledged
        message) nor commit it.
        """
        message = event.message
        message.acked = True
        unacked = getattr(self.app.consumer, "_unacked_messages", None)
        if unacked is not None:
            unacked.discard(message)

    def _owns(self, tp: TP) -> bool:
        """Whether this worker is assigned ``tp`` now."""
        try:
            return tp in self.app.consumer.assignment()
        except Exception:  # no consumer yet (tests without a broker): take everything
            return True

    async def _rewind(self, tp: TP, offset: int, now: float) -> None:
        """Read ``tp`` again from ``offset``, dropping what comes ahead of it meanwhile."""
        self.source_offsets.rewinding(tp, offset, now=now)
        topic = tp.topic.removeprefix(self.settings.topic_prefix)
        self.telemetry.rewinds.labels(topic=topic).inc()
        await self._seek_back(tp, offset)

    async def _seek_back(self, tp: TP, offset: int) -> None:
        consumer = self.app.consumer
        gaps = getattr(consumer, "_gap", {})
        if tp in gaps:
            gaps[tp].chop(offset, 1 << 62)  # faust must not commit past what we skipped
        try:
            # in the consumer's thread: a seek from this one races aiokafka's fetcher there
            await consumer.seek_wait({tp: offset})
        except Exception as exc:  # revoked meanwhile: its next owner starts from the commit
            log.warning("%s[%s]: could not seek back to %s: %s", tp.topic, tp.partition, offset,
                        exc)  # fmt: skip
            self.source_offsets.forget(tp)

    async def _retry_rewinds(self) -> None:
        """Seek again the partitions whose rewind has not come back (see ``overdue``), and
        seek back the ones whose records were fetched but not applied."""
        now = time.monotonic()
        for tp, offset in self.source_offsets.overdue(now, REWIND_RETRY_S):
            log.warning("%s[%s]: offset %s has not come back since the seek; seeking again",
                        tp.topic, tp.partition, offset)  # fmt: skip
            await self._seek_back(tp, offset)  # type: ignore[arg-type]
        await self._unstall(now)

    async def _unstall(self, now: float) -> None:
        """Read again a source partition whose next offset has not come for ``STALL_S``
        although the consumer fetched past it.

        Records dropped while a partition waited for its seek after a rebalance
        (:meth:`SourceOffsets.block_all`), or sought back and then dropped again
        by faust as already read, are not fetched again by themselves; nothing
        else would make the monitor wait for them forever.
        """
        try:
            consumer = self.app.consumer
            assigned = consumer.assignment()
        except Exception:  # not started
            return
        for tp in assigned:
            if tp.topic not in self.source_topics:
                continue
            expected = self.source_offsets.settled(tp)
            seen = self.source_progress.get(tp)
            if expected is None or seen is None or seen[0] != expected:
                self.source_progress[tp] = (expected, now)
                continue
            if now - seen[1] < STALL_S:
                continue
            self.source_progress[tp] = (expected, now)
            position = await consumer.position(tp)
            if position is None or position <= expected:
                continue  # nothing new to read: not stalled
            log.warning("%s[%s]: offsets %s..%s were fetched but not applied; reading them again",
                        tp.topic, tp.partition, expected, position - 1)  # fmt: skip
            await self._rewind(tp, expected, now)

    async def _decode_predictions(
        self, event: EventT, dedup: RecentIds, topic_name: str
    ) -> PredictionFrame:
        """The new, valid predictions of one record (:mod:`streams.frames`, the fast path);
        everything else is dead-lettered or counted."""
        message = event.message
        decoded = decode_prediction_frame(
            message.value, message.offset, max_bytes=self.settings.max_record_bytes
        )
        await self._refuse(event, decoded.errors, decoded.others)
        frame = decoded.frame
        if not len(frame):
            return frame
        seen = dedup.seen_many(frame.ids)
        if any(seen):
            self.telemetry.duplicates.labels(topic=topic_name).inc(sum(seen))
            frame = frame.take([i for i, repeat in enumerate(seen) if not repeat])
        return frame

    async def _refuse(self, event: EventT, errors: list[RecordError], others: list[Any]) -> None:
        """Dead-letter what could not be decoded, and events of the wrong type."""
        for error in errors:
            await self._dead_letter(event, "decode", error)
        for other in others:
            await self._dead_letter(
                event,
                "route",
                ContractError(f"{other.type} does not belong on {event.message.topic}"),
            )

    async def _decode(
        self, event: EventT, expected: type[CloudEvent], dedup: RecentIds, topic_name: str
    ) -> list[Any]:
        """The new, valid feedback (as models) or outcomes (as rows) of one record;
        everything else is dead-lettered or counted."""
        decoded = decode_record(event.message.value, max_bytes=self.settings.max_record_bytes)
        items = [e for e in decoded.events if isinstance(e, expected)]
        others = [e for e in decoded.events if not isinstance(e, expected)]
        await self._refuse(event, decoded.errors, others)
        good: list[Any] = []
        duplicates = 0
        for item in items:
            if dedup.seen(item.id):
                duplicates += 1
            elif expected is OutcomeEvent:
                good.append(item.model_dump())
            else:
                good.append(item)
        if duplicates:
            self.telemetry.duplicates.labels(topic=topic_name).inc(duplicates)
        return good

    async def _process(
        self, stream: StreamT, partition: int, events: list[EventT], epoch: int = 0
    ) -> None:
        # the timers that checkpoint quiet partitions leave this one alone meanwhile: it
        # holds records already listed for acknowledgement but not yet applied
        self.processing.add(partition)
        try:
            await self._process_now(stream, partition, events, epoch)
        finally:
            self.processing.discard(partition)

    async def _process_now(
        self, stream: StreamT, partition: int, events: list[EventT], epoch: int
    ) -> None:
        settings = self.settings
        self._partition(partition)  # recovers the partition's windows and dedup memory
        join = await self._join_partition(partition)
        dedup = self.dedup[partition]
        acks: list[EventT] = []  # listed for acknowledgement at the end, unless a rebalance came
        predictions: list[PredictionFrame] = []
        outcomes: list[tuple[int, list[dict[str, Any]]]] = []
        held = self.held_feedback[partition]
        for event in events:
            message = event.message
            topic_name = message.topic.removeprefix(settings.topic_prefix)
            if topic_name == "predictions":
                frame = await self._decode_predictions(event, dedup, topic_name)
                if len(frame):
                    predictions.append(frame)
                    join.add_frame(frame)
                    self.join_records[partition][message.offset] = int(frame.time_ms.max())
                self.join_read_to[partition] = message.offset + 1
                acks.append(event)
                continue
            good = await self._decode(event, _EXPECTED[topic_name], dedup, topic_name)
            if topic_name == "outcomes":
                if good:
                    outcomes.append((message.offset, good))
                acks.append(event)
            else:
                waiting = False
                for item in good:
                    result = join.match(item)
                    if isinstance(result, OutcomeEvent):
                        await self._send_outcome(result, join.match_shadow(item))
                    else:
                        # its prediction may still be on its way: wait feedback_grace_s
                        held.append((item, event, time.monotonic()))
                        waiting = True
                if not waiting:
                    acks.append(event)
        if held and predictions:
            await self._retry_held(
                partition, {request_id for frame in predictions for request_id in frame.request_ids}
            )
        if self.rebalances != epoch or not self._owns(events[-1].message.tp):
            # the batch was taken before a rebalance: whoever owns the partition now reads
            # it again from the committed offset, and its state was reloaded meanwhile
            log.info("partition %s: a rebalance came amid a batch; it is read again", partition)
            for event in acks:
                self._let_go(event)
            return
        self.pending[partition].extend(acks)
        unapplied = self.unapplied[partition]
        unapplied.add(predictions, outcomes)
        if unapplied.events >= settings.apply_min_events:
            await self._apply(partition)
        self.last_seen[partition] = time.monotonic()
        self.last_event[partition] = events[-1]
        self.idle_published.discard(partition)
        if time.monotonic() - self.last_checkpoint[partition] >= settings.checkpoint_interval_s:
            with _as_current(events[-1]):
                await self._checkpoint(stream, partition)

    async def _apply(self, partition: int) -> None:
        """Add what the partition collected to its windows and run its drift detectors.

        The windows and detectors are vectorised: each update costs about the
        same for 5 events as for 500. So a partition collects decoded events
        until it has ``apply_min_events`` of them or its next checkpoint, and
        at low rates most of the work per event is not spent on small updates.
        """
        unapplied = self.unapplied.pop(partition, None)
        if unapplied is None or not unapplied.events:
            return
        windows = self._partition(partition)
        predictions = PredictionFrame.concat(unapplied.predictions)
        outcomes = unapplied.outcomes
        late_before = windows.late_events
        if len(predictions):
            windows.apply_frame(self.settings.topic("predictions"), predictions)
            self.telemetry.events.labels(topic="predictions").inc(len(predictions))
        if outcomes:
            windows.apply_many("outcome", self.settings.topic("outcomes"), outcomes)
            self.telemetry.events.labels(topic="outcomes").inc(sum(len(r) for _, r in outcomes))
        if windows.late_events > late_before:
            self.telemetry.late_events.inc(windows.late_events - late_before)
        await self._detect(partition, predictions, outcomes)
        if len(predictions):
            self.telemetry.observe_latencies(predictions.numbers("latency_ms"))

    async def _checkpoint(self, stream: StreamT, partition: int, *, idle: bool = False) -> None:
        """Apply what was collected, write the partition's changed state, send closed
        windows, then acknowledge.

        Runs while an event of ``partition`` is current, so the table writes go
        to that partition of the changelogs. The drift detectors' state is
        written every ``drift_checkpoint_interval_s``, and when the partition
        goes ``idle``.
        """
        # the agent and the idle timer both checkpoint; their sends await, so one at a time
        async with self.checkpointing[partition]:
            await self._checkpoint_now(stream, partition, idle=idle)

    async def _checkpoint_now(self, stream: StreamT, partition: int, *, idle: bool) -> None:
        await self._apply(partition)
        if partition in self.drift_dirty and (
            idle
            or time.monotonic() - self.drift_saved_at.get(partition, 0.0)
            >= self.settings.drift_checkpoint_interval_s
        ):
            self._save_drift(partition)
        windows = self.partitions.get(partition)
        if windows is not None:
            now = time.monotonic()
            due = self.rereport_due[partition]
            sent: set[str] = set()
            for key in windows.closable():
                window = windows.mark_reported(key)
                await self._send_partial(
                    partition, key, window.metrics, window.revision, final=True
                )
                sent.add(key)
            for key in windows.removable():
                window = windows.close(key)
                self.windows_table.pop(f"{partition}#{key}", None)
                if due.pop(key, None) is not None:
                    await self._send_partial(
                        partition, key, window.metrics, window.revision, final=True
                    )
            interval = self.settings.rereport_interval_s
            for key, state in windows.take_dirty().items():
                self.windows_table[f"{partition}#{key}"] = state
                if windows.windows[key].reported and key not in sent and key not in due:
                    # a late outcome changed a reported window: report it again, once
                    # for all the outcomes of the next rereport_interval_s
                    due[key] = now + interval
            for key in [k for k, when in due.items() if when <= now]:
                del due[key]
                window = windows.windows[key]
                await self._send_partial(
                    partition, key, window.metrics, window.revision, final=True
                )
        join = self.joins.get(partition)
        if join is not None:
            join.advance(join.watermark_ms)
            horizon = join.watermark_ms - join.ttl_ms
            records = self.join_records[partition]
            for offset in [k for k, newest in records.items() if newest < horizon]:
                del records[offset]
            start = min(records) if records else self.join_read_to.get(partition)
            if start is not None and self.join_from_table.get(str(partition)) != start:
                self.join_from_table[str(partition)] = start
        # no flush here: faust flushes the producer before it commits offsets, so what was
        # sent (partials, outcomes, dead letters, changelog) is out before the records count
        # as read, and the agent need not wait for it
        for pending in self.pending.pop(partition, []):
            await stream.ack(pending)
        self.last_checkpoint[partition] = time.monotonic()

    async def _send_partial(
        self, partition: int, key: str, metrics: WindowMetrics, revision: int, *, final: bool
    ) -> None:
        body = {
            "window": key,
            "partition": partition,
            "revision": revision,
            "final": final,
            "metrics": metrics.to_state(),
        }
        await self.partials.send(key=key.encode(), value=json.dumps(body).encode())

    async def _checkpoint_quiet(self) -> None:
        """Checkpoint partitions that got no records for ``checkpoint_interval_s``.

        A partition is otherwise checkpointed when its next records come: when
        they stop, the last ones (fewer than ``apply_min_events``) would wait
        for ``idle_close_s`` before they are counted and acknowledged.
        """
        stream = self.monitor_stream
        if stream is None:
            return
        now = time.monotonic()
        interval = self.settings.checkpoint_interval_s
        for partition in [p for p, u in self.unapplied.items() if u.events]:
            # the end of a burst: count it now rather than at the checkpoint, up to a
            # second later (the windows and detectors take it; the changelog waits)
            if (
                partition not in self.processing
                and now - self.last_seen.get(partition, now) >= APPLY_QUIET_S
            ):
                async with self.checkpointing[partition]:
                    await self._apply(partition)
        for partition, pending in list(self.pending.items()):
            if (
                not pending
                or partition in self.processing
                or now - self.last_seen.get(partition, now) < interval
                or now - self.last_checkpoint.get(partition, 0.0) < interval
            ):
                continue
            with _as_current(pending[-1]):
                await self._checkpoint(stream, partition)

    async def _publish_idle_windows(self) -> None:
        """Checkpoint partitions that went quiet and send their open windows.

        Without this the last records of a stream would stay unacknowledged
        and its last windows unreported until more traffic came.
        """
        now = time.monotonic()
        for partition, seen in list(self.last_seen.items()):
            if (
                partition in self.idle_published
                or partition in self.processing
                or now - seen < self.settings.idle_close_s
            ):
                continue
            windows = self.partitions.get(partition)
            if windows is None:
                continue
            pending = self.pending.get(partition)
            if pending and self.monitor_stream is not None:
                with _as_current(pending[-1]):
                    await self._checkpoint(self.monitor_stream, partition, idle=True)
            elif partition in self.drift_dirty and partition in self.last_event:
                # everything was acknowledged, but the detectors moved since their last write
                with _as_current(self.last_event[partition]):
                    async with self.checkpointing[partition]:
                        self._save_drift(partition)
            for key, window in list(windows.windows.items()):
                await self._send_partial(
                    partition, key, window.metrics, window.revision, final=False
                )
            self.rereport_due.pop(partition, None)  # all of them went out just now
            self.idle_published.add(partition)

    # ------------------------------------------------------------------ join

    async def _join_partition(self, partition: int) -> PendingPredictions:
        pending = self.joins.get(partition)
        if pending is None:
            s = self.settings
            pending = self.joins[partition] = PendingPredictions(
                s.join_ttl_s, max_pending=s.max_pending_predictions
            )
            self.join_records[partition] = {}
            start = self.join_from_table.get(str(partition))
            if isinstance(start, int):
                await self._reread_predictions(partition, start, pending)
        return pending

    async def _reread_predictions(
        self, partition: int, start: int, pending: PendingPredictions
    ) -> None:
        """Put the predictions of ``partition`` from offset ``start`` back in its join.

        Reads up to the end of the partition as it is now: records past the
        committed offset come again through the agent, and adding a prediction
        twice leaves the join as it was. Gives up after
        :data:`JOIN_RECOVERY_TIMEOUT_S` (the agent waits meanwhile): feedback for
        what was not read is then dead-lettered as unknown.
        """
        tp = TopicPartition(self.settings.topic("predictions"), partition)
        progress = {"events": 0, "offset": start}
        try:
            await asyncio.wait_for(
                self._read_predictions(tp, start, pending, progress), JOIN_RECOVERY_TIMEOUT_S
            )
        except TimeoutError:
            log.warning("%s[%s]: gave up reading the predictions waiting for feedback after "
                        "%s s, at offset %s (from %s)", tp.topic, partition,
                        JOIN_RECOVERY_TIMEOUT_S, progress["offset"], start)  # fmt: skip
        log.info("%s[%s]: %s predictions waiting for feedback read again from offset %s",
                 tp.topic, partition, progress["events"], start)  # fmt: skip

    async def _read_predictions(
        self, tp: TopicPartition, start: int, pending: PendingPredictions, progress: dict[str, int]
    ) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"{self.settings.worker_app_id}-join-recovery",
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        records = self.join_records[tp.partition]
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            earliest = (await consumer.beginning_offsets([tp]))[tp]
            if earliest > start:
                log.warning("%s[%s]: predictions from offset %s on are gone (retention); the "
                            "feedback join starts from %s", tp.topic, tp.partition, start,
                            earliest)  # fmt: skip
                start = earliest
            if start >= end:
                return
            consumer.seek(tp, start)
            while progress["offset"] < end:
                fetched = await consumer.getmany(tp, timeout_ms=1000)
                if not fetched.get(tp) and await consumer.position(tp) >= end:
                    break  # the last offsets held no record (a gap)
                for message in fetched.get(tp, []):
                    if message.offset >= end:
                        progress["offset"] = end
                        break
                    frame = decode_prediction_frame(
                        message.value, message.offset, max_bytes=self.settings.max_record_bytes
                    ).frame
                    if len(frame):
                        pending.add_frame(frame)
                        records[message.offset] = int(frame.time_ms.max())
                        progress["events"] += len(frame)
                    progress["offset"] = message.offset + 1
        finally:
            await consumer.stop()

    async def _send_outcome(self, outcome: OutcomeEvent, shadow: OutcomeEvent | None) -> None:
        """Send the outcome of the answered prediction, and of the shadow one if any."""
        for item in (outcome, shadow):
            if item is not None:
                await self.outcomes_topic.send(
                    key=item.data.request_id.encode(), value=encode_event(item)
                )
                self.telemetry.outcomes.inc()

    async def _retry_held(self, partition: int, arrived: set[str]) -> None:
        """Join held feedback whose prediction has just ``arrived`` (by request id)."""
        held = self.held_feedback.get(partition)
        if not held:
            return
        pending = self.joins[partition]
        still: list[tuple[FeedbackEvent, EventT, float]] = []
        for item, event, since in held:
            if item.data.request_id not in arrived:
                still.append((item, event, since))
                continue
            result = pending.match(item)
            if isinstance(result, OutcomeEvent):
                await self._send_outcome(result, pending.match_shadow(item))
            else:
                still.append((item, event, since))
        self.held_feedback[partition] = still
        self.pending[partition].extend(_released(held, still))

    async def _release_held_feedback(self) -> None:
        """Dead-letter feedback whose prediction did not come within the grace period."""
        now = time.monotonic()
        grace = self.settings.feedback_grace_s
        for partition in list(self.held_feedback):
            held = self.held_feedback[partition]
            pending = self.joins.get(partition)
            if not held or pending is None:
                continue
            still: list[tuple[FeedbackEvent, EventT, float]] = []
            for item, event, since in held:
                if now - since < grace:
                    # its prediction joins it as soon as it arrives (_retry_held)
                    still.append((item, event, since))
                    continue
                result = pending.match(item)
                if isinstance(result, OutcomeEvent):
                    await self._send_outcome(result, pending.match_shadow(item))
                else:
                    await self._dead_letter(
                        event, "join", ContractError(f"{result.reason}: {result.detail}")
                    )
                    self.telemetry.unmatched_feedback.labels(reason=result.reason).inc()
            self.held_feedback[partition] = still
            released = _released(held, still)
            if released and self.monitor_stream is not None:
                for event in released:
                    await self.monitor_stream.ack(event)

    # ------------------------------------------------------------------ drift and alerts

    def _drift_monitor(self, partition: int) -> DriftMonitor:
        monitor = self.drift_monitors.get(partition)
        if monitor is None:
            # The budget is a rate per event: each partition sees its share of the traffic, so
            # detectors running at the model's rate in every partition keep the model within it.
            fresh = DriftMonitor.from_settings(self.settings, partitions=1, seed=partition)
            monitor = self._restored_drift_monitor(partition, fresh.settings) or fresh
            self.drift_monitors[partition] = monitor
            self.drift_saved_at[partition] = time.monotonic()
        return monitor

    def _restored_drift_monitor(
        self, partition: int, settings: dict[str, Any]
    ) -> DriftMonitor | None:
        """The partition's detectors as last checkpointed, or ``None`` to start afresh.

        Events between that checkpoint and the last committed offset are not
        seen again by the detectors (they are not replayed): at most
        ``drift_checkpoint_interval_s`` of traffic, which can only delay a
        detection. Detectors checkpointed with other settings start afresh.
        """
        prefix = f"{partition}#"
        parts: dict[str, Any] = {}
        learned: dict[tuple[str, str], ReferenceProfile] = {}
        versions: list[tuple[str, str]] = []  # the (model, version) groups of the parts
        for key, value in list(self.drift_table.items()):
            if value is None or not key.startswith(prefix):
                continue
            name = key[len(prefix) :]
            try:
                kind, *rest = json.loads(name)
                body = json.loads(value)
                if kind == "reference":
                    learned[(rest[0], rest[1])] = ReferenceProfile.from_dict(body)
                else:
                    parts[name] = body
                    if kind == "predictions":
                        versions.append((rest[0], rest[1]))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                log.warning("partition %s: drift state %s unreadable: %s", partition, name, exc)
        head = parts.get(json.dumps(["monitor"]))
        if head is None:
            return None
        if head.get("settings") != settings:
            log.warning(
                "partition %s: drift detectors were checkpointed with other settings; "
                "they start afresh",
                partition,
            )
            return None
        given: dict[tuple[str, str], ReferenceProfile] = {}
        digests: dict[tuple[str, str], str | None] = {}
        for key in versions:
            digests[key], profile = self._stored_reference(*key)
            if profile is not None:
                given[key] = profile
        try:
            monitor = DriftMonitor.from_parts(parts, given=given, learned=learned)
        except (DriftMonitorError, ValueError, KeyError, TypeError) as exc:
            log.warning("partition %s: drift state not restored (%s); afresh", partition, exc)
            return None
        # its stored references are applied already, and its learned ones are in the table
        self.reference_digests.update(digests)
        self.reference_applied[partition].update(digests)
        self.drift_references_written[partition] = monitor.learned_references()
        self.telemetry.drift_checkpoints.labels(action="restored").inc()
        log.info("partition %s: drift detectors restored (%s groups)", partition, len(parts) - 1)
        return monitor

    def _save_drift(self, partition: int) -> None:
        """Write the partition's drift detectors to the changelog (an event of it is current)."""
        monitor = self.drift_monitors.get(partition)
        self.drift_dirty.discard(partition)
        if monitor is None:
            return
        prefix = f"{partition}#"
        written = self.drift_references_written[partition]
        for key, profile in monitor.learned_references().items():
            if written.get(key) is not profile:
                self._write_drift(prefix + json.dumps(["reference", *key]), profile.to_dict())
                written[key] = profile
        for name, part in monitor.state_parts().items():
            self._write_drift(prefix + name, part)
        self.drift_saved_at[partition] = time.monotonic()
        self.telemetry.drift_checkpoints.labels(action="saved").inc()

    def _write_drift(self, key: str, body: Any) -> None:
        value = json.dumps(body).encode()
        if len(value) > MAX_STATE_BYTES:
            if key not in self.drift_oversized:
                self.drift_oversized.add(key)
                log.warning(
                    "drift state %s is %s bytes, over the %s a changelog record may hold: "
                    "not checkpointed (its detectors start afresh after a restart)",
                    key,
                    len(value),
                    MAX_STATE_BYTES,
                )
            # an older copy must not be restored next to newer parts
            self.drift_table.pop(key, None)
            return
        self.drift_table[key] = value

    async def _detect(
        self,
        partition: int,
        predictions: PredictionFrame,
        outcomes: list[tuple[int, list[dict[str, Any]]]],
    ) -> None:
        """Run the partition's drift detectors; what fires goes to the alert stage."""
        monitor = self._drift_monitor(partition)
        self._apply_new_references(partition, monitor, predictions)
        detections: list[Detection] = []
        if len(predictions):
            detections += monitor.observe_frame(predictions)
        if outcomes:
            detections += monitor.observe_outcomes([r for _, rows in outcomes for r in rows])
        self.drift_dirty.add(partition)
        for detection in detections:
            self.telemetry.detections.labels(kind=detection.kind).inc()
            await self.detections_topic.send(
                key=detection.model.encode(),
                value=json.dumps(detection_to_json(detection)).encode(),
            )

    def _stored_reference(self, model: str, version: str) -> tuple[str | None, Any]:
        """The digest and profile of a stored reference; (None, None) when there is none."""
        try:
            raw = self.references.get_raw(model, version)
        except redis.RedisError as exc:
            if not self.reference_warned:
                log.warning("cannot read drift references from Redis (%s): using first events", exc)
                self.reference_warned = True
            return None, None
        if raw is None:
            return None, None
        digest = hashlib.sha1(raw).hexdigest()
        return digest, self.references.parse(raw)

    def _apply_new_references(
        self,
        partition: int,
        monitor: DriftMonitor,
        predictions: PredictionFrame,
    ) -> None:
        """A model version this partition sees for the first time gets its stored reference."""
        applied = self.reference_applied[partition]
        seen = set(zip(predictions.models, predictions.versions, strict=True))
        for key in seen - applied.keys():
            if key not in self.reference_digests:
                self.reference_digests[key], profile = self._stored_reference(*key)
            else:
                profile = self._stored_reference(*key)[1] if self.reference_digests[key] else None
            applied[key] = self.reference_digests[key]
            if profile is not None:
                monitor.set_reference(*key, profile)

    async def _refresh_references(self) -> None:
        """Pick up references set (or replaced) while the worker runs."""
        for key, known in list(self.reference_digests.items()):
            digest, profile = self._stored_reference(*key)
            if digest is None or digest == known:
                continue
            self.reference_digests[key] = digest
            self.drift_dirty.update(self.drift_monitors)
            for partition, monitor in self.drift_monitors.items():
                monitor.set_reference(*key, profile)
                self.reference_applied[partition][key] = digest
            log.info("drift reference of %s version %s replaced", *key)

    async def _promotion_agent(self, stream: StreamT) -> None:
        async for event in stream.events():
            # the SDK sends CloudEvents in batched mode: a record may hold several; what is
            # not a valid model event is not ours to judge (the topic has its own producers)
            for item in decode_record(event.value).events:
                if isinstance(item, ModelEventEvent):
                    await self._on_model_event(item.data)

    async def _on_model_event(self, data: ModelEventData) -> None:
        if data.action == "rejected":
            # the drift that asked for it is still unanswered: its alerts may ask again
            for slot in self.stages.values():
                slot.stage.on_rejected(data.model)
                slot.dirty = True
            log.info("retrained %s version %s was rejected", data.model, data.version)
            return
        if data.action != "promoted":
            return
        model, version = data.model, str(data.version)
        digest, profile = self._stored_reference(model, version)
        self.reference_digests[(model, version)] = digest
        self.drift_dirty.update(self.drift_monitors)
        for partition, monitor in self.drift_monitors.items():
            monitor.on_promoted(model, version)
            if profile is not None:
                monitor.set_reference(model, version, profile)
            self.reference_applied[partition][(model, version)] = digest
        log.info("drift detectors re-anchored on %s version %s", model, version)

    async def _drift_alert_agent(self, stream: StreamT) -> None:
        async for event in stream.events():
            slot = self._stage("detections", event)
            try:
                detection = detection_from_json(json.loads(event.value))
            except (ValueError, KeyError, TypeError) as exc:
                await self._dead_letter(event, "alerts", exc)
                continue
            await self._publish_alerts(slot.stage.on_detection(detection))
            self._save_stage(slot, changed=True)

    async def _metric_alert_agent(self, stream: StreamT) -> None:
        async for event in stream.events():
            slot = self._stage("metrics", event)
            try:
                window = MetricsEvent.model_validate_json(event.value).data
            except ValueError as exc:
                await self._dead_letter(event, "alerts", exc)
                continue
            await self._publish_alerts(slot.stage.on_metrics(window))
            self._save_stage(slot, changed=True)

    def _stage(self, name: str, event: EventT) -> _StageSlot:
        """The alert stage of topic ``name``, resumed from its changelog on its first event."""
        slot = self.stages[name]
        slot.event = event
        if not slot.restored:
            slot.restored = True
            state = self.alert_stage_table.get(name)
            if state is not None:
                try:
                    slot.stage = AlertStage.from_state(self.policy, state)
                    log.info("alert stage of %s resumed from its changelog", name)
                except AlertStageStateError as exc:
                    log.warning("alert stage of %s not resumed (%s): afresh", name, exc)
        return slot

    def _save_stage(self, slot: _StageSlot, *, changed: bool, force: bool = False) -> None:
        """Write an alert stage (under its topic's last event), at most once a second unless
        ``force``: what its timers sent must not be sent again by a worker that resumes it."""
        slot.dirty |= changed
        if not slot.dirty or slot.event is None:
            return
        if not force and time.monotonic() - slot.saved_at < ALERT_STAGE_CHECKPOINT_S:
            return
        with _as_current(slot.event):
            self.alert_stage_table[slot.name] = slot.stage.to_state()
        slot.dirty = False
        slot.saved_at = time.monotonic()

    async def _alert_timers(self) -> None:
        for slot in list(self.stages.values()):
            out = slot.stage.tick()
            await self._publish_alerts(out)
            sent = bool(out.alerts or out.requests)
            self._save_stage(slot, changed=sent, force=sent)

    async def _publish_alerts(self, out: StageOutput) -> None:
        source = f"urn:driftloop:worker:{self.settings.worker_app_id}"
        for alert in out.alerts:
            event = AlertEvent.new(
                alert,
                id=f"{alert.alert_id}:{alert.status}:{alert.detected_at.isoformat()}",
                time=alert.detected_at,
                source=source,
            )
            await self.alerts_topic.send(key=alert.model.encode(), value=encode_event(event))
            self.telemetry.alerts.labels(kind=alert.kind, status=alert.status).inc()
            log.info(
                "alert %s %s %s %s: %s",
                alert.status,
                alert.model,
                alert.kind,
                alert.signal,
                alert.summary or "",
            )
        for request in out.requests:
            event = RetrainRequestEvent.new(request, id=request.request_id, source=source)
            await self.retrain_topic.send(key=request.model.encode(), value=encode_event(event))
            log.info(
                "retrain request %s for %s: %s", request.request_id, request.model, request.reason
            )

    # ------------------------------------------------------------------ stage 2

    async def _merge(self, stream: StreamT) -> None:
        async for event in stream.noack().events():
            try:
                partial = json.loads(event.value)
                key = partial["window"]
                source = str(partial["partition"])
            except (ValueError, KeyError, TypeError) as exc:
                await self._dead_letter(event, "merge", exc)
                await stream.ack(event)
                continue
            previous = self.merged_table.get(f"{key}#{source}")
            if previous is None or partial["revision"] >= previous["revision"]:
                self.merged_table[f"{key}#{source}"] = {
                    "revision": partial["revision"],
                    "metrics": partial["metrics"],
                }
                self.merged_sources[key].add(source)
                self.to_publish.add(key)
            self._forget_old_windows(event.message.partition, key)
            await stream.ack(event)

    def _forget_old_windows(self, partition: int, key: str) -> None:
        """Drop merged windows long past, of this partition only.

        Runs while an event of ``partition`` is current: faust writes a delete to
        the changelog partition of the current event, so only keys that live in
        that partition can be deleted here.
        """
        end = WindowId.parse(key).end_ms
        keys = self.merged_keys[partition]
        keys[key] = end
        self.merged_watermark_ms = max(self.merged_watermark_ms, end)
        s = self.settings
        # kept while a partial may still come: late outcomes re-report windows up to
        # outcome_lateness_s after they closed
        keep_ms = int(
            (3 * max(s.window_sizes_s) + s.allowed_lateness_s + s.outcome_lateness_s + 600) * 1000
        )
        for old in [k for k, k_end in keys.items() if k_end < self.merged_watermark_ms - keep_ms]:
            del keys[old]
            for source in self.merged_sources.pop(old, ()):
                self.merged_table.pop(f"{old}#{source}", None)
            self.merged_table.pop(old, None)  # (one entry for all partitions, as written before)
            self.published_digest.pop(old, None)

    async def _publish_metrics(self) -> None:
        now = time.monotonic()
        if now - self.last_rescan >= 5.0:
            # Windows merged by a worker that died before publishing them are in the
            # recovered table but in no one's to_publish: publish what this process has
            # not published (the event id is the content's digest, so a repeat is harmless).
            self.last_rescan = now
            for stored in list(self.merged_table.keys()):
                key, sep, source = stored.rpartition("#")
                if sep and source.isdigit():
                    self.merged_sources[key].add(source)
                else:
                    key = stored
                if key not in self.published_digest:
                    self.to_publish.add(key)
        for key in list(self.to_publish):
            self.to_publish.discard(key)
            partials = self._partials_of(key)
            if not partials:
                continue
            digest = hashlib.sha1(
                json.dumps({p: v["revision"] for p, v in sorted(partials.items())}).encode()
            ).hexdigest()[:16]
            if self.published_digest.get(key) == digest:
                continue
            merged = WindowMetrics(max_categories=self.settings.max_categories)
            for part in partials.values():
                merged.merge(WindowMetrics.from_state(part["metrics"]))
            wid = WindowId.parse(key)
            values = merged.metrics(wid.size_s)
            event = MetricsEvent.new(
                {
                    "model": wid.model,
                    "model_version": wid.version,
                    "segment": parse_segment(wid.segment),
                    "window_start": datetime.fromtimestamp(wid.start_ms / 1000, UTC),
                    "window_end": datetime.fromtimestamp(wid.end_ms / 1000, UTC),
                    "count": int(values.get("count") or 0),
                    "metrics": values,
                },
                id=f"metrics:{key}:{digest}",
                source=f"urn:driftloop:worker:{self.settings.worker_app_id}",
            )
            await self.metrics_topic.send(key=wid.model.encode(), value=encode_event(event))
            self.published_digest[key] = digest
            self.telemetry.record_window(wid, values)
            if wid.size_s == min(self.settings.window_sizes_s):
                self._update_rolling(wid, merged)

    def _partials_of(self, key: str) -> dict[str, dict[str, Any]]:
        """The latest partial of window ``key`` from each worker partition: partition -> entry."""
        partials: dict[str, dict[str, Any]] = {}
        written_before = self.merged_table.get(key)  # one entry for all partitions
        if written_before:
            partials.update(written_before.get("partials", {}))
        for source in self.merged_sources.get(key, ()):
            entry = self.merged_table.get(f"{key}#{source}")
            if entry:
                partials[source] = entry
        return partials

    def _update_rolling(self, wid: WindowId, pane: WindowMetrics) -> None:
        """Rolling values over ``rolling_window_s``, from the latest version of every pane."""
        span_s = self.settings.rolling_window_s
        panes = self.rolling_panes[(wid.model, wid.version, wid.segment)]
        panes[wid.start_ms] = pane  # a revised window replaces its earlier version
        horizon = max(panes) + wid.size_s * 1000 - span_s * 1000
        for start in [start for start in panes if start < horizon]:
            del panes[start]
        rolling = PanedRollingWindow(pane_s=wid.size_s, panes=max(1, span_s // wid.size_s))
        for start in sorted(panes):
            rolling.add(start, panes[start])
        self.telemetry.record_rolling(
            wid.model, wid.version, wid.segment, span_s, rolling.metrics()
        )

    def internal_topics(self) -> list[InternalTopic]:
        """The topics faust creates for this app on start: internal sources and changelogs.

        ``driftloop worker`` creates them itself before faust starts (see
        :func:`streams.admin.create_internal_topics`): a topic faust creates
        while it subscribes can be missing from the broker's metadata when the
        group is assigned, and faust then never reads it.
        """
        topics = [self.partials, self.detections_topic] + [
            table.changelog_topic
            for table in (self.join_from_table, self.windows_table, self.merged_table)
        ]
        found = []
        for topic in topics:
            configs = {str(k): str(v) for k, v in (topic.config or {}).items()}
            policy = [flag for flag, on in (("compact", topic.compacting),
                                            ("delete", topic.deleting)) if on]  # fmt: skip
            if policy:
                configs["cleanup.policy"] = ",".join(policy)
            if topic.retention:
                configs["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
            for name in topic.topics:
                found.append(InternalTopic(name, topic.partitions or 4, configs))
        return found

    # ------------------------------------------------------------------ web

    def _metrics_page(self) -> Any:
        async def page(view: Any, request: Any) -> Any:
            body, content_type = self.telemetry.exposition()
            return view.bytes(body, content_type=content_type)

        return page

    def _health_page(self) -> Any:
        async def page(view: Any, request: Any) -> Any:
            return view.json({"status": "ok", "partitions": sorted(self.partitions)})

        return page


def _log_tasks() -> None:
    """Log where every asyncio task of the running loop waits (a worker's SIGUSR1).

    The chain of awaits is followed down from each task's coroutine, through
    async generators (an agent's stream), to the innermost frame.
    """
    lines = []
    for task in asyncio.all_tasks():
        chain = []
        awaiting: Any = task.get_coro()
        for _ in range(40):
            if awaiting is None:
                break
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
            frame = frame or getattr(awaiting, "gi_frame", None)
            if frame is not None:
                name = frame.f_code.co_filename.rsplit("site-packages/", 1)[-1]
                chain.append(f"    {name}:{frame.f_lineno} {frame.f_code.co_name}")
            else:
                chain.append(f"    {awaiting!r}"[:200])
            nxt = getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
            nxt = nxt or getattr(awaiting, "gi_yieldfrom", None)
            if nxt is None and type(awaiting).__name__ == "async_generator_asend":
                # no attribute leads from an asend to its generator: the collector knows
                generators = [g for g in gc.get_referents(awaiting) if inspect.isasyncgen(g)]
                nxt = generators[0] if generators else None
            awaiting = nxt
        lines.append(f"{task.get_name()}:\n" + "\n".join(chain))
    log.warning("SIGUSR1: %s asyncio tasks\n%s", len(lines), "\n".join(lines))


def create_app(settings: Settings) -> MonitorApp:
    """Build the monitor app for these settings (nothing is started)."""
    return MonitorApp(settings)
