"""How many prediction events per second one ``driftloop worker`` sustains through the broker.

The bar (from the issue): one worker process sustains at least 50 000
prediction events/s with window metrics on 10 numeric features, and at least
half the rate of a bare aiokafka consume-and-decode loop measured in the same
run.

What is measured, in order, on fresh topics (prefix ``bench-<random>.``, made
with ``streams.admin.create_topics``, all deleted at the end with faust's
internal ones and the consumer group, even on failure):

1. **Pre-load.** ``--events`` prediction events (default 500 000) go onto
   ``<prefix>predictions`` (4 partitions) before any consumer runs: CloudEvents
   ``driftloop.prediction.v1`` built with plain ``json.dumps`` (the wire format
   is what matters), 10 gaussian numeric features ``f0``..``f9`` (4 decimals),
   a label, a score, a latency, a ``locale`` segment with 3 values; grouped by
   the partition their ``request_id`` hashes to, 200 per record (CloudEvents
   batched mode, as the SDK sends), produced with kafka-python. Event times
   advance by ``--event-rate`` events per second of event time (default 5 000,
   so 500 000 events span 100 s and 10-s windows close while the backlog is
   read), ending a couple of minutes before now.
2. **Bare loop** (the reference). An ``AIOKafkaConsumer`` with no group,
   assigned all 4 partitions from the beginning, ``getmany`` + ``json.loads``
   of every record + counting events until it has seen all N of them;
   ``rate = N / (t_done - t_before_first_getmany)``, best of two passes.
3. **Worker.** ``driftloop worker`` as a subprocess (the console script is the
   python process itself: its pid is checked through ``/proc/<pid>/exe``),
   started in a temporary directory (faust keeps ``<app id>-data`` there) with
   ``DRIFTLOOP_TOPIC_PREFIX=<prefix>``, ``DRIFTLOOP_WINDOW_SIZES_S=[10]`` and a
   free ``DRIFTLOOP_WEB_PORT``, everything else default; it reads the backlog
   from the earliest offset. Its ``/metrics`` page is polled every
   ``--sample-ms`` for ``driftloop_events_total{topic="predictions"}`` (events
   the ``monitor`` agent counted into windows):
   ``monitor rate = (N - count at the first non-zero reading) /
   (t_count_reaches_N - t_first_non_zero)``, so start-up and the consumer-group
   join are excluded. The same agent feeds the feedback join from the same
   decode (it keeps every prediction for the join), so this is the rate of the
   whole worker: the **sustained** rate, which the verdict and the ratio use.
   The backlog phase stops early (the rate so far is reported) when it would
   overrun ``--budget`` seconds for the whole run.
4. **Live lag.** After the backlog, ``--live-rate`` events/s (default 20 000,
   40 % of the bar) for ``--live-s`` seconds (default 10), in records of 200,
   with event time = the wall clock at sending. Every ``--sample-ms`` the
   worker's counter is read, and the **time lag** at that instant is the age
   of the oldest event handed to the producer but not yet counted by the
   worker, or 0 when it has counted everything produced (the "consumer time
   lag" of Kafka lag exporters, at event granularity; events are taken as
   counted in the order they were produced, exact per partition and off by at
   most a record across partitions). p50, p99 and max over the samples taken
   while the live traffic was being produced are reported. It includes the
   producer's linger (5 ms), the broker, faust's fetch and the agents' work;
   a sample is timed when the worker's answer arrives, so a busy worker is
   charged for answering late (an overestimate by at most that delay). When
   the live rate is above what the worker sustains, the lag grows for as long
   as the traffic lasts and the report says so.
5. **Memory.** The worker's ``VmRSS`` is sampled from ``/proc/<pid>/status``
   during the run and ``VmHWM`` (peak resident set) read before it is stopped.

The load average is printed with the figures (the benchmark shares 2 cores
with whatever else runs, and during the live phase it loads both itself).
``--check`` exits 1 when the bar is not met. ``--py-spy FILE`` records where
the worker spends its time while it reads the backlog (``py-spy`` must be
installed; raw collapsed stacks; see ``bench/README.md``).

Run with ``make bench`` (which starts Kafka) or
``python bench/worker.py [--bootstrap HOST:PORT] [--events N] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, KafkaProducer

from producers.publisher import partition_for_key
from streams.admin import create_topics
from streams.settings import Settings

PARTITIONS = 4
PER_RECORD = 200
FEATURES = 10
BAR_RATE = 50_000
BAR_RATIO = 0.5
LOCALES = ("en-GB", "en-US", "de-DE")
LABELS = ("weather", "music", "news", "navigation", "timer", "shopping")
_COUNTER = re.compile(r'^driftloop_events_total\{topic="predictions"\} (\S+)$', re.MULTILINE)


# --------------------------------------------------------------------------- events


class Events:
    """Prediction events as JSON text, in two halves around the ``time`` attribute.

    ``head + time + tail`` is one CloudEvent, so a record can be stamped with
    its time when it is sent (live traffic) or when it is built (backlog).
    """

    def __init__(self, run: str, seed: int = 1) -> None:
        self.run = run
        self.rng = np.random.default_rng(seed)
        self.made = 0
        self.means = np.arange(FEATURES, dtype=np.float64) * 10.0
        self.stds = 1.0 + np.arange(FEATURES, dtype=np.float64)

    def make(self, count: int) -> Iterator[tuple[int, bytes, bytes]]:
        """``count`` new events as (partition, head, tail)."""
        rng = self.rng
        features = np.round(rng.normal(self.means, self.stds, (count, FEATURES)), 4).tolist()
        labels = rng.integers(0, len(LABELS), count).tolist()
        scores = np.round(rng.random(count), 4).tolist()
        latency = np.round(rng.lognormal(3.5, 0.5, count), 2).tolist()
        locales = rng.integers(0, len(LOCALES), count).tolist()
        names = [f"f{i}" for i in range(FEATURES)]
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        for j in range(count):
            index = self.made + j
            request_id = f"req-{self.run}-{index}"
            data = {
                "request_id": request_id,
                "model": "bench-model",
                "model_version": "1",
                "features": dict(zip(names, features[j], strict=True)),
                "prediction": {"label": LABELS[labels[j]], "score": scores[j]},
                "latency_ms": latency[j],
                "segment": {"locale": LOCALES[locales[j]]},
            }
            head = (
                f'{{"specversion":"1.0","id":"ev-{self.run}-{index:x}",'
                '"source":"urn:driftloop:bench","type":"driftloop.prediction.v1",'
                '"datacontenttype":"application/json","time":"'
            ).encode()
            tail = ('","data":' + dumps(data) + "}").encode()
            yield partition_for_key(request_id, PARTITIONS), head, tail
        self.made += count


class Clock:
    """RFC 3339 UTC timestamps with milliseconds, the seconds part cached."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def stamp(self, ms: int) -> bytes:
        """e.g. ``b"2026-01-01T00:00:00.123Z"`` for milliseconds since the epoch."""
        second, milli = divmod(ms, 1000)
        if second != self._second:
            self._second = second
            self._prefix = (
                datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S").encode()
            )
        return self._prefix + b".%03dZ" % milli


def _record(events: list[tuple[bytes, bytes, bytes]]) -> bytes:
    return b"[" + b",".join(head + stamp + tail for head, stamp, tail in events) + b"]"


def _producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=512 * 1024,
        max_request_size=4_000_000,
    )


def preload(bootstrap: str, topic: str, events: Events, count: int, event_rate: float) -> int:
    """Produce ``count`` events ending ~2 minutes before now; returns the records sent."""
    clock = Clock()
    start_ms = int((time.time() - count / event_rate - 120) * 1000)
    step_ms = 1000.0 / event_rate
    groups: dict[int, list[tuple[bytes, bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    producer = _producer(bootstrap)
    records = 0
    made = 0
    try:
        while made < count:
            chunk = min(50_000, count - made)
            for partition, head, tail in events.make(chunk):
                group = groups[partition]
                group.append((head, clock.stamp(start_ms + int(made * step_ms)), tail))
                made += 1
                if len(group) == PER_RECORD:
                    producer.send(topic, value=_record(group), partition=partition)
                    records += 1
                    group.clear()
        for partition, group in groups.items():
            if group:
                producer.send(topic, value=_record(group), partition=partition)
                records += 1
        producer.flush()
    finally:
        producer.close()
    return records


# --------------------------------------------------------------------------- bare loop


async def _bare(bootstrap: str, topic: str, expected: int) -> tuple[float, float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,  # as the worker's consumer_max_fetch_size
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"the bare loop saw {seen} of {expected} events in 120 s")
            batches = await consumer.getmany(timeout_ms=1000)
            for messages in batches.values():
                for message in messages:
                    seen += len(json.loads(message.value))
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return expected / elapsed, elapsed


def bare_loop(bootstrap: str, topic: str, expected: int) -> tuple[float, float]:
    """Events/s and seconds of a bare consume-and-decode loop over the backlog."""
    return asyncio.run(_bare(bootstrap, topic, expected))


# --------------------------------------------------------------------------- worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB (empty once it is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Worker:
    """A ``driftloop worker`` subprocess and what we read from it."""

    settings: Settings
    workdir: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    rss_kb: list[int] = field(default_factory=list)

    def start(self) -> None:
        s = self.settings
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DRIFTLOOP_") and k != "KAFKA_BOOTSTRAP_SERVERS"
        }
        env = {
            **inherited,  # but no driftloop setting: the worker runs with the defaults
            "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
            "DRIFTLOOP_TOPIC_PREFIX": s.topic_prefix,
            "DRIFTLOOP_WEB_PORT": str(self.port),
            "DRIFTLOOP_WINDOW_SIZES_S": "[10]",
            # faust's read-only stats page (per-stream counts); processing is unchanged
            "APP_WEB_STATS_ENABLED": "true",
        }
        self.log_path = self.workdir / "worker.log"
        script = Path(sys.executable).with_name("driftloop")
        with open(self.log_path, "wb") as log:
            # cwd: faust keeps a <app id>-data directory in the working directory
            self.process = subprocess.Popen(
                [str(script), "worker"],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def check_is_python(self) -> None:
        """The pid we sample is the python process running the console script (after exec)."""
        exe = os.readlink(f"/proc/{self.pid}/exe")
        with open(f"/proc/{self.pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        if not Path(exe).name.startswith("python") or not argv[1].endswith(b"driftloop"):
            raise RuntimeError(f"pid {self.pid} runs {exe} {argv!r}, not python driftloop")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return bytes(r.read())
        except OSError:
            return None

    def counted(self) -> int | None:
        """``driftloop_events_total{topic="predictions"}``, or None when the page is not up."""
        body = self._get("/metrics")
        if body is None:
            return None
        match = _COUNTER.search(body.decode())
        return int(float(match.group(1))) if match else 0

    def sample_memory(self) -> None:
        rss = _proc_status(self.pid).get("VmRSS")
        if rss is not None:
            self.rss_kb.append(rss)

    def peak_rss_kb(self) -> int:
        return _proc_status(self.pid).get("VmHWM", max(self.rss_kb, default=0))

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Drain:
    """How the worker read the backlog."""

    complete: bool  # the monitor agent counted every event before the deadline
    rate: float  # events/s the monitor agent counted
    seconds: float
    startup_s: float  # from start to the first non-zero reading
    cpu_percent: float  # of one core, while draining
    fifths: list[float]  # monitor events/s over each fifth of the backlog (empty if incomplete)

    @property
    def sustained(self) -> float:
        """What the worker keeps up with: the monitor agent's rate."""
        return self.rate


def drain(worker: Worker, expected: int, deadline: float, args: argparse.Namespace) -> Drain:
    """Poll the worker until it has counted the backlog (see the module docstring)."""
    interval = args.sample_ms / 1000
    t_start = time.perf_counter()
    t_first = 0.0
    first = 0
    cpu_first = 0.0
    done: tuple[float, int] | None = None  # (time, count) when the monitor counted everything
    last: tuple[float, int] = (t_start, 0)
    trace: list[tuple[float, int]] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        while True:
            if not worker.alive():
                raise RuntimeError(f"the worker exited early:\n{worker.log_tail()}")
            now = time.perf_counter()
            count = worker.counted()
            worker.sample_memory()
            if count is not None:
                if last[1] == 0 and not trace:
                    worker.check_is_python()  # it answers: it has exec'ed
                last = (now, count)
                trace.append((now, count))
            if count and not first:
                first, t_first, cpu_first = count, now, _cpu_seconds(worker.pid)
            if count is not None and count >= expected and done is None:
                done = (now, count)
            if done is not None:
                break
            if now > deadline:
                break
            if not first and now - t_start > args.startup_timeout:
                raise RuntimeError(f"no events counted after {args.startup_timeout:.0f} s")
            if args.py_spy and spy is None and count is not None:
                spy = subprocess.Popen(
                    [_py_spy(), "record", "--pid", str(worker.pid), "--format", "raw",
                     "--rate", "200", "--output", args.py_spy, "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            time.sleep(interval)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
    t_last, count_last = last
    cpu = (_cpu_seconds(worker.pid) - cpu_first) / max(t_last - t_first, 1e-9)
    t_done, counted = done or (t_last, count_last)
    fifths: list[float] = []
    if done is not None:
        marks = [first + k * (expected - first) / 5 for k in range(6)]
        times = [next(t for t, c in trace if c >= mark) for mark in marks]
        fifths = [(marks[k + 1] - marks[k]) / max(times[k + 1] - times[k], 1e-9) for k in range(5)]
    return Drain(
        complete=done is not None,
        rate=(counted - first) / (t_done - t_first),
        seconds=t_done - t_first,
        startup_s=t_first - t_start,
        cpu_percent=100 * cpu,
        fifths=fifths,
    )


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("--py-spy needs py-spy (pip install py-spy)")
    return found


# --------------------------------------------------------------------------- live lag


@dataclass
class Lag:
    """Time lag of the worker behind a live stream, over the samples taken while producing."""

    p50_s: float
    p99_s: float
    max_s: float
    samples: int
    achieved_rate: float  # events/s actually produced
    behind_at_end: int  # events produced but not counted at the last sample while producing
    caught_up_s: float | None  # from the last send until it had counted everything, if it did
    cpu_percent: float  # the worker's CPU time while the traffic was produced, % of one core


def live_lag(
    worker: Worker, bootstrap: str, topic: str, events: Events, base: int, args: argparse.Namespace
) -> Lag:
    """Produce ``--live-rate`` events/s for ``--live-s`` s and sample the worker's time lag."""
    total = int(args.live_rate * args.live_s)
    # pre-build the records (per partition, 200 events each); only the time is stamped at sending
    groups: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    records: list[tuple[int, list[tuple[bytes, bytes]]]] = []
    for partition, head, tail in events.make(total):
        group = groups[partition]
        group.append((head, tail))
        if len(group) == args.live_record_events:
            records.append((partition, list(group)))
            group.clear()
    records += [(p, g) for p, g in groups.items() if g]
    sent_at: list[float] = []  # perf_counter when record i was handed to the producer
    sent_before: list[int] = []  # events produced before record i
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        tick = time.perf_counter()
        while not stop.is_set():
            count = worker.counted()
            if count is not None:
                # time of the answer, not of the request: a busy worker answers late, and
                # the lag it is charged with includes that (an overestimate, never under)
                samples.append((time.perf_counter(), count - base))
            worker.sample_memory()
            tick += args.sample_ms / 1000  # a fixed schedule; a late answer shortens the wait
            stop.wait(max(0.0, tick - time.perf_counter()))

    sampler = threading.Thread(target=sample, daemon=True)
    producer = _producer(bootstrap)
    sampler.start()
    clock = Clock()
    try:
        produced = 0
        t0 = time.perf_counter()
        cpu0 = _cpu_seconds(worker.pid)
        for partition, group in records:
            due = t0 + produced / args.live_rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            stamp = clock.stamp(int(time.time() * 1000))
            value = b"[" + b",".join(head + stamp + tail for head, tail in group) + b"]"
            sent_at.append(time.perf_counter())
            sent_before.append(produced)
            producer.send(topic, value=value, partition=partition)
            produced += len(group)
        t_end = time.perf_counter()
        cpu = _cpu_seconds(worker.pid) - cpu0
        producer.flush()
        # a short grace to see whether it catches up (not part of the lag figures)
        deadline = time.perf_counter() + args.catch_up_s
        while time.perf_counter() < deadline and (not samples or samples[-1][1] < produced):
            time.sleep(0.05)
    finally:
        stop.set()
        sampler.join(5)
        producer.close()
    in_window = [(t, counted) for t, counted in samples if t0 <= t <= t_end]
    caught_up = next((t - t_end for t, counted in samples if counted >= produced), None)
    lags: list[float] = []
    for t, counted in in_window:
        # the oldest event produced but not counted: event number `counted` (0-based)
        i = int(np.searchsorted(sent_before, counted, side="right")) - 1
        behind = i >= 0 and counted < produced and sent_at[i] <= t
        lags.append(t - sent_at[i] if behind else 0.0)
    if not lags:
        raise RuntimeError("no lag samples were taken")
    return Lag(
        p50_s=statistics.median(lags),
        p99_s=float(np.quantile(lags, 0.99)),
        max_s=max(lags),
        samples=len(lags),
        achieved_rate=produced / (t_end - t0),
        behind_at_end=produced - in_window[-1][1],
        caught_up_s=caught_up,
        cpu_percent=100 * cpu / (t_end - t0),
    )


# --------------------------------------------------------------------------- cleanup


def cleanup(settings: Settings) -> None:
    """Delete every topic of the prefix (faust's internal ones too) and the consumer group."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        ours = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
        if ours:
            admin.delete_topics(ours, raise_errors=False)
        with contextlib.suppress(Exception):
            admin.delete_groups([settings.worker_app_id])
    finally:
        admin.close()


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000, help="backlog size")
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers")
    parser.add_argument("--event-rate", type=float, default=5_000, help="backlog events per s")
    parser.add_argument("--live-rate", type=float, default=20_000, help="live events per s")
    parser.add_argument("--live-s", type=float, default=10.0, help="seconds of live traffic")
    parser.add_argument(
        "--live-record-events",
        type=int,
        default=PER_RECORD,
        help="events per live record (a low-rate service sends records of a few events)",
    )
    parser.add_argument("--catch-up-s", type=float, default=5.0, help="grace after live traffic")
    parser.add_argument("--sample-ms", type=float, default=100.0)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument(
        "--budget",
        type=float,
        default=225.0,
        help="seconds for the whole run; the worker's backlog phase stops early to keep it",
    )
    parser.add_argument("--py-spy", default=None, metavar="FILE", help="profile the backlog")
    parser.add_argument("--check", action="store_true", help="exit 1 when the bar is not met")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    started = time.perf_counter()
    base = Settings()
    if args.bootstrap:
        base = base.model_copy(update={"kafka_bootstrap_servers": args.bootstrap})
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    settings = base.model_copy(
        update={"topic_prefix": prefix, "worker_app_id": f"{prefix}monitor", "window_sizes_s": [10]}
    )
    bootstrap = settings.kafka_bootstrap_servers
    topic = settings.topic("predictions")
    workdir = Path(tempfile.mkdtemp(prefix="driftloop-bench-worker-"))
    worker = Worker(settings, workdir)
    events = Events(prefix.strip("."))
    r: dict[str, Any] = {"events": args.events, "load_before": os.getloadavg()[0]}
    try:
        create_topics(settings)
        t0 = time.perf_counter()
        r["records"] = preload(bootstrap, topic, events, args.events, args.event_rate)
        r["preload_s"] = time.perf_counter() - t0

        bare = [bare_loop(bootstrap, topic, args.events)[0] for _ in range(2)]
        r["bare_passes_events_s"] = bare
        bare_rate = r["bare_events_s"] = max(bare)

        worker.start()
        deadline = started + args.budget - args.live_s - args.catch_up_s - 10
        d = drain(worker, args.events, deadline, args)
        r.update(
            drained=d.complete,
            monitor_events_s=d.rate,
            worker_events_s=d.sustained,
            worker_drain_s=d.seconds,
            worker_startup_s=d.startup_s,
            worker_cpu_percent=d.cpu_percent,
            monitor_events_s_by_fifth=d.fifths,
            ratio=d.sustained / bare_rate,
        )
        if d.complete:
            lag = live_lag(worker, bootstrap, topic, events, args.events, args)
            r.update(
                live_events_s=lag.achieved_rate,
                lag_p50_s=lag.p50_s,
                lag_p99_s=lag.p99_s,
                lag_max_s=lag.max_s,
                lag_samples=lag.samples,
                live_behind_at_end=lag.behind_at_end,
                live_caught_up_s=lag.caught_up_s,
                live_cpu_percent=lag.cpu_percent,
            )
        r["rss_peak_mb"] = worker.peak_rss_kb() / 1024
        r["rss_samples_max_mb"] = max(worker.rss_kb, default=0) / 1024
        r["load_after"] = os.getloadavg()[0]
        r["bar_met"] = d.sustained >= BAR_RATE and d.sustained / bare_rate >= BAR_RATIO
    finally:
        code = worker.stop()
        if code not in (None, 0, -signal.SIGTERM):
            print(f"worker exited with {code}:\n{worker.log_tail()}", file=sys.stderr)
        try:
            cleanup(settings)
        except Exception as exc:  # don't hide the error that brought us here
            print(f"could not delete the {prefix}* topics: {exc!r}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    r["total_s"] = time.perf_counter() - started

    if args.json:
        print(json.dumps({k: _rounded(v) for k, v in r.items()}))
    else:
        _report(r, args)
    if args.check and not r["bar_met"]:
        sys.exit(1)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _report(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"driftloop worker: {r['events']:,} prediction events in {r['records']:,} records "
        f"(~{PER_RECORD} events each, {FEATURES} numeric features), 4 partitions, "
        f"10-s windows; load average {r['load_before']:.2f} before, {r['load_after']:.2f} after"
    )
    passes = ", ".join(f"{rate:,.0f}" for rate in r["bare_passes_events_s"])
    print(f"  bare aiokafka + json.loads  {r['bare_events_s']:>9,.0f} events/s (best of {passes})")
    print(
        f"  worker, monitor agent       {r['monitor_events_s']:>9,.0f} events/s "
        f"(driftloop_events_total; {r['worker_drain_s']:.1f} s after {r['worker_startup_s']:.1f} s "
        f"start-up; {r['worker_cpu_percent']:.0f}% of a core)"
    )
    if r["monitor_events_s_by_fifth"]:
        fifths = ", ".join(f"{rate:,.0f}" for rate in r["monitor_events_s_by_fifth"])
        print(f"    by fifth of the backlog: {fifths}")
    if not r["drained"]:
        print(f"  (the backlog was not read in full within the --budget of {args.budget:.0f} s)")
    print(
        f"  worker events/s, sustained  {r['worker_events_s']:>9,.0f}   "
        f"ratio to the bare loop {r['ratio']:.2f}"
    )
    if "lag_p99_s" in r:
        print(
            f"  live lag at {r['live_events_s']:,.0f} events/s: "
            f"p50 {r['lag_p50_s'] * 1000:,.0f} ms, p99 {r['lag_p99_s'] * 1000:,.0f} ms, "
            f"max {r['lag_max_s'] * 1000:,.0f} ms "
            f"({r['lag_samples']} samples, one per {args.sample_ms:.0f} ms: age of the oldest "
            "event produced but not yet counted)"
        )
        print(
            f"    worker CPU while live: {r['live_cpu_percent']:.0f}% of a core "
            f"({args.live_record_events} events per record)"
        )
        if r["live_events_s"] > r["worker_events_s"]:
            caught = r["live_caught_up_s"]
            print(
                f"    the live rate is above what the worker sustains: the lag grows for as long "
                f"as the traffic lasts ({r['live_behind_at_end']:,} events behind at the end; "
                + (
                    f"caught up {caught:.1f} s later)"
                    if caught is not None
                    else f"not caught up {args.catch_up_s:.0f} s later)"
                )
            )
    else:
        print("  live lag: not measured (the backlog was not read in full)")
    print(f"  worker resident memory      {r['rss_peak_mb']:>9,.0f} MB peak (VmHWM)")
    verdict = "bar met" if r["bar_met"] else "bar NOT met"
    print(
        f"  {verdict}: needs >= {BAR_RATE:,} events/s and >= {BAR_RATIO} x the bare loop; "
        f"got {r['worker_events_s']:,.0f} events/s, {r['ratio']:.2f} x "
        f"(run took {r['total_s']:.0f} s)"
    )


if __name__ == "__main__":
    main()
