"""``maskgate eval-detector``: detection recall by face size on VOC-annotated scenes."""
from __future__ import annotations

import json
import sys
import time

from ..detector import FaceDetector
from ..metrics import RecallBySize
from ..sources import read_image
from ..voc import read_voc_folder
from .options import add_detector_options, number, whole


def add_parser(sub) -> None:
    p = sub.add_parser("eval-detector", help="recall by face size on a Pascal VOC folder (annotations/ + images/)")
    p.add_argument("scenes", help="folder with annotations/*.xml and images/")
    p.add_argument("--iou", type=number(what="a box overlap", above=0, at_most=1),
                   default=0.3, help="IoU for a detection to count as found (default 0.3)")
    p.add_argument(
        "--min-width", type=number(what="a face width in pixels", at_least=0),
        default=20.0, help="headline recall over faces at least this wide (default 20 px)"
    )
    p.add_argument("--limit", type=whole(what="images"), default=None, help="only the first N images")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    add_detector_options(p)
    p.set_defaults(func=main)


def evaluate_recall(detector: FaceDetector, scenes, *, iou: float, progress=None) -> RecallBySize:
    acc = RecallBySize(iou_threshold=iou)
    for i, item in enumerate(scenes, 1):
        found = detector.detect(read_image(item.image_path))
        acc.add(item.boxes, found.boxes, found.scores)
        if progress:
            progress(i, len(scenes))
    return acc


def main(args) -> int:
    from pathlib import Path

    from ..files import atomic_write, writable_file

    if args.json:
        writable_file(args.json, what="the figures", flag="--json")  # not after every image has run
    scenes = read_voc_folder(args.scenes)[: args.limit]
    detector = FaceDetector.reference(
        args.detector,
        weights=args.weights,
        device=args.device,
        input_size=args.input_size,
        score_threshold=args.min_score,
    )
    start = time.perf_counter()

    def progress(i: int, n: int) -> None:
        if i % 25 == 0 or i == n:
            print(f"\r  {i}/{n} images", end="\n" if i == n else "", file=sys.stderr, flush=True)

    acc = evaluate_recall(detector, scenes, iou=args.iou, progress=progress)
    seconds = time.perf_counter() - start
    size = detector.spec.input.size
    print(f"{args.detector} on {detector.runner.describe()}, canvas {size[0]}x{size[1]}, "
          f"min score {detector.options.score_threshold}, IoU >= {args.iou}, {len(scenes)} images, {seconds:.1f} s")
    print(f"{'face width':>14s} {'faces':>6s} {'found':>6s} {'recall':>7s}")
    for row in acc.rows():
        recall = f"{row['recall']:.3f}" if row["recall"] is not None else "-"
        print(f"{row['bucket']:>14s} {row['faces']:6d} {row['found']:6d} {recall:>7s}")
    headline = acc.recall(min_width=args.min_width)
    print(
        f"recall (faces >= {args.min_width:g} px): {headline:.4f}   all faces: {acc.recall():.4f}   precision: "
        f"{acc.precision:.4f}"
    )
    if args.json:
        atomic_write(Path(args.json), json.dumps({
            "detector": args.detector, "canvas": list(size), "score_threshold": detector.options.score_threshold,
            "iou": args.iou, "images": len(scenes), "min_width": args.min_width, "recall_min_width": headline,
            "recall_all": acc.recall(), "precision": acc.precision, "buckets": acc.rows(),
        }, indent=2))
    return 0
