"""``maskgate train mask|pose``: train a classifier on pipeline crops."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..pose import YawBins
from .options import add_detector_options, needs, number, whole


def yaw_edges(text: str) -> YawBins:
    try:
        return YawBins(tuple(float(v) for v in text.split(",")))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected ascending yaw edges symmetric about 0 such as -40,-20,0,20,40 ({exc})"
        ) from None


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the mask or pose classifier on the pipeline's crops",
        description="Trains on crops cut by the detector and aligner, split by source image; scores the "
        "untouched test split once at the end. Writes model.pt, metrics.json, curves/ROC/confusion plots and card.md.",
    )
    p.add_argument("task", choices=("mask", "pose"))
    p.add_argument(
        "--data",
        help="a crop set folder (from 'maskgate crops'), or a data folder with faces/ and scenes/ to crop first "
        "(default: MASKGATE_DATA, or [data] path in maskgate.toml)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="registered classifier (default mask_mobilenetv2 / pose_mobilenetv2_skip)")
    p.add_argument(
        "--init",
        choices=("imagenet", "none", "synthetic", "face"),
        default="imagenet",
        help="imagenet: ImageNet backbone; synthetic: ImageNet, then semi-synthetic masked faces, then real; "
        "face: the detector's body (with --model mask_mnet025); none: random",
    )
    p.add_argument(
        "--init-weights",
        help="torchvision checkpoint of the backbone to start from instead of the packaged ImageNet one",
    )
    p.add_argument("--templates", help="mask template folder (masks.cfg + templates/), for --init synthetic")
    p.add_argument("--epochs", type=whole(what="epochs"),
                   default=None, help="epochs on the real crops (default: mask 4, pose 6)")
    p.add_argument("--source-epochs", type=whole(what="epochs"),
                   help="epochs on the synthetic source, with --init synthetic (default 2)")
    p.add_argument(
        "--freeze-stages",
        type=whole(at_least=0, what="backbone stages"),
        default=None,
        help="backbone stages (shallow first) kept fixed on the real crops (default: 2 after a synthetic "
             "source, else 1)",
    )
    p.add_argument(
        "--source-freeze-stages", type=whole(at_least=0, what="backbone stages"),
        help="stages kept fixed on the synthetic source, with --init synthetic (default 1)"
    )
    p.add_argument("--batch-size", type=whole(what="a batch size"), default=64)
    p.add_argument("--lr", type=number(what="a learning rate", above=0, at_most=1), default=1e-3)
    p.add_argument("--seed", type=whole(at_least=0, what="a seed"), default=0)
    p.add_argument(
        "--min-face-px", type=number(what="a face width in pixels", at_least=0),
        default=None, help="skip faces narrower than this (default: pose 20, mask 0)"
    )
    p.add_argument(
        "--yaw-edges",
        type=yaw_edges,
        default=YawBins(),
        help="inner yaw class edges in degrees (default -40,-20,0,20,40)",
    )
    p.add_argument("--limit", type=whole(what="training crops"),
                   default=None, help="at most this many training crops (smoke runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_detector_options(p)
    p.set_defaults(func=main)


def load_or_build_crops(data: str | None, out: Path, args):
    from ..config import data_folder
    from ..datasets.crops import CROPS_FILE, CropSet
    from ..files import writable_folder

    if data is not None and ((Path(data) / CROPS_FILE).is_file() or Path(data).suffix == ".npz"):
        crops = CropSet.load(data)
        writable_folder(out, what="the trained model", flag="--out")
        return crops
    path = data_folder(data, needs=("faces", "scenes"), any_of=True)
    writable_folder(out, what="the crops and the trained model", flag="--out")  # before minutes of cropping
    from ..datasets.crops import build_crops
    from ..detector import FaceDetector
    from ..progress import progress

    detector = FaceDetector.reference(
        args.detector, weights=args.weights, device=args.device, input_size=args.input_size
    )
    crops = build_crops(
        path, detector, progress=lambda it: progress(it, desc="crops", unit="img", enabled=not args.no_progress)
    )
    crops.save(out / "crops")
    return crops


def main(args) -> int:
    from ..training.loop import TrainConfig
    from ..training.recipes import RecipeOptions, check_options, train

    out = Path(args.out)
    needs(args, flag="--init synthetic", given=("--templates", "--source-epochs", "--source-freeze-stages"),
          value=True if args.init == "synthetic" else None)
    show = not args.no_progress
    freeze = args.freeze_stages if args.freeze_stages is not None else (2 if args.init == "synthetic" else 1)
    shared = {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "show_progress": show}
    options = RecipeOptions(
        task=args.task,
        model=args.model,
        init=args.init,
        init_weights=args.init_weights,
        target=TrainConfig(epochs=args.epochs or (4 if args.task == "mask" else 6), freeze_stages=freeze, **shared),
        source=TrainConfig(epochs=args.source_epochs or 2, freeze_stages=1 if args.source_freeze_stages is None
                           else args.source_freeze_stages, **shared),
        templates=args.templates,
        min_face_px=args.min_face_px if args.min_face_px is not None else (20.0 if args.task == "pose" else 0.0),
        bins=args.yaw_edges,
        limit=args.limit,
    )
    check_options(options)  # before minutes of cropping
    crops = load_or_build_crops(args.data, out, args)
    metrics = train(crops, out, options)
    from ..training.card import write_card

    write_card(out, metrics)
    print(
        json.dumps({"out": str(out), "train_seconds": metrics["train_seconds"], "test": _headline(metrics)}, indent=1)
    )
    return 0


def _headline(metrics: dict) -> dict:
    test = metrics["test"]
    if metrics["task"] == "mask":
        return {k: {"accuracy": v["accuracy"], "roc_auc": v["roc_auc"], "n": v["n"]} for k, v in test.items()}
    return {
        k: {"overall_accuracy": v["overall_accuracy"], "per_class_accuracy": v["per_class_accuracy"], "n": v["n"]}
        for k, v in test.items()
    }
