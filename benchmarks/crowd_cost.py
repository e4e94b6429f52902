"""What a crowd in view costs per frame: the turnstile path (only the person at the gate is
aligned and classified) against ``maskgate run``'s path (every face), for 1, 4 and 16 faces
in a 640x480 frame.

    python benchmarks/crowd_cost.py --builds build/ [--formats openvino:int8,onnx:int8]
        [--threads 1] [--frames 20] [--json out.json] [--plot crowd.png]

Frames: the shipped held-out face pictures (calibration/default/verify) tiled on a grey
640x480 canvas: one 200 px face; 2 x 2 faces of 180 px; 4 x 4 of 100 px, the first one
enlarged to 150 px so that one person stands nearer the gate than the queue. Each
configuration runs in its own process (a runtime's thread pools would skew the next),
after warm-up (``maskgate.bench.timing.pipeline_figures``); the figure is the median ms per frame
and of each stage, with how many faces the detector found and how many were classified. A
benchmark, not a test: figures go in reports and notes, never assertions.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from maskgate.bench.timing import pipeline_figures  # noqa: E402 (the timing loop of maskgate benchmark)

CROWDS = (1, 4, 16)
PATHS = ("turnstile", "every face")


def _faces(count: int) -> list[np.ndarray]:
    files = sorted((ROOT / "calibration" / "default" / "verify").glob("faces_*.jpg"))
    return [cv2.imread(str(files[i % len(files)])) for i in range(count)]


def _paste(canvas: np.ndarray, face: np.ndarray, x: int, y: int, size: int) -> None:
    face = cv2.resize(face, (size, size))
    h, w = min(size, canvas.shape[0] - y), min(size, canvas.shape[1] - x)
    canvas[y:y + h, x:x + w] = face[:h, :w]


def crowd_frames(faces_in_view: int, n_frames: int) -> list[np.ndarray]:
    """``n_frames`` different frames, each with ``faces_in_view`` faces (see the module doc)."""
    frames = []
    for k in range(n_frames):
        faces = _faces(faces_in_view + k)[k:]
        canvas = np.full((480, 640, 3), 114, np.uint8)
        if faces_in_view == 1:
            _paste(canvas, faces[0], 220, 140, 200)
        else:
            side = int(round(faces_in_view ** 0.5))
            cell_w, cell_h = 640 // side, 480 // side
            size = 180 if side == 2 else 100
            for i, face in enumerate(faces):
                row, col = divmod(i, side)
                grow = 150 if (i == 0 and side > 2) else size
                _paste(canvas, face, col * cell_w + (cell_w - size) // 2, row * cell_h + (cell_h - size) // 2, grow)
        frames.append(canvas)
    return frames


def measure(builds: Path, fmt: str, precision: str, path: str, faces_in_view: int, n_frames: int,
            threads: int) -> dict:
    """One configuration, in this process."""
    from maskgate import Pipeline
    from maskgate.runtimes.trust import configured_trust
    from maskgate.turnstile import GateRules, choose_person_at_gate

    frames = crowd_frames(faces_in_view, n_frames)
    classify = choose_person_at_gate(rules=GateRules()) if path == "turnstile" else None
    # Each path on its own profile's detector, as maskgate turnstile and maskgate run open them.
    with Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,), threads=threads,
                              trust=configured_trust(allow_failed_builds=True),
                              profile="turnstile" if path == "turnstile" else "general") as pipeline:
        figures = pipeline_figures(pipeline, frames, classify=classify)
        counted = [pipeline(frame, classify=classify) for frame in frames]
    return {"format": fmt, "precision": precision, "path": path, "faces_in_view": faces_in_view,
            "threads": threads, "frames": len(frames), "ms": figures["ms"], "stages_ms": figures["stages"],
            "faces_found": statistics.median(len(faces) for faces in counted),
            "faces_classified": statistics.median(sum(f.mask is not None for f in faces) for faces in counted)}


def in_subprocess(args, fmt: str, precision: str, path: str, faces_in_view: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run([sys.executable, __file__, "--builds", str(args.builds), "--frames", str(args.frames),
                           "--threads", str(args.threads), "--one", f"{fmt}:{precision}:{path}:{faces_in_view}"],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{fmt} {precision} {path} x{faces_in_view} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maskgate.formats import get_format

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in dict.fromkeys((r["format"], r["precision"], r["path"]) for r in rows):
        points = sorted((r["faces_in_view"], r["ms"]) for r in rows if (r["format"], r["precision"], r["path"]) == key)
        ax.plot(*zip(*points), marker="o", linestyle="-" if key[2] == "turnstile" else "--",
                color=get_format(key[0]).colour, alpha=1.0 if key[1] == "int8" else 0.6,
                label=f"{key[0]} {key[1]}, {key[2]}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(CROWDS, [str(c) for c in CROWDS])
    ax.set_xlabel("faces in view (640x480 frame)")
    ax.set_ylabel(f"ms per frame (median, {rows[0]['threads']} thread(s))")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> int:
    from maskgate.cli.options import threads_count

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, default=ROOT / "build")
    parser.add_argument("--formats", default="openvino:int8", help="comma list of FORMAT:PRECISION")
    parser.add_argument("--threads", type=threads_count, default=1)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration
    args = parser.parse_args()
    if args.one:
        fmt, precision, path, faces = args.one.split(":")
        print(json.dumps(measure(args.builds, fmt, precision, path, int(faces), args.frames, args.threads)))
        return 0
    rows = []
    for item in args.formats.split(","):
        fmt, precision = item.strip().split(":")
        for path in PATHS:
            for faces in CROWDS:
                rows.append(in_subprocess(args, fmt, precision, path, faces))
                r = rows[-1]
                stages = ", ".join(f"{s} {ms:.2f}" for s, ms in r["stages_ms"].items())
                print(f"{fmt} {precision:5} {path:10} {faces:2} faces in view: {r['ms']:6.2f} ms/frame "
                      f"(found {r['faces_found']:.0f}, classified {r['faces_classified']:.0f}; {stages})", flush=True)
    for key in dict.fromkeys((r["format"], r["precision"], r["path"]) for r in rows):
        one, many = (next(r["ms"] for r in rows if (r["format"], r["precision"], r["path"]) == key
                          and r["faces_in_view"] == n) for n in (CROWDS[0], CROWDS[-1]))
        print(f"{' '.join(key)}: {CROWDS[-1]} faces cost {100 * (many / one - 1):+.0f} % over 1 face")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
