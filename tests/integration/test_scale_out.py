"""Two workers share the partitions; one dies by SIGKILL mid-stream; nothing lost or doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from producers.publisher import Publisher
from producers.simulator import VoiceSearchSimulator
from streams.admin import create_topics
from streams.reader import EventReader
from streams.settings import Settings

DRIFTLOOP = str(Path(sys.executable).with_name("driftloop"))
EVENTS = 24_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_worker(settings: Settings, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLOOP_WEB_PORT": str(port),
        "DRIFTLOOP_WINDOW_SIZES_S": "[10]",
        "DRIFTLOOP_ALLOWED_LATENESS_S": "1",
        "DRIFTLOOP_IDLE_CLOSE_S": "2",
        "DRIFTLOOP_CHECKPOINT_INTERVAL_S": "0.5",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [DRIFTLOOP, "worker"], stdout=out, stderr=subprocess.STDOUT, env=env
        )


def _counted(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            body = reply.read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith('driftloop_events_total{topic="predictions"}'):
            return float(line.split()[-1])
    return 0.0


def _wait_healthy(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        if _counted(port) is not None:
            return
        time.sleep(0.5)
    raise AssertionError(f"worker on port {port} did not come up:\n{log.read_text()[-3000:]}")


def test_two_workers_split_the_load_and_survive_a_kill_9(services, tmp_path):
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap_servers,
        topic_prefix=f"scale-{os.getpid()}-{random.randrange(1 << 30):x}.",
        _env_file=None,
    )
    create_topics(settings)
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [_start_worker(settings, port, log) for port, log in zip(ports, logs, strict=True)]
    try:
        for proc, port, log in zip(workers, ports, logs, strict=True):
            _wait_healthy(proc, port, log)

        start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        sim = VoiceSearchSimulator(
            seed=21, model="scale-model", start=start, requests_per_second=100
        )
        requests = list(sim.requests(EVENTS))
        done = threading.Event()

        def publish() -> None:
            # paced: about 3 000 events/s of wall-clock time, so the kill lands mid-stream
            with Publisher(settings) as pub:
                for i, r in enumerate(requests):
                    pub.publish("prediction", r.prediction, time=r.predicted_at)
                    if i % 600 == 599:
                        pub.flush()
                        time.sleep(0.2)
            done.set()

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()

        # both workers take part before the kill
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            counts = [_counted(port) or 0 for port in ports]
            if all(c > 0 for c in counts):
                break
            time.sleep(0.3)
        assert all(c > 0 for c in counts), f"the load was not split: {counts}"
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)
        killed_at_count = counts

        publisher.join(timeout=120)
        assert done.is_set(), "publishing did not finish"

        latest: dict[tuple, object] = {}
        deadline = time.monotonic() + 150
        total = 0
        with EventReader(settings, ["metrics"]) as reader:
            while time.monotonic() < deadline:
                for item in reader.items(until_idle_s=2, max_wait_s=10):
                    ev = item.event
                    if ev is not None and ev.data.model == "scale-model":
                        segment = json.dumps(ev.data.segment, sort_keys=True)
                        latest[(ev.data.window_start, segment)] = ev
                total = sum(ev.data.count for ev in latest.values())
                if total == EVENTS:
                    # and it stays there: nothing is added late
                    time.sleep(4)
                    for item in reader.items(until_idle_s=2, max_wait_s=8):
                        ev = item.event
                        if ev is not None and ev.data.model == "scale-model":
                            segment = json.dumps(ev.data.segment, sort_keys=True)
                            latest[(ev.data.window_start, segment)] = ev
                    total = sum(ev.data.count for ev in latest.values())
                    break
        assert workers[1].poll() is None, (
            "the surviving worker died:\n" + logs[1].read_text()[-3000:]
        )
        assert total == EVENTS, (
            f"window counts add up to {total}, {EVENTS} were sent "
            f"(counts when worker A was killed: {killed_at_count})"
        )
        expected_windows = {
            (
                r.predicted_at
                - timedelta(
                    seconds=r.predicted_at.second % 10, microseconds=r.predicted_at.microsecond
                )
            )
            for r in requests
        }
        assert {w for w, _ in latest} == expected_windows
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
