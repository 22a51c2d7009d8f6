"""How fast voice clips are featurised, and how fast the clip catalogue is synthesised.

- ``featurise``: clips/s of ``AudioFeaturiser.features`` on 2-second mono
  clips at 16 kHz (one process, torch on one thread — the featuriser's
  default), with the cost of each stage (BS.1770 loudness, MFCC, the rest);
- ``synthesise``: the default catalogue (the ``base`` and ``new``
  vocabularies × the default voices × the default speeds) synthesised by
  espeak-ng and sox into an empty cache on ``--workers`` threads, wall and CPU
  seconds, then the same again from the cache. Needs the Debian packages
  espeak-ng and sox; ``--no-synthesis`` leaves it out.

Run with ``make bench`` or ``python bench/audio.py``. Needs the ``audio``
extra (``pip install 'driftloop[audio]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from online_models.featurisers import AudioFeaturiser

RATE = 16_000
SECONDS = 2.0


def _clips(count: int, seed: int = 1) -> list[np.ndarray]:
    """Speech-like 2 s clips: noise under a syllable-rate envelope, with silent edges."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    clips = []
    for _ in range(count):
        envelope = np.sin(2 * np.pi * rng.uniform(3, 6) * t) ** 2
        envelope[: int(rng.uniform(0.05, 0.4) * RATE)] = 0.0
        envelope[-int(rng.uniform(0.05, 0.4) * RATE) :] = 0.0
        level = rng.uniform(0.05, 0.5)
        clips.append((level * envelope * rng.normal(size=t.size)).astype(np.float32))
    return clips


def _per_call(action: Callable[[], object], seconds: float) -> float:
    """Mean seconds per call, repeating for about ``seconds`` after one warm-up call."""
    action()
    calls, started = 0, time.perf_counter()
    while True:
        action()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return elapsed / calls


def featurise(seconds: float) -> dict[str, Any]:
    featuriser = AudioFeaturiser(sample_rate=RATE, n_mfcc=13)
    clips = _clips(64)
    torch = featuriser._torch
    counter = iter(range(10**9))

    def one() -> None:
        featuriser.features(clips[next(counter) % len(clips)], sample_rate=RATE)

    total = _per_call(one, seconds)
    signal = torch.from_numpy(clips[0])
    with torch.inference_mode():
        loudness = _per_call(lambda: featuriser._loudness(signal.unsqueeze(0)), seconds / 3)
        mfcc = _per_call(lambda: featuriser._mfcc(signal), seconds / 3)
    return {
        "featurise_clips_per_s": round(1 / total, 1),
        "featurise_ms_per_clip": round(total * 1e3, 2),
        "loudness_ms": round(loudness * 1e3, 2),
        "mfcc_ms": round(mfcc * 1e3, 2),
        "rest_ms": round((total - loudness - mfcc) * 1e3, 2),
        "torch_threads": torch.get_num_threads(),
        "clip_seconds": SECONDS,
    }


def synthesise(workers: int) -> dict[str, Any]:
    from producers.voice import (
        DEFAULT_SPEEDS,
        DEFAULT_VOICES,
        ClipSpec,
        VoiceSynthesiser,
        get_vocabulary,
    )

    specs = [
        ClipSpec(utterance.phrase, voice, speed)
        for name in ("base", "new")
        for utterance in get_vocabulary(name)
        for voice in DEFAULT_VOICES
        for speed in DEFAULT_SPEEDS
    ]
    with tempfile.TemporaryDirectory(prefix="driftloop-voice-bench-") as cache:
        synth = VoiceSynthesiser(cache, workers=workers)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        synth.synthesise_many(specs)
        fresh = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        synth.synthesise_many(specs)
        cached = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(cache).glob("*.wav"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "synth_clips": len(specs),
        "synth_workers": workers,
        "synth_fresh_s": round(fresh, 2),
        "synth_clips_per_s": round(len(specs) / fresh, 1),
        "synth_tool_cpu_s": round(cpu, 2),
        "synth_cached_s": round(cached, 3),
        "synth_cache_mb": round(size / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing budget per figure")
    parser.add_argument("--workers", type=int, default=2, help="synthesis threads")
    parser.add_argument("--no-synthesis", action="store_true", help="featurisation only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    results = featurise(args.seconds)
    if not args.no_synthesis:
        results |= synthesise(args.workers)
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    results["cpus"] = os.cpu_count()
    if args.json:
        print(json.dumps(results))
        return
    print(f"AudioFeaturiser, {SECONDS:g} s clips at {RATE} Hz, 13 MFCC")
    print(
        f"  features()        {results['featurise_clips_per_s']:>8} clips/s "
        f"({results['featurise_ms_per_clip']} ms/clip; torch threads: {results['torch_threads']})"
    )
    print(f"    loudness        {results['loudness_ms']:>8} ms (BS.1770, torchaudio)")
    print(f"    mfcc            {results['mfcc_ms']:>8} ms")
    print(f"    the rest        {results['rest_ms']:>8} ms (levels, silences, clipping, copies)")
    if not args.no_synthesis:
        print(
            f"Default catalogue: {results['synth_clips']} clips, espeak-ng + sox on "
            f"{results['synth_workers']} threads"
        )
        print(
            f"  fresh cache       {results['synth_fresh_s']:>8} s "
            f"({results['synth_clips_per_s']} clips/s; {results['synth_tool_cpu_s']} s CPU in "
            "espeak-ng/sox)"
        )
        print(
            f"  warm cache        {results['synth_cached_s']:>8} s; "
            f"{results['synth_cache_mb']} MB of WAV"
        )
    print(f"(load average {results['load_average_1m']} on {results['cpus']} CPUs while measuring)")


if __name__ == "__main__":
    main()
