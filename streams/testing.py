"""Helpers for tests that run a real worker: ``driftloop worker`` in a child process.

Used by driftloop's own integration tests and demo; usable in yours.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import SecretStr

from streams.exceptions import StreamsError
from streams.settings import Settings

__all__ = ["SAMPLE_DATA", "SAMPLE_TIME", "WorkerProcess", "worker_environment"]

SAMPLE_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

#: A valid ``data`` of every event type, using most optional fields, for tests.
SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "driftloop.prediction.v1": {
        "request_id": "req-1",
        "model": "voice-intent",
        "model_version": "3",
        "features": {"loudness_db": -21.5, "mic": "usb", "snr_db": None},
        "prediction": {"label": "weather", "score": 0.91},
        "latency_ms": 38.0,
        "segment": {"locale": "en-GB"},
        "route": "champion",
        "host": {"cpu_percent": 12.5, "memory_mb": 512.0},
    },
    "driftloop.feedback.v1": {"request_id": "req-1", "model": "voice-intent", "label": "weather"},
    "driftloop.outcome.v1": {
        "request_id": "req-1",
        "model": "voice-intent",
        "model_version": "3",
        "features": {"loudness_db": -21.5},
        "predicted_label": "weather",
        "prediction_time": SAMPLE_TIME,
        "label_delay_ms": 1500.0,
    },
    "driftloop.metrics.v1": {
        "model": "voice-intent",
        "model_version": "3",
        "window_start": SAMPLE_TIME,
        "window_end": SAMPLE_TIME + timedelta(minutes=1),
        "count": 120,
        "metrics": {"latency_p99_ms": 81.5, "accuracy": None},
    },
    "driftloop.alert.v1": {
        "alert_id": "al-1",
        "model": "voice-intent",
        "model_version": "3",
        "signal": "loudness_db",
        "kind": "data_drift",
        "severity": "warning",
        "status": "firing",
        "detector": "adwin",
        "statistic": 0.42,
        "threshold": 0.3,
        "detected_at": SAMPLE_TIME,
        "evidence": {
            "start": SAMPLE_TIME - timedelta(minutes=5),
            "end": SAMPLE_TIME,
            "events": 600,
        },
    },
    "driftloop.retrain-request.v1": {
        "request_id": "rr-1",
        "model": "voice-intent",
        "reason": "concept drift on error_rate",
        "window": {
            "start": SAMPLE_TIME - timedelta(days=1),
            "end": SAMPLE_TIME,
            "offsets": [{"topic": "driftloop.outcomes", "partition": 0, "start": 0, "end": 10}],
        },
        "requested_by": "policy",
    },
    "driftloop.model-event.v1": {
        "model": "voice-intent",
        "version": 4,
        "action": "ramp_step",
        "traffic": {"champion": 0.9, "challenger": 0.1},
        "details": {"p_value": 0.01, "note": "ok", "manual": False, "missing": None},
    },
}


def worker_environment(settings: Settings) -> dict[str, str]:
    """``DRIFTLOOP_*`` variables that make a child process build exactly these settings.

    Examples
    --------
    >>> env = worker_environment(Settings(topic_prefix="t1.", window_sizes_s=[5], _env_file=None))
    >>> env["DRIFTLOOP_TOPIC_PREFIX"], env["DRIFTLOOP_WINDOW_SIZES_S"]
    ('t1.', '[5]')
    """
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue  # unset: the child's default is None too
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        env[f"DRIFTLOOP_{name.upper()}"] = text
    return env


class WorkerProcess:
    """A ``driftloop worker`` child process with these settings, its output in ``log_path``.

    ``start()`` returns once the worker serves ``/healthz``; leaving the
    ``with`` block stops it (SIGTERM, then SIGKILL).
    """

    def __init__(self, settings: Settings, log_path: Path, *, loglevel: str = "warn") -> None:
        self.settings = settings
        self.log_path = log_path
        self.loglevel = loglevel
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where the worker serves /metrics and /healthz."""
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    @property
    def pid(self) -> int:
        """The worker's process id."""
        if self.process is None:
            raise StreamsError("the worker has not been started")
        return self.process.pid

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the worker's output."""
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def start(self, timeout_s: float = 60.0) -> Self:
        """Start the worker and wait until it answers; raise with its log if it does not."""
        command = [str(Path(sys.executable).with_name("driftloop")), "worker"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--loglevel", self.loglevel],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **worker_environment(self.settings)},
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StreamsError(f"the worker exited while starting:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.3)
        self.stop()
        raise StreamsError(f"the worker did not answer within {timeout_s:g} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        """Whether the worker answers on /healthz."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    def metrics_page(self) -> str:
        """The worker's Prometheus page, or '' when it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=2) as reply:
                return reply.read().decode()
        except OSError:
            return ""

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(timeout=10)

    def dump_tasks(self, wait_s: float = 1.0) -> None:
        """SIGUSR1: the worker logs the stack of every asyncio task (to see what waits)."""
        if self.running():
            os.kill(self.pid, signal.SIGUSR1)
            time.sleep(wait_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout_s``."""
        if not self.running():
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        *args: Any,
    ) -> None:
        self.stop()
