"""The dashboard against the real broker, driven in headless Chromium (Debian's, never a download).

The scenario: two versions of a voice model publish window metrics (version 1's
loudness drops), the page is opened, then an alert fires and version 2 starts
as a canary; the page must show the charts, the alert and the traffic split
without being reloaded. The screenshot is kept in the test's tmp dir and at
``.driftloop/artefacts/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from playwright.sync_api import Page, sync_playwright
from typer.testing import CliRunner

from producers.publisher import Publisher
from streams.dashboard import DashboardService
from streams.dashboard.cli import dashboard
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTEFACT = REPO_ROOT / ".driftloop" / "artefacts" / "dashboard.png"
V1_WINDOWS, V2_WINDOWS, WINDOW_S = 12, 6, 10


class RunningDashboard:
    """A DashboardService on a free port, in an event loop of its own thread."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        self.service = DashboardService(settings, port=0, push_interval_s=0.2, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(30)

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "api/state", timeout=5) as answer:
            return json.load(answer)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def running(topics: Settings) -> Iterator[Callable[..., RunningDashboard]]:
    started: list[RunningDashboard] = []

    def start(**options: Any) -> RunningDashboard:
        started.append(RunningDashboard(topics, **options))
        return started[-1]

    yield start
    for one in started:
        one.close()


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.1)


def metrics(version: str, start: datetime, loudness: float, count: int) -> dict[str, Any]:
    return {
        "model": "voice-intent",
        "model_version": version,
        "segment": {"locale": "en-GB"},
        "window_start": start,
        "window_end": start + timedelta(seconds=WINDOW_S),
        "count": count,
        "metrics": {
            "count": float(count),
            "latency_p50_ms": 40.0 + count / 10,
            "latency_p95_ms": 90.0,
            "latency_p99_ms": 130.0,
            "null_rate": 0.02,
            "error_rate": 0.0,
            "feature.loudness_db.mean": loudness,
            "feature.leading_silence_s.mean": 0.3,
            "redo_rate": 0.05,
            "switch_to_typing_rate": 0.01,
            "accuracy": None,
        },
    }


def publish_windows(settings: Settings, origin: datetime) -> None:
    with Publisher(settings, source="urn:test:dashboard") as publisher:
        for i in range(V1_WINDOWS):
            start = origin + timedelta(seconds=WINDOW_S * i)
            loudness = -20.0 if i < 8 else -31.0  # the microphone got quieter
            publisher.publish("metrics", metrics("1", start, loudness, 100 + i))
        for i in range(V1_WINDOWS - V2_WINDOWS, V1_WINDOWS):
            start = origin + timedelta(seconds=WINDOW_S * i)
            publisher.publish("metrics", metrics("2", start, -20.5, 20))


def publish_alert_and_canary(settings: Settings, origin: datetime) -> None:
    detected = origin + timedelta(seconds=WINDOW_S * 9)
    with Publisher(settings, source="urn:test:dashboard") as publisher:
        publisher.publish(
            "alert",
            {
                "alert_id": "voice-intent.loudness_db.1",
                "model": "voice-intent",
                "model_version": "1",
                "signal": "loudness_db",
                "kind": "data_drift",
                "pattern": "sudden",
                "severity": "critical",
                "status": "firing",
                "detector": "ks",
                "statistic": 0.41,
                "threshold": 0.2,
                "detected_at": detected,
                "evidence": {"start": origin, "end": detected, "events": 900},
                "summary": "loudness fell by 11 dB",
            },
        )
        publisher.publish(
            "model-event",
            {"model": "voice-intent", "version": 2, "action": "published"},
            time=detected + timedelta(seconds=5),
        )
        publisher.publish(
            "model-event",
            {
                "model": "voice-intent",
                "version": 2,
                "action": "canary_started",
                "traffic": {"champion": 0.95, "challenger": 0.05},
            },
            time=detected + timedelta(seconds=10),
        )


def chart_points(page: Page, chart: str) -> int:
    return int(page.get_attribute(f'canvas[data-chart="{chart}"]', "data-points") or 0)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", header[16:24])


def test_page_shows_charts_alert_and_traffic_split_live(topics, running, tmp_path):
    origin = datetime.now(UTC) - timedelta(minutes=5)
    publish_windows(topics, origin)
    # one record no schema knows: counted as refused, and nothing else is lost
    producer = KafkaProducer(bootstrap_servers=topics.kafka_bootstrap_servers)
    producer.send(topics.topic("metrics"), b'{"type": "driftloop.metrics.v9"}').get(10)
    producer.close()
    board = running(since=timedelta(hours=1))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(board.url)
            page.wait_for_selector('section.model[data-model="voice-intent"]', timeout=20_000)
            wait_until(
                lambda: chart_points(page, "loudness") == V1_WINDOWS + V2_WINDOWS,
                what="the loudness chart to draw both versions",
            )
            assert page.locator("li.alert").count() == 0
            assert page.text_content('[data-testid="traffic"]') == "no rollout seen"

            publish_alert_and_canary(topics, origin)  # while the page is open
            page.wait_for_selector('li.alert[data-signal="loudness_db"]', timeout=20_000)
            wait_until(
                lambda: (
                    page.text_content('[data-testid="traffic"]')
                    == "champion 95% · challenger v2 5%"
                ),
                what="the traffic split of the canary",
            )
            alert_row = page.text_content("li.alert")
            assert "FIRING critical v1 loudness_db data_drift sudden" in alert_row
            assert "loudness fell by 11 dB" in alert_row
            assert page.get_attribute("li.alert", "data-status") == "firing"
            detector_row = page.text_content("table.detectors tbody tr")
            assert "loudness_db" in detector_row and "firing" in detector_row
            actions = page.locator("li.model-event").evaluate_all(
                "rows => rows.map(r => r.dataset.action)"
            )
            assert actions == ["canary_started", "published"]  # newest first

            # every chart drew each window of each version, one line per metric
            points = V1_WINDOWS + V2_WINDOWS
            assert chart_points(page, "latency") == 3 * points
            assert chart_points(page, "feedback") == 2 * points
            for chart in ("volume", "silence", "null_rate", "error_rate"):
                assert chart_points(page, chart) == points, chart
            assert chart_points(page, "accuracy") == 0  # never measurable here: a gap
            # the canvas holds ink, not just an attribute: pixels of version 1's colour
            blue = page.evaluate(
                """() => {
                  const c = document.querySelector('canvas[data-chart="loudness"]');
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0;
                  for (let i = 0; i < d.length; i += 4)
                    if (d[i] < 60 && d[i+1] > 80 && d[i+1] < 130 && d[i+2] > 160) n++;
                  return n;
                }"""
            )
            assert blue > 200, blue
            assert "1 refused" in page.text_content("#status")
            assert page.get_attribute("#connection", "data-state") == "live"

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    ARTEFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTEFACT)
    width, height = png_size(ARTEFACT)
    assert width >= 1400 and height >= 800, (width, height)
    assert ARTEFACT.stat().st_size > 30_000  # a blank page of that size is a few kB

    state = board.state()
    (model,) = state["models"]
    assert [s["version"] for s in model["series"]] == ["1", "2"]
    assert model["series"][0]["values"]["feature.loudness_db.mean"][-1] == -31.0
    assert state["rejected"] == 1


def test_records_older_than_since_are_not_read(topics, running):
    now_ms = int(time.time() * 1000)
    start = datetime.now(UTC) - timedelta(hours=3)

    def record(model: str) -> bytes:
        event = Publisher.build_event("metrics", {**metrics("1", start, -20.0, 10), "model": model})
        return event.model_dump_json().encode()

    producer = KafkaProducer(bootstrap_servers=topics.kafka_bootstrap_servers)
    metrics_topic = topics.topic("metrics")
    producer.send(metrics_topic, record("stale"), timestamp_ms=now_ms - 2 * 3600 * 1000).get(10)
    producer.send(metrics_topic, record("recent"), timestamp_ms=now_ms - 60 * 1000).get(10)
    producer.flush()
    board = running(since=timedelta(hours=1))
    state = wait_until(lambda: board.state()["models"] and board.state(), what="a model")
    assert [m["model"] for m in state["models"]] == ["recent"]

    producer.send(metrics_topic, record("live")).get(10)  # and then it follows the topic
    producer.close()
    state = wait_until(
        lambda: len(board.state()["models"]) == 2 and board.state(), what="the live record"
    )
    assert [m["model"] for m in state["models"]] == ["live", "recent"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_until_interrupted(topics):
    port = _free_port()
    env = {**os.environ, "DRIFTLOOP_TOPIC_PREFIX": topics.topic_prefix}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import typer; from streams.dashboard.cli import dashboard; typer.run(dashboard)",
            "--bootstrap-servers",
            topics.kafka_bootstrap_servers,
            "--port",
            str(port),
            "--since",
            "10m",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return r.read() == b"ok"
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                return False

        wait_until(healthy, timeout=30, what="the dashboard command to answer")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
            status = json.load(r)["status"]
        assert status["topics"] == [topics.topic(t) for t in ("metrics", "alerts", "model-events")]
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
        assert f"http://127.0.0.1:{port}/" in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


runner = CliRunner()


def cli(*args: str):
    import typer

    app = typer.Typer()
    app.command()(dashboard)
    return runner.invoke(app, list(args))


def test_cli_refuses_bad_options_with_what_to_fix():
    done = cli("--since", "an hour")
    assert done.exit_code == 1
    assert "give a number and a unit s, m, h or d" in done.output
    done = cli("--charts", "latency,loudnes")
    assert done.exit_code == 1
    assert "unknown chart 'loudnes'; registered:" in done.output


def test_cli_says_when_kafka_does_not_answer():
    done = cli("--bootstrap-servers", f"127.0.0.1:{_free_port()}", "--port", "0")
    assert done.exit_code == 1
    assert "cannot reach Kafka at 127.0.0.1:" in done.output
