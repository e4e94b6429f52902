"""``maskgate crops``: cut the pipeline's aligned face crops out of a labelled data folder."""
from __future__ import annotations

import json
import sys
import time

from ..datasets.crops import CropOptions, build_crops
from ..detector import FaceDetector
from ..progress import progress
from .options import add_detector_options, number, probability, size


def add_parser(sub) -> None:
    p = sub.add_parser(
        "crops",
        help="detect, align and crop every labelled face of a data folder (faces/ and scenes/) into a crop set",
        description="Builds the crop set the classifiers train and test on: the crops the deployed "
        "pipeline sees, split by source image (70/15/15 by a hash of the path).",
    )
    p.add_argument("--data", help="folder holding faces/with_mask, faces/without_mask and/or scenes/ (default: "
                   "MASKGATE_DATA, or [data] path in maskgate.toml)")
    p.add_argument("--out", required=True, help="folder to write crops.npz into")
    p.add_argument("--crop-size", type=size, default=(128, 128), help="crop WIDTHxHEIGHT (default 128x128)")
    p.add_argument("--margin", type=number(what="a share of the face box", at_least=0, at_most=2),
                   default=0.25, help="context around the face box (default 0.25)")
    p.add_argument("--crop-min-score", type=probability, default=0.3, help="detection score for crops (default 0.3)")
    add_detector_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..config import data_folder
    from ..files import writable_folder

    data = data_folder(args.data, needs=("faces", "scenes"), any_of=True)
    writable_folder(args.out, what="the crop set", flag="--out")  # not after every image is cropped
    detector = FaceDetector.reference(
        args.detector, weights=args.weights, device=args.device, input_size=args.input_size
    )
    options = CropOptions(size=args.crop_size, margin=args.margin, score_threshold=args.crop_min_score)
    start = time.perf_counter()
    crops = build_crops(
        data, detector, options=options, progress=lambda it: progress(it, desc="crops", unit="img")
    )
    crops.info["seconds"] = round(time.perf_counter() - start, 1)
    crops.info["command"] = " ".join(["maskgate", *sys.argv[1:]]) if sys.argv[0].endswith("maskgate") else None
    path = crops.save(args.out)
    print(json.dumps({"path": str(path), **crops.summary(), "counts": crops.info["counts"]}, indent=1))
    return 0
