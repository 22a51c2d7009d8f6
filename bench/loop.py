"""The full loop, timed: drift onset to a promoted retrained model, every step an event.

Runs :func:`driftloop.loop.run_loop` once (every part of driftloop as its own
process against the real broker and Redis) and prints the time from the drift
onset to each step, and the users' error rate before, during and after.

Run with ``python bench/loop.py`` (the broker and Redis must be up: ``make up``);
``--help`` lists the knobs. The topics and Redis keys it makes are its own
(a fresh prefix and namespace per run) and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from driftloop.loop import LoopConfig, cleanup, run_loop
from streams.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run the loop once and print the time of each step and the error rates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = LoopConfig()
    parser.add_argument("--rate", type=float, default=defaults.rate_per_s, help="requests/s")
    parser.add_argument("--before-drift", type=float, default=defaults.before_drift_s)
    parser.add_argument("--group-wait", type=float, default=defaults.group_wait_s)
    parser.add_argument("--min-samples", type=int, default=defaults.min_samples)
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s)
    parser.add_argument("--json", action="store_true", help="also print the steps as JSON")
    args = parser.parse_args(argv)
    config = LoopConfig(
        rate_per_s=args.rate,
        before_drift_s=args.before_drift,
        group_wait_s=args.group_wait,
        min_samples=args.min_samples,
        timeout_s=args.timeout,
    )
    run = uuid.uuid4().hex[:8]
    base = Settings(topic_prefix=f"bench-loop-{run}.", registry_namespace=f"bench-loop:{run}:")
    with tempfile.TemporaryDirectory(prefix="driftloop-loop-") as folder:
        try:
            report = run_loop(base, Path(folder), config)
            print(report.table())
            if args.json:
                print(json.dumps([s.__dict__ | {"at": s.at.isoformat()} for s in report.steps]))
        finally:
            cleanup(base)
    return 0 if report.finished else 1


if __name__ == "__main__":
    sys.exit(main())
