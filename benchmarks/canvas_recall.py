"""Which detector canvas a gate needs: recall by face size, in a 640x480 camera frame, for
detector canvases from 640x480 down to 320x256 (each side a multiple of 32, as builds need),
and on close-ups that fill the frame.

    python benchmarks/canvas_recall.py [--data ../shared/data] [--canvases 640x480,384x288,320x256]
        [--json out.json] [--plot recall.png]

Scenes: each test-split scene of the data folder is fitted into a 640x480 frame (scaled to
fit, grey borders), as a turnstile camera would see it, and its labelled boxes with it; a
face's size is its width in that frame. Close-ups: each test-split scene's widest labelled
face (at least 64 px wide in the original picture: smaller ones blur when scaled ten times,
which a camera's close-up does not) cut out with a margin of half its width and
scaled so that the face is 300, 380 or 460 px wide in a 640x480 frame, centred, clipped at
the frame's edges: a person stepping up to the camera. The fp32 reference detector
(``FaceDetector.reference(input_size=...)``) runs at each canvas; a face counts as found at
IoU >= 0.3 (as ``maskgate evaluate``). A benchmark, not a test: figures go in reports and
notes, never assertions.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FRAME = (640, 480)
BUCKETS = ((20, 32), (32, 48), (48, 64), (64, 128), (128, 256), (256, float("inf")))
CLOSE_UP_WIDTHS = (300, 380, 460)


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def in_camera_frame(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` fitted into a 640x480 frame (grey borders) and its boxes moved with it: the
    framing ``maskgate tune-detector`` validates on."""
    from maskgate.training.detector import fit_frame

    return fit_frame(image, boxes)


def close_up(image: np.ndarray, box: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The face in ``box`` scaled to ``width`` px and centred in a 640x480 frame (clipped)."""
    x1, y1, x2, y2 = box
    scale = width / (x2 - x1)
    margin = (x2 - x1) / 2
    cx1, cy1 = max(0, int(x1 - margin)), max(0, int(y1 - margin))
    cx2, cy2 = min(image.shape[1], int(np.ceil(x2 + margin))), min(image.shape[0], int(np.ceil(y2 + margin)))
    cut = image[cy1:cy2, cx1:cx2]
    big = cv2.resize(cut, (max(1, int(round(cut.shape[1] * scale))), max(1, int(round(cut.shape[0] * scale)))))
    face = (np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1]) * scale)
    frame = np.full((FRAME[1], FRAME[0], 3), 114, np.uint8)
    # place the face's centre at the frame's centre
    ox = int(round(FRAME[0] / 2 - (face[0] + face[2]) / 2))
    oy = int(round(FRAME[1] / 2 - (face[1] + face[3]) / 2))
    sx1, sy1 = max(0, -ox), max(0, -oy)
    dx1, dy1 = max(0, ox), max(0, oy)
    w = min(big.shape[1] - sx1, FRAME[0] - dx1)
    h = min(big.shape[0] - sy1, FRAME[1] - dy1)
    frame[dy1:dy1 + h, dx1:dx1 + w] = big[sy1:sy1 + h, sx1:sx1 + w]
    moved = face + np.array([ox, oy, ox, oy])
    return frame, np.clip(moved, 0, [FRAME[0], FRAME[1], FRAME[0], FRAME[1]])[None]


def main() -> int:
    from maskgate.cli.options import number

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--canvases", default="640x480,512x384,384x288,320x256")
    parser.add_argument("--close-up-source-px", type=number(what="a face width in pixels", at_least=0), default=64.0,
                        help="close-ups are cut from labelled faces at least this wide (default 64)")
    parser.add_argument("--weights", action="append", default=[],
                        help="CANVAS=CHECKPOINT: detector weights for that canvas (from 'maskgate tune-detector'; "
                        "e.g. 320x256=maskgate/weights/retinaface_mnet025_turnstile.pt); others run the packaged ones")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    tuned = dict(w.split("=", 1) for w in args.weights)

    from maskgate.datasets.crops import split_of
    from maskgate.detector import FaceDetector
    from maskgate.metrics import RecallBySize
    from maskgate.sources import read_image
    from maskgate.voc import read_voc_folder

    scenes = [s for s in read_voc_folder(args.data / "scenes")
              if split_of(s.image_path.relative_to(args.data).as_posix()) == args.split]
    framed, closeups = [], []
    for scene in scenes:
        image = read_image(scene.image_path)
        framed.append(in_camera_frame(image, np.asarray(scene.boxes, np.float64).reshape(-1, 4)))
        widths = scene.boxes[:, 2] - scene.boxes[:, 0] if len(scene.boxes) else np.zeros(0)
        if len(widths) and widths.max() >= args.close_up_source_px:
            box = np.asarray(scene.boxes[int(widths.argmax())], np.float64)
            closeups += [(*close_up(image, box, w), w) for w in CLOSE_UP_WIDTHS]
    rows = []
    for canvas in [_size(c) for c in args.canvases.split(",")]:
        weights = tuned.get(f"{canvas[0]}x{canvas[1]}")
        detector = FaceDetector.reference(device="cpu", input_size=canvas, weights=weights)
        acc = RecallBySize(iou_threshold=0.3, buckets=BUCKETS)
        for frame, boxes in framed:
            found = detector.detect(frame)
            acc.add(boxes, found.boxes, found.scores)
        near = {w: RecallBySize(iou_threshold=0.3, buckets=((0, float("inf")),)) for w in CLOSE_UP_WIDTHS}
        for frame, boxes, w in closeups:
            found = detector.detect(frame)
            near[w].add(boxes, found.boxes, found.scores)
        detector.close()
        row = {"canvas": f"{canvas[0]}x{canvas[1]}" + (" tuned" if weights else ""), "scenes": len(framed),
               "by_size": acc.rows(),
               "recall_48px_up": acc.recall(min_width=48),
               "close_ups": sum(int(a.total[0]) for a in near.values()),
               "close_ups_found": sum(int(a.found[0]) for a in near.values()),
               "close_ups_by_width": {w: [int(a.found[0]), int(a.total[0])] for w, a in near.items()}}
        rows.append(row)
        sizes = "  ".join(f"{r['bucket']}: {r['found']}/{r['faces']}" for r in row["by_size"])
        near_text = " ".join(f"{w}px {f}/{t}" for w, (f, t) in row["close_ups_by_width"].items())
        print(f"{row['canvas']:>8}  >=48 px {row['recall_48px_up']:.3f}  close-ups {near_text}  |  {sizes}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, args.plot)
    return 0


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    kept = [i for i, b in enumerate(rows[0]["by_size"]) if b["faces"]]  # buckets with faces in them
    labels = [rows[0]["by_size"][i]["bucket"] for i in kept] + ["close-ups 300-460 px"]
    x = np.arange(len(labels))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        values = [row["by_size"][i]["recall"] or 0.0 for i in kept]
        values.append(row["close_ups_found"] / row["close_ups"] if row["close_ups"] else 0.0)
        ax.bar(x + k * width - 0.4 + width / 2, values, width, label=f"canvas {row['canvas']}")
    ax.set_xticks(x, labels, rotation=20, fontsize=8)
    ax.set_ylabel("recall (IoU >= 0.3)")
    ax.set_xlabel("face width in the 640x480 camera frame")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
