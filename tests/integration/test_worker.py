"""``driftloop worker`` as a real process on the real broker: metrics, join, dead letters.

One worker serves the whole module; each test uses its own model name so
that its windows are its own.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from producers.publisher import Publisher, partition_for_key
from producers.simulator import VoiceSearchSimulator
from streams.admin import create_topics
from streams.dead_letters import DeadLetter
from streams.reader import EventReader
from streams.settings import Settings
from streams.testing import WorkerProcess

KCAT = shutil.which("kcat") or "kcat"  # missing kcat fails the test with FileNotFoundError
WINDOW_S = 10
_HOURS = itertools.count()


@pytest.fixture
def t0() -> datetime:
    """A start of event time an hour after every earlier test's.

    The tests share one worker, whose partitions' watermarks only move forward:
    a test that went back in event time would find its windows closed.
    """
    return datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC) + timedelta(hours=next(_HOURS))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def worker(services, tmp_path_factory) -> Iterator[Settings]:
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        topic_prefix=f"wtest-{os.getpid()}-{random.randrange(1 << 30):x}.",
        web_port=_free_port(),
        window_sizes_s=[WINDOW_S],
        allowed_lateness_s=1,
        idle_close_s=2,
        checkpoint_interval_s=0.5,
        join_ttl_s=120,
        feedback_grace_s=2,
        max_record_bytes=500_000,  # under the broker's 1 MB, so "oversized" reaches the worker
        _env_file=None,
    )
    create_topics(settings)
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with WorkerProcess(settings, log) as worker:
        yield settings
        assert worker.running(), f"the worker died during the tests:\n{worker.log_tail()}"


def _latest_metrics(
    settings: Settings,
    model: str,
    want: int,
    timeout: float = 90,
    counted: Callable[[Any], float] = lambda ev: ev.data.count,
) -> dict:
    """Latest metrics event per window of ``model``, once ``counted`` of them sum to ``want``."""
    latest: dict[tuple, Any] = {}
    deadline = time.monotonic() + timeout
    with EventReader(settings, ["metrics"]) as reader:
        while time.monotonic() < deadline:
            for item in reader.items(until_idle_s=1, max_wait_s=5):
                ev = item.event
                if ev is None or ev.data.model != model:
                    continue
                seg = json.dumps(ev.data.segment, sort_keys=True)
                latest[(ev.data.window_start, seg)] = ev
            if sum(counted(e) for e in latest.values()) >= want:
                time.sleep(3)  # let revisions of the last windows land
                for item in reader.items(until_idle_s=2, max_wait_s=10):
                    ev = item.event
                    if ev is not None and ev.data.model == model:
                        seg = json.dumps(ev.data.segment, sort_keys=True)
                        latest[(ev.data.window_start, seg)] = ev
                return latest
    return latest


def test_window_metrics_match_a_pandas_oracle_through_the_broker(worker, t0):
    model = "oracle-model"
    sim = VoiceSearchSimulator(seed=5, model=model, start=t0, requests_per_second=50)
    requests = list(sim.requests(3000))
    with Publisher(worker) as pub:
        for r in requests:
            pub.publish("prediction", r.prediction, time=r.predicted_at)

    latest = _latest_metrics(worker, model, want=len(requests))
    rows = []
    for r in requests:
        p = r.prediction
        rows.append(
            {
                "window": r.predicted_at.replace(
                    second=r.predicted_at.second // WINDOW_S * WINDOW_S, microsecond=0
                ),
                "segment": json.dumps(p["segment"], sort_keys=True),
                "latency": p["latency_ms"],
                "null": p["prediction"]["label"] is None,
                "loudness": p["features"]["loudness_db"],
                "duration": p["features"]["clip_duration_s"],
            }
        )
    frame = pd.DataFrame(rows)
    expected = frame.groupby(["window", "segment"])
    assert len(latest) == expected.ngroups, "one metrics event per (window, segment)"
    assert sum(e.data.count for e in latest.values()) == len(requests)
    for (window, segment), group in expected:
        ev = latest[(window, segment)]
        m = ev.data.metrics
        assert ev.data.count == len(group)
        assert m["count"] == len(group)
        assert m["qps"] == pytest.approx(len(group) / WINDOW_S)
        assert m["null_rate"] == pytest.approx(group["null"].mean())
        assert m["latency_mean_ms"] == pytest.approx(group["latency"].mean(), rel=1e-9)
        assert m["feature.loudness_db.mean"] == pytest.approx(group["loudness"].mean(), rel=1e-9)
        assert m["feature.clip_duration_s.std"] == pytest.approx(
            group["duration"].std(ddof=1), rel=1e-6, abs=1e-12
        )
        assert m["feature.loudness_db.missing_rate"] == 0.0
        exact_p95 = float(np.quantile(group["latency"], 0.95, method="lower"))
        assert m["latency_p95_ms"] == pytest.approx(exact_p95, rel=0.02)


def test_late_feedback_reaches_reported_windows_while_traffic_goes_on(worker, t0):
    """Windows reported before their feedback came are reported again with it.

    Traffic of another model keeps every partition busy meanwhile, so no
    partition goes idle (which would publish all its windows anyway): the
    feedback can only reach the metrics through the throttled re-reports.
    """
    model = "late-model"
    sim = VoiceSearchSimulator(seed=11, model=model, start=t0, requests_per_second=20)
    requests = list(sim.requests(400))  # 20 s of event time: two windows
    keepalive_ids = [
        next(f"keep-{p}-{i}" for i in range(10_000) if partition_for_key(f"keep-{p}-{i}", 4) == p)
        for p in range(4)
    ]
    keep = VoiceSearchSimulator(seed=12, model="keepalive-model", start=t0)
    template = next(iter(keep.requests(1))).prediction
    stop = threading.Event()

    def keep_busy(pub: Publisher) -> None:
        # event time 60 s on: closes (reports) the late-model windows on every partition
        for tick in itertools.count():
            if stop.wait(0.3):
                return
            for p, request_id in enumerate(keepalive_ids):
                pub.publish(
                    "prediction",
                    {**template, "request_id": f"{request_id}-{tick}"},
                    time=t0 + timedelta(seconds=60, milliseconds=10 * tick),
                    id=f"keepalive-{p}-{tick}",
                )
            pub.flush()

    with Publisher(worker) as pub:
        for r in requests:
            pub.publish("prediction", r.prediction, time=r.predicted_at)
        pub.flush()
        busy = threading.Thread(target=keep_busy, args=(pub,), daemon=True)
        busy.start()
        try:
            time.sleep(4)  # the windows close and are reported without any feedback
            # feedback in its own time order, at twice real time: it trickles in for ~25 s
            began = time.monotonic()
            with Publisher(worker) as fb:
                for r in sorted(requests, key=lambda r: r.feedback_at):
                    ahead = (r.feedback_at - t0).total_seconds() / 2 - (time.monotonic() - began)
                    if ahead > 0:
                        fb.flush()
                        time.sleep(ahead)
                    fb.publish("feedback", r.feedback, time=r.feedback_at)
            latest = _latest_metrics(
                worker,
                model,
                want=len(requests),
                timeout=60,
                counted=lambda ev: ev.data.metrics.get("outcomes") or 0,
            )
        finally:
            stop.set()
            busy.join()

    # an outcome counts in the window of its feedback's time
    frame = pd.DataFrame(
        {
            "window": r.feedback_at.replace(
                second=r.feedback_at.second // WINDOW_S * WINDOW_S, microsecond=0
            ),
            "segment": json.dumps(r.prediction["segment"], sort_keys=True),
            "redo": r.feedback["redo_search"],
        }
        for r in requests
    )
    expected = frame.groupby(["window", "segment"])
    assert {key for key, ev in latest.items() if ev.data.metrics.get("outcomes")} == set(
        expected.groups
    )
    reported_before = {
        r.predicted_at.replace(second=r.predicted_at.second // WINDOW_S * WINDOW_S, microsecond=0)
        for r in requests
    }
    assert reported_before <= {window for window, _ in expected.groups}
    for (window, segment), group in expected:
        m = latest[(window, segment)].data.metrics
        assert m["outcomes"] == len(group), (window, segment)
        assert m["redo_rate"] == pytest.approx(group["redo"].mean())


def test_feedback_joins_into_outcomes_and_unmatched_feedback_is_dead_lettered(worker, t0):
    model = "join-model"
    sim = VoiceSearchSimulator(seed=8, model=model, start=t0, requests_per_second=20)
    requests = list(sim.requests(400))
    late_id = requests[0].prediction["request_id"]
    partition = partition_for_key(late_id, 4)
    with Publisher(worker) as pub:
        for r in requests:
            pub.publish("prediction", r.prediction, time=r.predicted_at)
        pub.flush()
        for r in requests:
            pub.publish("feedback", r.feedback, time=r.feedback_at)
        # a label for a request no prediction was made for
        pub.publish(
            "feedback",
            {"request_id": "never-predicted", "model": model, "label": "x"},
            time=t0 + timedelta(seconds=5),
            id="fb-unknown",
        )

    outcomes = _outcomes_of(worker, model, want=len(requests))
    assert len(outcomes) == len(requests), "every feedback met its prediction"

    # Only now move event time of the first request's partition far past the 120 s TTL
    # (earlier, the join, which reads both topics at once, could expire predictions
    # before their feedback was read) ...
    later = next(f"adv-{i}" for i in range(10_000) if partition_for_key(f"adv-{i}", 4) == partition)
    with Publisher(worker) as pub:
        pub.publish(
            "prediction",
            {**requests[1].prediction, "request_id": later},
            time=t0 + timedelta(seconds=600),
        )
        pub.flush()
        time.sleep(2)  # let the worker see the advance before the too-late label
        # ... so that this label comes after its prediction expired
        pub.publish(
            "feedback",
            {"request_id": late_id, "model": model, "label": "weather"},
            time=t0 + timedelta(seconds=601),
            id="fb-expired",
        )
    by_request = {o.data.request_id: o for o in outcomes.values()}
    for r in requests:
        o = by_request[r.prediction["request_id"]]
        fb = r.feedback
        assert o.data.predicted_label == r.prediction["prediction"]["label"]
        assert o.data.redo_search == fb["redo_search"]
        assert o.data.label == fb.get("label")
        if "label" in fb:
            assert o.data.correct == (fb["label"] == r.prediction["prediction"]["label"])
        expected_delay = (r.feedback_at - r.predicted_at).total_seconds() * 1000
        assert o.data.label_delay_ms == pytest.approx(expected_delay, abs=1)
        assert o.data.features == r.prediction["features"]

    deadline = time.monotonic() + 30
    reasons: dict[int, str] = {}
    while time.monotonic() < deadline and len(reasons) < 2:
        time.sleep(1)
        reasons = _dead_letter_reasons(worker, stage="join")
    assert any(msg.startswith("unknown:") and "never-predicted" in msg for msg in reasons.values())
    assert any(msg.startswith("expired:") and late_id in msg for msg in reasons.values())
    assert "outcome:fb-expired" not in _outcomes_of(
        worker, model, want=len(requests) + 1, timeout=5
    )


def _outcomes_of(settings: Settings, model: str, want: int, timeout: float = 60) -> dict:
    outcomes: dict = {}
    deadline = time.monotonic() + timeout
    with EventReader(settings, ["outcomes"]) as reader:
        while time.monotonic() < deadline and len(outcomes) < want:
            for item in reader.items(until_idle_s=2, max_wait_s=10):
                if item.event is not None and item.event.data.model == model:
                    outcomes[item.event.id] = item.event
    return outcomes


def _dead_letter_reasons(settings: Settings, stage: str | None = None) -> dict[int, str]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topic("dead-letters"),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    out = {}
    try:
        for record in consumer:
            letter = DeadLetter.from_headers(record.headers)
            if stage is None or letter.stage == stage:
                out[record.offset] = letter.message
    finally:
        consumer.close()
    return out


def test_prometheus_metrics_page(worker):
    deadline = time.monotonic() + 30
    body = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics") as reply:
            body = reply.read().decode()
        if (
            'driftloop_events_total{topic="predictions"}' in body
            and "driftloop_window_metric{" in body
        ):
            break
        time.sleep(1)
    assert 'driftloop_events_total{topic="predictions"}' in body
    assert "driftloop_prediction_latency_seconds_bucket" in body
    assert "driftloop_window_metric{" in body
    rolling = [line for line in body.splitlines() if line.startswith("driftloop_rolling_metric{")]
    assert rolling and all('span="300s"' in line for line in rolling)
    counts = [
        float(line.split()[-1])
        for line in rolling
        if 'metric="count"' in line and 'model="oracle-model"' in line
    ]
    # the oracle test's traffic is a minute long: within the 300 s span, all of it
    assert sum(counts) == 3000


BAD_RECORDS = {
    "invalid-json": b'{"specversion": "1.0", "id": ',
    "invalid-utf8": b'\xff\xfe{"a": 1}',
    "wrong-type": None,  # filled below: latency_ms as text
    "missing-field": None,  # filled below: no request_id
    "nan": None,  # NaN literal
    "infinity": None,  # Infinity literal
    "empty": b"",
    "oversized": b"[" + b" " * 600_000 + b"]",  # over the worker's 500 kB, under the broker's 1 MB
    "unknown-version": None,
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
    "binary-junk": bytes(random.Random(3).randrange(256) for _ in range(300)),
    "wrong-topic-type": None,  # a valid feedback event on the predictions topic
}


def _good_prediction(model: str, i: int, t0: datetime) -> dict:
    return {
        "specversion": "1.0",
        "id": f"{model}-good-{i}",
        "source": "urn:test",
        "type": "driftloop.prediction.v1",
        "time": (t0 + timedelta(seconds=i)).isoformat(),
        "data": {
            "request_id": f"{model}-r{i}",
            "model": model,
            "model_version": "1",
            "features": {"x": float(i)},
            "prediction": {"label": "a", "score": 0.5},
            "latency_ms": 10.0,
        },
    }


def test_bad_records_are_dead_lettered_and_good_ones_counted(worker, t0, tmp_path):
    model = "dl-model"
    template = json.dumps(_good_prediction(model, 0, t0))
    bad = dict(BAD_RECORDS)
    bad["wrong-type"] = template.replace('"latency_ms": 10.0', '"latency_ms": "fast"').encode()
    bad["missing-field"] = template.replace('"request_id": "dl-model-r0", ', "").encode()
    bad["nan"] = template.replace('"latency_ms": 10.0', '"latency_ms": NaN').encode()
    bad["infinity"] = template.replace('"latency_ms": 10.0', '"latency_ms": Infinity').encode()
    bad["unknown-version"] = template.replace("prediction.v1", "prediction.v7").encode()
    bad["wrong-topic-type"] = json.dumps(
        {
            "specversion": "1.0",
            "id": "fb-on-predictions",
            "source": "urn:test",
            "type": "driftloop.feedback.v1",
            "time": t0.isoformat(),
            "data": {"request_id": "x", "model": model, "clicked": True},
        }
    ).encode()

    # published with kcat (librdkafka), one record per call, good and bad in turn
    def kcat(value: bytes, key: str, partition: int, case: str | None = None) -> None:
        args = [
            KCAT,
            "-b",
            worker.kafka_bootstrap_servers,
            "-P",
            "-t",
            topic,
            "-k",
            key,
            "-p",
            str(partition),
            "-X",
            "message.max.bytes=4000000",
        ]
        if case is not None:
            args += ["-H", f"case={case}"]
        if value:
            path = tmp_path / f"record-{key}.bin"
            path.write_bytes(value)  # file mode: the file's bytes are the value, as they are
            done = subprocess.run([*args, str(path)], capture_output=True, timeout=30)
        else:
            # kcat 1.7 sends no empty message in any mode (an empty file, an empty line
            # with -Z, an empty delimited record are all skipped): this one record goes
            # through kafka-python
            from kafka import KafkaProducer

            producer = KafkaProducer(bootstrap_servers=worker.kafka_bootstrap_servers)
            headers = [("case", case.encode())] if case else []
            producer.send(topic, value=b"", key=key.encode(), partition=partition, headers=headers)
            producer.flush()
            producer.close()
            return
        assert done.returncode == 0, done.stderr.decode()

    topic = worker.topic("predictions")
    good = 0
    for name, value in bad.items():
        kcat(json.dumps(_good_prediction(model, good, t0)).encode(), f"{model}-r{good}", good % 4)
        good += 1
        kcat(value, name, good % 4, case=name)
    kcat(json.dumps(_good_prediction(model, good, t0)).encode(), f"{model}-r{good}", good % 4)
    good += 1

    latest = _latest_metrics(worker, model, want=good)
    assert sum(e.data.count for e in latest.values()) == good, "every good event is counted"

    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic.replace("predictions", "dead-letters"),
        bootstrap_servers=worker.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        max_partition_fetch_bytes=4_000_000,
        fetch_max_bytes=8_000_000,
    )
    letters = {}
    for record in consumer:
        headers = dict(record.headers)
        if "case" in headers:
            letters[headers["case"].decode()] = (record, DeadLetter.from_headers(record.headers))
    consumer.close()
    assert sorted(letters) == sorted(bad), "every bad record is in the dead-letter topic"
    for name, (record, letter) in letters.items():
        assert (record.value or b"") == bad[name], f"{name}: the original bytes are kept"
        assert letter.original_topic == topic and letter.original_offset is not None
        assert letter.message and letter.error_class
    assert "UTF-8" in letters["invalid-utf8"][1].message
    assert "limit" in letters["oversized"][1].message
    assert "nested" in letters["deeply-nested"][1].message
    assert "version" in letters["unknown-version"][1].message
    assert "data.latency_ms" in letters["wrong-type"][1].message
    assert letters["wrong-topic-type"][1].stage == "route"


def test_internal_topics_are_created_with_faust_settings_and_listed_before_return(settings):
    """Regression: faust created metrics-partials while joining the group, the assignment
    missed it ("Ignoring missing topic") and no window was ever published (CI, 2026-11-28).
    ``driftloop worker`` now creates them first; here, on a prefix of the test's own."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    from streams.admin import create_internal_topics, delete_prefixed_topics
    from streams.app import create_app

    wanted = {t.name: t for t in create_app(settings).internal_topics()}
    assert {settings.topic("metrics-partials"), settings.topic("detections")} <= set(wanted)
    assert sum(name.endswith("-changelog") for name in wanted) == 3
    try:
        assert sorted(create_internal_topics(settings, wanted.values())) == sorted(wanted)
        assert create_internal_topics(settings, wanted.values()) == []  # idempotent
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            counts = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(list(wanted))}
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
            )
        finally:
            admin.close()
    finally:
        delete_prefixed_topics(settings)
    assert counts == {name: t.partitions for name, t in wanted.items()}
    assert counts[settings.topic("metrics-partials")] == 4
    assert counts[settings.topic("detections")] == 1
    # the broker lists a topic's own settings; cleanup.policy is "delete" when it is not set
    policies = {
        name: entries.get("cleanup.policy", {}).get("value", "delete")
        for name, entries in configs["topic"].items()
    }
    for name in wanted:
        assert policies[name] == ("compact" if name.endswith("-changelog") else "delete"), name
