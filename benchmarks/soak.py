"""Soak: many frames through one pipeline from build bundles; resident memory and open
file descriptors after warm-up against the end of the run.

    python benchmarks/soak.py --builds build/ [--frames 10000] [--warmup 500] [--json out.json]

Frames cycle through the shipped sample pictures and their mirror images at 640x480
(faces of many sizes, so every stage runs). Prints resident memory (MB) every 1,000
frames, its growth after warm-up, and the descriptor count. Like the turnstile app it
first calls ``maskgate.memory.steady_memory()`` (``--no-steady-memory`` to see what that
changes). Linux (/proc). A benchmark, not a test: tests/test_resilience.py runs a short
version with an assertion.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def main() -> int:
    from maskgate import Pipeline
    from maskgate.config import DEFAULT_BUILDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, default=ROOT / DEFAULT_BUILDS)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--prefer", help="device preference (default npu,gpu,cpu)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-steady-memory", action="store_true",
                        help="leave glibc's mmap threshold dynamic (what maskgate.memory.steady_memory fixes)")
    args = parser.parse_args()
    if not args.no_steady_memory:
        from maskgate.memory import steady_memory

        print(f"steady_memory(): {'applied' if steady_memory() else 'not available here'}", flush=True)
    pictures = [cv2.imread(str(p)) for p in sorted((ROOT / "examples" / "images").glob("*.jpg"))]
    frames = [cv2.resize(p, (640, 480)) for p in pictures] + [cv2.resize(p[:, ::-1], (640, 480)) for p in pictures]
    samples = []
    start = time.perf_counter()
    with Pipeline.from_builds(args.builds, prefer=args.prefer) as pipeline:
        runtime = {role: sel.describe_runtime() for role, sel in pipeline.selections.items()}
        faces = 0
        for i in range(args.frames):
            faces += len(pipeline(frames[i % len(frames)]))
            if i + 1 == args.warmup or (i + 1) % 1000 == 0 or i + 1 == args.frames:
                samples.append({"frame": i + 1, "rss_mb": round(rss_mb(), 1), "fds": open_fds(), "threads": threads(),
                                "seconds": round(time.perf_counter() - start, 1)})
                print(f"frame {i + 1:6d}  rss {samples[-1]['rss_mb']:7.1f} MB  fds {samples[-1]['fds']}  "
                      f"threads {samples[-1]['threads']}", flush=True)
    after_warmup = next(s for s in samples if s["frame"] == args.warmup)
    end = samples[-1]
    later = [s for s in samples if s["frame"] >= args.warmup]
    result = {
        "frames": args.frames,
        "steady_memory": not args.no_steady_memory,
        "warmup": args.warmup,
        "faces": faces,
        "runtime": runtime,
        "rss_after_warmup_mb": after_warmup["rss_mb"],
        "rss_end_mb": end["rss_mb"],
        "rss_max_after_warmup_mb": max(s["rss_mb"] for s in later),
        "rss_growth": (end["rss_mb"] - after_warmup["rss_mb"]) / after_warmup["rss_mb"],
        "fds_after_warmup": after_warmup["fds"],
        "fds_end": end["fds"],
        "samples": samples,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(f"{args.frames} frames ({faces} faces) in {result['seconds']} s on {runtime}; resident memory "
          f"{result['rss_after_warmup_mb']} MB after {args.warmup} frames -> {result['rss_end_mb']} MB at the end "
          f"({100 * result['rss_growth']:+.2f} %), max {result['rss_max_after_warmup_mb']} MB; file descriptors "
          f"{result['fds_after_warmup']} -> {result['fds_end']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
