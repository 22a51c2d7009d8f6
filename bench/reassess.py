"""Sudden or gradual, decided again 2 000 outcomes after a concept-drift alarm.

The outcome detector is configured as the drift monitor configures it (rate
learned from the first 2 000 error bits, watched against rate + 2 standard
errors, one false alarm per 6 million outcomes). For every scenario and seed:
draw the error bits, run the detector to its first alarm, and give
:func:`online_models.drift.reassess.ramp_vs_step` the 8 000 bits before the
alarm and the ``--after`` bits after it, as the monitor does. Printed per
scenario: the at-alarm label's share of ``gradual``, quantiles of the ratio,
and the share called gradual at several thresholds (the default is
``DEFAULT_THRESHOLD``). Steps should be sudden, ramps and logistic switches
gradual.

Run: ``.venv/bin/python bench/reassess.py [--seeds 30] [--after 2000]``
(about 100 s for 30 seeds on one core).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from online_models.drift.reassess import DEFAULT_THRESHOLD, ramp_vs_step
from streams.drift import REASSESS_BEFORE, outcome_detector

REFERENCE = 2_000
BUDGET = 6_000_000
LENGTH = 30_000


def first_alarm(rates: np.ndarray, seed: int, after: int) -> tuple[str, float] | None:
    rng = np.random.default_rng(seed)
    errors = (rng.random(rates.size) < rates).astype(np.float64)
    watch = outcome_detector(errors[:REFERENCE], false_alarm_budget=BUDGET)
    for start in range(REFERENCE, rates.size, 500):
        alarms = watch.update_many(errors[start : start + 500])
        if alarms:
            at = start + alarms[0].index
            if at + 1 + after > rates.size:
                return None
            lo = max(REFERENCE, at + 1 - REASSESS_BEFORE)
            return alarms[0].pattern, ramp_vs_step(errors[lo : at + 1 + after])
    return None


def scenarios() -> dict[str, tuple[str, np.ndarray]]:
    ix = np.arange(LENGTH)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for a, b in [(0.003, 0.05), (0.003, 0.78), (0.02, 0.06), (0.02, 0.3), (0.1, 0.2),
                 (0.1, 0.3), (0.015, 0.5), (0.3, 0.5), (0.0, 0.78)]:  # fmt: skip
        out[f"step {a} -> {b}"] = ("sudden", np.where(ix < 10_000, a, b))
    for a in (0.0, 0.003, 0.02, 0.1):
        for w in (5_000, 10_000, 20_000):
            out[f"ramp {a} -> 0.3 over {w}"] = (
                "gradual",
                a + (0.3 - a) * np.clip((ix - 8_000) / w, 0, 1),
            )
    for a, b in [(0.003, 0.78), (0.015, 0.5)]:
        for w in (2_000, 5_000, 10_000):
            out[f"logistic {a} + {b} width {w}"] = (
                "gradual",
                a + b / (1 + np.exp(-(ix - 12_000) * 8 / w)),
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--after", type=int, default=2_000, help="outcomes after the alarm")
    args = parser.parse_args()
    thresholds = (2.0, DEFAULT_THRESHOLD, 6.0, 10.0)
    started = time.perf_counter()
    print(
        f"{args.seeds} seeds, {REASSESS_BEFORE} bits before the first alarm and {args.after} "
        f"after; share called gradual at thresholds {', '.join(f'{t:g}' for t in thresholds)} "
        f"(default {DEFAULT_THRESHOLD:g})"
    )
    print(f"{'scenario':34s} {'truth':8s} {'n':>3s} {'at alarm':>8s} {'ratio p50':>9s} "
          f"{'p90':>6s}  gradual")  # fmt: skip
    for name, (truth, rates) in scenarios().items():
        found = [r for s in range(args.seeds) if (r := first_alarm(rates, s, args.after))]
        if not found:
            print(f"{name:34s} {truth:8s}   0  (no alarm)")
            continue
        ratios = np.array([ratio for _, ratio in found])
        at_alarm = np.mean([label == "gradual" for label, _ in found])
        shares = " ".join(f"{np.mean(ratios > t):5.0%}" for t in thresholds)
        print(
            f"{name:34s} {truth:8s} {len(found):3d} {at_alarm:8.0%} "
            f"{np.median(ratios):9.1f} {np.quantile(ratios, 0.9):6.1f}  {shares}"
        )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
