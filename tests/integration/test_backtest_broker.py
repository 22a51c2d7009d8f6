"""``driftloop backtest`` on the real broker, with a real worker.

A seeded CSV of one model: 8 000 predictions at 100 a second of event time,
three numeric features. In one file ``loudness_db`` shifts by 2 sd at 40 s
(row 4 000); the other file is the same traffic without the shift. The
backtest must find the shift on that feature, soon after it, with no false
alarm, and must find nothing in the file without it. Each run leaves no topic
behind.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kafka import KafkaAdminClient
from typer.testing import CliRunner

from producers.backtest_cli import backtest_app

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
ROWS = 8_000
EVENTS_PER_S = 100
CHANGE_ROW = 4_000
DRIFT_AT = T0 + timedelta(seconds=CHANGE_ROW / EVENTS_PER_S)
# the bound the test holds the detection to: 5 s of event time, 500 predictions
# (measured while writing it: 0.8 s, 80 predictions)
MAX_DELAY_S = 5.0


def _history(path: Path, *, shift_sd: float) -> Path:
    rng = np.random.default_rng(2026)
    loudness = rng.normal(-20.0, 1.0, ROWS)
    loudness[CHANGE_ROW:] += shift_sd * 1.0  # sd of loudness_db is 1
    frame = pd.DataFrame(
        {
            "time": [(T0 + timedelta(seconds=i / EVENTS_PER_S)).isoformat() for i in range(ROWS)],
            "request_id": [f"r{i}" for i in range(ROWS)],
            "loudness_db": loudness,
            "duration_s": rng.normal(2.0, 0.3, ROWS),
            "snr_db": rng.normal(15.0, 3.0, ROWS),
            "prediction": rng.choice(["weather", "music", "news"], ROWS),
            "score": rng.uniform(0.5, 1.0, ROWS),
            "latency_ms": rng.lognormal(3.5, 0.3, ROWS),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _backtest(services, file: Path, report: Path, *extra: str) -> tuple[dict, str]:
    done = CliRunner().invoke(
        backtest_app,
        [str(file), "--model", "voice-intent", "--model-version", "1",
         # 8 000 events over 4 partitions: each partition learns its reference from 1 000
         "--reference-first-n", "1000",
         "--json", str(report), "-b", services.kafka_bootstrap_servers, *extra],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return json.loads(report.read_text()), done.output


def _topics_left(services, prefix: str) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=services.kafka_bootstrap_servers)
    try:
        return [t for t in admin.list_topics() if t.startswith(prefix)]
    finally:
        admin.close()


@pytest.mark.timeout(240)
def test_backtest_reports_the_known_drift_with_its_delay_and_no_false_alarm(services, tmp_path):
    history = _history(tmp_path / "history.csv", shift_sd=2.0)
    drift_at = DRIFT_AT.isoformat().replace("+00:00", "Z")
    report, output = _backtest(
        services, history, tmp_path / "report.json", "--drift-at", f"{drift_at}:loudness_db"
    )
    print(output)  # what a person reads, shown with -s

    assert report["predictions"] == ROWS
    score = report["score"]
    [point] = score["drift_points"]
    assert point["detected"], report["alerts"]
    assert point["alert"]["kind"] == "data_drift"
    assert "loudness_db" in point["alert"]["signals"]
    assert 0 <= point["delay_s"] <= MAX_DELAY_S, point
    assert 0 <= point["delay_events"] <= MAX_DELAY_S * EVENTS_PER_S, point
    assert score["false_alarms"] == 0, score["false_alarm_alerts"]
    assert score["misses"] == 0
    assert {a["verdict"] for a in report["alerts"]} <= {"detection", "after_drift", "resolved"}
    assert "1 of 1 drift points detected, 0 missed, 0 false alarms" in output
    assert not _topics_left(services, report["topic_prefix"]), "the backtest's topics remain"


@pytest.mark.timeout(240)
def test_backtest_reports_no_alert_on_the_same_traffic_without_drift(services, tmp_path):
    history = _history(tmp_path / "history.csv", shift_sd=0.0)
    report, output = _backtest(services, history, tmp_path / "report.json")

    assert report["predictions"] == ROWS
    assert report["firing_alerts"] == 0, report["alerts"]
    assert report["score"] is None
    assert "no alert would have fired" in output
    assert not _topics_left(services, report["topic_prefix"]), "the backtest's topics remain"
