"""``driftloop demo``: the end-to-end job ``make demo`` runs.

Two acts so far. The foundation: the topics are created, a few hundred
synthetic voice-search predictions and their feedback are published through
the SDK, read back from the broker, validated and counted. The monitor: a
``driftloop worker`` is started, a minute of voice-search traffic and its
feedback are published, and the window metrics the worker publishes are shown
and checked against what was sent. Later stages (alerts, retraining, rollout)
join the story as they are built.
"""

from __future__ import annotations

import socket
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from producers.publisher import Publisher
from producers.simulator import VoiceSearchSimulator
from streams.admin import create_topics
from streams.events import MetricsEvent
from streams.reader import EventReader
from streams.settings import Settings
from streams.testing import WorkerProcess

__all__ = ["MonitorResult", "SmokeResult", "run_monitor", "run_smoke"]


@dataclass
class SmokeResult:
    """What the smoke run published and what it found on the topics."""

    run_id: str
    published: Counter[str]
    read_back: Counter[str]
    invalid: int
    redo_rate: float
    typing_rate: float
    publish_s: float
    read_s: float

    @property
    def ok(self) -> bool:
        """Everything published was read back, valid, exactly once."""
        return self.published == self.read_back and self.invalid == 0


def run_smoke(
    settings: Settings, *, requests: int = 500, seed: int = 0, console: Console
) -> SmokeResult:
    """Publish ``requests`` predictions and their feedback, then read them back and count."""
    run_id = uuid.uuid4().hex[:8]
    source = f"urn:driftloop:demo:{run_id}"
    console.rule("[bold]driftloop demo[/] — the wire: publish and read back")
    console.print(f"Kafka at {settings.kafka_bootstrap_servers}, topics {settings.topic_prefix}*")
    report = create_topics(settings)
    console.print(
        f"topics ready ({len(report.created)} created, "
        f"{len(report.topics) - len(report.created)} already there)"
    )

    # the demo's event time moves forward from a few minutes ago: act 2 follows act 1
    simulator = VoiceSearchSimulator(
        seed=seed, model_version="1", start=datetime.now(UTC) - timedelta(minutes=5)
    )
    published: Counter[str] = Counter()
    t0 = time.perf_counter()
    with Publisher(settings, source=source) as publisher:
        for request in simulator.requests(requests):
            publisher.publish("prediction", request.prediction, time=request.predicted_at)
            published["prediction"] += 1
            publisher.publish("feedback", request.feedback, time=request.feedback_at)
            published["feedback"] += 1
    publish_s = time.perf_counter() - t0
    console.print(
        f"published {published['prediction']} predictions and {published['feedback']} "
        f"feedback events in {publish_s:.2f} s (acks=all)"
    )

    read_back: Counter[str] = Counter()
    seen: set[str] = set()
    invalid = redo = typing = 0
    t1 = time.perf_counter()
    with EventReader(settings, ["predictions", "feedback"]) as reader:
        for item in reader.items(until_idle_s=3.0, max_wait_s=60.0):
            if item.event is None:
                invalid += 1
                continue
            if item.event.source != source or item.event.id in seen:
                continue  # earlier runs' traffic on the same topics
            seen.add(item.event.id)
            kind = item.event.type.split(".")[1]
            read_back[kind] += 1
            if kind == "feedback":
                redo += bool(item.event.data.redo_search)
                typing += bool(item.event.data.switched_to_typing)
    read_s = time.perf_counter() - t1
    feedback = max(read_back["feedback"], 1)
    result = SmokeResult(
        run_id, published, read_back, invalid, redo / feedback, typing / feedback, publish_s, read_s
    )

    table = Table("topic", "published", "read back", title=f"run {run_id}")
    for kind, topic in (("prediction", "predictions"), ("feedback", "feedback")):
        table.add_row(settings.topic(topic), str(published[kind]), str(read_back[kind]))
    console.print(table)
    console.print(
        f"redo-search rate {result.redo_rate:.1%}, switch-to-typing rate {result.typing_rate:.1%}; "
        f"{invalid} invalid records on the topics"
    )
    if result.ok:
        console.print("[green]✔ every event published was read back from Kafka and validated[/]")
    else:
        console.print("[red]✘ what was read back does not match what was published[/]")
    return result


@dataclass
class MonitorResult:
    """What the monitor stage of the demo published and what the worker reported."""

    published: int
    counted: int
    windows: int
    outcomes: int

    @property
    def ok(self) -> bool:
        """Every prediction was counted in exactly one 10-second window."""
        return self.published == self.counted


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _weighted(events: list[MetricsEvent], name: str, weight: str = "count") -> float | None:
    pairs = [
        (e.data.metrics.get(name), e.data.metrics.get(weight) or 0)
        for e in events
        if e.data.metrics.get(name) is not None
    ]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def run_monitor(
    settings: Settings, *, requests: int = 3000, seed: int = 1, console: Console
) -> MonitorResult:
    """Start a worker, send voice-search traffic with feedback, show the window metrics."""
    console.rule("[bold]streaming monitor[/] — driftloop worker")
    log_path = Path(tempfile.mkstemp(prefix="driftloop-demo-worker-", suffix=".log")[1])
    worker = WorkerProcess(
        settings.model_copy(
            update={"web_port": _free_port(), "window_sizes_s": [10], "idle_close_s": 2.0}
        ),
        log_path,
    )
    try:
        worker.start()
        console.print(f"worker up: Prometheus metrics on {worker.url}/metrics")

        # event time starts on a window boundary after act 1's traffic, a little in the past
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
        start = now - timedelta(seconds=now.second % 10)
        simulator = VoiceSearchSimulator(
            seed=seed, model_version="1", start=start, requests_per_second=100
        )
        traffic = list(simulator.requests(requests))
        with Publisher(settings, source="urn:driftloop:demo:monitor") as publisher:
            for r in traffic:
                publisher.publish("prediction", r.prediction, time=r.predicted_at)
            for r in traffic:
                publisher.publish("feedback", r.feedback, time=r.feedback_at)
        span = (traffic[-1].predicted_at - traffic[0].predicted_at).total_seconds()
        console.print(
            f"published {len(traffic)} predictions over {span:.0f} s of event time, "
            "and the users' feedback"
        )

        latest: dict[tuple[datetime, str], MetricsEvent] = {}
        deadline = time.monotonic() + 90
        with EventReader(settings, ["metrics"], from_beginning=True) as reader:
            while time.monotonic() < deadline:
                for item in reader.items(until_idle_s=2, max_wait_s=5):
                    ev = item.event
                    if isinstance(ev, MetricsEvent) and ev.data.window_start >= start:
                        latest[(ev.data.window_start, str(ev.data.segment))] = ev
                if sum(e.data.count for e in latest.values()) >= len(traffic):
                    break
        by_window: dict[datetime, list[MetricsEvent]] = defaultdict(list)
        for (window_start, _), ev in sorted(latest.items()):
            by_window[window_start].append(ev)

        table = Table(
            "window",
            "preds",
            "qps",
            "p95 ms",
            "null",
            "loud dB",
            "redo",
            "accuracy",
            title="10 s windows from the metrics topic, all segments (UTC)",
        )

        def show(value: float | None, fmt: str) -> str:
            return "—" if value is None else format(value, fmt)

        for window_start, events in sorted(by_window.items()):
            p95s = [e.data.metrics.get("latency_p95_ms") for e in events]
            table.add_row(
                window_start.strftime("%H:%M:%S"),
                str(sum(e.data.count for e in events)),
                show(sum(e.data.metrics.get("qps") or 0 for e in events), ".0f"),
                show(max((p for p in p95s if p is not None), default=None), ".0f"),
                show(_weighted(events, "null_rate"), ".1%"),
                show(_weighted(events, "feature.loudness_db.mean"), ".1f"),
                show(_weighted(events, "redo_rate", "outcomes"), ".0%"),
                show(_weighted(events, "accuracy", "outcomes"), ".0%"),
            )
        console.print(table)
        counted = sum(e.data.count for e in latest.values())
        outcomes = sum(int(e.data.metrics.get("outcomes") or 0) for e in latest.values())
        result = MonitorResult(len(traffic), counted, len(by_window), outcomes)
        if result.ok:
            console.print(
                f"[green]✔ the worker counted all {counted} predictions in {len(by_window)} "
                f"windows and joined {outcomes} pieces of feedback to their predictions[/]"
            )
        else:
            console.print(
                f"[red]✘ the worker counted {counted} of {len(traffic)} predictions "
                f"(log: {worker.log_path})[/]"
            )
        return result
    finally:
        worker.stop()
