"""The floor under a frame: what the networks alone cost, with no pre- or post-processing.

    python benchmarks/inference_floor.py --builds build/ [--profile turnstile]
        [--only tflite:int8,openvino:int8] [--threads 1] [--runs 200] [--target-ms 5] [--json out.json]

For each format x precision in the builds folder it opens the profile's detector (at the
profile's canvas) and the two classifiers through the runtime layer, as a camera would,
and times ``Runner.infer`` on tensors of each bundle's own input shape (the runtime's own
quantization of int8 inputs and outputs included, nothing else):

- ``alone``: each model run back to back, its weights hot in the cache;
- ``in turn``: detector, mask, pose, one after another, as one turnstile frame runs them
  (each model's weights evicted by the other two).

The sum of ``in turn`` is the least a frame of that build can cost on this CPU: if it is
above the frame target, no change to the code around the networks reaches the target,
only smaller networks or fewer pixels. Each configuration runs in its own process. A
benchmark, not a test: figures go in reports and notes, never assertions.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROLES = ("detector", "mask", "pose")


def _inputs(runner) -> dict[str, np.ndarray]:
    """A feed of the bundle's own input shape: normalised-image-like values (N(0, 1))."""
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal(shape).astype(dtype) for name, (shape, dtype) in runner.input_spec.items()}


def _median_ms(calls, runs: int) -> list[float]:
    """Median ms of each call when the calls run one after another, ``runs`` times."""
    for _ in range(10):
        for call in calls:
            call()
    times = [[] for _ in calls]
    for _ in range(runs):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[i].append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def measure(builds: Path, fmt: str, precision: str, profile_name: str, threads: int, runs: int) -> dict:
    from maskgate.classifier import DEFAULT_MASK_MODEL, DEFAULT_POSE_MODEL
    from maskgate.detector import DEFAULT_DETECTOR
    from maskgate.profiles import get_profile
    from maskgate.runtimes.select import open_best
    from maskgate.runtimes.trust import configured_trust

    profile = get_profile(profile_name)
    trust = configured_trust(allow_failed_builds=True)  # speed is measured whatever the gates said
    models = {"detector": DEFAULT_DETECTOR, "mask": DEFAULT_MASK_MODEL, "pose": DEFAULT_POSE_MODEL}
    selections = {
        role: open_best(builds, name, prefer="cpu", strict=True, formats=(fmt,), precisions=(precision,),
                        threads=threads, trust=trust,
                        input_size=profile.detector_size if role == "detector" else None)
        for role, name in models.items()
    }
    try:
        calls = []
        for role in ROLES:
            runner = selections[role].runner
            feed = _inputs(runner)
            calls.append(lambda runner=runner, feed=feed: runner.infer(feed))
        alone = [_median_ms([call], runs)[0] for call in calls]
        in_turn = _median_ms(calls, runs)
        return {
            "format": fmt, "precision": precision, "profile": profile.name, "canvas": profile.canvas,
            "threads": threads, "runs": runs,
            "alone_ms": dict(zip(ROLES, alone)), "in_turn_ms": dict(zip(ROLES, in_turn)),
            "floor_ms": sum(in_turn),
            "runtime": {role: sel.runner.describe() for role, sel in selections.items()},
        }
    finally:
        for sel in selections.values():
            sel.runner.close()


def _in_subprocess(args, fmt: str, precision: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run([sys.executable, __file__, "--builds", str(args.builds), "--profile", args.profile,
                           "--threads", str(args.threads), "--runs", str(args.runs), "--one", f"{fmt}:{precision}"],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{fmt} {precision} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, required=True)
    parser.add_argument("--profile", default="turnstile", help="whose detector canvas (maskgate.profiles)")
    parser.add_argument("--only", default="tflite:int8,openvino:int8,onnx:int8", help="comma list of FORMAT:PRECISION")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--target-ms", type=float, default=5.0, help="the frame budget to hold the floor against")
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, in this process
    args = parser.parse_args()
    if args.one:
        fmt, precision = args.one.split(":")
        print(json.dumps(measure(args.builds, fmt, precision, args.profile, args.threads, args.runs)))
        return 0
    records = []
    print(f"{args.profile} profile, {args.threads} thread(s), median of {args.runs} runs; ms per model\n")
    print(f"{'build':<16} {'detector':>17} {'mask':>15} {'pose':>15} {'floor':>7}  vs {args.target_ms:g} ms")
    for item in args.only.split(","):
        fmt, precision = item.strip().split(":")
        try:
            row = _in_subprocess(args, fmt, precision)
        except RuntimeError as exc:
            print(f"{fmt} {precision}: {exc}", file=sys.stderr)
            continue
        records.append(row)
        cells = [f"{row['in_turn_ms'][r]:.2f} ({row['alone_ms'][r]:.2f})" for r in ROLES]
        over = row["floor_ms"] - args.target_ms
        print(f"{fmt + ' ' + precision:<16} {cells[0]:>17} {cells[1]:>15} {cells[2]:>15} {row['floor_ms']:>7.2f}  "
              f"{'+' if over > 0 else ''}{over:.2f}")
    print("\nin turn (alone): each model's median when the three run one after another as in a frame "
          "(and when it runs back to back by itself); floor: the sum in turn")
    if args.json:
        args.json.write_text(json.dumps({"records": records}, indent=1))
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())
