"""A traffic driver for ``driftloop serve``: requests over HTTP, then the users' feedback.

:class:`TrafficDriver` plays the users of a served model. It draws labelled
rows (:class:`RowStream`, over :func:`~online_models.models.datasets.voice_intent_rows`
or :func:`~online_models.models.datasets.tabular_rows`), sends each one's
features to ``POST /predict`` of a running router (urllib in a thread pool, no
event loop of its own), and for every answer publishes what the user did
(:func:`feedback_for`): the true label, and ``redo_search`` when the answer was
wrong. Feedback events are timed with the wall clock, a few milliseconds after
the prediction the router published, so the monitor joins them as live traffic.

The concept can change part-way: set :attr:`RowStream.drift` (0 = the
original concept, 1 = the other one) while the driver runs, and every row
drawn from then on comes from the new concept. :class:`Answer` records who
answered each request (version, route), so a test can tell which version
served which request and when.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from online_models.models.datasets import LabelledRow, tabular_rows, voice_intent_rows
from producers.exceptions import ProducersError

__all__ = [
    "DATASETS",
    "Answer",
    "FeedbackSink",
    "RowStream",
    "TrafficDriver",
    "TrafficError",
    "error_rate",
    "feedback_for",
]

#: Row generators by name: ``(n, seed=..., drift=...) -> rows``.
DATASETS: dict[str, Callable[..., list[LabelledRow]]] = {
    "voice_intent": voice_intent_rows,
    "tabular": tabular_rows,
}


class TrafficError(ProducersError):
    """The driver cannot do what it was asked; the message says what to fix."""


class FeedbackSink(Protocol):
    """Where feedback goes: a :class:`~producers.publisher.Publisher` (or a list in tests)."""

    def publish(
        self, kind: str, data: dict[str, Any], *, id: str | None = ..., time: datetime | None = ...
    ) -> object:
        """Validate and queue one event."""
        ...


@dataclass(frozen=True)
class Answer:
    """One request and what answered it.

    ``label`` is the user's true label, ``predicted`` the router's answer;
    ``drift`` is the concept the row was drawn from; ``sent_at`` and
    ``answered_at`` are wall-clock times (UTC).
    """

    request_id: str
    user_id: str
    label: str
    predicted: str | None
    model_version: str
    route: str
    drift: float
    sent_at: datetime
    answered_at: datetime

    @property
    def correct(self) -> bool:
        """Whether the user got the right answer."""
        return self.predicted == self.label


def feedback_for(answer: Answer, model: str) -> dict[str, Any]:
    """The ``data`` of the feedback a user gives after ``answer``.

    The true label always; ``redo_search`` is true exactly when the answer was
    wrong (the user searches again).

    Examples
    --------
    >>> now = datetime(2026, 1, 2, tzinfo=UTC)
    >>> wrong = Answer("r1", "u1", "music", "news", "1", "champion", 0.0, now, now)
    >>> feedback_for(wrong, "voice_intent")
    {'request_id': 'r1', 'model': 'voice_intent', 'label': 'music', 'redo_search': True}
    """
    return {
        "request_id": answer.request_id,
        "model": model,
        "label": answer.label,
        "redo_search": not answer.correct,
    }


class RowStream:
    """Endless seeded labelled rows of one dataset, from the concept :attr:`drift` says.

    Parameters
    ----------
    dataset
        A name of :data:`DATASETS` (``voice_intent`` or ``tabular``).
    seed
        Seed of the first draw; each later draw uses the next seed.
    drift
        The concept to start with (0 to 1); change the attribute to change it.
    chunk
        Rows drawn at once.

    Examples
    --------
    >>> stream = RowStream("voice_intent", seed=7, chunk=50)
    >>> first = stream.take(3)
    >>> stream.drift = 1.0
    >>> later = stream.take(2)
    >>> [drift for _, drift in first + later]
    [0.0, 0.0, 0.0, 1.0, 1.0]
    >>> first[0][0].label in ("weather", "music", "news", "navigation", "timer", "shopping")
    True
    >>> RowStream("speech")
    Traceback (most recent call last):
    ...
    producers.traffic.TrafficError: unknown dataset 'speech'; valid datasets: tabular, voice_intent
    """

    def __init__(
        self, dataset: str, *, seed: int = 0, drift: float = 0.0, chunk: int = 500
    ) -> None:
        if dataset not in DATASETS:
            valid = ", ".join(sorted(DATASETS))
            raise TrafficError(f"unknown dataset {dataset!r}; valid datasets: {valid}")
        if chunk < 1:
            raise TrafficError(f"chunk must be at least 1, got {chunk}")
        self.dataset = dataset
        self.drift = drift
        self.chunk = chunk
        self._draw = DATASETS[dataset]
        self._seed = seed
        self._rows: list[LabelledRow] = []
        self._rows_drift = drift
        self._lock = threading.Lock()

    def take(self, n: int) -> list[tuple[LabelledRow, float]]:
        """The next ``n`` rows, each with the concept it was drawn from."""
        out: list[tuple[LabelledRow, float]] = []
        with self._lock:
            while len(out) < n:
                if not self._rows or self._rows_drift != self.drift:
                    self._rows_drift = self.drift
                    self._rows = self._draw(self.chunk, seed=self._seed, drift=self.drift)
                    self._seed += 1
                wanted = min(n - len(out), len(self._rows))
                out += [(row, self._rows_drift) for row in self._rows[:wanted]]
                del self._rows[:wanted]
        return out


def _post_json(url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as reply:
        return json.loads(reply.read())


class TrafficDriver:
    """Send requests to a router's ``/predict`` and publish each user's feedback.

    Parameters
    ----------
    url
        Base URL of ``driftloop serve``, e.g. ``http://127.0.0.1:8080``.
    model
        The model name the requests ask for.
    rows
        Where the requests' features and true labels come from.
    feedback
        Where feedback is published (``None``: none is sent).
    users
        Distinct user ids the requests come from (``user-0`` …); the router
        routes by user, so a user keeps their version within a rollout step.
    concurrency
        Requests in flight at once.
    post
        ``(url, body, timeout_s) -> answer`` (HTTP by default; a test double
        answers in-process).
    run_id
        Prefix of the request ids, so that several runs never share one.

    Examples
    --------
    >>> sent = []
    >>> class Events:
    ...     def publish(self, kind, data, *, id=None, time=None): sent.append(data)
    >>> def echo_router(url, body, timeout_s):  # answers "music" to everyone, as version 1
    ...     return {"label": "music", "model_version": "1", "route": "champion"}
    >>> driver = TrafficDriver("http://router", "voice_intent", RowStream("voice_intent", seed=1),
    ...                        Events(), post=echo_router, run_id="doc")
    >>> answers = driver.send(200)
    >>> len(answers), len(sent), sum(a.correct for a in answers)
    (200, 200, 30)
    >>> sum(f["redo_search"] for f in sent)
    170
    """

    def __init__(
        self,
        url: str,
        model: str,
        rows: RowStream,
        feedback: FeedbackSink | None = None,
        *,
        users: int = 2_000,
        concurrency: int = 8,
        timeout_s: float = 10.0,
        post: Callable[[str, dict[str, Any], float], dict[str, Any]] = _post_json,
        run_id: str = "traffic",
    ) -> None:
        if users < 1 or concurrency < 1:
            raise TrafficError(
                f"users and concurrency must be at least 1, got {users} and {concurrency}"
            )
        self.url = url.rstrip("/") + "/predict"
        self.model = model
        self.rows = rows
        self.feedback = feedback
        self.users = users
        self.timeout_s = timeout_s
        self.run_id = run_id
        self.answers: list[Answer] = []
        self.failures: Counter[str] = Counter()
        self._post = post
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="driftloop-traffic")
        self._counter = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ one request

    def _next_ids(self, n: int) -> list[int]:
        with self._lock:
            first = self._counter
            self._counter += n
        return list(range(first, first + n))

    def _one(self, index: int, row: LabelledRow, drift: float) -> Answer | None:
        request_id = f"{self.run_id}-{index}"
        user_id = f"user-{index % self.users}"
        body = {
            "request_id": request_id,
            "model": self.model,
            "user_id": user_id,
            "features": row.features,
            "segment": row.segment,
        }
        sent_at = datetime.now(UTC)
        try:
            reply = self._post(self.url, body, self.timeout_s)
        except urllib.error.HTTPError as exc:
            self.failures[f"http {exc.code}"] += 1
            return None
        except (OSError, ValueError) as exc:  # refused, reset, timed out, not JSON
            self.failures[type(exc).__name__] += 1
            return None
        answer = Answer(
            request_id=request_id,
            user_id=user_id,
            label=row.label,
            predicted=reply.get("label"),
            model_version=str(reply.get("model_version")),
            route=str(reply.get("route")),
            drift=drift,
            sent_at=sent_at,
            answered_at=datetime.now(UTC),
        )
        if self.feedback is not None:
            self.feedback.publish(
                "feedback",
                feedback_for(answer, self.model),
                id=f"{request_id}:feedback",
                time=datetime.now(UTC),
            )
        return answer

    def send(self, n: int) -> list[Answer]:
        """Send ``n`` requests (``concurrency`` at a time) and return the answers received."""
        drawn = self.rows.take(n)
        futures = [
            self._pool.submit(self._one, index, row, drift)
            for index, (row, drift) in zip(self._next_ids(n), drawn, strict=True)
        ]
        answers = [a for f in futures if (a := f.result()) is not None]
        with self._lock:
            self.answers += answers
        return answers

    # ------------------------------------------------------------------ paced, in the background

    def start(self, rate_per_s: float, *, tick_s: float = 0.1) -> TrafficDriver:
        """Send about ``rate_per_s`` requests a second, in the background, until :meth:`stop`."""
        if rate_per_s <= 0:
            raise TrafficError(f"rate_per_s must be positive, got {rate_per_s}")
        if self._thread is not None:
            raise TrafficError("the driver is running already; stop() it first")
        self._stop.clear()

        def pace() -> None:
            started = time.monotonic()
            sent = 0
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * rate_per_s) - sent
                if due > 0:
                    self.send(due)
                    sent += due
                else:
                    self._stop.wait(tick_s)

        self._thread = threading.Thread(target=pace, name="driftloop-traffic-pace", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background traffic (the requests in flight finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
            self._thread = None

    def close(self) -> None:
        """Stop and release the threads."""
        self.stop()
        self._pool.shutdown(wait=True)

    def snapshot(self) -> list[Answer]:
        """The answers received so far."""
        with self._lock:
            return list(self.answers)

    def __enter__(self) -> TrafficDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_rate(answers: Sequence[Answer]) -> float | None:
    """Share of wrong answers, ``None`` when there are none.

    Examples
    --------
    >>> now = datetime(2026, 1, 2, tzinfo=UTC)
    >>> answers = [Answer(f"r{i}", "u", "a", "a" if i % 4 else "b", "1", "champion", 0.0, now, now)
    ...            for i in range(8)]
    >>> error_rate(answers)
    0.25
    """
    if not answers:
        return None
    return sum(not a.correct for a in answers) / len(answers)
