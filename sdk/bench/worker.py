"""One benchmarked configuration in its own process, timed frame by frame on request.

Each configuration (the PyTorch reference at a canvas, or the three models of one format x
precision for a profile) runs in a process of its own, so that one runtime's thread pools
(TBB, ONNX Runtime's spinning workers) never sit beside another's. The orchestrator
(``maskgate.bench.run``) starts them all, then asks each in turn for a block of frames:

    python -m maskgate.bench.worker --builds DIR --threads N (--reference CANVAS | --pipeline FORMAT PRECISION PROFILE)

Protocol, one JSON object per line on the worker's original stdout (native libraries that
print are sent to stderr instead): ``{"ready": ...}`` once loaded and warmed up, or
``{"error": ...}``; then for each ``run FRAME COUNT`` line read on stdin the milliseconds
(``total`` and per stage) of COUNT runs of frame number FRAME (the frame list is cyclic);
``quit`` answers with the peak resident memory and ends.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys

from .frames import camera_frames
from .timing import time_frames

WARMUP_FRAMES = 3


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _size(text: str) -> tuple[int, int]:
    width, height = text.split("x")
    return int(width), int(height)


def open_configuration(args):
    """(pipeline, classify chooser, what ran where)"""
    from maskgate.pipeline import Pipeline

    if args.reference:
        import torch  # only here: the builds run without it, as on a camera

        torch.set_num_threads(args.threads)
        pipeline = Pipeline.reference(device="cpu", input_size=_size(args.reference))
        return pipeline, None, {"all": f"pytorch fp32 on cpu, {args.threads} thread(s)"}
    from maskgate.runtimes.trust import configured_trust
    from maskgate.turnstile import GateRules, choose_person_at_gate

    fmt, precision, profile = args.pipeline
    # Speed is measured for every build whatever its gates said ('maskgate check' reports those).
    trust = configured_trust(allow_failed_builds=True)
    pipeline = Pipeline.from_builds(args.builds, prefer=args.prefer, formats=(fmt,), precisions=(precision,),
                                    threads=args.threads, trust=trust, profile=profile)
    # The turnstile classifies the person at the gate only (maskgate turnstile's own chooser).
    classify = choose_person_at_gate(rules=GateRules()) if profile == "turnstile" else None
    return pipeline, classify, {role: s.describe_runtime() for role, s in pipeline.selections.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskgate.bench.worker")
    parser.add_argument("--builds", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--prefer", default="cpu")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--reference", metavar="CANVAS")
    what.add_argument("--pipeline", nargs=3, metavar=("FORMAT", "PRECISION", "PROFILE"))
    args = parser.parse_args(argv)
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else written to stdout (a vendor library's notes) goes to the log
    sys.stdout = sys.stderr

    def say(message: dict) -> None:
        answer.write(json.dumps(message) + "\n")

    from maskgate.errors import MaskGateError

    frames = camera_frames()
    imported_mb = peak_rss_mb()
    try:
        pipeline, classify, where = open_configuration(args)
    except (MaskGateError, ImportError) as exc:
        say({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    with pipeline:
        for frame in frames[:WARMUP_FRAMES]:
            pipeline(frame, classify=classify)
        faces = [len(pipeline(frame, classify=classify)) for frame in frames]
        say({"ready": True, "where": where, "faces": faces, "frames": len(frames), "imported_mb": imported_mb,
             "loaded_mb": peak_rss_mb()})
        for line in sys.stdin:
            command = line.split()
            if command[:1] == ["quit"]:
                break
            index, count = int(command[1]), int(command[2])
            block = [frames[index % len(frames)]] * count
            total, stages = time_frames(pipeline, block, classify=classify)
            say({"total": total, "stages": stages})
    say({"peak_rss_mb": peak_rss_mb()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
