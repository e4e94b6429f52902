"""``maskgate eval``: the classifiers' figures, reproduced from the data folders."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..classifier import DEFAULT_MASK_MODEL, DEFAULT_POSE_MODEL, CropClassifier
from ..classifier_eval import classify_crops, mask_labels, pose_labels, scenes_end_to_end
from ..errors import SourceError
from ..progress import progress
from .options import add_detector_options, model_of, number


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="mask and yaw accuracy on the test split of pipeline crops, and mask accuracy end to end on test scenes",
        description="Scores the classifiers on the test split (by source image) of the crops cut from DATA, "
        "and runs detect -> align -> classify on the test images of DATA/scenes. Yaw labels are landmark-derived.",
    )
    p.add_argument("--data", help="data folder with faces/ and scenes/ (default: MASKGATE_DATA, or [data] path in "
                   "maskgate.toml; see docs/data.md)")
    p.add_argument(
        "--crops",
        help="a crop set built from DATA by 'maskgate crops' (else the crops are cut now, about 4 min on 2 cores)",
    )
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument("--mask-model", type=model_of("mask"), default=DEFAULT_MASK_MODEL)
    p.add_argument("--mask-weights")
    p.add_argument("--pose-model", type=model_of("pose"), default=DEFAULT_POSE_MODEL)
    p.add_argument("--pose-weights")
    p.add_argument(
        "--min-face-px", type=number(what="a face width in pixels", at_least=0),
        default=32.0, help="end-to-end scenes: faces at least this wide (default 32)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--no-progress", action="store_true")
    add_detector_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..config import data_folder
    from ..datasets.crops import CropSet, build_crops, split_of
    from ..detector import FaceDetector
    from ..files import atomic_write, writable_file
    from ..metrics import mask_scores, pose_scores
    from ..pipeline import Pipeline
    from ..voc import read_voc_folder

    show = not args.no_progress
    if args.json:
        writable_file(args.json, what="the figures", flag="--json")
    data = data_folder(args.data, needs=("faces", "scenes"))
    # The classifiers load before any crop is cut: a wrong model name or weights file fails here.
    mask = CropClassifier.reference(args.mask_model, weights=args.mask_weights, device=args.device)
    pose = CropClassifier.reference(args.pose_model, weights=args.pose_weights, device=args.device)
    if args.crops:
        crops = CropSet.load(args.crops)
    else:
        detector = FaceDetector.reference(
            args.detector, weights=args.weights, device=args.device, input_size=args.input_size
        )
        crops = build_crops(data, detector, progress=lambda it: progress(it, desc="crops", unit="img", enabled=show))
    crops = crops.where(split=args.split)
    if len(crops) == 0:
        raise SourceError(f"no crops in the {args.split} split")
    start = time.perf_counter()
    result: dict = {
        "split": args.split,
        "yaw_labels": "landmark-derived (solvePnP, generic 3D face), not measured head pose",
    }

    keep, labels = mask_labels(crops)
    probs = classify_crops(
        mask, crops.images[keep], progress=lambda it: progress(it, desc="mask", enabled=show, unit="crop")
    )
    result["mask"] = {"model": args.mask_model, "all": mask_scores(labels, probs)}
    for origin in ("faces", "scenes"):
        sel = crops.origin[keep] == origin
        result["mask"][origin] = mask_scores(labels[sel], probs[sel])

    keep, labels = pose_labels(crops)
    probs = classify_crops(
        pose, crops.images[keep], progress=lambda it: progress(it, desc="pose", enabled=show, unit="crop")
    )
    result["pose"] = {"model": args.pose_model, "all": pose_scores(labels, probs, len(pose.spec.class_names)),
                      "class_names": list(pose.spec.class_names)}
    sel = crops.mask[keep] == 0
    result["pose"]["masked"] = pose_scores(labels[sel], probs[sel], len(pose.spec.class_names))

    scenes = [
        s for s in read_voc_folder(data / "scenes") if split_of(s.image_path.relative_to(data).as_posix()) == args.split
    ]
    pipeline = Pipeline(
        FaceDetector.reference(args.detector, weights=args.weights, device=args.device, input_size=args.input_size,
                               score_threshold=args.min_score),
        mask=mask,
    )
    e2e = scenes_end_to_end(
        pipeline,
        scenes,
        min_width=args.min_face_px,
        progress=lambda it: progress(it, desc="scenes", enabled=show, unit="img"),
    )
    result["scenes_end_to_end"] = {"images": len(scenes), **e2e.to_dict()}
    result["seconds"] = round(time.perf_counter() - start, 1)
    _print(result)
    if args.json:
        atomic_write(Path(args.json), json.dumps(result, indent=1))
    pipeline.close()
    pose.close()
    return 0


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _print(r: dict) -> None:
    m = r["mask"]
    print(f"mask ({m['model']}), {r['split']} split of pipeline crops:")
    for name in ("all", "faces", "scenes"):
        s = m[name]
        auc = "-" if s["roc_auc"] is None else f"{s['roc_auc']:.4f}"
        print(
            f"  {name:>7s}: n={s['n']:5d} accuracy {_pct(s['accuracy'])}  ROC AUC {auc}  mask recall "
            f"{_pct(s['mask_recall'])}"
        )
    p = r["pose"]
    print(f"pose ({p['model']}), landmark-derived yaw labels, faces >= 20 px:")
    for name in ("all", "masked"):
        s = p[name]
        ca = " ".join(_pct(v) for v in s["per_class_accuracy"])
        print(f"  {name:>7s}: n={s['n']:5d} OA {_pct(s['overall_accuracy'])}  CA {ca}")
    e = r["scenes_end_to_end"]
    print(f"scenes end to end ({e['images']} {r['split']} images, faces >= {e['min_face_px']:g} px, IoU {e['iou']}): "
          f"{e['faces']} faces, {e['found']} found, mask accuracy {_pct(e['accuracy_of_found'])} of found, "
          f"{_pct(e['accuracy_of_all'])} counting misses as wrong")
