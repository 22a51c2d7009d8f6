"""``driftloop demo``: the end-to-end job ``make demo`` runs.

For now a smoke run of the foundation: the topics are created, a few hundred
synthetic voice-search predictions and their feedback are published through
the SDK, read back from the broker, validated and counted. Later stages (the
monitor, alerts, retraining, rollout) join the story as they are built.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from producers.publisher import Publisher
from producers.simulator import VoiceSearchSimulator
from streams.admin import create_topics
from streams.reader import EventReader
from streams.settings import Settings

__all__ = ["SmokeResult", "run_smoke"]


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
    console.rule("[bold]driftloop demo[/] — foundation smoke run")
    console.print(f"Kafka at {settings.kafka_bootstrap_servers}, topics {settings.topic_prefix}*")
    report = create_topics(settings)
    console.print(
        f"topics ready ({len(report.created)} created, "
        f"{len(report.topics) - len(report.created)} already there)"
    )

    simulator = VoiceSearchSimulator(seed=seed, model_version="1")
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
