"""How fast the monitor's window aggregate is, with no services.

Batches of 200 simulated predictions with 10 numeric and 2 categorical
features (plus labels, scores, latency, host metrics and errors):

- ``add_predictions``: events/s of the vectorised update on ready column batches
  (what a worker pays per event; the bar is 50 000 events/s per worker);
- ``from_rows``: events/s of turning event ``data`` dicts into a column batch;
- ``metrics()``, ``to_state()`` + ``json.dumps``, ``from_state`` and ``merge``
  of a window holding 50 000 events: cost per call and state size.

Run with ``make bench`` or ``python bench/window_metrics.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from online_models.window_metrics import PredictionBatch, WindowMetrics

BATCH = 200
NUMERIC = 10


def _rows(rng: np.random.Generator, count: int) -> list[dict[str, Any]]:
    numeric = {
        f"num_{i}": (
            rng.normal(50 * i, 5 + i, count)
            if i % 3 == 0
            else rng.lognormal(i / 3, 0.7, count)
            if i % 3 == 1
            else rng.normal(0, 1, count)
        )
        for i in range(NUMERIC)
    }
    locales = rng.choice(["en-GB", "en-US", "fr-FR", "de-DE", "es-ES"], count)
    devices = rng.choice([f"device-{i}" for i in range(30)], count)
    labels = rng.choice(["weather", "music", "news", "timer", "call", "none"], count)
    rows = []
    for j in range(count):
        features: dict[str, float | str | None] = {
            name: float(values[j]) for name, values in numeric.items()
        }
        if j % 50 == 0:
            features["num_1"] = None  # some missing values
        features["locale"] = str(locales[j])
        features["device"] = str(devices[j])
        label = str(labels[j])
        rows.append(
            {
                "features": features,
                "prediction": {
                    "label": None if label == "none" else label,
                    "score": float(rng.random()),
                },
                "latency_ms": float(rng.lognormal(3.5, 0.6)),
                "host": {"cpu_percent": float(rng.uniform(5, 95)), "memory_mb": 900.0},
                **({"error": "Timeout"} if j % 97 == 0 else {}),
            }
        )
    return rows


def _per_call(action: Callable[[], object], seconds: float = 1.0) -> float:
    """Mean seconds per call, repeating for about ``seconds``."""
    calls, started = 0, time.perf_counter()
    while True:
        action()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per window")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    rows = _rows(rng, args.events)
    chunks = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]

    started = time.perf_counter()
    batches = [PredictionBatch.from_rows(chunk) for chunk in chunks]
    from_rows_rate = len(rows) / (time.perf_counter() - started)

    # warm-up, then timed passes over the same batches into fresh windows
    WindowMetrics().add_predictions(batches[0])
    passes, events, elapsed = 0, 0, 0.0
    while elapsed < 3.0 or passes < 2:
        window = WindowMetrics()
        started = time.perf_counter()
        for batch in batches:
            window.add_predictions(batch)
        elapsed += time.perf_counter() - started
        events += len(rows)
        passes += 1
    add_rate = events / elapsed

    metrics_s = _per_call(lambda: window.metrics(10.0))
    state = window.to_state()
    to_state_s = _per_call(lambda: json.dumps(window.to_state()))
    encoded = json.dumps(state)
    from_state_s = _per_call(lambda: WindowMetrics.from_state(json.loads(encoded)))
    quarters = []
    for part in range(4):
        partial = WindowMetrics()
        for batch in batches[part::4]:
            partial.add_predictions(batch)
        quarters.append(partial)

    def merge_four() -> WindowMetrics:
        merged = WindowMetrics()
        for partial in quarters:
            merged.merge(partial)
        return merged

    merge_s = _per_call(merge_four) / 4
    results = {
        "add_predictions_events_per_s": round(add_rate),
        "add_predictions_us_per_event": round(1e6 / add_rate, 2),
        "from_rows_events_per_s": round(from_rows_rate),
        "metrics_ms": round(metrics_s * 1e3, 3),
        "metric_count": len(window.metrics(10.0)),
        "to_state_json_ms": round(to_state_s * 1e3, 3),
        "from_state_json_ms": round(from_state_s * 1e3, 3),
        "merge_ms": round(merge_s * 1e3, 3),
        "state_json_bytes": len(encoded),
        "window_events": len(rows),
    }
    if args.json:
        print(json.dumps(results))
        return
    print(f"WindowMetrics, batches of {BATCH} events, {NUMERIC} numeric + 2 categorical features")
    print(
        f"  add_predictions   {results['add_predictions_events_per_s']:>10,} events/s "
        f"({results['add_predictions_us_per_event']} µs/event; bar: 50,000 events/s)"
    )
    print(
        f"  from_rows         {results['from_rows_events_per_s']:>10,} events/s (dicts -> columns)"
    )
    print(f"  add + from_rows   {round(1 / (1 / add_rate + 1 / from_rows_rate)):>10,} events/s")
    print(f"Window of {len(rows):,} events, {results['metric_count']} metrics")
    print(f"  metrics()         {results['metrics_ms']:>10} ms")
    print(
        f"  to_state()+json   {results['to_state_json_ms']:>10} ms, "
        f"{results['state_json_bytes']:,} bytes of JSON"
    )
    print(f"  json+from_state() {results['from_state_json_ms']:>10} ms")
    print(f"  merge()           {results['merge_ms']:>10} ms per partial")


if __name__ == "__main__":
    main()
