"""How fast ``driftloop replay`` puts a large CSV on the real broker, and in how much memory.

Generates seeded voice-search traffic as CSV files in a temporary folder
(5 features, predicted intent and score, latency, locale; 30 % of rows carry a
ground-truth label and 50 % a click, so about 60 % of rows also make a
feedback event; rows are 5 ms apart in event time and slightly shuffled), then
runs the replay command as its own process at ``--speed max`` against fresh
topics (prefix ``bench-<random>.``, deleted at the end) and reports, per file:
events sent (all acknowledged, acks=all), events/s over the whole command
(start-up included), and the peak resident memory of the replay process
(``VmHWM``, polled every 0.2 s from ``/proc``). Memory must not grow with the file: compare
the 100 000-row and 1 000 000-row figures.

Run with ``.venv/bin/python bench/replay.py [--rows 100000,1000000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from kafka import KafkaAdminClient

from streams.admin import create_topics
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
INTENTS = np.array(["weather", "music", "news", "navigation", "timer", "shopping"])
WRITE_ROWS = 200_000


def write_traffic(path: Path, rows: int, seed: int = 0) -> None:
    """A CSV of ``rows`` requests, written a slice at a time (seeded)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    for first in range(0, rows, WRITE_ROWS):
        n = min(WRITE_ROWS, rows - first)
        index = np.arange(first, first + n)
        # a little disorder, well within the reorder buffer: +- up to 50 rows
        jitter_ms = rng.integers(-250, 250, n)
        times = start + pd.to_timedelta(index * 5 + jitter_ms, unit="ms")
        truth = rng.integers(0, len(INTENTS), n)
        answer = np.where(rng.random(n) < 0.85, truth, rng.integers(0, len(INTENTS), n))
        labelled = rng.random(n) < 0.3
        clicked = rng.random(n) < 0.5
        frame = pd.DataFrame(
            {
                "time": times.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "request_id": [f"bench-{i}" for i in index],
                "clip_duration_s": rng.normal(2.2, 0.6, n).round(3),
                "loudness_db": rng.normal(-23, 3, n).round(2),
                "leading_silence_s": np.abs(rng.normal(0.25, 0.1, n)).round(3),
                "trailing_silence_s": np.abs(rng.normal(0.35, 0.12, n)).round(3),
                "clipping_ratio": np.abs(rng.normal(0.002, 0.002, n)).round(5),
                "prediction": INTENTS[answer],
                "score": rng.uniform(0.55, 0.99, n).round(3),
                "latency_ms": rng.lognormal(3.6, 0.35, n).round(2),
                "segment.locale": rng.choice(["en-GB", "en-US", "de-DE"], n),
                "label": np.where(labelled, INTENTS[truth], None),
                "clicked": np.where(clicked, (answer == truth).astype(str), None),
            }
        )
        frame.to_csv(path, mode="w" if first == 0 else "a", header=first == 0, index=False)


def _high_water_kb(pid: int) -> int:
    """``VmHWM`` of a running process: the most memory it has held resident so far.

    Read from ``/proc`` rather than ``wait4``'s ``ru_maxrss``: the latter also
    counts the parent's memory when the child was spawned with ``vfork``.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # it just ended
        pass
    return 0


def run_replay(path: Path, settings: Settings, dry_run: bool) -> dict:
    """Run the command in its own process; its summary plus wall time and peak RSS."""
    command = [
        sys.executable,
        "-m",
        "producers.replay_cli",
        str(path),
        "--model",
        "voice-intent",
        "--model-version",
        "1",
        "--speed",
        "max",
        "-b",
        settings.kafka_bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "--json",
        *(["--dry-run"] if dry_run else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "120"}
    started = time.perf_counter()
    peak_kb = 0
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env)
        while child.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(child.pid))
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        out.seek(0)
        lines = out.read().strip().splitlines()
    if child.returncode != 0 or not lines:
        raise SystemExit(f"replay of {path} failed with exit status {child.returncode}")
    summary = json.loads(lines[-1])
    return {
        **summary,
        "wall_s": round(elapsed, 2),
        "wall_events_per_s": round(summary["sent"] / elapsed),
        "peak_rss_mb": round(peak_kb / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated file sizes")
    parser.add_argument("--dry-run", action="store_true", help="validate only, no broker")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    base = Settings()
    settings = base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        try:
            if not args.dry_run:
                create_topics(settings, ["predictions", "feedback"])
            for rows in (int(r) for r in args.rows.split(",")):
                path = Path(folder) / f"traffic-{rows}.csv"
                write_traffic(path, rows)
                size_mb = round(path.stat().st_size / 1e6)
                results[rows] = {"file_mb": size_mb, **run_replay(path, settings, args.dry_run)}
                path.unlink()
        finally:
            if not args.dry_run:
                admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
                admin.delete_topics(
                    [settings.topic("predictions"), settings.topic("feedback")], raise_errors=False
                )
                admin.close()
    if args.json:
        print(json.dumps(results))
        return
    mode = "dry run (read, map, validate; no broker)" if args.dry_run else "--speed max, acks=all"
    print(f"driftloop replay of seeded voice-search CSV files, {mode}")
    print(
        f"  {'rows':>9} {'file MB':>8} {'events':>9} {'feedback':>9} {'out of order':>12} "
        f"{'events/s':>9} {'wall s':>7} {'peak RSS MB':>11}"
    )
    for rows, r in results.items():
        print(
            f"  {rows:>9,} {r['file_mb']:>8} {r['sent']:>9,} {r['feedback']:>9,} "
            f"{r['out_of_order']:>12} {r['wall_events_per_s']:>9,} {r['wall_s']:>7} "
            f"{r['peak_rss_mb']:>11}"
        )


if __name__ == "__main__":
    main()
