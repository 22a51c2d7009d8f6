"""Sudden or gradual for data drift, decided again 2 000 events after the alarm.

A drift monitor (first 2 000 events as reference, default budget) watches
three gaussian features; at event 6 000 feature ``f1`` moves, by a step or
by a linear ramp to 2 standard deviations, and 6 000 more events follow. For
every scenario and seed the detections of ``f1`` are collected: the label at
the alarm, whether a ``gradual`` re-report followed (the monitor's
re-assessment, :func:`online_models.drift.reassess.ramp_vs_step_normal` on
the 2 000 events before the alarm and ``reassess_after`` after it), and when.
Steps should stay sudden, ramps end gradual.

Run: ``.venv/bin/python bench/reassess_data.py [--seeds 30] [--after 2000]`` (a minute).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from streams.drift import DriftMonitor

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHANGE = 6_000


def rows(rng: np.random.Generator, start: int, means: np.ndarray) -> list[dict]:
    values = rng.normal(0.0, 1.0, (len(means), 3)) + means
    return [
        {
            "id": str(start + i),
            "time": T0 + timedelta(milliseconds=100 * (start + i)),
            "data": {
                "model": "m",
                "model_version": "1",
                "features": {f"f{j}": float(values[i, j]) for j in range(3)},
                "prediction": {"label": "a", "score": 0.9},
            },
        }
        for i in range(len(means))
    ]


def run(seed: int, f1: np.ndarray, after: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    monitor = DriftMonitor(reference_first_n=2_000, window_events=500, seed=0, reassess_after=after)
    monitor.observe_predictions(rows(rng, 0, np.zeros((CHANGE, 3))))
    means = np.zeros((f1.size, 3))
    means[:, 1] = f1
    found = monitor.observe_predictions(rows(rng, CHANGE, means))
    at = {d.detected_at: round((d.detected_at - T0) / timedelta(milliseconds=100)) for d in found}
    return [(d.pattern, at[d.detected_at] - CHANGE) for d in found if d.signal == "f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--after", type=int, default=2_000, help="events looked at after")
    args = parser.parse_args()
    steps = np.arange(6_000)
    scenarios = {
        **{f"step {size:g} sd": np.full(6_000, size) for size in (0.5, 1.0, 3.0)},
        **{
            f"ramp to 2 sd over {width:,}": np.clip(steps / width, 0.0, 1.0) * 2.0
            for width in (500, 1_500, 3_000)
        },
    }
    started = time.perf_counter()
    print(
        f"f1 moves at event {CHANGE:,}; {args.seeds} seeds; detections of f1 over 6 000 events; "
        f"looked at again {args.after:,} events after the alarm"
    )
    header = ("scenario", "sudden at alarm", "then gradual", "relabelled at (median)")
    print(f"{header[0]:<26} {header[1]:>16} {header[2]:>13} {header[3]:>23}")
    for name, f1 in scenarios.items():
        results = [run(seed, f1, args.after) for seed in range(args.seeds)]
        sudden = [r for r in results if r and r[0][0] == "sudden"]
        later = [next((at for p, at in r[1:] if p == "gradual"), None) for r in sudden]
        relabelled = [at for at in later if at is not None]
        when = f"+{int(np.median(relabelled)):,} events" if relabelled else "—"
        print(
            f"{name:<26} {len(sudden):>10} of {args.seeds:<3}"
            f" {len(relabelled):>6} of {len(sudden):<4} {when:>23}"
        )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
