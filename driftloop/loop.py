"""The full loop, timed: from a concept drift to a promoted retrained model, every step an event.

Runs every part of driftloop as its own process against the real broker and
Redis, with short timers:

- ``driftloop worker``: window metrics, feedback join into outcomes, drift
  detection, alerts and retrain requests;
- ``driftloop retrainer``: a retrain request in, a challenger published;
- ``driftloop rollout``: shadow → canary → ramp → promoted, each step gated on
  the worker's windows;
- ``driftloop serve``: answers ``/predict`` with the champion (and the
  challenger as the rollout says), hot-swapped on model events.

A champion (version 1) is trained on the original concept and registered; a
:class:`~producers.traffic.TrafficDriver` sends voice-search requests to the
router and publishes the users' feedback; part-way, the concept changes. The
loop is then left alone until the retrained version is promoted. The
:class:`LoopReport` holds the events read back from ``alerts``,
``retrain-requests`` and ``model-events`` and the answers the users got, and
prints the time from the drift onset to each step, from the events' own
timestamps, and the users' error rate before the drift, after it, and after
the promotion.

``driftloop demo --story loop`` tells this story; ``bench/loop.py`` times it,
and the full-loop integration tests check it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
from pydantic import SecretStr

from online_models.models import OnlineClassifier, train
from online_models.registry import ModelRegistry, VersionMetadata
from producers.publisher import Publisher
from producers.traffic import DATASETS, Answer, RowStream, TrafficDriver, error_rate
from streams.admin import create_topics, delete_prefixed_topics
from streams.events import AlertEvent, CloudEvent, ModelEventEvent, RetrainRequestEvent
from streams.reader import EventReader
from streams.settings import Settings
from streams.testing import WorkerProcess, worker_environment

__all__ = [
    "Act",
    "LoopConfig",
    "LoopError",
    "LoopReport",
    "Step",
    "cleanup",
    "loop_settings",
    "run_loop",
    "steps",
]

DRIFTLOOP = str(Path(sys.executable).with_name("driftloop"))
SECRET = "full-loop secret of 32 bytes...."
WATCHED = ("alerts", "retrain-requests", "model-events")


class LoopError(Exception):
    """A part of the loop did not start or did not get to the next step; the log says why."""


@dataclass(frozen=True)
class LoopConfig:
    """The knobs of one run: traffic, drift, and every timer of the parts.

    Parameters
    ----------
    model, dataset
        Model name in the registry, and the rows of :data:`producers.traffic.DATASETS`.
    rate_per_s
        Requests a second sent to the router.
    before_drift_s
        Seconds of traffic from the original concept (the references are learned on it).
    after_promotion_s
        Seconds of traffic kept after the promotion (to measure the error rate then).
    timeout_s
        Give up when the promotion has not come this long after the drift onset.
    window_s
        The worker's window size (the gates read these windows).
    allowed_lateness_s
        How long after its end a window of the worker still takes events (outcomes come
        a little after their predictions; a busy worker makes them later).
    group_wait_s
        How long the alert policy waits for more of a group before it alerts; the
        retrain window runs from the drift onset to that alert, so this is also how
        much post-drift traffic the retrainer gets.
    min_drifted_s
        At least this much traffic after the drift onset goes into the retrain
        window: a drift confirmed sooner waits. At 80 events/s a retrain 9 s after
        the onset (a concept-drift alert 7.5 s after it, confirmed at once as
        critical) made a v2 that answered 64 % wrong; 12 s after, 16 %.
    min_samples
        Labelled outcomes per arm each rollout gate needs.
    canary_fraction, ramp_steps
        The challenger's traffic shares, step by step.
    min_examples, min_eval_examples
        The retrainer's minimum window and holdout.
    reference_first_n
        Events per partition the worker's drift references are learned from.
    champion_rows
        Rows of the original concept the champion is trained on.
    retrain_cooldown_s
        After a retrain request a model gets no other for this long (a run
        with several drifts needs it shorter than the time between them).
    warm_start
        Whether the retrainer starts each candidate from a copy of the champion.
    """

    model: str = "voice_intent"
    dataset: str = "voice_intent"
    rate_per_s: float = 80.0
    before_drift_s: float = 30.0
    after_promotion_s: float = 5.0
    timeout_s: float = 240.0
    window_s: int = 5
    group_wait_s: float = 8.0
    min_drifted_s: float = 15.0
    allowed_lateness_s: float = 8.0
    min_samples: int = 100
    canary_fraction: float = 0.2
    ramp_steps: tuple[float, ...] = (0.2, 0.5, 1.0)
    min_examples: int = 200
    min_eval_examples: int = 50
    reference_first_n: int = 300
    champion_rows: int = 3000
    retrain_cooldown_s: float = 3600.0
    warm_start: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Act:
    """One drift of a run: what changes at its onset, and when the act is over.

    Parameters
    ----------
    name
        What the run calls it.
    begin
        Changes the traffic (called once, at the onset).
    done
        Given every event read so far, whether the act is over (e.g. a promotion).
    lead_s
        Seconds of traffic before the onset (after the previous act ended).
    """

    name: str
    begin: Callable[[], None]
    done: Callable[[list[CloudEvent]], bool]
    lead_s: float


@dataclass(frozen=True)
class Step:
    """One step of the loop: what happened, its event time, and seconds since the drift onset."""

    name: str
    at: datetime
    since_onset_s: float
    detail: str = ""


@dataclass
class LoopReport:
    """What one run saw: the events of the loop, the users' answers, and where the logs are."""

    onset: datetime
    events: list[CloudEvent]
    answers: list[Answer]
    logs: dict[str, Path]
    serve_pid: int
    serve_pid_after: int | None
    finished: bool
    config: LoopConfig = field(default_factory=LoopConfig)
    onsets: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def model_events(self) -> list[ModelEventEvent]:
        """The model events, in the order they were read."""
        return [e for e in self.events if isinstance(e, ModelEventEvent)]

    @property
    def steps(self) -> list[Step]:
        """The loop's steps from the drift onset on (see :func:`steps`)."""
        return steps(self.onset, self.events)

    def promoted_at(self) -> datetime | None:
        """Event time of the first promotion after the onset."""
        return next((s.at for s in self.steps if s.name.startswith("promoted")), None)

    def error_rates(self) -> dict[str, float | None]:
        """The users' error rate before the drift, after it until the promotion, and after."""
        promoted = self.promoted_at()
        before = [a for a in self.answers if a.sent_at < self.onset]
        during = [
            a
            for a in self.answers
            if a.sent_at >= self.onset and (promoted is None or a.sent_at < promoted)
        ]
        after = [a for a in self.answers if promoted is not None and a.sent_at >= promoted]
        return {
            "before drift": error_rate(before),
            "drift until promotion": error_rate(during),
            "after promotion": error_rate(after),
        }

    def table(self) -> str:
        """The steps and the error rates as text, one line each."""
        lines = [f"drift onset {self.onset.isoformat(timespec='milliseconds')}"]
        for step in self.steps:
            lines.append(f"  +{step.since_onset_s:7.2f} s  {step.name:<22} {step.detail}".rstrip())
        for name, rate in self.error_rates().items():
            text = "n/a" if rate is None else f"{100 * rate:5.1f} %"
            lines.append(f"  error rate {name:<22} {text}")
        served = Counter((a.model_version, a.route) for a in self.answers)
        lines.append(
            "  answers by version and route: "
            + ", ".join(f"v{v} {r} {n}" for (v, r), n in sorted(served.items()))
        )
        return "\n".join(lines)


def steps(onset: datetime, events: Sequence[CloudEvent]) -> list[Step]:
    """The loop's steps after ``onset``, in event-time order, one per event that is a step.

    A step is the first firing concept-drift alert, each retrain request, and
    each model event (``retrain_started``, ``published``, ``shadow_started``,
    ``canary_started``, every ``ramp_step``, ``promoted``, ``rolled_back`` …).

    Examples
    --------
    >>> from datetime import timedelta
    >>> t0 = datetime(2026, 1, 2, tzinfo=UTC)
    >>> published = ModelEventEvent.new(
    ...     {"model": "m", "version": 2, "action": "published"}, time=t0 + timedelta(seconds=9))
    >>> shadow = ModelEventEvent.new(
    ...     {"model": "m", "version": 2, "action": "shadow_started",
    ...      "traffic": {"champion": 1.0, "challenger": 0.0}}, time=t0 + timedelta(seconds=10))
    >>> [(s.name, s.since_onset_s) for s in steps(t0, [shadow, published])]
    [('published v2', 9.0), ('shadow_started v2', 10.0)]
    """
    found: list[Step] = []
    alerted = False
    for event in events:
        if event.time < onset:
            continue
        if isinstance(event, AlertEvent):
            data = event.data
            if data.kind != "concept_drift" or data.status != "firing" or alerted:
                continue
            alerted = True
            name = "concept-drift alert"
            detail = f"{data.signal} ({data.severity}, {data.detector}) on v{data.model_version}"
        elif isinstance(event, RetrainRequestEvent):
            name, detail = "retrain request", event.data.reason
        elif isinstance(event, ModelEventEvent):
            data = event.data
            name = f"{data.action} v{data.version}"
            share = (data.traffic or {}).get("challenger")
            detail = f"challenger {share:.0%}" if share is not None else ""
        else:
            continue
        seconds = (event.time - onset).total_seconds()
        found.append(Step(name, event.time, round(seconds, 3), detail))
    return sorted(found, key=lambda s: s.at)


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def child(
    name: str, args: Sequence[str], settings: Settings, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``driftloop <args>`` with exactly these settings; SIGTERM (then SIGKILL) on exit."""
    env = {**os.environ, **worker_environment(settings), "COLUMNS": "200"}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [DRIFTLOOP, *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        time.sleep(0.2)
        if process.poll() is not None:
            raise LoopError(f"{name} exited at once:\n{log.read_text()[-3000:]}")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LoopError(f"{url} exited while starting:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise LoopError(f"{url} did not answer within {timeout_s:g} s:\n{log.read_text()[-3000:]}")


class _Collector:
    """Reads the loop's topics in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.reader = EventReader(settings, list(WATCHED))
        self.events: list[CloudEvent] = []
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loop-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for item in self.reader.items(until_idle_s=0.5, max_wait_s=1.0):
                if item.event is not None and item.event.id not in self._ids:
                    with self._lock:
                        self._ids.add(item.event.id)
                        self.events.append(item.event)

    def snapshot(self) -> list[CloudEvent]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.reader.close()


# --------------------------------------------------------------------------- the run


def loop_settings(base: Settings, workdir: Path, config: LoopConfig) -> Settings:
    """``base`` (broker, Redis, topic prefix, namespace) with the loop's short timers."""
    policy = workdir / "alert-policy.yaml"
    policy.write_text(
        f"grouping: {{group_wait: {config.group_wait_s:g}s, group_interval: 5s, "
        "resolve_timeout: 1h}\n"
        f"retrain: {{cooldown: {config.retrain_cooldown_s:g}s, min_span: 1s, lookback: 0, "
        f"min_drifted: {config.min_drifted_s:g}s}}\n"
    )
    return base.model_copy(
        update={
            "registry_secret": SecretStr(SECRET),
            "web_port": _free_port(),
            "state_dir": workdir / "state",
            "window_sizes_s": [config.window_s],
            "rolling_window_s": 60,
            "allowed_lateness_s": config.allowed_lateness_s,
            "idle_close_s": 2.0,
            "rereport_interval_s": 2.0,
            "checkpoint_interval_s": 2.0,
            "feedback_grace_s": 5.0,
            "drift_reference_first_n": config.reference_first_n,
            "drift_window_events": 200,
            # each partition sees 20 events/s: a second look at a sudden alarm 600 events
            # (30 s) later, not 2 000 (bench/reassess_data.py --after 600: no step relabelled)
            "drift_reassess_after": 600,
            "alert_policy_file": policy,
            "rollout_canary_fraction": config.canary_fraction,
            "rollout_ramp_steps": list(config.ramp_steps),
            "gate_min_samples": config.min_samples,
        }
    )


def register_champion(
    settings: Settings, config: LoopConfig, model: OnlineClassifier | None = None
) -> int:
    """Register version 1 as the champion (``model``, or one trained on the original concept)."""
    if model is None:
        rows = DATASETS[config.dataset](config.champion_rows, seed=config.seed + 10_000)
        model = train(config.dataset, rows)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        registry = ModelRegistry(client, SECRET, settings.registry_namespace)
        info = registry.register_version(
            config.model,
            model,
            VersionMetadata(description="trained on the original concept"),
            alias="champion",
            tags={"pipeline": config.dataset},
        )
    finally:
        client.close()
    return info.version


def run_loop(
    base: Settings,
    workdir: Path,
    config: LoopConfig | None = None,
    *,
    echo: Callable[[str], None] = print,
    until: Callable[[list[CloudEvent]], bool] | None = None,
    champion: OnlineClassifier | None = None,
    rows: RowStream | None = None,
    drift_to: float = 1.0,
    at_onset: Callable[[Settings], None] | None = None,
    acts: Sequence[Act] | None = None,
) -> LoopReport:
    """Run the whole loop once and report what happened (see the module docstring).

    ``base`` gives the broker, Redis, topic prefix and registry namespace (the
    topics are created here). Stops ``after_promotion_s`` after a ``promoted``
    model event of a version newer than the first champion, or when
    ``until(events)`` says so, or ``timeout_s`` after the drift onset.
    ``champion`` is registered as version 1 instead of one trained on
    ``config.dataset``; ``rows`` replaces the dataset's :class:`RowStream` (its
    ``drift`` is set to ``drift_to`` at the onset: 0.0 keeps the concept).
    ``at_onset(settings)`` runs at the onset, after the drift (to publish a
    challenger by hand, say). ``acts`` replaces all of that with several
    drifts in turn, each waited for (``timeout_s`` from its onset) before the
    next begins; the report's ``onset`` is the first act's.
    """
    config = config or LoopConfig()
    settings = loop_settings(base, workdir, config)
    create_topics(settings)
    first = register_champion(settings, config, champion)
    echo(f"champion v{first} of {config.model} registered; starting the parts")
    logs = {name: workdir / f"{name}.log" for name in ("worker", "serve", "retrainer", "rollout")}
    port = _free_port()

    def promoted(events: list[CloudEvent]) -> bool:
        return any(
            isinstance(e, ModelEventEvent)
            and e.data.action == "promoted"
            and e.data.version > first
            for e in events
        )

    done = until or promoted
    with ExitStack() as stack:
        worker = stack.enter_context(WorkerProcess(settings, logs["worker"], loglevel="info"))
        serve = stack.enter_context(
            child(
                "serve",
                ["serve", "--port", str(port), "--model", config.model, "--poll-interval-s", "2"],
                settings,
                logs["serve"],
            )
        )
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, serve, logs["serve"], 60)
        retrainer = stack.enter_context(
            child(
                "retrainer",
                [
                    "retrainer",
                    "--min-examples", str(config.min_examples),
                    "--min-eval-examples", str(config.min_eval_examples),
                    "--warm-start" if config.warm_start else "--from-scratch",
                ],
                settings,
                logs["retrainer"],
            )
        )  # fmt: skip
        rollout = stack.enter_context(
            child(
                "rollout",
                [
                    "rollout",
                    "--window-s", str(config.window_s),
                    "--min-samples", str(config.min_samples),
                    "--poll-interval", "0.2",
                ],
                settings,
                logs["rollout"],
            )
        )  # fmt: skip
        processes = {
            "worker": worker.process,
            "serve": serve,
            "retrainer": retrainer,
            "rollout": rollout,
        }
        collector = _Collector(settings)
        stack.callback(collector.close)
        publisher = stack.enter_context(Publisher(settings, source="urn:driftloop:traffic"))
        if rows is None:
            rows = RowStream(config.dataset, seed=config.seed)
        driver = stack.enter_context(
            TrafficDriver(url, config.model, rows, publisher, run_id=f"loop-{uuid.uuid4().hex[:6]}")
        )
        driver.start(config.rate_per_s)
        if acts is None:
            traffic = rows

            def begin() -> None:
                traffic.drift = drift_to
                if at_onset is not None:
                    at_onset(settings)

            acts = [Act("drift", begin, done, config.before_drift_s)]
        onsets: list[tuple[str, datetime]] = []
        finished = False
        for act in acts:
            time.sleep(act.lead_s)
            onset = datetime.now(UTC)
            act.begin()
            onsets.append((act.name, onset))
            if act is not acts[0] or drift_to != 0.0:
                echo(f"concept changed at {onset.isoformat(timespec='milliseconds')}")
            deadline = time.monotonic() + config.timeout_s
            reported = 0
            finished = False
            while time.monotonic() < deadline:
                events = collector.snapshot()
                found = steps(onset, events)
                for step in found[reported:]:
                    echo(f"  +{step.since_onset_s:7.2f} s  {step.name} {step.detail}".rstrip())
                reported = len(found)
                if act.done(events):
                    finished = True
                    break
                for name, process in processes.items():
                    if process is not None and process.poll() is not None:
                        raise LoopError(f"{name} died:\n{logs[name].read_text()[-3000:]}")
                if "Traceback" in logs["worker"].read_text(errors="replace"):
                    # faust logs a crashed agent and keeps the process alive
                    raise LoopError(f"an agent of the worker crashed:\n{worker.log_tail(4000)}")
                time.sleep(0.5)
            if not finished:
                break
        if finished:
            time.sleep(config.after_promotion_s)
        driver.stop()
        publisher.flush()
        time.sleep(1.0)  # the last model events
        events = collector.snapshot()
        serve_pid_after = serve.pid if serve.poll() is None else None
        if driver.failures:
            echo(f"failed requests: {dict(driver.failures)}")
        return LoopReport(
            onset=onsets[0][1],
            events=events,
            answers=driver.snapshot(),
            logs=logs,
            serve_pid=serve.pid,
            serve_pid_after=serve_pid_after,
            finished=finished,
            config=config,
            onsets=onsets,
        )


def cleanup(settings: Settings) -> None:
    """Delete a run's topics (its prefix) and registry keys (its namespace)."""
    delete_prefixed_topics(settings)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=settings.registry_namespace + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
